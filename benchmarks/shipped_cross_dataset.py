"""The shipped models, trained on 4QAED, on another labelled collection (issue 33).

Every song of ``--dataset`` is predicted from its audio file by each shipped model, as
``merkit predict`` does (absolute answers), and the collection is then placed against itself
(``merkit predict --relative``). Reported per model and mode: macro F1 over the four quadrants,
the arousal and valence sides (accuracy and balanced accuracy: the collection's sides may be
uneven), the answers given and the confusion matrix; for a model with companions, the axis
models' own sides and the familiarity flag's split (how well flagged and unflagged songs are
answered: the flag is useful only if flagged songs are answered worse).

The labels are the dataset loader's quadrants (see its module for how they were derived).
Predictions are stored per song in ``<out>.json``; ``--reuse`` reads them back instead of
predicting again.

Usage::

    MERKIT_PRETRAINED=/work/shared/pretrained python benchmarks/shipped_cross_dataset.py \\
        --dataset musifeast17 --root /work/shared/data/musifeast17 \\
        --out benchmarks/results/musifeast17_shipped
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from _common import command_line, footer, machine, timestamp, versions

QUADRANTS = ("Q1", "Q2", "Q3", "Q4")
HIGH, POSITIVE = {"Q1", "Q2"}, {"Q1", "Q4"}


def macro_f1(y: list[str], pred: list[str]) -> float:
    """Macro F1 over the quadrants present in ``y`` (as the protocol's scores)."""
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, labels=sorted(set(y)), average="macro", zero_division=0))


def side_scores(truth: list[bool], said: list[bool]) -> dict[str, float]:
    t, s = np.array(truth), np.array(said)
    pos = float((s[t]).mean()) if t.any() else float("nan")
    neg = float((~s[~t]).mean()) if (~t).any() else float("nan")
    return {"accuracy": float((t == s).mean()), "balanced": (pos + neg) / 2}


def scores(y: list[str], pred: list[str]) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix

    return {
        "macro_f1": macro_f1(y, pred),
        "accuracy": float(np.mean([a == b for a, b in zip(y, pred, strict=True)])),
        "arousal": side_scores([q in HIGH for q in y], [q in HIGH for q in pred]),
        "valence": side_scores([q in POSITIVE for q in y], [q in POSITIVE for q in pred]),
        "answers": {q: pred.count(q) for q in QUADRANTS},
        "confusion": confusion_matrix(y, pred, labels=list(QUADRANTS)).tolist(),
    }


def predict_all(model: str, paths: list[str]) -> list[dict[str, Any]]:
    from merkit.product.predict import load_model
    from merkit.product.relative import with_relative

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        predictor = load_model(model)
    results = []
    for i, path in enumerate(paths):
        results.append(predictor.predict(path))
        if i % 25 == 0:
            print(model, i, len(paths), flush=True)
    results = with_relative(results)
    return [_kept(r.model_dump(exclude={"segments"})) for r in results]


KEPT = (
    "quadrant",
    "probabilities",
    "confidence",
    "mixed",
    "p_high_arousal",
    "p_positive_valence",
    "p_high_arousal_axis",
    "p_positive_valence_axis",
    "familiarity",
    "familiar",
    "reliable",
)
"""The fields of each song's answer stored in the results file (floats to 5 decimals)."""


def _kept(row: dict[str, Any]) -> dict[str, Any]:
    def short(value: Any) -> Any:
        if isinstance(value, float):
            return round(value, 5)
        if isinstance(value, dict):
            return {k: short(v) for k, v in value.items()}
        return value

    out = {k: short(row.get(k)) for k in KEPT}
    out["relative"] = {"quadrant": row["relative"]["quadrant"]}
    return out


BANDS = ((0.0, 0.55), (0.55, 0.7), (0.7, 0.85), (0.85, 1.01))
"""Bands of the answer's confidence (the calibrated top probability; below 0.55: mixed)."""


def _auroc(wrong: np.ndarray, score: np.ndarray) -> float:
    """How well ``score`` ranks wrong answers above right ones (0.5: not at all)."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(wrong, score)) if 0 < wrong.sum() < len(wrong) else float("nan")


def summarise(y: list[str], rows: list[dict[str, Any]]) -> dict[str, Any]:
    absolute = [r["quadrant"] for r in rows]
    relative = [r["relative"]["quadrant"] for r in rows]
    out: dict[str, Any] = {"absolute": scores(y, absolute), "relative": scores(y, relative)}
    if rows[0].get("p_high_arousal_axis") is not None:
        out["axis_models"] = {
            "arousal": side_scores(
                [q in HIGH for q in y], [r["p_high_arousal_axis"] >= 0.5 for r in rows]
            ),
            "valence": side_scores(
                [q in POSITIVE for q in y], [r["p_positive_valence_axis"] >= 0.5 for r in rows]
            ),
        }
    wrong = np.array([a != t for a, t in zip(absolute, y, strict=True)])
    confidence = np.array([r["confidence"] for r in rows])
    out["confidence_bands"] = [
        {
            "band": f"{lo:.2f}-{min(hi, 1.0):.2f}",
            "songs": int(m.sum()),
            "accuracy": float(1 - wrong[m].mean()) if m.any() else float("nan"),
        }
        for lo, hi in BANDS
        for m in [(confidence >= lo) & (confidence < hi)]
    ]
    out["error_auroc"] = {"1 - confidence": _auroc(wrong, -confidence)}
    if rows[0].get("familiarity") is not None:
        familiarity = np.array([r["familiarity"] for r in rows], dtype=float)
        out["error_auroc"]["familiarity"] = _auroc(wrong, familiarity)
    for flag, key in (("familiar", "unfamiliar"), ("reliable", "unreliable")):
        values = [r.get(flag) for r in rows]
        if any(v is None for v in values):
            continue
        split: dict[str, Any] = {}
        for name, keep in ((key, False), ("the others", True)):
            idx = [i for i, v in enumerate(values) if bool(v) is keep]
            split[name] = {
                "songs": len(idx),
                "accuracy": (
                    float(np.mean([absolute[i] == y[i] for i in idx])) if idx else float("nan")
                ),
                "arousal_side": (
                    float(np.mean([(absolute[i] in HIGH) == (y[i] in HIGH) for i in idx]))
                    if idx
                    else float("nan")
                ),
                "valence_side": (
                    float(np.mean([(absolute[i] in POSITIVE) == (y[i] in POSITIVE) for i in idx]))
                    if idx
                    else float("nan")
                ),
            }
        out[f"{key}_split"] = split
    return out


def pct(v: float) -> str:
    return "n/a" if v != v else f"{100 * v:.1f}"


def markdown(record: dict[str, Any]) -> list[str]:
    counts = record["labels"]
    lines = [
        f"# The shipped models on {record['dataset']} (trained on 4QAED only)",
        "",
        f"`{record['command']}`, {record['started']} to {record['finished']}.",
        "",
        f"{record['songs']} songs of `{record['dataset']}` ({record['root']}), quadrants as its "
        "loader derives them: " + ", ".join(f"{q} {counts.get(q, 0)}" for q in QUADRANTS) + ". "
        "Each song predicted from its file by `load_model(MODEL).predict` (absolute, as `merkit "
        "predict`), then the collection placed against itself (`--relative`). Macro F1 is over "
        "the quadrants present; balanced accuracy averages the two sides' recalls.",
        "",
        "| model | mode | macro F1 % | accuracy % | arousal side % (balanced) | valence side % "
        "(balanced) | answers Q1 / Q2 / Q3 / Q4 |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for model, s in record["models"].items():
        for mode in ("absolute", "relative"):
            m = s[mode]
            a = m["answers"]
            lines.append(
                f"| `{model}` | {mode} | {pct(m['macro_f1'])} | {pct(m['accuracy'])} | "
                f"{pct(m['arousal']['accuracy'])} ({pct(m['arousal']['balanced'])}) | "
                f"{pct(m['valence']['accuracy'])} ({pct(m['valence']['balanced'])}) | "
                f"{a['Q1']} / {a['Q2']} / {a['Q3']} / {a['Q4']} |"
            )
        if "axis_models" in s:
            ax = s["axis_models"]
            lines.append(
                f"| `{model}` | axis models alone | | | {pct(ax['arousal']['accuracy'])} "
                f"({pct(ax['arousal']['balanced'])}) | {pct(ax['valence']['accuracy'])} "
                f"({pct(ax['valence']['balanced'])}) | |"
            )
    for model, s in record["models"].items():
        for key in ("unfamiliar_split", "unreliable_split"):
            if key not in s:
                continue
            flag = key.split("_")[0]
            lines += [
                "",
                f"### `{model}`: songs flagged {flag} against the others (absolute answers)",
                "",
                "| songs | count | quadrant accuracy % | arousal side % | valence side % |",
                "| --- | ---: | ---: | ---: | ---: |",
            ]
            for name, v in s[key].items():
                lines.append(
                    f"| {name} | {v['songs']} | {pct(v['accuracy'])} | {pct(v['arousal_side'])} | "
                    f"{pct(v['valence_side'])} |"
                )
    lines += [
        "",
        "### Does the answer know when it is wrong? (absolute answers)",
        "",
        "AUROC of a score for telling wrong answers from right ones (0.5: no better than chance; "
        "the flag is meant to sit above 0.5), and accuracy by the answer's confidence.",
        "",
        "| model | AUROC of 1 − confidence | AUROC of familiarity | "
        + " | ".join(
            f"accuracy % at confidence {lo:.2f}–{min(hi, 1.0):.2f} (songs)" for lo, hi in BANDS
        )
        + " |",
        "| --- | ---: | ---: |" + " ---: |" * len(BANDS),
    ]
    for model, s in record["models"].items():
        auroc = s["error_auroc"]
        fam = auroc.get("familiarity")
        lines.append(
            f"| `{model}` | {auroc['1 - confidence']:.3f} | "
            + ("n/a" if fam is None else f"{fam:.3f}")
            + " | "
            + " | ".join(f"{pct(b['accuracy'])} ({b['songs']})" for b in s["confidence_bands"])
            + " |"
        )
    for model, s in record["models"].items():
        for mode in ("absolute", "relative"):
            lines += [
                "",
                f"### `{model}`, {mode}: true (rows) by answered (columns)",
                "",
                "| | Q1 | Q2 | Q3 | Q4 |",
                "| --- | ---: | ---: | ---: | ---: |",
            ]
            for q, row in zip(QUADRANTS, s[mode]["confusion"], strict=True):
                lines.append(f"| {q} | " + " | ".join(str(v) for v in row) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--models", default="default,fast")
    parser.add_argument("--out", required=True)
    parser.add_argument("--reuse", action="store_true", help="read the stored predictions")
    args = parser.parse_args()

    import torch

    from merkit.datasets import load_dataset

    torch.set_num_threads(1)
    info, started = machine(), timestamp()
    dataset = load_dataset(args.dataset, args.root)
    songs = list(dataset.songs)
    y = [s.quadrant for s in songs]
    paths = [str(s.source.path) for s in songs]  # type: ignore[union-attr]
    out = Path(args.out)
    stored = json.loads(out.with_suffix(".json").read_text()) if args.reuse else None
    predictions: dict[str, list[dict[str, Any]]] = {}
    for model in args.models.split(","):
        if stored is not None:
            predictions[model] = [_kept(r) for r in stored["predictions"][model]]
        else:
            predictions[model] = predict_all(model, paths)
    record = {
        "command": command_line(),
        "started": stored["started"] if stored else started,
        "finished": stored["finished"] if stored else timestamp(),
        "machine": stored["machine"] if stored else info,
        "versions": stored["versions"] if stored else versions(),
        "dataset": args.dataset,
        "root": args.root,
        "songs": len(songs),
        "labels": {q: y.count(q) for q in QUADRANTS},
        "song_ids": [s.song_id for s in songs],
        "truth": y,
        "models": {m: summarise(y, rows) for m, rows in predictions.items()},
        "predictions": predictions,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record) + "\n")
    notes = [
        "No number here is comparable with the paper's: the models were trained on 4QAED and "
        "never saw this collection; its quadrants are derived from its own ratings.",
        "Few songs in a quadrant make its F1, and so the macro F1, noisy.",
    ]
    lines = markdown(record) + footer(record["machine"], record["versions"], notes)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
