"""Arousal/valence models and the familiarity flag, cross-validated on 4QAED (issue 33).

Parts (``--parts``, each stored in ``<out>.json`` as it finishes, so parts run separately):

- ``kfold``: merkit's persisted 10x10 stratified folds (``ProtocolConfig()``, random_state 1).
  On every fold the arousal and valence models (:func:`merkit.product.companions.axis_template`: the
  method's inputs and preprocessing into a logistic regression) are fitted on the training songs
  and scored on the test songs: accuracy, log loss, Brier score, and the calibration error (ECE,
  10 equal-width bins) of the pooled out-of-fold probabilities. On the folds of the first
  ``--quadrant-repeats`` repeats the quadrant model is fitted too (the method as ``merkit train``
  ships it: calibrated, seed 0), which scores the answer rules of
:func:`merkit.estimators.axes.combine`
  (macro F1 of the final quadrant; corrected resampled t-test against the quadrant model alone)
  and the in-distribution rate of the familiarity flag.
- ``logo``: leave-one-genre-out (merkit's persisted genre folds): the same per held-out genre,
  plus the familiarity flag (fitted in each fold's quadrant model space on the training genres):
  accuracy of flagged against unflagged held-out songs.
- ``signals``: a model directory with companions (``--model``) predicts synthetic signals that
  are not music (white and pink noise, test tones, a sweep, clicks, formant-like vowels, speech
  from espeak-ng when installed); each should be flagged.

Features come from merkit's cache (``$MERKIT_CACHE``). ``--frozen C,gamma`` fixes the quadrant
model's early-fusion SVM at those values instead of its inner grid search (affordable on a shared
2-core machine; the values are the shipped model's choice, made on all 900 songs, which the
results file states).

Example::

    python benchmarks/axes_familiarity.py --root ../shared/data/4qaed \\
        --config benchmarks/configs/fusion_default.yaml --frozen 4,0.00048828125 \\
        --run-dir runs/axes --out benchmarks/results/4qaed_axes_familiarity --parts kfold,logo
"""

from __future__ import annotations

# ruff: noqa: E402
import os

# one BLAS/OpenMP thread: on a shared 2-core machine more threads only oversubscribe it (the
# logistic regressions ran 7x slower with the default thread count)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import f1_score

from _common import footer, resumed_state, timestamp
from merkit.datasets import load_dataset
from merkit.estimators.axes import RULES, AxisModels, Familiarity, axis_target, combine, model_space
from merkit.methods import read_settings, resolve_method
from merkit.product.companions import FAMILIARITY, axis_template
from merkit.product.export import _calibrated
from merkit.protocol.folds import Fold, ProtocolConfig, load_or_create_folds
from merkit.protocol.genre import (
    dataset_genre_groups,
    fold_groups,
    genre_protocol,
    leave_one_group_out,
    load_or_create_genre_folds,
)
from merkit.protocol.runner import resolve_inputs
from merkit.report.stats import corrected_resampled_ttest

SR = 16000


# ---------------------------------------------------------------------------------------------
# Scores


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of binary probabilities ``p`` of the positive class."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        rows = which == b
        if rows.any():
            total += rows.mean() * abs(float(y[rows].mean()) - float(p[rows].mean()))
    return total


def binary_scores(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    eps = 1e-12
    return {
        "accuracy": float(((p >= 0.5) == (y == 1)).mean()),
        "log_loss": float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))),
        "brier": float(np.mean((p - y) ** 2)),
    }


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    return float(f1_score(y, pred, average="macro", labels=np.unique(y)))


# ---------------------------------------------------------------------------------------------
# One fold


class Setup:
    """Dataset, inputs and the unfitted estimators of one run."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.dataset = self.full = load_dataset(args.dataset, args.root)
        self.full_size = len(self.dataset)
        settings = read_settings(args.config).get(args.method, {}) if args.config else {}
        quadrant_settings = json.loads(json.dumps(settings))
        self.frozen = args.frozen
        if args.frozen:
            c, gamma = (float(v) for v in args.frozen.split(","))
            quadrant_settings["early"] = {"grid": False, "C": c, "gamma": gamma}
        self.resolved = resolve_method(args.method, quadrant_settings)
        self.axis_template, self.recipe = axis_template(args.method, settings)
        if args.available_only:
            self.dataset = cached_songs(self.dataset, self.resolved.inputs)
        if args.songs_from:
            self.dataset = songs_from(self.dataset, args.songs_from)
        started = time.perf_counter()
        self.inputs = resolve_inputs(self.dataset, self.resolved.inputs, progress=False)
        print(f"inputs ready in {time.perf_counter() - started:.0f} s", flush=True)
        self.y = np.asarray(self.dataset.labels)

    def X(self, rows: np.ndarray) -> Any:
        return self.resolved.estimator_input(self.inputs, rows)

    def fit_axes(self, train: np.ndarray) -> AxisModels:
        fitted = [
            clone(self.axis_template).fit(self.X(train), axis_target(self.y[train], axis))
            for axis in ("arousal", "valence")
        ]
        return AxisModels(*fitted)

    def fit_quadrant(self, train: np.ndarray) -> Any:
        from merkit.datasets.base import Dataset

        subset = Dataset(self.dataset.name, [self.dataset.songs[i] for i in train])
        model, _ = _calibrated(clone(self.resolved.estimator), subset, 0, len(self.resolved.inputs))
        return model.fit(self.X(train), self.y[train])


def cached_songs(dataset: Any, names: tuple[str, ...]) -> Any:
    """The songs of ``dataset`` whose every input is already in merkit's cache (a stated
    subset, for when extraction of the rest has not finished)."""
    from merkit.datasets.base import Dataset
    from merkit.representations.cache import FeatureCache
    from merkit.representations.extract import _song_job

    cache = FeatureCache()
    jobs = [_song_job(name, None, cache, 0) for name in names]
    keep = [
        song
        for song in dataset.songs
        if all(job.cached(song.source, song.source.key) is not None for job in jobs)
    ]
    print(f"{len(keep)} of {len(dataset)} songs have every input cached", flush=True)
    return Dataset(dataset.name, keep, root=dataset.root)


def songs_from(dataset: Any, path: Path) -> Any:
    """The songs of ``dataset`` listed in a merkit fold file's ``song_ids`` (the subset of an
    earlier run, so later parts score the same songs)."""
    from merkit.datasets.base import Dataset

    ids = set(json.loads(Path(path).read_text())["song_ids"])
    keep = [song for song in dataset.songs if song.song_id in ids]
    print(f"{len(keep)} songs from {path}", flush=True)
    return Dataset(dataset.name, keep, root=dataset.root)


def run_fold(setup: Setup, train: np.ndarray, test: np.ndarray, quadrant: bool) -> dict[str, Any]:
    """Out-of-fold answers of one fold (lists, JSON-ready)."""
    started = time.perf_counter()
    axes = setup.fit_axes(train)
    out: dict[str, Any] = {
        "test": test.tolist(),
        "p_axes": axes.predict_proba(setup.X(test)).round(6).tolist(),
    }
    if quadrant:
        model = setup.fit_quadrant(train)
        out["proba"] = np.asarray(model.predict_proba(setup.X(test))).round(6).tolist()
        known = Familiarity(**FAMILIARITY).fit(model_space(model, setup.X(train)))
        out["familiarity"] = known.relative_distance(model_space(model, setup.X(test))).tolist()
        out["threshold"] = known.threshold_
    out["seconds"] = round(time.perf_counter() - started, 1)
    return out


def cached_fold(path: Path, compute: Any) -> dict[str, Any]:
    if path.is_file():
        return json.loads(path.read_text())
    result = compute()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(path)
    return result


# ---------------------------------------------------------------------------------------------
# Summaries


def rule_answers(proba: np.ndarray, p_axes: np.ndarray) -> dict[str, np.ndarray]:
    return {rule: combine(proba, p_axes, rule)[0] for rule in RULES}


def axis_summary(y: np.ndarray, p_axes: np.ndarray) -> dict[str, Any]:
    return {
        axis: binary_scores(axis_target(y, axis), p_axes[:, i])
        for i, axis in enumerate(("arousal", "valence"))
    }


def summarise_kfold(setup: Setup, folds: list[Any], records: list[dict[str, Any]]) -> dict:
    y = setup.y
    per_fold = []
    pooled: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {}
    quad_rows = []
    for fold, rec in zip(folds, records, strict=True):
        test, p_axes = np.array(rec["test"]), np.array(rec["p_axes"])
        scores = axis_summary(y[test], p_axes)
        pooled.setdefault(fold.repeat, []).append((test, p_axes))
        row = {
            "repeat": fold.repeat,
            "fold": fold.fold,
            **{f"{a}_{k}": v for a, s in scores.items() for k, v in s.items()},
        }
        if "proba" in rec:
            proba = np.array(rec["proba"])
            answers = rule_answers(proba, p_axes)
            row.update({f"f1_{rule}": macro_f1(y[test], a) for rule, a in answers.items()})
            q_axes = combine(proba, p_axes, "quadrant")[1]
            qs = axis_summary(y[test], q_axes)
            row.update({f"{a}_accuracy_from_quadrant": s["accuracy"] for a, s in qs.items()})
            row["flagged"] = float((np.array(rec["familiarity"]) > 1).mean())
            quad_rows.append(row)
        per_fold.append(row)
    # calibration of the pooled out-of-fold probabilities, per repeat then averaged
    eces: dict[str, list[float]] = {"arousal": [], "valence": []}
    for parts in pooled.values():
        test = np.concatenate([t for t, _ in parts])
        p = np.concatenate([pa for _, pa in parts])
        for i, axis in enumerate(eces):
            eces[axis].append(ece(axis_target(y[test], axis), p[:, i]))
    summary: dict[str, Any] = {"n_folds": len(per_fold), "per_fold": per_fold}
    for axis in ("arousal", "valence"):
        acc = np.array([r[f"{axis}_accuracy"] for r in per_fold])
        summary[axis] = {
            "accuracy": float(acc.mean()),
            "accuracy_std": float(acc.std(ddof=1)),
            "log_loss": float(np.mean([r[f"{axis}_log_loss"] for r in per_fold])),
            "brier": float(np.mean([r[f"{axis}_brier"] for r in per_fold])),
            "ece": float(np.mean(eces[axis])),
        }
    if quad_rows:
        ratio = 1 / (10 - 1)
        rules = {}
        base = np.array([r["f1_quadrant"] for r in quad_rows])
        for rule in RULES:
            f1 = np.array([r[f"f1_{rule}"] for r in quad_rows])
            entry: dict[str, Any] = {"f1": float(f1.mean()), "f1_std": float(f1.std(ddof=1))}
            if rule != "quadrant":
                test = corrected_resampled_ttest(f1 - base, ratio)
                entry.update(delta=test.mean, ci_low=test.ci_low, ci_high=test.ci_high, p=test.p)
            rules[rule] = entry
        summary["rules"] = rules
        summary["n_quadrant_folds"] = len(quad_rows)
        summary["flagged_in_distribution"] = float(np.mean([r["flagged"] for r in quad_rows]))
        for axis in ("arousal", "valence"):
            summary[axis]["accuracy_from_quadrant_same_folds"] = float(
                np.mean([r[f"{axis}_accuracy_from_quadrant"] for r in quad_rows])
            )
            summary[axis]["accuracy_same_folds"] = float(
                np.mean([r[f"{axis}_accuracy"] for r in quad_rows])
            )
    return summary


def split_scores(y: np.ndarray, pred: np.ndarray, rows: np.ndarray) -> dict[str, Any]:
    if not rows.any():
        return {"n": 0}
    return {
        "n": int(rows.sum()),
        "accuracy": float((pred[rows] == y[rows]).mean()),
        "f1": macro_f1(y[rows], pred[rows]),
    }


def summarise_logo(setup: Setup, folds: list[Any], records: list[dict[str, Any]], names: list):
    y = setup.y
    test = np.concatenate([np.array(r["test"]) for r in records])
    p_axes = np.concatenate([np.array(r["p_axes"]) for r in records])
    proba = np.concatenate([np.array(r["proba"]) for r in records])
    score = np.concatenate([np.array(r["familiarity"]) for r in records])
    genre = np.concatenate([[n] * len(r["test"]) for n, r in zip(names, records, strict=True)])
    yt = y[test]
    answers = rule_answers(proba, p_axes)
    flagged = score > 1
    out: dict[str, Any] = {
        "n_songs": len(test),
        "genres": names,
        "axes": axis_summary(yt, p_axes),
        "axes_from_quadrant": axis_summary(yt, combine(proba, p_axes, "quadrant")[1]),
        "rules_pooled_f1": {rule: macro_f1(yt, a) for rule, a in answers.items()},
        "rules_mean_genre_f1": {
            rule: float(np.mean([macro_f1(yt[genre == g], a[genre == g]) for g in names]))
            for rule, a in answers.items()
        },
        "flagged_fraction": float(flagged.mean()),
        "flag": {
            rule: {
                "flagged": split_scores(yt, a, flagged),
                "unflagged": split_scores(yt, a, ~flagged),
            }
            for rule, a in answers.items()
        },
        "per_genre": [],
    }
    for g in names:
        rows = genre == g
        out["per_genre"].append(
            {
                "genre": str(g),
                "n": int(rows.sum()),
                "flagged": int(flagged[rows].sum()),
                "f1_quadrant": macro_f1(yt[rows], answers["quadrant"][rows]),
                "f1_joint": macro_f1(yt[rows], answers["joint"][rows]),
                "arousal_accuracy": float(
                    ((p_axes[rows, 0] >= 0.5) == (axis_target(yt[rows], "arousal") == 1)).mean()
                ),
                "valence_accuracy": float(
                    ((p_axes[rows, 1] >= 0.5) == (axis_target(yt[rows], "valence") == 1)).mean()
                ),
            }
        )
    return out


# ---------------------------------------------------------------------------------------------
# Signals that are not music


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.normal(size=n))
    f = np.fft.rfftfreq(n)
    spectrum[1:] /= np.sqrt(f[1:])
    return np.fft.irfft(spectrum, n)


def _vowels(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A glottal pulse train at a wandering pitch through three formant resonators per vowel."""
    from scipy.signal import lfilter

    formants = [(730, 1090, 2440), (270, 2290, 3010), (300, 870, 2240), (530, 1840, 2480)]
    out = []
    for i in range(int(seconds / 0.4)):
        n = int(0.4 * SR)
        f0 = 110 + 30 * np.sin(i)
        pulses = np.zeros(n)
        pulses[:: int(SR / f0)] = 1.0
        y = pulses
        for fc in formants[i % len(formants)]:
            r = np.exp(-np.pi * 80 / SR)
            a = [1, -2 * r * np.cos(2 * np.pi * fc / SR), r * r]
            y = lfilter([1 - r], a, y)
        out.append(y * np.hanning(n))
    return np.concatenate(out) + 0.001 * rng.normal(size=len(out) * int(0.4 * SR))


def _espeak(text: str, voice: str) -> np.ndarray | None:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    from merkit.audio.decode import load_audio

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run([exe, "-v", voice, "-s", "150", "-w", str(path), text], check=True)
        return load_audio(path, sr=SR)


SPEECH = (
    "The committee will meet on Tuesday to review the budget for the coming year. Members are "
    "asked to read the report in advance and to send their questions to the secretary. The "
    "meeting starts at nine o'clock in the small conference room on the second floor."
)


def signals(seconds: float = 30.0, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    n = len(t)
    clicks = np.zeros(n)
    clicks[:: SR // 2] = 1.0
    out = {
        "white noise": rng.normal(size=n),
        "pink noise": _pink(n, rng),
        "sine 440 Hz": np.sin(2 * np.pi * 440 * t),
        "sine 1 kHz": np.sin(2 * np.pi * 1000 * t),
        "sweep 50 Hz-7 kHz": np.sin(
            2 * np.pi * 50 * seconds / np.log(140) * (140 ** (t / seconds) - 1)
        ),
        "square 220 Hz": np.sign(np.sin(2 * np.pi * 220 * t)),
        "clicks 120 bpm": clicks,
        "formant vowels": _vowels(seconds, rng),
    }
    for voice in ("en-us", "en-gb"):
        speech = _espeak(" ".join([SPEECH] * 2), voice)
        if speech is not None:
            out[f"speech espeak-ng {voice}"] = speech[:n]
    return {k: (0.5 * v / np.max(np.abs(v))).astype(np.float32) for k, v in out.items()}


def signals_part(model: str) -> dict[str, Any]:
    from merkit.product.predict import load_model

    predictor = load_model(model)
    if predictor.familiarity is None:
        raise SystemExit(f"{model} has no familiarity measure (add its companions first)")
    rows = []
    for name, y in signals().items():
        started = time.perf_counter()
        result = predictor.predict(y, sr=SR)
        rows.append(
            {
                "signal": name,
                "familiarity": result.familiarity,
                "flagged": result.familiar is False,
                "reliable": result.reliable,
                "quadrant": result.quadrant,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        print(rows[-1], flush=True)
    return {"model": str(model), "signals": rows}


# ---------------------------------------------------------------------------------------------
# Report


def pct(v: float) -> str:
    return f"{100 * v:.2f}"


def write_markdown(path: Path, state: dict[str, Any]) -> None:
    meta = state["meta"]
    lines = [
        f"# {path.stem}: arousal/valence models and the familiarity flag",
        "",
        f"Generated by `benchmarks/axes_familiarity.py`; last part finished {meta['updated']}.",
        "",
        *[f"Command: `{c}`" for c in meta["commands"]],
        "",
        f"Axis models: {meta.get('recipe', 'n/a')}.",
        "",
        f"Quadrant model in the folds: {meta.get('quadrant', 'n/a')}.",
        "",
        f"Songs: {meta.get('songs', 'all')}.",
        "",
        "Rules (`merkit.estimators.axes.combine`): `quadrant` = the quadrant model's argmax "
        "(today's answer; its axes, the sums of its probabilities, can disagree with it); "
        "`sides` = the quadrant on the sides of those sums; `axes` = the quadrant on the two "
        "sides the axis models give; `joint` = "
        "p*(q) ∝ p(q) · P(arousal side of q) · P(valence side of q), axes from p*'s sums, the "
        "quadrant on those sides.",
        "",
    ]
    k = state.get("kfold")
    if k:
        lines += [
            f"## 4QAED, merkit's 10x10 stratified folds ({k['n_folds']} of them run)",
            "",
            "| axis | accuracy % | ± std over folds | log loss | Brier | ECE (pooled OOF) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for axis in ("arousal", "valence"):
            a = k[axis]
            lines.append(
                f"| {axis} | {pct(a['accuracy'])} | {pct(a['accuracy_std'])} | "
                f"{a['log_loss']:.4f} | {a['brier']:.4f} | {a['ece']:.4f} |"
            )
        if "rules" in k:
            lines += [
                "",
                f"On the {k['n_quadrant_folds']} folds where the quadrant model was fitted too:",
                "",
                "| axis | axis model accuracy % | quadrant model's sums accuracy % |",
                "|---|---:|---:|",
            ]
            for axis in ("arousal", "valence"):
                a = k[axis]
                lines.append(
                    f"| {axis} | {pct(a['accuracy_same_folds'])} | "
                    f"{pct(a['accuracy_from_quadrant_same_folds'])} |"
                )
            lines += [
                "",
                "| rule | quadrant macro F1 % | ± std | Δ vs quadrant (points) | 95 % CI | p "
                "(corrected t-test) |",
                "|---|---:|---:|---:|---|---:|",
            ]
            for rule, r in k["rules"].items():
                extra = (
                    f"{100 * r['delta']:+.2f} | [{100 * r['ci_low']:+.2f}, "
                    f"{100 * r['ci_high']:+.2f}] | {r['p']:.3g}"
                    if "delta" in r
                    else " | | "
                )
                lines.append(f"| {rule} | {pct(r['f1'])} | {pct(r['f1_std'])} | {extra} |")
            lines += [
                "",
                f"Familiarity flag on in-distribution test songs: "
                f"{pct(k['flagged_in_distribution'])} % flagged (thresholds: the distance to "
                f"the {FAMILIARITY['k']} nearest training songs and the fraction of features "
                f"outside their {100 * FAMILIARITY['tail']:g}-{100 - 100 * FAMILIARITY['tail']:g}"
                " % range, each at the level where "
                f"{100 - 100 * FAMILIARITY['quantile']:g} % of held-out training songs exceed "
                "either).",
            ]
        lines.append("")
    g = state.get("logo")
    if g:
        lines += [
            f"## 4QAED, leave-one-genre-out ({len(g['genres'])} genre groups, {g['n_songs']} "
            "songs, pooled)",
            "",
            "| axis | axis model accuracy % | quadrant model's sums accuracy % |",
            "|---|---:|---:|",
        ]
        for axis in ("arousal", "valence"):
            lines.append(
                f"| {axis} | {pct(g['axes'][axis]['accuracy'])} | "
                f"{pct(g['axes_from_quadrant'][axis]['accuracy'])} |"
            )
        lines += [
            "",
            "| rule | pooled macro F1 % | mean of per-genre macro F1 % |",
            "|---|---:|---:|",
        ]
        for rule in RULES:
            lines.append(
                f"| {rule} | {pct(g['rules_pooled_f1'][rule])} | "
                f"{pct(g['rules_mean_genre_f1'][rule])} |"
            )
        lines += [
            "",
            f"Familiarity flag on held-out genres: {pct(g['flagged_fraction'])} % of songs "
            "flagged.",
            "",
            "| rule | flagged: songs | accuracy % | macro F1 % | unflagged: songs | accuracy % "
            "| macro F1 % |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for rule, s in g["flag"].items():
            f, u = s["flagged"], s["unflagged"]
            cells = []
            for part in (f, u):
                cells += (
                    [str(part["n"]), pct(part["accuracy"]), pct(part["f1"])]
                    if part["n"]
                    else ["0", "", ""]
                )
            lines.append(f"| {rule} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "| genre | songs | flagged | F1 quadrant % | F1 joint % | arousal acc % | "
            "valence acc % |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in g["per_genre"]:
            lines.append(
                f"| {row['genre']} | {row['n']} | {row['flagged']} | {pct(row['f1_quadrant'])} | "
                f"{pct(row['f1_joint'])} | {pct(row['arousal_accuracy'])} | "
                f"{pct(row['valence_accuracy'])} |"
            )
        lines.append("")
    s = state.get("signals")
    if s:
        lines += [
            f"## Signals that are not music (`{s['model']}`)",
            "",
            "| signal (30 s, 16 kHz) | familiarity (> 1 = flagged) | flagged | reliable | "
            "quadrant |",
            "|---|---:|---|---|---|",
        ]
        for row in s["signals"]:
            lines.append(
                f"| {row['signal']} | {row['familiarity']:.2f} | {row['flagged']} | "
                f"{row['reliable']} | {row['quadrant']} |"
            )
        lines.append("")
    lines += footer(meta["machine"], meta["versions"], meta.get("notes", []))
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")


def add_setup_arguments(parser: argparse.ArgumentParser) -> None:
    """The options :class:`Setup` reads (dataset, its root, the quadrant recipe)."""
    parser.add_argument("--dataset", default="4qaed")
    parser.add_argument("--root", type=Path)
    parser.add_argument("--method", default="fusion")
    parser.add_argument("--config", type=Path)
    parser.add_argument("--frozen", help="C,gamma of the quadrant model's early-fusion SVM")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setup_arguments(parser)
    parser.add_argument("--quadrant-repeats", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10, help="repeats of the 10x10 folds run")
    parser.add_argument("--parts", default="kfold,logo")
    parser.add_argument("--model", help="model directory with companions (part signals)")
    parser.add_argument(
        "--available-only",
        action="store_true",
        help="use only the songs whose inputs are all cached (the results say how many)",
    )
    parser.add_argument("--songs-from", type=Path, help="a fold file whose song_ids to use")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/axes"))
    parser.add_argument("--out", type=Path, required=True, help="results path without suffix")
    args = parser.parse_args()
    parts = args.parts.split(",")
    state, json_path = resumed_state(args.out)
    meta = state["meta"]
    if "kfold" in parts or "logo" in parts:
        setup = Setup(args)
        meta["recipe"] = setup.recipe
        meta["songs"] = (
            f"{len(setup.dataset)} of the {setup.full_size} songs of {args.dataset} "
            f"(counts {setup.dataset.counts()})"
        )
        meta["quadrant"] = f"`{args.method}` as `merkit train` ships it (calibrated, seed 0)" + (
            f", its early-fusion SVM frozen at C, γ = {args.frozen} (the shipped model's "
            "choice on all 900 songs: the test songs of a fold took part in choosing them)"
            if args.frozen
            else ""
        )
        args.run_dir.mkdir(parents=True, exist_ok=True)
        folder = args.run_dir / f"fold_answers-{setup.dataset.fingerprint()}"
        folder.mkdir(exist_ok=True)
        if "kfold" in parts:
            folds = load_or_create_folds(args.run_dir, setup.dataset, ProtocolConfig())
            records = []
            folds = [f for f in folds if f.repeat < args.repeats]
            for fold in folds:
                quadrant = fold.repeat < args.quadrant_repeats
                tag = "q" if quadrant else "a"
                records.append(
                    cached_fold(
                        folder / f"kfold_{fold.name}_{tag}.json",
                        lambda f=fold, q=quadrant: run_fold(setup, f.train, f.test, q),
                    )
                )
                print(f"kfold {fold.name}: {records[-1]['seconds']} s", flush=True)
            state["kfold"] = summarise_kfold(setup, folds, records)
        if "logo" in parts:
            if len(setup.dataset) == setup.full_size:
                protocol = genre_protocol(setup.dataset)
                folds = load_or_create_genre_folds(args.run_dir, setup.dataset, protocol)
                names = fold_groups(args.run_dir, setup.dataset)
            else:  # a subset: the full dataset's genre groups, restricted to its songs
                groups = dataset_genre_groups(setup.full)
                split = leave_one_group_out([groups[s] for s in setup.dataset.song_ids])
                rows = np.arange(len(setup.dataset))
                folds = [
                    Fold(0, i, np.setdiff1d(rows, test), test) for i, (_, test) in enumerate(split)
                ]
                names = [name for name, _ in split]
            records = []
            for fold, name in zip(folds, names, strict=True):
                records.append(
                    cached_fold(
                        folder / f"logo_{fold.fold:02d}.json",
                        lambda f=fold: run_fold(setup, f.train, f.test, True),
                    )
                )
                print(f"logo {name}: {records[-1]['seconds']} s", flush=True)
            state["logo"] = summarise_logo(setup, folds, records, names)
    if "signals" in parts:
        if not args.model:
            raise SystemExit("--parts signals needs --model")
        state["signals"] = signals_part(args.model)
    meta["updated"] = timestamp()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(state, indent=1))
    write_markdown(args.out, state)
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
