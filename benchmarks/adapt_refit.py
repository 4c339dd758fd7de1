"""Few-shot adaptation on genres a model never saw: recalibration against an SVM refit.

For each 4QAED genre group (:mod:`merkit.protocol.genre`), the method is trained on every other
genre exactly as ``merkit train`` ships it (seeded calibration,
:func:`merkit.product.export._calibrated`),
then, for ``k`` songs per quadrant of the held-out genre drawn with each of ``--seeds`` seeds
(from every quadrant that has more than ``k`` songs there, so some remain to test):

- ``bias``: ``merkit adapt``'s default, per-quadrant log-offsets
  (:class:`merkit.product.adapt.Recalibration`);
- ``refit wW``: ``merkit adapt --kind refit --weight W``: the model's SVM refitted on its support
  vectors plus the examples, each weighing ``W`` (:mod:`merkit.estimators.support_refit`).

Each is scored (macro F1 over the quadrants present) on the genre's songs that were not examples,
against the unadapted model on the same songs. Features come from merkit's cache
(``$MERKIT_CACHE``).

Example::

    python benchmarks/adapt_refit.py --root ../shared/data/4qaed --methods fusion \\
        --config benchmarks/configs/fusion_default.yaml --out benchmarks/results/4qaed_adapt_refit
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import f1_score

from merkit.datasets import load_dataset
from merkit.datasets.base import Dataset
from merkit.estimators.calibration import take_rows
from merkit.estimators.support_refit import refit_with_examples
from merkit.methods import read_settings, resolve_method
from merkit.product.adapt import Recalibration
from merkit.product.export import _calibrated
from merkit.protocol.genre import dataset_genre_groups
from merkit.protocol.runner import resolve_inputs


def draw_examples(labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``k`` rows per quadrant that has more than ``k`` rows (seeded), sorted."""
    rng = np.random.default_rng(seed)
    picked = [
        rng.choice(np.flatnonzero(labels == q), k, replace=False)
        for q in range(4)
        if (labels == q).sum() > k
    ]
    return np.sort(np.concatenate(picked)) if picked else np.array([], dtype=int)


def macro_f1(y: np.ndarray, proba: np.ndarray) -> float:
    return float(f1_score(y, proba.argmax(axis=1), average="macro", labels=np.unique(y)))


def run_method(
    name: str, settings: dict[str, Any], dataset: Dataset, args: argparse.Namespace
) -> dict[str, Any]:
    resolved = resolve_method(name, settings.get(name))
    inputs = resolve_inputs(dataset, resolved.inputs, progress=False)
    y = np.asarray(dataset.labels)
    groups = dataset_genre_groups(dataset)
    genre_of = np.array([groups[s] for s in dataset.song_ids])
    names, counts = np.unique(genre_of, return_counts=True)
    order = [str(g) for g, _ in sorted(zip(names, counts, strict=True), key=lambda t: -t[1])]
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for genre in order:
        start = time.perf_counter()
        test = np.flatnonzero(genre_of == genre)
        train = np.flatnonzero(genre_of != genre)
        subset = Dataset(dataset.name, [dataset.songs[i] for i in train])
        model, _ = _calibrated(clone(resolved.estimator), subset, args.seed, len(inputs))
        model.fit(resolved.estimator_input(inputs, train), y[train])
        x_test, y_test = resolved.estimator_input(inputs, test), y[test]
        before = model.predict_proba(x_test)
        for k in args.k:
            for seed in range(args.seeds):
                examples = draw_examples(y_test, k, seed)
                rest = np.setdiff1d(np.arange(len(test)), examples)
                row: dict[str, float] = {"none": macro_f1(y_test[rest], before[rest])}
                bias = Recalibration("bias", 4.0).fit(before[examples], y_test[examples])
                row["bias"] = macro_f1(y_test[rest], bias.transform(before[rest]))
                for weight in args.weights:
                    refitted = refit_with_examples(
                        model,
                        take_rows(x_test, examples),
                        y_test[examples],
                        np.full(len(examples), weight),
                    )
                    after = refitted.predict_proba(take_rows(x_test, rest))
                    row[f"refit w{weight:g}"] = macro_f1(y_test[rest], after)
                for key, value in row.items():
                    scores[f"{k}"][f"{genre}\t{key}"].append(value)
        elapsed = time.perf_counter() - start
        print(f"{name}: {genre} ({len(test)} songs) {elapsed:.0f} s", flush=True)
    return {"genres": order, "scores": {k: dict(v) for k, v in scores.items()}}


def summarise(result: dict[str, Any], weights: list[float]) -> list[dict[str, Any]]:
    """Per (k, variant): mean F1 over genres and the change against no adaptation."""
    rows = []
    for k, table in result["scores"].items():
        variants = ["none", "bias", *[f"refit w{w:g}" for w in weights]]
        base = {g: np.mean(table[f"{g}\tnone"]) for g in result["genres"]}
        for variant in variants:
            mean = {g: np.mean(table[f"{g}\t{variant}"]) for g in result["genres"]}
            delta = np.array([100 * (mean[g] - base[g]) for g in result["genres"]])
            rows.append(
                {
                    "k": int(k),
                    "variant": variant,
                    "f1": 100 * float(np.mean(list(mean.values()))),
                    "delta": float(delta.mean()),
                    "delta_std": float(delta.std()),
                    "rose": int((delta > 0.05).sum()),
                    "fell": int((delta < -0.05).sum()),
                    "per_genre": dict(zip(result["genres"], delta.round(2).tolist(), strict=True)),
                }
            )
    return rows


def write_markdown(
    path: Path, results: dict[str, Any], weights: list[float], args: argparse.Namespace
) -> None:
    lines = [
        f"# {path.stem}: few-shot adaptation to an unseen genre, recalibration vs SVM refit",
        "",
        f"Generated by `benchmarks/adapt_refit.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        f"Command: `{args.command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}.",
        "",
        "Each 4QAED genre group is held out in turn; the method is trained on the other genres as "
        "`merkit train` ships it (with its seeded calibration); `k` songs per quadrant of the "
        f"held-out genre ({args.seeds} seeds; quadrants with more than `k` songs there) adapt it, "
        "and macro F1 is scored on the genre's other songs. `ΔF1` is the mean over genres of the "
        "change against the unadapted model on the same songs, ± its std over genres; rose / fell "
        "count genres whose mean F1 moved by more than 0.05 points.",
        "",
        "| method | k | adaptation | F1 % | ΔF1 points | rose / fell |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for method, result in results.items():
        for row in summarise(result, weights):
            lines.append(
                f"| {method} | {row['k']} | {row['variant']} | {row['f1']:.1f} | "
                f"{row['delta']:+.1f} ± {row['delta_std']:.1f} | "
                f"{row['rose']} / {row['fell']} of {len(result['genres'])} |"
            )
    lines += ["", "## ΔF1 per held-out genre (points)", ""]
    for method, result in results.items():
        genres = result["genres"]
        lines += [
            f"### {method}",
            "",
            "| k | adaptation | " + " | ".join(genres) + " |",
            "|---:|---|" + "---:|" * len(genres),
        ]
        for row in summarise(result, weights):
            if row["variant"] == "none":
                continue
            cells = " | ".join(f"{row['per_genre'][g]:+.1f}" for g in genres)
            lines.append(f"| {row['k']} | {row['variant']} | {cells} |")
        lines.append("")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="4qaed")
    parser.add_argument("--root", type=Path)
    parser.add_argument("--methods", default="fusion")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--k", default="2,5", help="songs per quadrant, comma list")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--weights", default="1,3,10", help="refit weights, comma list")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shipped calibration")
    parser.add_argument("--out", type=Path, required=True, help="results path without suffix")
    args = parser.parse_args()
    args.command = "python benchmarks/adapt_refit.py " + " ".join(sys.argv[1:])
    args.k = [int(v) for v in args.k.split(",")]
    weights = [float(v) for v in args.weights.split(",")]
    args.weights = weights
    dataset = load_dataset(args.dataset, args.root)
    settings = read_settings(args.config) if args.config else {}
    results = {m: run_method(m, settings, dataset, args) for m in args.methods.split(",")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    write_markdown(args.out, results, weights, args)
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
