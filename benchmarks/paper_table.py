"""Reproduce rows of the paper's Table 3 on 4QAED and commit-ready results files.

Runs ``merkit benchmark`` in-process (resuming from ``--out`` if a run was interrupted) and writes
``benchmarks/results/<name>.csv`` (the rows of ``results.csv``) and ``<name>.md`` (a table beside
the paper's numbers, with the exact command, machine and library versions).

Example (the full paper protocol for the classical baselines)::

    python benchmarks/paper_table.py --root ../shared/data/4qaed --methods svm,svm-own \
        --out runs/paper-classical --name 4qaed_svm
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _common import command_line, machine, timestamp, versions
from merkit.benchmark import run_benchmark
from merkit.datasets import load_dataset
from merkit.methods import read_settings
from merkit.protocol.folds import ProtocolConfig
from merkit.report.tables import results_frame, write_csv_atomic
from merkit.representations.cache import FeatureCache

RESULTS = Path(__file__).resolve().parent / "results"


def extras_lines(results: list) -> list[str]:
    """Per-method means over the folds of the numeric details the fold records keep (e.g. the
    chunk-level accuracy of a segment model, whose table row is song level)."""
    lines = []
    for result in results:
        extras = [record.extras for record in result.per_fold if record.extras]
        keys = sorted({k for e in extras for k, v in e.items() if isinstance(v, (int, float))})
        if not keys:
            continue
        means = ", ".join(f"{key} {sum(e[key] for e in extras) / len(extras):.4g}" for key in keys)
        texts = sorted({f"{k}={v}" for e in extras for k, v in e.items() if isinstance(v, str)})
        lines += ["", f"`{result.method}` fold details (mean of {len(extras)} folds): {means}"]
        if texts:
            lines[-1] += f"; {', '.join(texts)}"
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="4QAED folder")
    parser.add_argument("--methods", required=True, help="comma-separated method names")
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--config", type=Path, default=None, help="YAML of per-method settings")
    parser.add_argument("--out", type=Path, required=True, help="run folder (resumable)")
    parser.add_argument("--name", required=True, help="results file stem in benchmarks/results")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--note", default="", help="one line on what differs from the paper")
    args = parser.parse_args()

    dataset = load_dataset("4qaed", args.root)
    protocol = ProtocolConfig(n_splits=args.folds, n_repeats=args.repeats)
    params = read_settings(args.config)
    results = run_benchmark(
        dataset,
        [m.strip() for m in args.methods.split(",")],
        protocol,
        args.out,
        params=params,
        cache=FeatureCache(),
        n_jobs=args.jobs,
    )
    frame = results_frame(results)
    RESULTS.mkdir(exist_ok=True)
    write_csv_atomic(frame, RESULTS / f"{args.name}.csv")

    lines = [
        f"# {args.name}: {dataset.name}, {protocol.describe()}",
        "",
        f"Produced {timestamp()} by `{command_line()}`.",
        "",
        "| method | P % | R % | F1 % ± std | paper F1 % (Orig-4QAED, 10x10) | splits | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in frame.itertuples(index=False):
        paper = (
            ""
            if row.paper_f1 != row.paper_f1 or row.paper_f1 is None
            else f"{100 * row.paper_f1:.2f}"
        )
        lines.append(
            f"| {row.method} | {100 * row.precision:.2f} | {100 * row.recall:.2f} | "
            f"{100 * row.f1:.2f} ± {100 * row.f1_std:.2f} | {paper} | {row.n_splits} | "
            f"{row.seconds} |"
        )
    lines += extras_lines(results)
    if params:
        lines += ["", f"Settings (`--config`): `{json.dumps(params)}`"]
    if args.note:
        lines += ["", args.note]
    lines += [
        "",
        f"Machine: `{json.dumps(machine())}`",
        "",
        f"Versions: `{json.dumps(versions())}`",
        "",
        "`seconds` is the summed fit + predict time of the folds (feature extraction, cached "
        "once per song, is not included).",
    ]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / args.name}.csv and .md")


if __name__ == "__main__":
    main()
