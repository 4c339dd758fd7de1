"""Which per-song signal says when the default model does not know (issue 33, item 2).

Part ``logo``: merkit's persisted leave-one-genre-out folds of 4QAED, with the setup of
``benchmarks/axes_familiarity.py`` (its :class:`Setup`: the ``fusion`` recipe, the quadrant
model as ``merkit train`` ships it, the arousal/valence companions). For every held-out song of
every genre fold it records what prediction outputs (quadrant probabilities, axis-model
probabilities, the final ``joint`` answer, familiarity, ``mixed``) and candidate signals computed
in the fold from the training genres' songs only:

- ``familiarity``: the shipped measure (> 1 flagged);
- ``trust``: the class-conditional trust score of Jiang et al. (2018) in the quadrant model's
  input space: distance to the nearest training song of the answered quadrant over the distance
  to the nearest training song of any other quadrant (here as doubt: higher = less trusted);
- ``1-confidence``; axis margins ``-|p - 0.5|`` of the axis models (arousal, valence, the smaller
  one) and of the final sides; ``disagree`` (the quadrant model's argmax lies on another side than
  an axis model); ``mixed``; and simple combinations.

Each candidate's threshold is chosen here, on LOGO only, as the value flagging a fixed share of
the held-out songs (``--rate``); the chosen rule is then validated once on MUSIFEAST-17 (part
``musifeast``) from the answer fields the shipped model stored in
``benchmarks/results/musifeast17_shipped.json`` (candidates that need model-space rows, i.e.
``trust``, are not scored there).

Command::

    MERKIT_PRETRAINED=/work/shared/pretrained python benchmarks/reliability_signals.py \\
        --root /work/shared/data/4qaed --config benchmarks/configs/fusion_default.yaml \\
        --frozen 4,0.00048828125 --run-dir benchmarks/runs/axes \\
        --out benchmarks/results/reliability_signals --parts logo,kfold,musifeast
"""

from __future__ import annotations

# ruff: noqa: E402
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from _common import footer, resumed_state, timestamp
from axes_familiarity import Setup, add_setup_arguments, cached_fold
from merkit.estimators.axes import Familiarity, combine, model_space
from merkit.product.companions import FAMILIARITY
from merkit.product.prediction import UNSURE_SIDE_BELOW, mixed_answer, unsure_sides
from merkit.protocol.genre import fold_groups, genre_protocol, load_or_create_genre_folds

QUADRANTS = ("Q1", "Q2", "Q3", "Q4")
HIGH = np.array([1, 1, 0, 0])  # Q1, Q2 high arousal
POS = np.array([1, 0, 0, 1])  # Q1, Q4 positive valence


def trust_doubt(Ztr: np.ndarray, ytr: np.ndarray, Z: np.ndarray, answer: np.ndarray) -> np.ndarray:
    """Distance to the nearest training row of the answered class over the distance to the
    nearest training row of any other class (Jiang et al. 2018's trust score, inverted)."""
    d = np.sqrt(((Z[:, None, :] - Ztr[None, :, :]) ** 2).sum(-1))
    per_class = np.stack([d[:, ytr == c].min(axis=1) for c in range(4)], axis=1)
    own = per_class[np.arange(len(Z)), answer]
    other = np.where(np.arange(4)[None] == answer[:, None], np.inf, per_class).min(axis=1)
    return own / np.maximum(other, 1e-12)


def run_fold(setup: Setup, train: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    started = time.perf_counter()
    axes = setup.fit_axes(train)
    model = setup.fit_quadrant(train)
    Xtr, Xte = setup.X(train), setup.X(test)
    proba = np.asarray(model.predict_proba(Xte))
    p_axes = axes.predict_proba(Xte)
    Ztr, Zte = model_space(model, Xtr), model_space(model, Xte)
    known = Familiarity(**FAMILIARITY).fit(Ztr)
    codes = combine(proba, p_axes, "joint")[0]
    ytr = np.asarray(setup.y[train]).astype(int)  # codes, Q1 = 0
    return {
        "test": test.tolist(),
        "proba": proba.round(6).tolist(),
        "p_axes": p_axes.round(6).tolist(),
        "familiarity": known.relative_distance(Zte).round(6).tolist(),
        "trust": trust_doubt(Ztr, ytr, Zte, np.asarray(codes)).round(6).tolist(),
        "seconds": round(time.perf_counter() - started, 1),
    }


def fields(proba: np.ndarray, p_axes: np.ndarray, mixed_below: float) -> dict[str, np.ndarray]:
    """What prediction outputs for these songs (the joint rule), as arrays."""
    codes, final = combine(proba, p_axes, "joint")
    codes = np.asarray(codes)
    mixed = []
    for p, (ph, pv) in zip(proba, final, strict=True):
        probs = dict(zip(QUADRANTS, map(float, p), strict=True))
        side_a = "high" if ph >= 0.5 else "low"
        side_v = "positive" if pv >= 0.5 else "negative"
        mixed.append(mixed_answer(probs, side_a, side_v, {}, mixed_below=mixed_below)[0])
    return {
        "answer": codes,
        "confidence": proba[np.arange(len(codes)), codes],
        "final": np.asarray(final),
        "mixed": np.array(mixed),
        "qmodel": proba.argmax(axis=1),
    }


def candidates(f: dict[str, np.ndarray], p_axes: np.ndarray, fam: np.ndarray) -> dict:
    """Doubt signals, higher = less reliable."""
    q = f["qmodel"]
    disagree = (HIGH[q] != (p_axes[:, 0] >= 0.5)) | (POS[q] != (p_axes[:, 1] >= 0.5))
    am, vm = np.abs(p_axes[:, 0] - 0.5), np.abs(p_axes[:, 1] - 0.5)
    fm = np.minimum(np.abs(f["final"][:, 0] - 0.5), np.abs(f["final"][:, 1] - 0.5))
    out = {
        "familiarity": fam,
        "1-confidence": 1 - f["confidence"],
        "arousal axis margin (-|p-0.5|)": -am,
        "valence axis margin (-|p-0.5|)": -vm,
        "min axis margin": -np.minimum(am, vm),
        "min final-side margin": -fm,
        "disagree (quadrant vs axis models)": disagree.astype(float),
        "mixed": f["mixed"].astype(float),
    }
    return out


CHOSEN = f"shipped: a final side within {UNSURE_SIDE_BELOW} of 0.5 (unsure_sides)"


def shipped_flag(f: dict[str, np.ndarray]) -> np.ndarray:
    """What the product's :func:`merkit.product.prediction.unsure_sides` flags (1.0) or not."""
    return np.array(
        [
            unsure_sides(QUADRANTS[a], float(ph), float(pv), {}) is not None
            for a, (ph, pv) in zip(f["answer"], f["final"], strict=True)
        ],
        dtype=float,
    )


def scores(y: np.ndarray, pred: np.ndarray, flagged: np.ndarray) -> dict[str, Any]:
    def part(rows: np.ndarray) -> dict[str, Any]:
        if not rows.any():
            return {"n": 0}
        return {
            "n": int(rows.sum()),
            "accuracy": float((pred[rows] == y[rows]).mean()),
            "f1": float(f1_score(y[rows], pred[rows], average="macro", labels=np.unique(y))),
        }

    out = {"flagged": part(flagged), "unflagged": part(~flagged)}
    if flagged.any() and (~flagged).any():
        from scipy.stats import fisher_exact

        right = pred == y
        table = [
            [int(right[flagged].sum()), int((~right[flagged]).sum())],
            [int(right[~flagged].sum()), int((~right[~flagged]).sum())],
        ]
        # one-sided: flagged songs are answered right less often than unflagged ones
        out["p_fisher_less"] = float(fisher_exact(table, alternative="less").pvalue)
    return out


def auroc(wrong: np.ndarray, signal: np.ndarray) -> float | None:
    if wrong.all() or not wrong.any() or np.unique(signal).size < 2:
        return None if np.unique(signal).size < 2 else float(roc_auc_score(wrong, signal))
    return float(roc_auc_score(wrong, signal))


def evaluate(y, pred, signals, thresholds, fam) -> dict[str, Any]:
    """Per candidate: AUROC for wrong answers, and flagged vs unflagged with its threshold
    alone and OR'ed with familiarity > 1 (what the product would flag)."""
    wrong = pred != y
    out = {}
    for name, s in signals.items():
        t = thresholds[name]
        alone = s > t
        out[name] = {
            "threshold": t,
            "auroc_wrong": auroc(wrong, s),
            "rate": float(alone.mean()),
            "alone": scores(y, pred, alone),
            "or_familiarity": scores(y, pred, alone | (fam > 1)),
        }
    return out


def threshold_for(s: np.ndarray, rate: float) -> float:
    """The value above which ``rate`` of ``s`` lies (a binary signal: 0.5)."""
    if np.isin(s, (0.0, 1.0)).all():
        return 0.5
    return float(np.quantile(s, 1 - rate))


def logo_part(args: argparse.Namespace, state: dict[str, Any]) -> None:
    args.available_only, args.songs_from = False, None
    setup = Setup(args)
    protocol = genre_protocol(setup.dataset)
    folds = load_or_create_genre_folds(args.run_dir, setup.dataset, protocol)
    names = fold_groups(args.run_dir, setup.dataset)
    folder = args.run_dir / f"reliability-{setup.dataset.fingerprint()}"
    folder.mkdir(parents=True, exist_ok=True)
    recs = []
    for fold, name in zip(folds, names, strict=True):
        recs.append(
            cached_fold(
                folder / f"logo_{fold.fold:02d}.json",
                lambda f=fold: run_fold(setup, f.train, f.test),
            )
        )
        print(f"logo {name}: {recs[-1]['seconds']} s", flush=True)
    test = np.concatenate([r["test"] for r in recs])
    proba = np.concatenate([r["proba"] for r in recs])
    p_axes = np.concatenate([r["p_axes"] for r in recs])
    fam = np.concatenate([r["familiarity"] for r in recs])
    trust = np.concatenate([r["trust"] for r in recs])
    genre = np.concatenate([[n] * len(r["test"]) for n, r in zip(names, recs, strict=True)])
    y = np.asarray(setup.y)[test].astype(int)
    f = fields(proba, p_axes, args.mixed_below)
    sig = candidates(f, p_axes, fam)
    sig["trust (own/other nearest distance)"] = trust
    sig["mixed or disagree"] = np.maximum(sig["mixed"], sig["disagree (quadrant vs axis models)"])
    thresholds = {
        n: (1.0 if n == "familiarity" else threshold_for(s, args.rate)) for n, s in sig.items()
    }
    sig[CHOSEN], thresholds[CHOSEN] = shipped_flag(f), 0.5
    state["logo"] = {
        "n_songs": len(test),
        "genres": [str(n) for n in names],
        "accuracy": float((f["answer"] == y).mean()),
        "rate": args.rate,
        "candidates": evaluate(y, f["answer"], sig, thresholds, fam),
        "songs": [
            {
                "song": setup.dataset.songs[i].song_id,
                "genre": str(g),
                "truth": QUADRANTS[t],
                "answer": QUADRANTS[a],
                "proba": [round(float(v), 5) for v in p],
                "p_axes": [round(float(v), 5) for v in pa],
                "familiarity": round(float(fa), 5),
                "trust": round(float(tr), 5),
                "mixed": bool(m),
            }
            for i, g, t, a, p, pa, fa, tr, m in zip(
                test, genre, y, f["answer"], proba, p_axes, fam, trust, f["mixed"], strict=True
            )
        ],
    }


def kfold_part(args: argparse.Namespace, state: dict[str, Any]) -> None:
    """In-distribution flag rates: the first repeat of merkit's 10x10 stratified folds, each
    candidate at its LOGO threshold."""
    from merkit.protocol.folds import ProtocolConfig, load_or_create_folds

    args.available_only, args.songs_from = False, None
    setup = Setup(args)
    folds = [
        f
        for f in load_or_create_folds(args.run_dir, setup.dataset, ProtocolConfig())
        if f.repeat == 0
    ]
    folder = args.run_dir / f"reliability-{setup.dataset.fingerprint()}"
    folder.mkdir(parents=True, exist_ok=True)
    recs = [
        cached_fold(folder / f"kfold_{f.name}.json", lambda f=f: run_fold(setup, f.train, f.test))
        for f in folds
    ]
    test = np.concatenate([r["test"] for r in recs])
    proba = np.concatenate([r["proba"] for r in recs])
    p_axes = np.concatenate([r["p_axes"] for r in recs])
    fam = np.concatenate([r["familiarity"] for r in recs])
    y = np.asarray(setup.y)[test].astype(int)
    f = fields(proba, p_axes, args.mixed_below)
    sig = candidates(f, p_axes, fam)
    sig["trust (own/other nearest distance)"] = np.concatenate([r["trust"] for r in recs])
    sig["mixed or disagree"] = np.maximum(sig["mixed"], sig["disagree (quadrant vs axis models)"])
    sig[CHOSEN] = shipped_flag(f)
    thresholds = {n: c["threshold"] for n, c in state["logo"]["candidates"].items() if n in sig}
    state["kfold"] = {
        "n_songs": len(test),
        "folds": "repeat 0 of merkit's 10x10 stratified folds (10 folds, every song once)",
        "accuracy": float((f["answer"] == y).mean()),
        "candidates": evaluate(y, f["answer"], sig, thresholds, fam),
    }


def musifeast_part(args: argparse.Namespace, state: dict[str, Any]) -> None:
    stored = json.loads(Path(args.stored).read_text())
    preds = stored["predictions"]["default"]
    truth = stored["truth"]
    y = np.array([QUADRANTS.index(t) for t in truth])
    proba = np.array([[p["probabilities"][q] for q in QUADRANTS] for p in preds])
    p_axes = np.array([[p["p_high_arousal_axis"], p["p_positive_valence_axis"]] for p in preds])
    fam = np.array([p["familiarity"] for p in preds])
    f = fields(proba, p_axes, args.mixed_below)
    stored_answer = np.array([QUADRANTS.index(p["quadrant"]) for p in preds])
    stored_mixed = np.array([p["mixed"] for p in preds])
    sig = candidates(f, p_axes, fam)
    sig["mixed or disagree"] = np.maximum(sig["mixed"], sig["disagree (quadrant vs axis models)"])
    sig[CHOSEN] = shipped_flag(f)
    thresholds = {n: c["threshold"] for n, c in state["logo"]["candidates"].items() if n in sig}
    state["musifeast"] = {
        "stored": str(args.stored),
        "n_songs": len(y),
        "answers_recomputed_match": float((stored_answer == f["answer"]).mean()),
        "mixed_recomputed_match": float((stored_mixed == f["mixed"]).mean()),
        "accuracy": float((f["answer"] == y).mean()),
        "candidates": evaluate(y, f["answer"], sig, thresholds, fam),
    }


def _cells(part: dict[str, Any]) -> list[str]:
    if not part["n"]:
        return ["0", "", ""]
    return [str(part["n"]), f"{100 * part['accuracy']:.1f}", f"{100 * part['f1']:.1f}"]


def write_markdown(path: Path, state: dict[str, Any]) -> None:
    meta = state["meta"]
    lines = [
        f"# {path.stem}: which signal says when the default model does not know",
        "",
        f"Generated by `benchmarks/reliability_signals.py`; last part finished {meta['updated']}.",
        "",
        *[f"Command: `{c}`" for c in meta["commands"]],
        "",
        "Answer: the `joint` rule (what `merkit predict` ships). Doubt signals: higher = less "
        "reliable. Thresholds: familiarity 1 (shipped); every other continuous signal at the "
        "value that flags the share `rate` of the pooled LOGO held-out songs (chosen on 4QAED "
        "LOGO only, then applied unchanged to MUSIFEAST-17); binary signals at 0.5. "
        "`alone` = flagged by the signal; `or familiarity` = flagged by it or by familiarity > 1 "
        "(what `reliable: false` would be); its one-sided Fisher exact p that flagged songs are "
        "answered right less often than unflagged ones is the last column.",
        "",
    ]
    for part, title in (
        ("logo", "4QAED leave-one-genre-out"),
        ("kfold", "4QAED in distribution (stratified folds, repeat 0)"),
        ("musifeast", "MUSIFEAST-17"),
    ):
        g = state.get(part)
        if not g:
            continue
        lines += [
            f"## {title} ({g['n_songs']} songs, joint-rule accuracy {100 * g['accuracy']:.1f} %)",
            "",
        ]
        if part == "logo":
            lines += [f"Flag rate targeted for thresholds: {100 * g['rate']:.0f} %.", ""]
        elif part == "kfold":
            lines += [f"{g['folds']}; thresholds from LOGO.", ""]
        else:
            lines += [
                f"From `{g['stored']}` (shipped model trained on all 900 4QAED songs); the "
                f"answers recomputed from the stored fields match the stored ones for "
                f"{100 * g['answers_recomputed_match']:.1f} %, `mixed` for "
                f"{100 * g['mixed_recomputed_match']:.1f} %.",
                "",
            ]
        lines += [
            "| signal | threshold | AUROC wrong | flag rate % | flagged n | acc % | F1 % | "
            "unflagged n | acc % | F1 % | OR fam: flagged n | acc % | F1 % | unflagged n | "
            "acc % | F1 % | p (Fisher, flagged worse) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, c in g["candidates"].items():
            au = "" if c["auroc_wrong"] is None else f"{c['auroc_wrong']:.3f}"
            cells = [
                name,
                f"{c['threshold']:.4g}",
                au,
                f"{100 * c['rate']:.1f}",
                *_cells(c["alone"]["flagged"]),
                *_cells(c["alone"]["unflagged"]),
                *_cells(c["or_familiarity"]["flagged"]),
                *_cells(c["or_familiarity"]["unflagged"]),
                f"{c['or_familiarity'].get('p_fisher_less', float('nan')):.3g}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += state.get("verdict", [])
    lines += footer(meta["machine"], meta["versions"], meta.get("notes", []))
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")


VERDICT = [
    "## Choice and verdict",
    "",
    "Chosen before MUSIFEAST-17 was scored, on 4QAED LOGO only: the candidate with the highest "
    "AUROC for wrong answers there, `min final-side margin` (the smaller of |P(high arousal) - "
    "0.5| and |P(positive valence) - 0.5| of the final joint answer), at its LOGO threshold "
    "rounded to 0.21 (`merkit.product.prediction.UNSURE_SIDE_BELOW`, no fitted state). The "
    "shipped `reliable: false` is that flag or familiarity > 1 (familiarity's field and warning "
    "stay). The rows `shipped: ...` are the product's own `unsure_sides` on these songs; "
    "`trust` needs model-space rows and was scored on 4QAED only.",
    "",
    "Flagged songs are answered worse than unflagged ones on LOGO, in distribution and on "
    "MUSIFEAST-17, but on MUSIFEAST-17 the gap of the shipped flag (OR familiarity) is small "
    "and not significant (see its p); the side flag alone separates more there, familiarity "
    "alone still does not.",
    "",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setup_arguments(parser)
    parser.add_argument("--parts", default="logo,kfold,musifeast")
    parser.add_argument("--rate", type=float, default=0.15)
    parser.add_argument("--mixed-below", type=float, default=0.55, help="the default model's")
    parser.add_argument(
        "--stored", type=Path, default=Path("benchmarks/results/musifeast17_shipped.json")
    )
    parser.add_argument("--run-dir", type=Path, default=Path("benchmarks/runs/axes"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    parts = args.parts.split(",")
    state, json_path = resumed_state(args.out)
    meta = state["meta"]
    if "logo" in parts:
        logo_part(args, state)
    if "kfold" in parts:
        kfold_part(args, state)
    state["verdict"] = VERDICT
    if "musifeast" in parts:
        musifeast_part(args, state)
    meta["updated"] = timestamp()
    json_path.write_text(json.dumps(state, indent=1))
    write_markdown(args.out, state)
    print(args.out.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
