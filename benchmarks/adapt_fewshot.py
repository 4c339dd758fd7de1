"""Few-shot adaptation to a held-out 4QAED genre: every `merkit adapt` kind, 2 and 5 songs per
quadrant, several draws (issue 33 item 4).

For each leave-one-genre-out fold (merkit's genre groups, :mod:`merkit.protocol.genre`) the
default model's recipe (``fusion`` from ``benchmarks/configs/fusion_default.yaml``, calibrated as
``merkit train`` ships it, through :class:`axes_familiarity.Setup`) is fitted on the other
genres. Then, per draw, ``k`` songs per quadrant of the held-out genre are the labelled examples
(a quadrant with ``k`` or fewer songs there gives none), and every adaptation is scored on the
genre's *remaining* songs only. The unlabelled songs an adaptation may use are the whole genre's
audio features (transductive: what a user's folder holds), never their labels.

Kinds:

- ``none``: the model as trained; ``relative``: ``merkit predict --relative`` on the whole genre;
- ``bias``: :class:`merkit.product.adapt.Recalibration` (bias, strength 4: today's default);
- ``affine``: the same with a 4x4 mixing matrix (strength 16);
- ``refit``: the SVM refitted on its support vectors plus the examples (weight 3);
- ``align``: :class:`merkit.estimators.align.FeatureAlignment` fitted on the genre's unlabelled
  songs in the model's input space (no labels used);
- ``align+bias``, ``align+refit``: alignment, then the few labels as in ``bias`` / ``refit``;
- ``shift-labels+refit``: ``merkit adapt --kind shift`` (per-quadrant offset from the labelled
  songs, shrunk with ``--prior`` pseudo-songs, then the refit);
- ``auto``: ``merkit adapt --kind auto``: ``refit`` or ``shift-labels+refit``, whichever answers
  more of the labelled songs right by leave-one-out on them (a tie: ``refit``);
- ``auto+unlabelled``: ``merkit adapt --kind auto --unlabelled``: ``refit``,
  ``shift-labels+refit`` or ``align+refit`` by the same leave-one-out (ties: ``refit``, then
  shift).

A harsher shift (``--shift``): a *synthetic proxy*, not audio: the held-out genre's model-space
rows are moved by ``shift`` training standard deviations along one fixed random direction per
fold and their scale multiplied by 1.5 (seeded), which pushes a whole collection to one side the
way the piano collection of issue 33 was pushed; every kind sees the same moved rows.

Example::

    nice -n 19 python benchmarks/adapt_fewshot.py --root /work/shared/data/4qaed \\
        --config benchmarks/configs/fusion_default.yaml --frozen 4,0.00048828125 \\
        --draws 5 --out benchmarks/results/4qaed_adapt_fewshot
"""

from __future__ import annotations

# ruff: noqa: E402
import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from _common import command_line, draw_few, footer, machine, timestamp, versions
from axes_familiarity import Setup, add_setup_arguments
from merkit.core.labels import QUADRANTS
from merkit.estimators.align import FeatureAlignment
from merkit.estimators.axes import model_space
from merkit.estimators.support_refit import refit_with_examples
from merkit.product.adapt import Recalibration
from merkit.product.relative import relative_placements
from merkit.protocol.genre import fold_groups, genre_protocol, load_or_create_genre_folds
from merkit.protocol.metrics import fold_metrics

KINDS = (
    "none",
    "relative",
    "bias",
    "affine",
    "refit",
    "align",
    "align+bias",
    "align+refit",
    "centre",
    "shift-em",
    "shift-labels",
    "shift-labels+refit",
    "shift-em+refit",
    "shift-js",
    "shift-js+refit",
    "auto",
    "auto (log loss)",
    "auto+unlabelled",
    "auto+unlabelled (margin 2)",
)


def em_shift(space: SpaceModel, Z: np.ndarray, means: np.ndarray, prior: float) -> np.ndarray:
    """The domain offset of unlabelled rows ``Z``: their mean minus the source's class means
    mixed in the proportions the model finds in them, iterated from a balanced mix."""
    w = len(Z) / (len(Z) + prior)
    delta = w * (Z.mean(0) - means.mean(0))
    for _ in range(10):
        pi = space.proba(Z - delta).mean(0)
        delta = w * (Z.mean(0) - pi @ means)
    return delta


def js_shift(Zl: np.ndarray, yl: np.ndarray, means: np.ndarray) -> np.ndarray:
    """:func:`label_shift` without the prior, each column shrunk by positive-part James-Stein
    toward 0: ``delta_j * max(0, 1 - se_j^2 / delta_j^2)``, ``se_j`` its standard error from the
    labelled rows' pooled within-class variance."""
    classes = np.unique(yl)
    delta = np.mean([Zl[yl == c].mean(0) - means[c] for c in classes], axis=0)
    resid = np.concatenate([Zl[yl == c] - Zl[yl == c].mean(0) for c in classes])
    dof = max(len(Zl) - len(classes), 1)
    var = (resid**2).sum(0) / dof
    se2 = var * np.sum([1 / (yl == c).sum() for c in classes]) / len(classes) ** 2
    return delta * np.maximum(0.0, 1 - se2 / np.maximum(delta**2, 1e-12))


def choose_auto(
    space: SpaceModel,
    Z: np.ndarray,
    chosen: np.ndarray,
    yc: np.ndarray,
    means: np.ndarray,
    prior: float,
    Z_aligned: np.ndarray | None = None,
    losses: dict[str, float] | None = None,
) -> tuple[str, dict[str, int]]:
    """``merkit adapt --kind auto`` in model space (:func:`merkit.product.adapt.choose_kind`):
    each labelled song answered by ``refit`` and by ``shift-labels+refit`` (and, given the
    unlabelled-aligned rows ``Z_aligned``, by ``align+refit``: ``--unlabelled``) fitted on the
    other labelled songs; the kind with more right answers wins, ties go to ``refit``, then
    ``shift-labels+refit``. The alignment is fitted without labels, so it stays fixed.
    ``losses``, when given, is filled with each kind's summed leave-one-out log loss (the
    ``auto (log loss)`` variant: :func:`pick_loss`)."""
    right = {"refit": 0, "shift-labels+refit": 0}
    loss = {"refit": 0.0, "shift-labels+refit": 0.0}
    if Z_aligned is not None:
        right["align+refit"] = 0
    for i in range(len(chosen)):
        rest = np.delete(np.arange(len(chosen)), i)
        Zo, yo = Z[chosen[rest]], yc[rest]
        z = Z[chosen[i : i + 1]]
        refitted = space.refit(Zo, yo, 3.0).proba(z)
        right["refit"] += int(refitted.argmax() == yc[i])
        delta = label_shift(Zo, yo, means, prior)
        shifted = space.refit(Zo - delta, yo, 3.0).proba(z - delta)
        right["shift-labels+refit"] += int(shifted.argmax() == yc[i])
        loss["refit"] -= float(np.log(max(refitted[0, yc[i]], 1e-12)))
        loss["shift-labels+refit"] -= float(np.log(max(shifted[0, yc[i]], 1e-12)))
        if Z_aligned is not None:
            za = Z_aligned[chosen[i : i + 1]]
            aligned = space.refit(Z_aligned[chosen[rest]], yo, 3.0).proba(za)
            right["align+refit"] += int(aligned.argmax() == yc[i])
    if losses is not None:
        losses.update(loss)
    return pick(right), right


def pick_loss(losses: dict[str, float]) -> str:
    """The kind with the smaller summed leave-one-out log loss (a tie: ``refit``)."""
    return min(("refit", "shift-labels+refit"), key=lambda k: (losses[k], k != "refit"))


def pick(right: dict[str, int], kinds: tuple[str, ...] | None = None) -> str:
    """The kind of ``kinds`` (default: all of ``right``, in preference order) with the most
    right answers; a tie goes to the earlier one."""
    order = list(kinds or right)
    return max(order, key=lambda k: (right[k], -order.index(k)))


def pick_margin(right: dict[str, int], margin: int) -> str:
    """:func:`pick`, but ``align+refit`` only where it answers at least ``margin`` more
    labelled songs right than both other kinds (a stricter rule for the kind that can cost a
    mostly-one-quadrant collection most)."""
    two = pick(right, ("refit", "shift-labels+refit"))
    return "align+refit" if right.get("align+refit", -1) >= right[two] + margin else two


def label_shift(Zl: np.ndarray, yl: np.ndarray, means: np.ndarray, prior: float) -> np.ndarray:
    """The domain offset from labelled rows: the mean over their classes of (class mean minus
    the source's class mean), shrunk toward 0 with ``prior`` pseudo-songs."""
    w = len(Zl) / (len(Zl) + prior)
    classes = np.unique(yl)
    return w * np.mean([Zl[yl == c].mean(0) - means[c] for c in classes], axis=0)


class SpaceModel:
    """The fitted model's probabilities computed from its model-space rows (so a proxy shift
    or an alignment can act on those rows)."""

    def __init__(self, model: Any) -> None:
        est = model.estimator_  # CrossValCalibratedClassifier -> FusionClassifier
        self.calibrator = model.calibrator_
        self.svc = est.final_estimator_.steps[-1][1]

    def proba(self, Z: np.ndarray) -> np.ndarray:
        return self.calibrator.predict_proba(self.svc.decision_function(Z))

    def refit(self, Z: np.ndarray, y: np.ndarray, weight: float) -> SpaceModel:
        out = object.__new__(SpaceModel)
        out.calibrator = self.calibrator
        out.svc = refit_with_examples(self.svc, Z, y, np.full(len(y), weight))
        return out


def proxy_shift(Z: np.ndarray, shift: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=Z.shape[1])
    direction /= np.linalg.norm(direction)
    centre = Z.mean(axis=0)
    return centre + 1.5 * (Z - centre) + shift * np.sqrt(Z.shape[1]) * direction / 4


def scores(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    m = fold_metrics(y, pred)
    return m["f1"], m["accuracy"]


def run(args: argparse.Namespace) -> pd.DataFrame:
    setup = Setup(args)
    protocol = genre_protocol(setup.dataset)
    folds = load_or_create_genre_folds(args.run_dir, setup.dataset, protocol)
    names = fold_groups(args.run_dir, setup.dataset)
    y_all = setup.y
    rows = []
    for fold, genre in zip(folds, names, strict=True):
        started = time.perf_counter()
        model = setup.fit_quadrant(fold.train)
        space = SpaceModel(model)
        Z_train = model_space(model, setup.X(fold.train))
        Z_genre = model_space(model, setup.X(fold.test))
        y = y_all[fold.test]
        train_pred = space.proba(Z_train).argmax(1)
        if not np.allclose(space.proba(Z_genre), model.predict_proba(setup.X(fold.test))):
            raise SystemExit("model-space probabilities differ from the model's own")
        for domain in ["genre"] + ([f"proxy-shift{args.shift:g}"] if args.shift else []):
            Z = Z_genre if domain == "genre" else proxy_shift(Z_genre, args.shift, fold.fold)
            proba = space.proba(Z)
            align = FeatureAlignment(prior=args.prior).fit(Z_train, Z)
            Z_al = align.transform(Z)
            proba_al = space.proba(Z_al)
            means = np.stack([Z_train[train_pred == c].mean(0) for c in range(4)])
            Z_centre = FeatureAlignment(prior=args.prior, scale=False).fit(Z_train, Z).transform(Z)
            Z_em = Z - em_shift(space, Z, means, args.prior)
            proba_centre, proba_em = space.proba(Z_centre), space.proba(Z_em)
            relative = np.array(
                [QUADRANTS.index(p.quadrant) for p in relative_placements(proba, min_files=2)]
            )
            for k in args.k:
                for draw in range(args.draws):
                    rng = np.random.default_rng([draw, fold.fold, k])
                    chosen, rest = draw_few(y, k, rng)
                    yc = y[chosen]
                    answers = {
                        "none": proba.argmax(1),
                        "relative": relative,
                        "bias": Recalibration("bias", 4.0).fit(proba[chosen], yc).transform(proba),
                        "affine": Recalibration("affine", 16.0)
                        .fit(proba[chosen], yc)
                        .transform(proba),
                        "refit": space.refit(Z[chosen], yc, 3.0).proba(Z),
                        "align": proba_al,
                        "align+bias": Recalibration("bias", 4.0)
                        .fit(proba_al[chosen], yc)
                        .transform(proba_al),
                        "align+refit": space.refit(Z_al[chosen], yc, 3.0).proba(Z_al),
                        "centre": proba_centre,
                        "shift-em": proba_em,
                        "shift-em+refit": space.refit(Z_em[chosen], yc, 3.0).proba(Z_em),
                    }
                    Z_l = Z - label_shift(Z[chosen], yc, means, args.prior)
                    Z_js = Z - js_shift(Z[chosen], yc, means)
                    answers |= {
                        "shift-js": space.proba(Z_js),
                        "shift-js+refit": space.refit(Z_js[chosen], yc, 3.0).proba(Z_js),
                        "shift-labels": space.proba(Z_l),
                        "shift-labels+refit": space.refit(Z_l[chosen], yc, 3.0).proba(Z_l),
                    }
                    losses: dict[str, float] = {}
                    _, right = choose_auto(space, Z, chosen, yc, means, args.prior, Z_al, losses)
                    auto = pick(right, ("refit", "shift-labels+refit"))
                    auto_l = pick_loss(losses)
                    answers["auto (log loss)"] = answers[auto_l]
                    auto3 = pick(right)
                    answers["auto"] = answers[auto]
                    answers["auto+unlabelled"] = answers[auto3]
                    auto3m = pick_margin(right, 2)
                    answers["auto+unlabelled (margin 2)"] = answers[auto3m]
                    for kind in KINDS:
                        a = answers[kind]
                        pred = a if a.ndim == 1 else a.argmax(1)
                        f1, acc = scores(y[rest], pred[rest])
                        rows.append(
                            {
                                "domain": domain,
                                "genre": genre,
                                "k": k,
                                "draw": draw,
                                "kind": kind,
                                "auto_chose": {
                                    "auto": auto,
                                    "auto (log loss)": auto_l,
                                    "auto+unlabelled": auto3,
                                    "auto+unlabelled (margin 2)": auto3m,
                                }.get(kind, ""),
                                "n_examples": len(chosen),
                                "n_test": len(rest),
                                "f1": f1,
                                "accuracy": acc,
                                "y": y[rest].tolist(),
                                "pred": pred[rest].tolist(),
                            }
                        )
        print(f"{genre}: {time.perf_counter() - started:.1f} s", flush=True)
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per (domain, k, kind): each draw's pooled and mean-over-genres macro F1, then the mean
    and std of those over draws."""
    out = []
    for (domain, k, kind), part in df.groupby(["domain", "k", "kind"], sort=False):
        pooled, mean_genre, acc = [], [], []
        for _, d in part.groupby("draw"):
            y = np.concatenate(d.y.to_list())
            pred = np.concatenate(d.pred.to_list())
            f1, a = scores(y, pred)
            pooled.append(f1)
            acc.append(a)
            mean_genre.append(d.f1.mean())
        none = df[(df.domain == domain) & (df.k == k) & (df.kind == "none")]
        gain = part.f1.to_numpy() - none.f1.to_numpy()
        out.append(
            {
                "domain": domain,
                "k": k,
                "kind": kind,
                "draws": part.draw.nunique(),
                "pooled_f1": np.mean(pooled),
                "pooled_f1_std": np.std(pooled, ddof=1),
                "pooled_f1_min": np.min(pooled),
                "pooled_f1_max": np.max(pooled),
                "mean_genre_f1": np.mean(mean_genre),
                "mean_genre_f1_std": np.std(mean_genre, ddof=1),
                "accuracy": np.mean(acc),
                "gain_vs_none": float(gain.mean()),
                "genre_draws_worse": int((gain < -5e-4).sum()),
                "genre_draws": len(gain),
                "auto_chose_shift": int((part.auto_chose == "shift-labels+refit").sum())
                if kind.startswith("auto")
                else -1,
                "auto_chose_align": int((part.auto_chose == "align+refit").sum())
                if kind.startswith("auto")
                else -1,
            }
        )
    return pd.DataFrame(out)


def markdown(table: pd.DataFrame, args: argparse.Namespace, n_songs: int) -> str:
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    lines = [
        "# 4qaed_adapt_fewshot: few-shot adaptation to a held-out 4QAED genre (issue 33, item 4)",
        "",
        f"Generated {timestamp()} by `benchmarks/adapt_fewshot.py`.",
        "",
        f"Command: `{command_line()}`",
        "",
        f"{n_songs} songs; 14 leave-one-genre-out folds; the default recipe (`fusion`, "
        "calibrated as shipped, its early-fusion SVM frozen at the shipped C, γ = "
        f"{args.frozen}) fitted on the other genres. `k` labelled songs per quadrant of the "
        f"held-out genre, {args.draws} seeded draws; every score is on the genre's remaining "
        "songs (the labelled ones are never scored). Unlabelled: the whole genre's features "
        "(transductive), never its labels. `pooled F1` = macro F1 over every genre's remaining "
        "songs of one draw; mean ± std (min–max) over draws. `mean genre F1` = the mean over "
        "genres of each genre's macro F1 (over the quadrants present). `worse` counts (genre, "
        "draw) pairs whose genre F1 fell below `none`.",
        "",
    ]
    for domain, part in table.groupby("domain", sort=False):
        title = (
            "Held-out genre as it is"
            if domain == "genre"
            else f"Synthetic proxy of a harsher shift ({domain}; not audio, see the script)"
        )
        lines += [
            f"## {title}",
            "",
            "| k | kind | pooled F1 % | ± std over draws | min–max | mean genre F1 % | ± std "
            "| accuracy % | Δ vs none (genre F1, points) | worse |",
            "|---:|---|---:|---:|---|---:|---:|---:|---:|---|",
        ]
        for r in part.itertuples():
            lines.append(
                f"| {r.k} | {r.kind} | {pct(r.pooled_f1)} | {pct(r.pooled_f1_std)} | "
                f"{pct(r.pooled_f1_min)}–{pct(r.pooled_f1_max)} | {pct(r.mean_genre_f1)} | "
                f"{pct(r.mean_genre_f1_std)} | {pct(r.accuracy)} | "
                f"{100 * r.gain_vs_none:+.1f} | {r.genre_draws_worse} of {r.genre_draws} |"
            )
        lines.append("")
        for r in part[part.kind.str.startswith("auto")].itertuples():
            lines.append(
                f"k={r.k}: `{r.kind}` chose `shift-labels+refit` in {r.auto_chose_shift} and "
                f"`align+refit` in {r.auto_chose_align} of {r.genre_draws} (genre, draw) pairs, "
                "`refit` in the others."
            )
        lines.append("")
    lines += [
        "Kinds: `none` the model as trained; `relative` `merkit predict --relative` on the whole "
        "genre; `bias` recalibration offsets (strength 4, today's default); `affine` offsets + "
        "4x4 matrix (strength 16); `refit` SVM on support vectors + examples (weight 3); "
        f"`align` feature alignment on the genre's unlabelled songs (prior {args.prior:g} "
        "pseudo-songs; no labels); `align+bias`, `align+refit` alignment then the few labels; "
        "`shift-labels+refit` = `merkit adapt --kind shift`; `auto` = `merkit adapt --kind "
        "auto` (refit or shift-labels+refit by leave-one-out on the labelled songs); "
        "`auto+unlabelled` = `merkit adapt --kind auto --unlabelled` (refit, shift-labels+refit "
        "or align+refit by the same leave-one-out, the alignment fitted on the genre's "
        "unlabelled songs; ties: refit, then shift); `auto+unlabelled (margin 2)`: the same, "
        "but align+refit only where it answers at least 2 more labelled songs right than the "
        "better of the other two.",
        "",
    ]
    lines += footer(machine(), versions(), [])
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setup_arguments(parser)
    parser.add_argument("--k", type=lambda s: [int(v) for v in s.split(",")], default=[2, 5])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--prior", type=float, default=10.0)
    parser.add_argument("--shift", type=float, default=0.0, help="proxy shift (0: none)")
    parser.add_argument("--run-dir", type=Path, default=Path("runs/adapt_fewshot"))
    parser.add_argument("--out", type=Path, required=True, help="results path without suffix")
    args = parser.parse_args()
    args.available_only, args.songs_from = False, None
    df = run(args)
    table = summary(df)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out.with_suffix(".csv"), index=False, float_format="%.4f")
    df.drop(columns=["y", "pred"]).to_csv(
        args.out.with_name(args.out.name + "_draws.csv"), index=False, float_format="%.4f"
    )
    text = markdown(table, args, n_songs(df))
    args.out.with_suffix(".md").write_text(text)
    print(text)


def n_songs(df: pd.DataFrame) -> int:
    """Songs scored or drawn over the held-out genres (each song is held out once)."""
    first = df[(df.k == df.k.iloc[0]) & (df.draw == 0) & (df.kind == "none")]
    first = first[first.domain == "genre"]
    return int(first.n_test.sum() + first.n_examples.sum())


if __name__ == "__main__":
    main()
