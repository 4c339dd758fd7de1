"""Is one method better than another? Significance tests over finished runs, as a results file.

Reads the persisted folds of the given ``merkit benchmark --out`` folders (nothing is refitted),
runs the corrected resampled t-test (Nadeau & Bengio 2003) with Holm's correction for every pair
of methods, shows the naive paired t-test beside it, and writes
``benchmarks/results/<name>.md`` with the command and machine. Runs on different folds are
refused (:func:`merkit.report.stats.fold_scores`).

Example::

    python benchmarks/significance.py runs/svm-pair --name 4qaed_svm_vs_svm_own
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _common import VERSIONED, command_line, footer, machine, timestamp, versions
from merkit.report.html import collect
from merkit.report.stats import fold_scores, pairwise_comparisons

RESULTS = Path(__file__).resolve().parent / "results"


def pct(value: float) -> str:
    return f"{100 * value:+.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="merkit benchmark --out folders")
    parser.add_argument("--name", required=True, help="results file name (without .md)")
    parser.add_argument(
        "--note", action="append", default=[], help="a line for the file, e.g. the run's command"
    )
    args = parser.parse_args()

    entries = collect(args.runs)
    scores, ratio = fold_scores({e.label: e.result for e in entries})
    comparisons = pairwise_comparisons(scores, ratio)
    protocols = sorted({e.result.protocol.describe() for e in entries})
    datasets = sorted({e.result.dataset for e in entries})
    lines = [
        f"# {args.name}: {', '.join(datasets)}, {'; '.join(protocols)}",
        "",
        f"Produced {timestamp()} by `{command_line()}` from the persisted folds of "
        + ", ".join(f"`{run}`" for run in args.runs)
        + ".",
        "",
        "| method | mean macro F1 % | std % | folds |",
        "|---|---:|---:|---:|",
    ]
    for label in scores.columns:
        column = scores[label]
        lines.append(
            f"| {label} | {100 * column.mean():.2f} | {100 * column.std(ddof=0):.2f} | "
            f"{len(column)} |"
        )
    lines += [
        "",
        f"Corrected resampled t-test over the {len(scores)} shared folds (n_test/n_train = "
        f"{ratio:.4f}), Holm-adjusted over {len(comparisons)} pair(s); naive paired t-test for "
        "contrast (it ignores that the folds share training songs and is anti-conservative).",
        "",
        "| A vs B | ΔF1 (A−B) % | 95% CI % | t corrected | p corrected | p Holm | t naive |"
        " p naive | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in comparisons:
        better = c.a if c.corrected.mean > 0 else c.b
        verdict = f"{better} is better" if c.significant else "no significant difference"
        lines.append(
            f"| {c.a} vs {c.b} | {pct(c.corrected.mean)} | "
            f"[{pct(c.corrected.ci_low)}, {pct(c.corrected.ci_high)}] | {c.corrected.t:.3f} | "
            f"{c.corrected.p:.3g} | {c.p_holm:.3g} | {c.naive.t:.3f} | {c.naive.p:.3g} | "
            f"{verdict} |"
        )
    lines += footer(machine(), versions((*VERSIONED, "statsmodels")), args.note)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{args.name}.md"
    out.write_text("\n".join(lines))
    print(out.read_text())


if __name__ == "__main__":
    main()
