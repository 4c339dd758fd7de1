"""Does training the default recipe on 4QAED + MUSIFEAST-17 help? (issue 33, item 3; measure only)

The default recipe (``benchmarks/configs/fusion_default.yaml``, calibrated as ``merkit train``
ships it, seed 0, through :class:`axes_familiarity.Setup`; ``--frozen C,gamma`` fixes its SVM) is
fitted on rows of the *union*: 4QAED's input arrays (rows 0..899, in 4QAED's song order) followed
row-wise by MUSIFEAST-17's (rows 900..1234), same inputs, same column layout. Everything is fitted
on training rows only.

Parts (``--parts``; each stored in ``<out>.json`` as it finishes):

- ``A``: merkit's persisted 4QAED 10x10 stratified folds (``--run-dir``): per test fold,
  ``baseline`` = fitted on the fold's 4QAED training songs, ``union`` = the same plus every
  MUSIFEAST-17 song; macro F1 on the 4QAED test fold; corrected resampled t-test (ratio 1/9).
- ``B``: 4QAED leave-one-genre-out (merkit's persisted genre folds): pooled macro F1 of the
  held-out genres, baseline against union (MUSIFEAST-17 always in the union's training rows).
- ``C``: MUSIFEAST-17: ``4qaed-only`` (all 900 4QAED songs, cross-dataset), ``union`` (4QAED +
  the MUSIFEAST training folds of a seeded artist-grouped ``StratifiedGroupKFold``) and
  ``musifeast-only`` (its training folds alone), scored on the held-out MUSIFEAST folds.

Example::

    python benchmarks/union_training.py --root /work/shared/data/4qaed \\
        --musifeast-root /work/shared/data/musifeast17 \\
        --config benchmarks/configs/fusion_default.yaml --frozen 4,0.00048828125 \\
        --run-dir benchmarks/runs/axes --out benchmarks/results/union_training --parts A,B,C
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
from sklearn.base import clone
from sklearn.model_selection import StratifiedGroupKFold

from _common import command_line, machine, timestamp, versions
from axes_familiarity import Setup, add_setup_arguments
from merkit.datasets import load_dataset
from merkit.datasets.base import Dataset
from merkit.estimators.axes import axis_target
from merkit.product.export import _calibrated
from merkit.protocol.folds import ProtocolConfig, load_or_create_folds
from merkit.protocol.genre import fold_groups, genre_protocol, load_or_create_genre_folds
from merkit.protocol.metrics import fold_metrics
from merkit.protocol.runner import resolve_inputs
from merkit.report.stats import corrected_resampled_ttest


def union_arrays(first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> dict:
    """Each input's rows of ``first`` followed by those of ``second`` (same names, same columns)."""
    if set(first) != set(second):
        raise ValueError(f"different inputs: {sorted(first)} vs {sorted(second)}")
    out = {}
    for name in first:
        a, b = np.asarray(first[name]), np.asarray(second[name])
        if a.shape[1:] != b.shape[1:]:
            raise ValueError(f"{name}: column layouts differ, {a.shape[1:]} vs {b.shape[1:]}")
        out[name] = np.concatenate([a, b], axis=0)
    return out


class Union:
    """The 4QAED setup plus MUSIFEAST-17's rows appended after 4QAED's."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.setup = Setup(args)
        self.mf = load_dataset("musifeast17", args.musifeast_root)
        mf_inputs = resolve_inputs(self.mf, self.setup.resolved.inputs, progress=False)
        self.n4 = len(self.setup.dataset)
        self.nm = len(self.mf)
        self.inputs = union_arrays(self.setup.inputs, mf_inputs)
        self.y = np.concatenate([self.setup.y, np.asarray(self.mf.labels)])
        self.songs = list(self.setup.dataset.songs) + list(self.mf.songs)
        self.mf_rows = np.arange(self.n4, self.n4 + self.nm)
        self.mf_groups = np.asarray([s.group for s in self.mf.songs], dtype=object)

    def X(self, rows: np.ndarray) -> Any:
        return self.setup.resolved.estimator_input(self.inputs, rows)

    def fit_predict(self, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        subset = Dataset("union", [self.songs[i] for i in train])
        resolved = self.setup.resolved
        model, _ = _calibrated(clone(resolved.estimator), subset, 0, len(resolved.inputs))
        model.fit(self.X(train), self.y[train])
        return np.asarray(model.predict(self.X(test)), dtype=np.int64)


def scores(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    m = fold_metrics(y, pred)
    out = {k: m[k] for k in ("f1", "accuracy", "f1_per_class")}
    for axis in ("arousal", "valence"):
        out[f"{axis}_accuracy"] = float((axis_target(y, axis) == axis_target(pred, axis)).mean())
    out["n"] = len(y)
    return out


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    """:func:`fold_metrics`'s macro F1 (over the quadrants present in ``y``, zero_division 0)
    from a bincount confusion matrix: fast enough for thousands of bootstrap resamples."""
    cm = np.bincount(4 * y + pred, minlength=16).reshape(4, 4).astype(float)
    tp, true, predicted = np.diag(cm), cm.sum(1), cm.sum(0)
    denom = true + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros(4), where=denom > 0)
    return float(f1[true > 0].mean())


def save(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)


def part_a(u: Union, args: argparse.Namespace, state: dict[str, Any], path: Path) -> None:
    folds = load_or_create_folds(args.run_dir, u.setup.dataset, ProtocolConfig())
    folds = [f for f in folds if f.repeat < args.repeats]
    part = state.setdefault("A", {"per_fold": []})
    done = {(r["repeat"], r["fold"]) for r in part["per_fold"]}
    for fold in folds:
        if (fold.repeat, fold.fold) in done:
            continue
        started = time.perf_counter()
        base = u.fit_predict(fold.train, fold.test)
        union = u.fit_predict(np.concatenate([fold.train, u.mf_rows]), fold.test)
        yt = u.y[fold.test]
        part["per_fold"].append(
            {
                "repeat": fold.repeat,
                "fold": fold.fold,
                "baseline_f1": fold_metrics(yt, base)["f1"],
                "union_f1": fold_metrics(yt, union)["f1"],
                "baseline_accuracy": float((base == yt).mean()),
                "union_accuracy": float((union == yt).mean()),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
        print(f"A {fold.name}: {part['per_fold'][-1]}", flush=True)
        summarise_a(part)
        save(path, state)


def summarise_a(part: dict[str, Any]) -> None:
    rows = part["per_fold"]
    b = np.array([r["baseline_f1"] for r in rows])
    un = np.array([r["union_f1"] for r in rows])
    part["n_folds"] = len(rows)
    part["repeats"] = sorted({r["repeat"] for r in rows})
    part["baseline"] = {"f1": float(b.mean()), "f1_std": float(b.std(ddof=1)) if len(b) > 1 else 0}
    part["union"] = {"f1": float(un.mean()), "f1_std": float(un.std(ddof=1)) if len(un) > 1 else 0}
    for key in ("baseline", "union"):
        part[key]["accuracy"] = float(np.mean([r[f"{key}_accuracy"] for r in rows]))
    if len(rows) > 1:
        t = corrected_resampled_ttest(un - b, 1 / 9)
        part["difference"] = {
            "mean": t.mean,
            "ci_low": t.ci_low,
            "ci_high": t.ci_high,
            "p": t.p,
            "union_better_folds": int((un > b).sum()),
            "union_worse_folds": int((un < b).sum()),
        }


def part_b(u: Union, args: argparse.Namespace, state: dict[str, Any], path: Path) -> None:
    protocol = genre_protocol(u.setup.dataset)
    folds = load_or_create_genre_folds(args.run_dir, u.setup.dataset, protocol)
    names = fold_groups(args.run_dir, u.setup.dataset)
    tests, base, union, per_genre = [], [], [], []
    for fold, name in zip(folds, names, strict=True):
        started = time.perf_counter()
        pb = u.fit_predict(fold.train, fold.test)
        pu = u.fit_predict(np.concatenate([fold.train, u.mf_rows]), fold.test)
        yt = u.y[fold.test]
        tests.append(fold.test)
        base.append(pb)
        union.append(pu)
        per_genre.append(
            {
                "genre": name,
                "n": len(fold.test),
                "baseline_f1": fold_metrics(yt, pb)["f1"],
                "union_f1": fold_metrics(yt, pu)["f1"],
                "baseline_accuracy": float((pb == yt).mean()),
                "union_accuracy": float((pu == yt).mean()),
            }
        )
        print(f"B {name}: {per_genre[-1]} ({time.perf_counter() - started:.0f} s)", flush=True)
    yt = u.y[np.concatenate(tests)]
    state["B"] = {
        "n_songs": len(yt),
        "genres": names,
        "baseline": scores(yt, np.concatenate(base)),
        "union": scores(yt, np.concatenate(union)),
        "per_genre": per_genre,
    }
    save(path, state)


def part_c(u: Union, args: argparse.Namespace, state: dict[str, Any], path: Path) -> None:
    y_mf = u.y[u.mf_rows]
    all4 = np.arange(u.n4)
    started = time.perf_counter()
    cross = u.fit_predict(all4, u.mf_rows)
    part: dict[str, Any] = {
        "4qaed-only": scores(y_mf, cross),
        "folds": args.c_folds,
        "seeds": list(range(args.c_repeats)),
        "repeats": [],
    }
    print(f"C 4qaed-only: {part['4qaed-only']} ({time.perf_counter() - started:.0f} s)")
    preds: dict[str, list[np.ndarray]] = {"union": [], "musifeast-only": []}
    for seed in range(args.c_repeats):
        split = StratifiedGroupKFold(args.c_folds, shuffle=True, random_state=seed)
        pred = {"union": np.full(u.nm, -1), "musifeast-only": np.full(u.nm, -1)}
        for train, test in split.split(np.zeros(u.nm), y_mf, u.mf_groups):
            rows_train, rows_test = u.mf_rows[train], u.mf_rows[test]
            pred["union"][test] = u.fit_predict(np.concatenate([all4, rows_train]), rows_test)
            pred["musifeast-only"][test] = u.fit_predict(rows_train, rows_test)
        for key, value in pred.items():
            preds[key].append(value)
        rep = {"seed": seed, **{k: scores(y_mf, v) for k, v in pred.items()}}
        part["repeats"].append(rep)
        print(f"C seed {seed}: {rep}", flush=True)
    for key in ("union", "musifeast-only"):
        reps = [r[key] for r in part["repeats"]]
        part[key] = {
            m: float(np.mean([r[m] for r in reps]))
            for m in ("f1", "accuracy", "arousal_accuracy", "valence_accuracy")
        }
        part[key]["f1_range"] = [min(r["f1"] for r in reps), max(r["f1"] for r in reps)]
    part["bootstrap"] = bootstrap_c(y_mf, u.mf_groups, cross, preds, args.bootstrap)
    part["predictions"] = {
        "4qaed-only": cross.tolist(),
        **{k: [p.tolist() for p in v] for k, v in preds.items()},
    }
    state["C"] = part
    save(path, state)


def bootstrap_c(
    y: np.ndarray, groups: np.ndarray, cross: np.ndarray, preds: dict, n: int, seed: int = 0
) -> dict[str, Any]:
    """Artist-resampled bootstrap of MUSIFEAST-17's pooled macro F1 (the union and
    musifeast-only scores are the mean over the split seeds on each resample): 95 % percentile
    intervals of each score and of the paired differences."""
    rng = np.random.default_rng(seed)
    names = np.unique(groups)
    rows_of = {g: np.flatnonzero(groups == g) for g in names}

    def f1(rows: np.ndarray, pred: np.ndarray) -> float:
        return macro_f1(y[rows], pred[rows])

    draws: dict[str, list[float]] = {"4qaed-only": [], "union": [], "musifeast-only": []}
    for _ in range(n):
        rows = np.concatenate([rows_of[g] for g in rng.choice(names, len(names))])
        draws["4qaed-only"].append(f1(rows, cross))
        for key in ("union", "musifeast-only"):
            draws[key].append(float(np.mean([f1(rows, p) for p in preds[key]])))
    d = {k: np.array(v) for k, v in draws.items()}
    d["union - 4qaed-only"] = d["union"] - d["4qaed-only"]
    d["union - musifeast-only"] = d["union"] - d["musifeast-only"]
    out: dict[str, Any] = {"resamples": n, "unit": "artist (Song.group)"}
    for key, v in d.items():
        lo, hi = np.percentile(v, [2.5, 97.5])
        out[key] = {"sd": float(v.std(ddof=1)), "ci_low": float(lo), "ci_high": float(hi)}
        if " - " in key:
            out[key]["fraction_le_0"] = float((v <= 0).mean())
    return out


def pct(v: float) -> str:
    return f"{100 * v:.2f}"


def write_markdown(path: Path, state: dict[str, Any]) -> None:
    meta = state["meta"]
    lines = [
        "# union_training: the default recipe trained on 4QAED + MUSIFEAST-17 (issue 33, item 3)",
        "",
        f"Generated by `benchmarks/union_training.py`; last part finished {meta['updated']}.",
        "",
        *[f"Command: `{c}`" for c in meta["commands"]],
        "",
        f"Machine: {meta['machine']}. Versions: {meta['versions']}.",
        "",
        f"Model: {meta['model']}.",
        "",
    ]
    a = state.get("A")
    if a and "difference" in a:
        d = a["difference"]
        lines += [
            f"## A. 4QAED, merkit's persisted 10x10 stratified folds ({a['n_folds']} folds, "
            f"repeats {a['repeats']})",
            "",
            "| training rows | macro F1 % (mean ± sd over folds) | accuracy % |",
            "|---|---:|---:|",
            f"| baseline (fold's 4QAED training songs) | {pct(a['baseline']['f1'])} ± "
            f"{pct(a['baseline']['f1_std'])} | {pct(a['baseline']['accuracy'])} |",
            f"| union (+ all 335 MUSIFEAST-17 songs) | {pct(a['union']['f1'])} ± "
            f"{pct(a['union']['f1_std'])} | {pct(a['union']['accuracy'])} |",
            "",
            f"Union − baseline: {100 * d['mean']:+.2f} points, 95 % CI [{100 * d['ci_low']:+.2f}, "
            f"{100 * d['ci_high']:+.2f}], p = {d['p']:.3g} (corrected resampled t-test, "
            f"test/train 1/9); union better on {d['union_better_folds']} folds, worse on "
            f"{d['union_worse_folds']}.",
            "",
        ]
    b = state.get("B")
    if b:
        lines += [
            f"## B. 4QAED leave-one-genre-out ({len(b['genres'])} genre groups, {b['n_songs']} "
            "held-out songs, pooled)",
            "",
            "| training rows | pooled macro F1 % | accuracy % | arousal acc % | valence acc % |",
            "|---|---:|---:|---:|---:|",
        ]
        for key in ("baseline", "union"):
            s = b[key]
            lines.append(
                f"| {key} | {pct(s['f1'])} | {pct(s['accuracy'])} | "
                f"{pct(s['arousal_accuracy'])} | {pct(s['valence_accuracy'])} |"
            )
        lines += [
            "",
            "| held-out genre | songs | baseline F1 % | union F1 % |",
            "|---|---:|---:|---:|",
        ]
        for g in b["per_genre"]:
            lines.append(
                f"| {g['genre']} | {g['n']} | {pct(g['baseline_f1'])} | {pct(g['union_f1'])} |"
            )
        lines.append("")
    c = state.get("C")
    if c:
        lines += [
            f"## C. MUSIFEAST-17 (335 songs; {c['folds']}-fold artist-grouped "
            f"StratifiedGroupKFold, seeds {c['seeds']}, pooled out-of-fold, mean over seeds)",
            "",
            "| training rows | macro F1 % | (range over seeds) | accuracy % | arousal acc % | "
            "valence acc % |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        s = c["4qaed-only"]
        lines.append(
            f"| 4qaed-only (all 900, cross-dataset) | {pct(s['f1'])} | one fit | "
            f"{pct(s['accuracy'])} | {pct(s['arousal_accuracy'])} | {pct(s['valence_accuracy'])} |"
        )
        for key in ("union", "musifeast-only"):
            s = c[key]
            lo, hi = s["f1_range"]
            lines.append(
                f"| {key} | {pct(s['f1'])} | {pct(lo)}–{pct(hi)} | {pct(s['accuracy'])} | "
                f"{pct(s['arousal_accuracy'])} | {pct(s['valence_accuracy'])} |"
            )
        bs = c.get("bootstrap")
        if bs:
            lines += [
                "",
                f"Noise of these macro F1s ({bs['resamples']} bootstrap resamples of the 335 "
                f"songs by {bs['unit']}, the same resample for every row; 95 % percentile "
                "intervals):",
                "",
                "| score | bootstrap sd (points) | 95 % interval % | resamples with Δ ≤ 0 |",
                "|---|---:|---:|---:|",
            ]
            for key in ("4qaed-only", "union", "musifeast-only"):
                b_ = bs[key]
                lines.append(
                    f"| {key} | {100 * b_['sd']:.2f} | {pct(b_['ci_low'])}–{pct(b_['ci_high'])} | |"
                )
            for key in ("union - 4qaed-only", "union - musifeast-only"):
                b_ = bs[key]
                lines.append(
                    f"| Δ {key} | {100 * b_['sd']:.2f} | {100 * b_['ci_low']:+.2f} to "
                    f"{100 * b_['ci_high']:+.2f} | {b_['fraction_le_0']:.3f} |"
                )
        lines += ["", "Per-quadrant F1 % (Q1, Q2, Q3, Q4):", ""]
        lines.append(
            f"- 4qaed-only: {[round(100 * v, 1) for v in c['4qaed-only']['f1_per_class']]}"
        )
        for r in c["repeats"]:
            for key in ("union", "musifeast-only"):
                per = [round(100 * v, 1) for v in r[key]["f1_per_class"]]
                lines.append(f"- seed {r['seed']} {key}: {per}")
        lines.append("")
    if state.get("notes"):
        lines += ["## Notes", "", *[f"- {n}" for n in state["notes"]], ""]
    if state.get("verdict"):
        lines += ["## Verdict", "", state["verdict"], ""]
    path.with_suffix(".md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setup_arguments(parser)
    parser.add_argument("--musifeast-root", type=Path, required=True)
    parser.add_argument("--run-dir", type=Path, default=Path("benchmarks/runs/axes"))
    parser.add_argument("--repeats", type=int, default=10, help="repeats of the 10x10 folds (A)")
    parser.add_argument("--c-folds", type=int, default=5)
    parser.add_argument("--c-repeats", type=int, default=1, help="seeds of the C split")
    parser.add_argument("--bootstrap", type=int, default=2000, help="resamples of part C")
    parser.add_argument("--parts", default="A,B,C")
    parser.add_argument("--out", type=Path, required=True, help="results path without suffix")
    args = parser.parse_args()
    args.available_only, args.songs_from = False, None
    path = args.out.with_suffix(".json")
    state: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    meta = state.setdefault("meta", {"commands": []})
    if command_line() not in meta["commands"]:
        meta["commands"].append(command_line())
    meta["machine"], meta["versions"] = machine(), versions()
    u = Union(args)
    meta["model"] = (
        f"`{args.method}` from {args.config}, calibrated as `merkit train` ships it (seed 0)"
        + (f", early-fusion SVM frozen at C, γ = {args.frozen}" if args.frozen else "")
        + f"; inputs {list(u.setup.resolved.inputs)}; 4QAED {u.n4} songs, MUSIFEAST-17 {u.nm} "
        f"songs (counts {u.mf.counts()})"
    )
    for name, run in (("A", part_a), ("B", part_b), ("C", part_c)):
        if name in args.parts.split(","):
            run(u, args, state, path)
            meta["updated"] = timestamp()
            save(path, state)
            write_markdown(args.out, state)
    meta["updated"] = timestamp()
    save(path, state)
    write_markdown(args.out, state)


if __name__ == "__main__":
    main()
