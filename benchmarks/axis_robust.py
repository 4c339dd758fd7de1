"""Timbre-robust arousal/valence models: the shipped axis template on subsets of its inputs
(issue 33, experiment).

The shipped default model's axis models (:func:`merkit.product.companions.axis_template`) read
every input of the quadrant model: merkit's own features (less the codec-unstable ones) and the
150 CRNN tag log-odds. In 4QAED the songs whose top-3 MTAT tags include "piano" are mostly Q4,
so "piano / soft timbre => calm" is a shortcut those models can learn. Variants (same
preprocessing and logistic regression, only the columns differ):

- ``full``: the shipped template (own features less ``codec-unstable`` + 150 tags);
- ``no-instrument-tags``: ``full`` without the instrumentation tags (:data:`INSTRUMENT_TAGS`:
  instruments and voice presence, in all three taggers);
- ``robust``: own features of the dynamics, rhythm, tonality, harmony and articulation families
  (no timbre family: no spectral shape, contrast, band ratios or MFCCs), less ``codec-unstable``,
  plus only the affect-like tags (:data:`AFFECT_TAGS`);
- ``no-timbre-no-instrument``: ``robust``'s own features with ``no-instrument-tags``' tags;
- ``own-affect-tags``: every own feature of ``full`` with only the affect-like tags;
- ``robust-own``: ``robust`` without any tags;
- ``cue-own``: own features of the rhythm, articulation, tonality and harmony families only.

Scored on 4QAED with merkit's persisted 10x10 stratified folds (the first ``--repeats``
repeats), leave-one-genre-out (merkit's persisted genre folds), on the 4QAED songs whose top-3
MTAT tags include piano (out-of-fold answers of the same folds), and on the synthetic cue probe
(:mod:`cue_probe`; fitted on all 900 songs), absolute and relative.

Example::

    nice -n 19 python benchmarks/axis_robust.py --root ../shared/data/4qaed \\
        --run-dir runs/axes --out benchmarks/results/axis_robust --repeats 10
"""

from __future__ import annotations

# ruff: noqa: E402
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone

from _common import command_line, footer, machine, timestamp, versions
from cue_probe import (
    AXES,
    MIXED_NOTE,
    add_probe_arguments,
    build,
    cue_response,
    cue_table,
    mixed_summary,
    mixed_table,
    probe_inputs,
    relative_side_accuracy,
    side_accuracy,
)
from merkit.datasets import load_dataset
from merkit.estimators.axes import axis_target
from merkit.features.robust import DropFeatures
from merkit.product.companions import axis_template
from merkit.product.model_dir import read_manifest
from merkit.product.shipped import shipped_model_dir
from merkit.protocol.folds import ProtocolConfig, load_or_create_folds
from merkit.protocol.genre import fold_groups, genre_protocol, load_or_create_genre_folds
from merkit.protocol.runner import resolve_inputs
from merkit.report.stats import corrected_resampled_ttest
from merkit.transfer.pooled import tags3_names
from merkit.transfer.won_crnn import MTAT_TAGS

OWN = "own-features-canon"
TAGS = "crnn-tags3-canon"

INSTRUMENT_TAGS: tuple[str, ...] = tuple(
    [f"mtat:{t}" for t in (
        "guitar", "strings", "drums", "piano", "violin", "synth", "harpsichord", "flute", "sitar",
        "harp", "cello", "solo", "vocal", "female", "male", "singing", "vocals", "no vocals",
        "opera", "woman", "male vocal", "no vocal", "man", "choir", "voice", "male voice",
        "female vocal", "no voice", "female voice", "choral",
    )]
    + [f"msd:{t}" for t in (
        "female vocalists", "male vocalists", "female vocalist", "instrumental", "acoustic",
        "guitar",
    )]
    + [f"jamendo:instrument---{t}" for t in (
        "synthesizer", "electricpiano", "strings", "drums", "drummachine", "guitar",
        "acousticguitar", "piano", "electricguitar", "violin", "voice", "keyboard", "bass",
        "computer",
    )]
)  # fmt: skip
"""Tags that name an instrument or the presence/kind of voice (dropped by both subsets)."""

AFFECT_TAGS: tuple[str, ...] = tuple(
    [f"mtat:{t}" for t in (
        "slow", "fast", "loud", "quiet", "soft", "beat", "beats", "dance", "ambient", "weird",
    )]
    + [f"msd:{t}" for t in (
        "beautiful", "chillout", "Mellow", "chill", "party", "easy listening", "sexy", "catchy",
        "sad", "happy", "ambient", "dance",
    )]
    + [f"jamendo:{t}" for t in (
        "mood/theme---happy", "mood/theme---energetic", "mood/theme---emotional",
        "mood/theme---relaxing", "genre---downtempo", "genre---ambient", "genre---atmospheric",
        "genre---chillout", "genre---easylistening", "genre---dance",
    )]
)  # fmt: skip
"""Tags that describe tempo, loudness, energy or mood rather than instruments or genre (kept by
``robust``; 'ambient', 'chillout', 'downtempo', 'dance' and 'easy listening' are genre names
that say how calm or energetic the music is)."""

UNIVARIATE: tuple[str, ...] = (
    "rhythm.tempo",
    "rhythm.onset_rate",
    "rhythm.pulse_clarity",
    "articulation.event_density",
    "articulation.attack_slope.mean",
    "dynamics.rms_db.std",
    "dynamics.range_db",
    "timbre.spectral_centroid.mean",
    "timbre.spectral_flatness.mean",
    "tonality.mode_major_minus_minor",
    "tonality.mode_local.mean",
    "tonality.key_clarity",
    "harmony.dissonance.mean",
)
"""Own features whose single-feature AUC the ``univariate`` part reports."""

ROBUST_OWN_DROP: tuple[str, ...] = ("codec-unstable", "timbre.*")
CUE_OWN_DROP: tuple[str, ...] = (*ROBUST_OWN_DROP, "dynamics.*")


def tag_drop(keep: tuple[str, ...] | None, drop: tuple[str, ...] = ()) -> list[str]:
    """Tag columns to drop: everything not in ``keep`` (when given), plus ``drop``."""
    names = tags3_names()
    missing = [t for t in (*(keep or ()), *drop) if t not in names]
    if missing:
        raise SystemExit(f"unknown tags: {missing}")
    return [n for n in names if (keep is not None and n not in keep) or n in drop]


def variants(params: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    """``{name: (unfitted estimator, how)}``; estimators take ``{input name: rows}``."""
    out: dict[str, tuple[Any, str]] = {}
    full, how = axis_template("fusion", params)
    out["full"] = (full, "the shipped axis template: " + how)

    def with_tags(est: Any, drop: list[str], own_drop: tuple[str, ...] | None) -> Any:
        est = clone(est)
        members = []
        for name, member in est.estimators:
            member = clone(member)
            if name == "tags" and drop:
                member.steps.insert(0, ("keep", DropFeatures(drop, feature_names=tags3_names())))
            if name == "own" and own_drop is not None:
                member.set_params(drop=DropFeatures(list(own_drop)))
            members.append((name, member))
        return est.set_params(estimators=members)

    no_inst = tag_drop(None, INSTRUMENT_TAGS)
    out["no-instrument-tags"] = (
        with_tags(full, no_inst, None),
        f"`full` less {len(INSTRUMENT_TAGS)} instrumentation tags ({150 - len(no_inst)} kept)",
    )
    affect = tag_drop(AFFECT_TAGS)
    out["robust"] = (
        with_tags(full, affect, ROBUST_OWN_DROP),
        "own features less `codec-unstable` and the `timbre.*` family, plus the "
        f"{len(AFFECT_TAGS)} affect-like tags",
    )
    out["no-timbre-no-instrument"] = (
        with_tags(full, no_inst, ROBUST_OWN_DROP),
        "`robust`'s own features (no `timbre.*`) plus `no-instrument-tags`' "
        f"{150 - len(no_inst)} tags",
    )
    out["own-affect-tags"] = (
        with_tags(full, affect, None),
        f"every own feature of `full` (timbre included), plus only the {len(AFFECT_TAGS)} "
        "affect-like tags",
    )
    cue_own = clone(full).set_params(
        estimators=[(n, clone(m)) for n, m in full.estimators if n == "own"],
        inputs={"own": [OWN]},
    )
    cue_own.estimators[0][1].set_params(drop=DropFeatures(list(CUE_OWN_DROP)))
    out["cue-own"] = (
        cue_own,
        "own features of the rhythm, articulation, tonality and harmony families only (no "
        "timbre, no dynamics: 4QAED's dynamics run opposite to the probe's), less "
        "`codec-unstable`, no tags",
    )
    own_only = clone(full).set_params(
        estimators=[(n, clone(m)) for n, m in full.estimators if n == "own"],
        inputs={"own": [OWN]},
    )
    own_only.estimators[0][1].set_params(drop=DropFeatures(list(ROBUST_OWN_DROP)))
    out["robust-own"] = (own_only, "`robust`'s own features alone (no tags)")
    return out


class Inputs:
    """Rows of the 4QAED inputs (or the probe's), as the estimators take them."""

    def __init__(self, arrays: dict[str, Any]) -> None:
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}

    def X(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return {k: v if rows is None else v[rows] for k, v in self.arrays.items()}


def fit_predict(est: Any, data: Inputs, y: np.ndarray, train: np.ndarray, test_X: Any) -> Any:
    """P(high arousal), P(positive valence) of ``test_X`` from models fitted on ``train``."""
    cols = []
    for axis in AXES:
        model = clone(est).fit(data.X(train), axis_target(y[train], axis))
        cols.append(model.predict_proba(test_X)[:, 1])
    return np.column_stack(cols)


def cached(path: Path, compute: Any) -> Any:
    if path.is_file():
        return np.load(path)
    value = compute()
    np.save(path.with_suffix(".tmp.npy"), value)
    path.with_suffix(".tmp.npy").replace(path)
    return value


def acc(y: np.ndarray, p: np.ndarray, rows: np.ndarray | None = None) -> dict[str, float]:
    rows = np.arange(len(y)) if rows is None else rows
    return {
        a: float(((p[rows, i] >= 0.5) == (axis_target(y[rows], a) == 1)).mean())
        for i, a in enumerate(AXES)
    }


def main() -> None:
    # scikit-learn's notices about LogisticRegressionCV's future defaults, once per fit
    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--variants",
        default=(
            "full,no-instrument-tags,robust,no-timbre-no-instrument,own-affect-tags,robust-own,"
            "cue-own"
        ),
    )
    parser.add_argument("--parts", default="kfold,logo,piano-out,probe,univariate")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/axes"))
    parser.add_argument("--out", type=Path, required=True)
    add_probe_arguments(parser)
    args = parser.parse_args()
    params = read_manifest(shipped_model_dir("default")).params
    dataset = load_dataset("4qaed", args.root)
    data = Inputs(resolve_inputs(dataset, [OWN, TAGS], progress=False))
    y = np.asarray(dataset.labels)
    names = args.variants.split(",")
    built = {k: v for k, v in variants(params).items() if k in names}
    folder = args.run_dir / f"axis_robust-{dataset.fingerprint()}"
    folder.mkdir(parents=True, exist_ok=True)
    tags = data.arrays[TAGS][:, : len(MTAT_TAGS)]
    piano = np.flatnonzero(
        (np.argsort(-tags, axis=1)[:, :3] == MTAT_TAGS.index("piano")).any(axis=1)
    )
    out_path = args.out.with_suffix(".json")
    state: dict[str, Any] = json.loads(out_path.read_text()) if out_path.is_file() else {}
    state["meta"] = {
        "command": command_line(),
        "machine": machine(),
        "versions": versions(),
        "updated": timestamp(),
        "variants": {k: how for k, (_, how) in built.items()},
        "instrument_tags": list(INSTRUMENT_TAGS),
        "affect_tags": list(AFFECT_TAGS),
        "piano_like": {
            "n": len(piano),
            "counts": {
                q: int((y[piano] == i).sum()) for i, q in enumerate(("Q1", "Q2", "Q3", "Q4"))
            },
        },
    }
    parts = args.parts.split(",")
    results = state.setdefault("variants", {})
    if "kfold" in parts:
        folds = [f for f in load_or_create_folds(args.run_dir, dataset, ProtocolConfig())
                 if f.repeat < args.repeats]  # fmt: skip
        per: dict[str, np.ndarray] = {}
        for name, (est, _) in built.items():
            started = time.perf_counter()
            fold_acc, oof = [], {}
            for f in folds:
                p = cached(
                    folder / f"kfold_{name}_{f.name}.npy",
                    lambda f=f, est=est: fit_predict(est, data, y, f.train, data.X(f.test)),
                )
                fold_acc.append([acc(y[f.test], p)[a] for a in AXES])
                oof.setdefault(f.repeat, np.zeros((len(y), 2)))[f.test] = p
            fold_acc_a = np.array(fold_acc)
            per[name] = fold_acc_a
            piano_acc = [acc(y, o, piano) for o in oof.values()]
            results.setdefault(name, {})["kfold"] = {
                "n_folds": len(folds),
                "repeats": args.repeats,
                **{
                    a: {
                        "accuracy": float(fold_acc_a[:, i].mean()),
                        "accuracy_std": float(fold_acc_a[:, i].std(ddof=1)),
                    }
                    for i, a in enumerate(AXES)
                },
                "piano_like_oof": {a: float(np.mean([pa[a] for pa in piano_acc])) for a in AXES},
            }
            print(f"kfold {name}: {time.perf_counter() - started:.0f} s "
                  f"{results[name]['kfold']}", flush=True)  # fmt: skip
        if "full" in per:
            for name, a in per.items():
                if name == "full":
                    continue
                results[name]["kfold"]["vs_full"] = {}
                for i, axis in enumerate(AXES):
                    t = corrected_resampled_ttest(a[:, i] - per["full"][:, i], 1 / 9)
                    results[name]["kfold"]["vs_full"][axis] = {
                        "delta": t.mean,
                        "ci_low": t.ci_low,
                        "ci_high": t.ci_high,
                        "p": t.p,
                    }
    if "logo" in parts:
        protocol = genre_protocol(dataset)
        gfolds = load_or_create_genre_folds(args.run_dir, dataset, protocol)
        groups = fold_groups(args.run_dir, dataset)
        for name, (est, _) in built.items():
            oof = np.zeros((len(y), 2))
            per_genre = {}
            for f, g in zip(gfolds, groups, strict=True):
                p = cached(
                    folder / f"logo_{name}_{f.fold:02d}.npy",
                    lambda f=f, est=est: fit_predict(est, data, y, f.train, data.X(f.test)),
                )
                oof[f.test] = p
                per_genre[str(g)] = acc(y[f.test], p)
            tested = np.concatenate([f.test for f in gfolds])
            results.setdefault(name, {})["logo"] = {
                "pooled": acc(y, oof, tested),
                "mean_genre": {a: float(np.mean([v[a] for v in per_genre.values()])) for a in AXES},
                "per_genre": per_genre,
                "piano_like": acc(y, oof, np.intersect1d(piano, tested)),
            }
            print(f"logo {name}: {results[name]['logo']['pooled']}", flush=True)
    if "piano-out" in parts:
        # the piano-like songs held out together: trained on the other songs only, so no
        # piano-like song can teach "piano = calm" to the model that answers them
        rest = np.setdiff1d(np.arange(len(y)), piano)
        for name, (est, _) in built.items():
            p = cached(
                folder / f"pianoout_{name}.npy",
                lambda est=est: fit_predict(est, data, y, rest, data.X(piano)),
            )
            entry: dict[str, Any] = {"accuracy": acc(y[piano], p)}
            for i, axis in enumerate(AXES):
                t = axis_target(y[piano], axis)
                said = (p[:, i] >= 0.5).astype(int)
                # right answers / songs on each side ("1": high arousal / positive valence)
                entry[f"{axis}_recall"] = {
                    str(
                        side
                    ): f"{int(((said == side) & (t == side)).sum())}/{int((t == side).sum())}"
                    for side in (1, 0)
                }
            results.setdefault(name, {})["piano_out"] = entry
            print(f"piano-out {name}: {entry}", flush=True)
    if "probe" in parts:
        pieces, paths = build(args)
        probe = Inputs(probe_inputs(pieces, paths, [OWN, TAGS]))
        quad = np.array([i for i, p in enumerate(pieces) if p.set == "quadrant"])
        yq = [pieces[i].quadrant for i in quad]
        everyone = np.arange(len(y))
        for name, (est, _) in built.items():
            p = cached(folder / f"probe_{name}_{len(pieces)}.npy",
                       lambda est=est: fit_predict(est, data, y, everyone, probe.X()))  # fmt: skip
            results.setdefault(name, {})["probe"] = {
                "absolute": side_accuracy(yq, p[quad]),
                "relative": relative_side_accuracy(yq, p[quad]),
                "mean_p": p[quad].mean(axis=0).round(4).tolist(),
                "cue_response": cue_response(pieces, p),
                "mixed": mixed_summary(pieces, p),
            }
            print(f"probe {name}: {results[name]['probe']['absolute']} "
                  f"{results[name]['probe']['relative']}", flush=True)  # fmt: skip
    if "univariate" in parts:
        # does a cue feature separate the sides in 4QAED, and in the probe, the same way?
        from sklearn.metrics import roc_auc_score

        from merkit.features.own import OWN_FEATURE_NAMES

        pieces, paths = build(args)
        own_probe = probe_inputs(pieces, paths, [OWN])[OWN]
        quad = np.array([i for i, p in enumerate(pieces) if p.set == "quadrant"])
        yq = np.array([("Q1", "Q2", "Q3", "Q4").index(pieces[i].quadrant) for i in quad])
        own = data.arrays[OWN]
        rows = []
        for feature in UNIVARIATE:
            c = OWN_FEATURE_NAMES.index(feature)
            entry: dict[str, Any] = {"feature": feature}
            for axis in AXES:
                entry[f"4qaed_{axis}"] = float(roc_auc_score(axis_target(y, axis), own[:, c]))
                entry[f"probe_{axis}"] = float(
                    roc_auc_score(axis_target(yq, axis), own_probe[quad, c])
                )
            rows.append(entry)
        state["univariate"] = rows
    state["meta"]["updated"] = timestamp()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(state, indent=1))
    write_markdown(args.out, state)
    print(args.out.with_suffix(".md").read_text())


def pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.2f}"


def write_markdown(path: Path, state: dict[str, Any]) -> None:
    meta = state["meta"]
    res = state["variants"]
    pl = meta["piano_like"]
    lines = [
        "# axis_robust: arousal/valence models on instrumentation-robust inputs",
        "",
        f"Generated by `benchmarks/axis_robust.py` at {meta['updated']}.",
        "",
        f"Command: `{meta['command']}`",
        "",
        "Every variant is the shipped axis template (inputs imputed and standardised on the "
        "training songs, an L2 logistic regression with C chosen by inner log loss), fitted per "
        "axis (high arousal = Q1, Q2; positive valence = Q1, Q4); only the columns differ:",
        "",
        *[f"- `{k}`: {v}" for k, v in meta["variants"].items()],
        "",
        f"Instrumentation tags dropped: {', '.join(meta['instrument_tags'])}.",
        "",
        f"Affect-like tags kept by `robust`: {', '.join(meta['affect_tags'])}.",
        "",
        f"Piano-like 4QAED songs (top-3 MTAT tags include piano): {pl['n']} "
        f"({', '.join(f'{q} {n}' for q, n in pl['counts'].items())}); their accuracy is of the "
        "out-of-fold answers (k-fold: averaged over the repeats run; LOGO: pooled).",
        "",
        "## Axis accuracy %",
        "",
        "| variant | 4QAED CV arousal (± sd) | CV valence (± sd) | LOGO pooled arousal | "
        "LOGO valence | piano-like OOF arousal | piano-like valence | probe abs arousal | "
        "probe abs valence | probe rel arousal | probe rel valence |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in res.items():
        k, g, p = r.get("kfold", {}), r.get("logo", {}), r.get("probe", {})
        cells = []
        for axis in AXES:
            if k:
                cells.append(f"{pct(k[axis]['accuracy'])} ± {pct(k[axis]['accuracy_std'])}")
            else:
                cells.append("")
        cells += [pct(g.get("pooled", {}).get(a)) for a in AXES]
        cells += [pct(k.get("piano_like_oof", {}).get(a)) for a in AXES]
        cells += [pct(p.get("absolute", {}).get(a)) for a in AXES]
        cells += [pct(p.get("relative", {}).get(a)) for a in AXES]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    if any("piano_out" in r for r in res.values()):
        lines += [
            "",
            f"### The {pl['n']} piano-like songs held out together (fitted on the other "
            f"{900 - pl['n']} songs)",
            "",
            "| variant | arousal % | high / low arousal songs answered right | valence % | "
            "positive / negative valence songs answered right |",
            "|---|---:|---|---:|---|",
        ]
        for name, r in res.items():
            po = r.get("piano_out")
            if po:
                lines.append(
                    f"| `{name}` | {pct(po['accuracy']['arousal'])} | "
                    f"{po['arousal_recall']['1']} / {po['arousal_recall']['0']} | "
                    f"{pct(po['accuracy']['valence'])} | "
                    f"{po['valence_recall']['1']} / {po['valence_recall']['0']} |"
                )
    if state.get("univariate"):
        lines += [
            "",
            "### One feature at a time: AUC of an own feature for each side (0.5 = no signal; "
            "> 0.5 = larger values on the high-arousal / positive-valence side)",
            "",
            "| feature | 4QAED arousal | probe arousal | 4QAED valence | probe valence |",
            "|---|---:|---:|---:|---:|",
        ]
        for u in state["univariate"]:
            lines.append(
                f"| `{u['feature']}` | {u['4qaed_arousal']:.3f} | {u['probe_arousal']:.3f} | "
                f"{u['4qaed_valence']:.3f} | {u['probe_valence']:.3f} |"
            )
        lines.append("")
        lines.append("(4QAED: all 900 songs; probe: the 120-piece quadrant set)")
    k0 = next((r["kfold"] for r in res.values() if "kfold" in r), None)
    if k0:
        lines += [
            "",
            f"4QAED CV: {k0['n_folds']} folds (merkit's persisted 10x10 stratified folds, first "
            f"{k0['repeats']} repeat(s)).",
            "",
            "| variant | Δ arousal vs `full` (points, 95 % CI, p) | Δ valence |",
            "|---|---|---|",
        ]
        for name, r in res.items():
            vs = r.get("kfold", {}).get("vs_full")
            if vs:
                lines.append(
                    f"| `{name}` | "
                    + " | ".join(
                        f"{100 * vs[a]['delta']:+.2f} [{100 * vs[a]['ci_low']:+.2f}, "
                        f"{100 * vs[a]['ci_high']:+.2f}], p {vs[a]['p']:.3g}"
                        for a in AXES
                    )
                    + " |"
                )
        lines.append("")
        lines.append("(corrected resampled t-test over the folds, test/train ratio 1/9)")
    mixed = {f"`{name}`": r.get("probe", {}).get("mixed") for name, r in res.items()}
    if any(mixed.values()):
        lines += ["", *mixed_table("### Cue probe, mixed-cue set ({n} pieces)", mixed), MIXED_NOTE]
    for name, r in res.items():
        if "probe" in r:
            lines += [
                "",
                *cue_table(
                    f"### `{name}` on the cue probe's single-cue sets (fitted on all 900 songs)",
                    r["probe"]["cue_response"],
                ),
            ]
    lines += footer(meta["machine"], meta["versions"], meta.get("notes", []))
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
