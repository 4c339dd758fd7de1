"""Wall time of one fixed benchmark under each executor: serial, processes and Ray.

Workload: ``svm-own``, 10-fold x 2 repeats (20 fold tasks) on the synthetic dataset
(``--per-quadrant`` songs per quadrant, ``--duration`` s each), with the songs' own-features
already in the cache (computed first, not timed), so what is measured is the folds and the
executor around them (reading the cached inputs and :func:`merkit.protocol.run_method`; the
report and plots of ``merkit benchmark``, the same for every executor, are left out). Each
executor writes into a fresh output folder:

- ``serial``: :class:`merkit.protocol.SerialExecutor`, this process;
- ``processes``: :class:`merkit.protocol.ProcessExecutor` with 2 workers (spawning the pool is
  part of the run, as in ``merkit benchmark --executor processes``);
- ``ray``: :class:`merkit.protocol.ray_executor.RayExecutor`, a local instance with 2 CPUs;
  starting it (``start_s``) is timed apart from the run, since a cluster is started once for
  many runs.

The three runs' fold results are compared (they must be identical). Ratios are serial wall time
over each executor's. The machine may be shared with other jobs: the load average at the start
and the end is recorded beside the numbers.

Usage::

    python benchmarks/executor_speed.py [--per-quadrant 20] [--duration 5] [--cache DIR]

Writes ``benchmarks/results/executor_speed.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import VERSIONED, command_line, footer, machine, versions

HERE = Path(__file__).resolve().parent


def run(args: argparse.Namespace) -> dict[str, Any]:
    from merkit.datasets.synthetic import load_synthetic
    from merkit.methods import resolve_method
    from merkit.protocol import (
        ProcessExecutor,
        ProtocolConfig,
        SerialExecutor,
        load_or_create_folds,
        resolve_inputs,
        run_method,
    )
    from merkit.protocol.ray_executor import RayExecutor
    from merkit.representations.cache import FeatureCache
    from merkit.representations.extract import compute

    started = machine()
    dataset = load_synthetic(n_per_quadrant=args.per_quadrant, seed=0, duration=args.duration)
    cache = FeatureCache(args.cache)
    tic = time.perf_counter()
    compute(dataset, "own-features", cache=cache, n_jobs=2, progress=False)
    features_s = time.perf_counter() - tic
    protocol = ProtocolConfig(n_splits=10, n_repeats=2, random_state=1)
    method = resolve_method("svm-own")
    work = Path(tempfile.mkdtemp(prefix="executor-speed-"))
    fold_list = load_or_create_folds(work / "folds", dataset, protocol)
    rows: dict[str, dict[str, Any]] = {}
    folds: dict[str, Any] = {}
    try:
        for name in ("serial", "processes", "ray"):
            start_s = 0.0
            if name == "serial":
                executor: Any = SerialExecutor()
            elif name == "processes":
                executor = ProcessExecutor(2)
            else:
                tic = time.perf_counter()
                executor = RayExecutor(num_cpus=2).start()
                start_s = time.perf_counter() - tic
            tic = time.perf_counter()
            inputs = resolve_inputs(dataset, method.inputs, cache=cache, progress=False)
            result = run_method(
                method,
                dataset,
                inputs,
                fold_list,
                protocol,
                work / name,
                executor=executor,
                progress=False,
            )
            wall = time.perf_counter() - tic
            if name == "ray":
                executor.close()
            folds[name] = [(r.name, r.y_pred, r.proba) for r in result.per_fold]
            rows[name] = {
                "workers": 1 if name == "serial" else 2,
                "start_s": round(start_s, 2),
                "run_s": round(wall, 2),
                "fold_compute_s": round(result.seconds, 2),
                "f1": round(result.summary["f1"], 4),
            }
            print(name, rows[name], flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in rows.values():
        row["speedup_vs_serial"] = round(rows["serial"]["run_s"] / row["run_s"], 2)
    return {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command_line(),
        "workload": {
            "method": "svm-own",
            "protocol": protocol.describe(),
            "songs": len(dataset),
            "duration_s": args.duration,
            "features_s": round(features_s, 2),
        },
        "identical_folds": folds["serial"] == folds["processes"] == folds["ray"],
        "executors": rows,
        "machine": started,
        "load_average_end": os.getloadavg(),
        "versions": versions((*VERSIONED, "ray")),
    }


def markdown(data: dict[str, Any]) -> str:
    work = data["workload"]
    lines = [
        "# Executor speed: one benchmark, serial vs processes vs Ray",
        "",
        f"Generated by `benchmarks/executor_speed.py` on {data['generated']}.",
        "",
        f"Command: `{data['command']}`",
        "",
        f"Workload: `{work['method']}`, {work['protocol']}, {work['songs']} synthetic songs of "
        f"{work['duration_s']:g} s, own-features cached beforehand ({work['features_s']:.1f} s, "
        "not timed).",
        "",
        "| executor | workers | start s | run s | fold compute s | F1 | speed-up vs serial |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in data["executors"].items():
        lines.append(
            f"| {name} | {row['workers']} | {row['start_s']:.2f} | {row['run_s']:.2f} | "
            f"{row['fold_compute_s']:.2f} | {row['f1']:.4f} | {row['speedup_vs_serial']:.2f} |"
        )
    load_start = data["machine"]["load_average"]
    load_end = data["load_average_end"]
    notes = [
        "Fold results identical across the three executors: "
        + ("yes." if data["identical_folds"] else "NO."),
        "`run s` is the wall time of reading the cached features and `run_method` (the 20 "
        "folds, each fold file written as it finishes; no report or plots); `start s` is "
        "`ray.init` of a local instance, paid once per session "
        "(on a cluster, once for all runs). `fold compute s` is the sum of the folds' own fit and "
        "predict times.",
        f"The machine is shared with other jobs: load average (1, 5, 15 min) {load_start[0]:.1f}, "
        f"{load_start[1]:.1f}, {load_start[2]:.1f} at the start and {load_end[0]:.1f}, "
        f"{load_end[1]:.1f}, {load_end[2]:.1f} at the end, so absolute times are inflated and "
        "the ratios only indicate the overhead of each executor on a busy 2-core machine.",
        "svm-own folds take milliseconds: this workload measures each executor's overhead "
        "(process start-up and imports, shipping the inputs), not a parallel speed-up; folds of "
        "deep methods (minutes each) are where processes and Ray gain.",
    ]
    return "\n".join([*lines, *footer(data["machine"], data["versions"], notes)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-quadrant", type=int, default=20)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--cache", type=Path, default=None, help="feature cache folder")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "executor_speed")
    args = parser.parse_args()
    data = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(data))
    print(markdown(data))


if __name__ == "__main__":
    main()
