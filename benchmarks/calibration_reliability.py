"""How far the shipped model's probabilities can be trusted, from out-of-fold predictions.

Reads the fold records of a run of the shipped recipe *with its calibration*
(``benchmarks/calibrated_run.py``: each training fold fits the estimator and its probability
calibration exactly as ``merkit train`` does; the test fold's probabilities are recorded), then

1. measures the reliability of those out-of-fold probabilities: top-label expected calibration
   error (ECE, 10 equal-width bins), Brier score, log loss, a reliability table;
2. fits a post-hoc temperature (:func:`merkit.estimators.calibration.fit_temperature`) and
   measures it *cross-fitted*: the songs are split into 10 stratified groups and each group's
   predictions are scaled with a temperature fitted on the other groups' predictions only (a
   song never helps calibrate its own answer, in any repeat);
3. chooses the ``mixed`` threshold (:func:`merkit.estimators.calibration.mixed_threshold`: the top
   probability below which the first choice is right less than half the time), cross-fitted in
   the same way, and reports how often answers are mixed and how often the truth is one of the
   two quadrants a mixed answer names;
4. with ``--write-layer``, stores the layer fitted on all the predictions as
   ``calibration.json`` in the model directory (the estimator's bytes are not touched; the
   temperature is 1 unless the cross-fitted ECE improves) and adds the measured reliability to
   its model card.

Example (the default model; the run is resumable)::

    MERKIT_PRETRAINED=../shared/pretrained nice -n 19 python benchmarks/calibrated_run.py \\
        --dataset 4qaed --root ../shared/data/4qaed --methods fusion \\
        --config benchmarks/configs/fusion_default.yaml --protocol kfold --folds 10 \\
        --repeats 10 --out runs/calib-default
    python benchmarks/calibration_reliability.py --run runs/calib-default/fusion+platt \\
        --model-dir src/merkit/pretrained/default --name 4qaed_default_calibration --write-layer
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from _common import command_line, machine, versions
from merkit.core.labels import QUADRANT_MEANINGS, QUADRANTS
from merkit.estimators.calibration import (
    ProbabilityCalibration,
    expected_calibration_error,
    fit_temperature,
    mixed_threshold,
    reliability_table,
    scale_temperature,
)
from merkit.product.card import reliability_section
from merkit.product.prediction import mixed_answer
from merkit.protocol.records import read_fold

N_BINS = 10
GROUPS = 10


def load_folds(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Out-of-fold probabilities, true classes and song ids of every finished fold."""
    proba, y, ids, n = [], [], [], 0
    for path in sorted((run / "folds").glob("r*_f*.json")):
        record = read_fold(path)
        if record is None or record.proba is None:
            continue
        proba += record.proba
        y += record.y_true
        ids += record.test_ids
        n += 1
    if not n:
        raise SystemExit(f"no finished fold with probabilities under {run / 'folds'}")
    p = np.asarray(proba, dtype=np.float64)
    return p / p.sum(axis=1, keepdims=True), np.asarray(y), np.asarray(ids), n


def scores(proba: np.ndarray, y: np.ndarray) -> dict[str, float]:
    onehot = np.eye(proba.shape[1])[y]
    return {
        "ece": expected_calibration_error(proba, y, N_BINS),
        "brier": float(np.mean(np.sum((proba - onehot) ** 2, axis=1))),
        "log_loss": float(-np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1)))),
        "accuracy": float(np.mean(proba.argmax(axis=1) == y)),
        "mean_confidence": float(np.mean(proba.max(axis=1))),
    }


def mixed_flags(proba: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``mixed`` flag (the predictor's rule) and the runner-up's column."""
    flags, second = [], []
    for row, tau in zip(proba, thresholds, strict=True):
        p = dict(zip(QUADRANTS, row, strict=True))
        arousal = "high" if p["Q1"] + p["Q2"] >= 0.5 else "low"
        valence = "positive" if p["Q1"] + p["Q4"] >= 0.5 else "negative"
        mixed, _, _ = mixed_answer(p, arousal, valence, QUADRANT_MEANINGS, mixed_below=tau)
        flags.append(mixed)
        second.append(int(np.argsort(-row)[1]))
    return np.asarray(flags), np.asarray(second)


def cross_fit(
    proba: np.ndarray, y: np.ndarray, ids: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Temperature-scaled probabilities, temperatures, thresholds with and without the
    temperature: each song's row scored with a layer fitted on the other songs only."""
    songs, first = np.unique(ids, return_index=True)
    groups = np.zeros(len(songs), dtype=int)
    split = StratifiedKFold(GROUPS, shuffle=True, random_state=seed)
    for g, (_, test) in enumerate(split.split(np.zeros(len(songs)), y[first])):
        groups[test] = g
    row_group = groups[np.searchsorted(songs, ids)]
    out = np.empty_like(proba)
    temps = np.empty(len(y))
    taus = np.empty(len(y))
    plain_taus = np.empty(len(y))
    for g in range(GROUPS):
        test = row_group == g
        train = ~test
        t = fit_temperature(proba[train], y[train])
        out[test] = scale_temperature(proba[test], t)
        temps[test] = t
        taus[test] = mixed_threshold(scale_temperature(proba[train], t), y[train])
        plain_taus[test] = mixed_threshold(proba[train], y[train])
    return out, temps, taus, plain_taus


def mixed_report(proba: np.ndarray, y: np.ndarray, taus: np.ndarray) -> dict[str, float]:
    flags, second = mixed_flags(proba, taus)
    top = proba.argmax(axis=1)
    right = top == y
    return {
        "share_mixed": float(flags.mean()),
        "accuracy_clear": float(right[~flags].mean()) if (~flags).any() else math.nan,
        "accuracy_mixed": float(right[flags].mean()) if flags.any() else math.nan,
        "mixed_truth_in_named_two": (
            float(((top == y) | (second == y))[flags].mean()) if flags.any() else math.nan
        ),
        "share_low_top": float((proba.max(axis=1) < taus).mean()),
        "share_sides_disagree": float((flags & (proba.max(axis=1) >= taus)).mean()),
    }


def markdown(result: dict[str, Any]) -> str:
    b, a = result["before"], result["after_cross_fitted"]
    mb, ma = result["mixed_uncalibrated"], result["mixed_cross_fitted"]
    lines = [
        f"# {result['name']}: reliability of the shipped model's probabilities",
        "",
        f"Produced {result['created']} by `{result['command']}` from "
        f"`{result['run']}`: {result['n_folds']} out-of-fold test folds "
        f"({result['protocol_words']}), {result['n_rows']} predictions of {result['n_songs']} "
        "songs (each song once per repeat).",
        "",
        f"Machine: `{json.dumps(result['machine'])}`",
        "",
        f"Versions: `{json.dumps(result['versions'])}`",
        "",
        "Each fold's probabilities come from the recipe fitted on the training fold *with* its "
        "calibration, as `merkit train` ships it (`benchmarks/calibrated_run.py`). After = a "
        f"temperature on the log-probabilities, cross-fitted over {GROUPS} stratified song "
        "groups (each song's predictions scaled by a temperature fitted without that song).",
        "",
        "| | ECE (10 bins) | Brier | log loss | accuracy | mean confidence |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, s in (("shipped probabilities", b), ("with temperature (cross-fitted)", a)):
        lines.append(
            f"| {label} | {100 * s['ece']:.2f} % | {s['brier']:.4f} | {s['log_loss']:.4f} | "
            f"{100 * s['accuracy']:.2f} % | {100 * s['mean_confidence']:.2f} % |"
        )
    lines += [
        "",
        f"Temperature fitted on all predictions: **{result['temperature_all']:.3f}** "
        f"(cross-fitted range {result['temperature_range'][0]:.3f}–"
        f"{result['temperature_range'][1]:.3f}). Shipped layer: temperature "
        f"**{result['layer']['temperature']:.3f}** ({result['decision']}).",
        "",
        "## Reliability table (shipped probabilities)",
        "",
        "| top probability | answers | mean confidence | right |",
        "|---|---:|---:|---:|",
    ]
    for row in result["table_before"]:
        if row["n"]:
            lines.append(
                f"| {100 * row['low']:.0f}–{100 * row['high']:.0f} % | {row['n']} | "
                f"{100 * row['confidence']:.1f} % | {100 * row['accuracy']:.1f} % |"
            )
    lines += [
        "",
        "## The `mixed` flag",
        "",
        "An answer is *mixed* when its top probability is below the threshold (the top "
        "probability below which the first choice is right less than half the time: an "
        "isotonic fit of right/wrong against the top probability) or when the top quadrant "
        "disagrees with the arousal/valence sides the probabilities sum to.",
        "",
        f"Threshold fitted on all (calibrated) predictions: "
        f"**{result['layer']['mixed_below']:.3f}**"
        f" (cross-fitted range {result['tau_range'][0]:.3f}–{result['tau_range'][1]:.3f}).",
        "",
        "| probabilities | mixed | right when clear | right when mixed | truth among the two "
        "named (mixed) | low top | sides disagree |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, m in (("shipped", mb), ("with temperature (cross-fitted)", ma)):
        lines.append(
            f"| {label} | {100 * m['share_mixed']:.1f} % | {100 * m['accuracy_clear']:.1f} % | "
            f"{100 * m['accuracy_mixed']:.1f} % | {100 * m['mixed_truth_in_named_two']:.1f} % | "
            f"{100 * m['share_low_top']:.1f} % | {100 * m['share_sides_disagree']:.1f} % |"
        )
    lines += [
        "",
        "These are 30 s clips (one window each); a long track averages its windows, which "
        "makes its probabilities less extreme, so on long tracks `mixed` is, if anything, "
        "said more often.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="<out>/<method> of the run")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--name", default="4qaed_default_calibration")
    parser.add_argument("--seed", type=int, default=0, help="seed of the song groups")
    parser.add_argument("--write-layer", action="store_true")
    parser.add_argument("--min-gain", type=float, default=0.005, help="ECE gain to ship T")
    parser.add_argument(
        "--protocol-words",
        default="10x10 stratified CV, random_state=1",
        help="how the run's folds were made, in words (for the card and the layer)",
    )
    args = parser.parse_args()

    proba, y, ids, n_folds = load_folds(args.run)
    after, temps, taus, plain_taus = cross_fit(proba, y, ids, args.seed)
    before_scores, after_scores = scores(proba, y), scores(after, y)
    t_all = fit_temperature(proba, y)
    gain = before_scores["ece"] - after_scores["ece"]
    ship_t = t_all if gain >= args.min_gain else 1.0
    decision = (
        f"the cross-fitted ECE falls by {100 * gain:.2f} points"
        if ship_t != 1.0
        else f"the cross-fitted ECE changes by only {100 * -gain:+.2f} points: not shipped"
    )
    shipped = scale_temperature(proba, ship_t)
    ship_taus = taus if ship_t != 1.0 else plain_taus
    layer = ProbabilityCalibration(
        temperature=round(ship_t, 4),
        mixed_below=round(mixed_threshold(shipped, y), 3),
        fitted_on=(
            f"{len(y)} out-of-fold predictions of {len(np.unique(ids))} 4QAED songs "
            f"({n_folds} test folds: {args.protocol_words}), benchmarks/results/{args.name}.md"
        ),
        ece_before=round(before_scores["ece"], 4),
        ece_after=round(after_scores["ece"] if ship_t != 1.0 else before_scores["ece"], 4),
    )
    result = {
        "name": args.name,
        "created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "command": command_line(),
        "run": str(args.run),
        "machine": machine(),
        "versions": versions(),
        "n_folds": n_folds,
        "protocol_words": args.protocol_words,
        "n_rows": len(y),
        "n_songs": len(np.unique(ids)),
        "before": before_scores,
        "after_cross_fitted": after_scores,
        "temperature_all": t_all,
        "temperature_range": [float(temps.min()), float(temps.max())],
        "tau_range": [float(ship_taus.min()), float(ship_taus.max())],
        "decision": decision,
        "layer": layer.__dict__,
        "table_before": reliability_table(proba, y, N_BINS),
        "table_after": reliability_table(after, y, N_BINS),
        "mixed_uncalibrated": mixed_report(proba, y, plain_taus),
        "mixed_cross_fitted": mixed_report(after if ship_t != 1.0 else proba, y, ship_taus),
    }
    out = Path(__file__).parent / "results"
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    (out / f"{args.name}.md").write_text(markdown(result))
    print(markdown(result))
    if args.write_layer:
        layer.save(args.model_dir)
        card = args.model_dir / "MODEL_CARD.md"
        text = card.read_text()
        marker = "\n## How sure it is\n"
        text = text.split(marker)[0].rstrip("\n") + "\n" + reliability_section(layer, result)
        card.write_text(text)
        print(f"wrote {args.model_dir / 'calibration.json'} and the card's reliability section")


if __name__ == "__main__":
    main()
