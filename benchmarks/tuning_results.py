"""Commit-ready results of a ``merkit tune`` search and of a ``--train-fraction`` size curve.

Reads finished run folders (nothing is recomputed) and writes, under ``benchmarks/results/``:

* ``<name>.md`` / ``.csv`` for a search (``--tune DIR`` with ``--tuned RUN``, the 10x10 benchmark
  of its ``best.yaml``): the space, the best trials, the cross-validated score of the best
  settings beside the untuned method;
* ``<name>.md`` / ``.csv`` / ``.png`` for a size curve (``--curve RUN``).

Example::

    python benchmarks/tuning_results.py --tune runs/tune-svm-own --tuned runs/svm-own-tuned \
        --baseline runs/size-curve --name 4qaed_svm_own_tuned --command "merkit tune ..."
    python benchmarks/tuning_results.py --curve runs/size-curve --name 4qaed_size_curve
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pandas as pd

from _common import command_line, machine, timestamp, versions
from merkit.protocol.curves import parse_fraction_name
from merkit.protocol.results import load_results
from merkit.report.tables import results_frame, train_songs

RESULTS = Path(__file__).resolve().parent / "results"


def _pct(value: float) -> str:
    return f"{100 * value:.2f}"


def provenance(commands: list[str], notes: list[str]) -> list[str]:
    lines = ["", "Commands (in this order):", ""]
    lines += [f"    {command}" for command in commands]
    lines += ["", f"Written by `{command_line()}` from the persisted run folders."]
    lines += [f"- {note}" for note in notes]
    info = machine()
    lines += [
        "",
        f"Machine: {info['cpu_model']}, nproc {info['nproc']} (usable {info['usable_cpus']}), "
        f"{info['platform']}, GPU {info['gpu']}; load average when written "
        f"{', '.join(f'{x:.1f}' for x in info['load_average'])} (the machine was shared).",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".",
    ]
    return lines


def search_report(args: argparse.Namespace) -> None:
    search = json.loads((args.tune / "search.json").read_text())
    trials = pd.read_csv(args.tune / "trials.csv")
    done = trials[trials["state"] == "COMPLETE"].sort_values("value", ascending=False)
    tuned = results_frame(load_results(args.tuned).complete())
    rows = [tuned.assign(run=str(args.tuned), settings="best.yaml of the search")]
    if args.baseline is not None:
        base = results_frame(load_results(args.baseline).complete())
        base = base[base["method"] == search["method"]]
        rows.append(base.assign(run=str(args.baseline), settings="defaults"))
    frame = pd.concat(rows, ignore_index=True)
    frame.to_csv(RESULTS / f"{args.name}.csv", index=False, float_format="%.6f")

    params = [c for c in trials.columns if c.startswith("params_")]
    lines = [
        f"# {args.name}: `merkit tune --method {search['method']}` on {search['dataset']}, "
        "then its best settings through 10x10 CV",
        "",
        f"Produced {timestamp()}.",
        "",
        f"Search: {search['space']['sampler']} sampler over `{search['space']['source']}`, "
        f"{search['finished_trials']} finished trials, inner {search['space']['inner_folds']}-fold "
        f"stratified CV on all {search['n_songs']} songs (seed {search['seed']}). Space: "
        + ", ".join(f"`{k}` {v}" for k, v in search["space"]["params"].items())
        + ".",
        "",
        f"Best inner macro F1: **{_pct(search['best_inner_f1'])} %** with "
        + ", ".join(f"`{k}` = {v}" for k, v in search["best_params"].items())
        + ".",
        "",
        "Top trials (inner 5-fold macro F1):",
        "",
        "| trial | " + " | ".join(p.removeprefix("params_") for p in params) + " | inner F1 % |",
        "|---:|" + "---|" * len(params) + "---:|",
    ]
    for row in done.head(10).itertuples(index=False):
        values = [str(getattr(row, p)) for p in params]
        lines.append(f"| {row.number} | " + " | ".join(values) + f" | {_pct(row.value)} |")
    lines += [
        "",
        "10x10 stratified CV (random_state=1, the paper's protocol), same folds:",
        "",
        "| method | settings | P % | R % | F1 % ± std | splits | fit+predict s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in frame.itertuples(index=False):
        lines.append(
            f"| {row.method} | {row.settings} | {_pct(row.precision)} | {_pct(row.recall)} | "
            f"{_pct(row.f1)} ± {_pct(row.f1_std)} | {row.n_splits} | {row.seconds} |"
        )
    if args.nested is not None:
        lines += nested_lines(args, search["method"])
    lines += provenance(args.command, args.note)
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")


def nested_lines(args: argparse.Namespace, method: str) -> list[str]:
    """The same first-repeat folds scored three ways: defaults, settings chosen on all songs,
    settings chosen inside each outer training fold (nested)."""
    import numpy as np

    nested = load_results(args.nested)[method]
    names = {r.name for r in nested.per_fold}
    runs = [("defaults", args.baseline), ("best.yaml of the search on all songs", args.tuned)]
    lines = [
        "",
        f"The honest estimate: the {len(names)} folds of the first repeat, scored three ways "
        "(the fold files are the same songs and seeds in all three runs):",
        "",
        "| settings | F1 % ± std | chosen on |",
        "|---|---:|---|",
    ]
    for label, run in runs:
        if run is None:
            continue
        folds = [r for r in load_results(run)[method].per_fold if r.name in names]
        f1 = [r.metrics.f1 for r in folds]
        where = "–" if label == "defaults" else "all 900 songs (test folds included)"
        lines.append(f"| {label} | {_pct(np.mean(f1))} ± {_pct(np.std(f1))} | {where} |")
    f1 = [r.metrics.f1 for r in nested.per_fold]
    lines.append(
        f"| nested: `{nested.settings.get('tune')}` | {_pct(np.mean(f1))} ± {_pct(np.std(f1))} | "
        "each outer fold's 810 training songs |"
    )
    chosen = [r.extras["tuned"] for r in nested.per_fold]
    lines += ["", "Settings the nested search chose per outer fold (inner F1 %):", ""]
    lines += [
        f"- {r.name}: {c['params']} ({_pct(c['inner_f1'])})"
        for r, c in zip(nested.per_fold, chosen, strict=True)
    ]
    return lines


def curve_report(args: argparse.Namespace) -> None:
    results = load_results(args.curve).complete()
    frame = results_frame(results)
    frame["base_method"] = [parse_fraction_name(m)[0] for m in frame["method"]]
    frame = frame.sort_values(["base_method", "train_fraction"])
    frame.to_csv(RESULTS / f"{args.name}.csv", index=False, float_format="%.6f")
    shutil.copyfile(args.curve / "size_curve.png", RESULTS / f"{args.name}.png")
    sizes = {r.method: train_songs(r) for r in results}
    lines = [
        f"# {args.name}: macro F1 against training-set size on 4QAED (10x10 stratified CV)",
        "",
        f"Produced {timestamp()}. Each method is trained on nested stratified subsets of every "
        "training fold (one seeded permutation per quadrant per fold, cut at each fraction) and "
        "tested on the same full test folds (90 songs each), so only the training-set size "
        "changes.",
        "",
        f"![size curve]({args.name}.png)",
        "",
        "| method | fraction | training songs | P % | R % | F1 % ± std (folds) | splits |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in frame.itertuples(index=False):
        lines.append(
            f"| {row.base_method} | {row.train_fraction:g} | {sizes[row.method]:.0f} | "
            f"{_pct(row.precision)} | {_pct(row.recall)} | {_pct(row.f1)} ± {_pct(row.f1_std)} | "
            f"{row.n_splits} |"
        )
    lines += provenance(args.command, args.note)
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", type=Path, help="merkit tune --out folder")
    parser.add_argument("--tuned", type=Path, help="benchmark run of the search's best.yaml")
    parser.add_argument("--baseline", type=Path, help="run holding the untuned method")
    parser.add_argument("--nested", type=Path, help="run of the method with tune: (nested)")
    parser.add_argument("--curve", type=Path, help="benchmark run with --train-fraction")
    parser.add_argument("--name", required=True, help="results file stem")
    parser.add_argument("--command", action="append", default=[], help="a command that ran")
    parser.add_argument("--note", action="append", default=[], help="a line of notes")
    args = parser.parse_args()
    if args.tune is not None:
        search_report(args)
    elif args.curve is not None:
        curve_report(args)
    else:
        parser.error("give --tune (with --tuned) or --curve")


if __name__ == "__main__":
    main()
