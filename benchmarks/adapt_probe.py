"""Few-shot adaptation on the synthetic piano cue probe: audio the default model answers on one
side of the plane (issue 33, item 4).

``benchmarks/adapt_fewshot.py`` measures `merkit adapt` on held-out 4QAED genres and on a
*feature-space* proxy of a harsh shift. This script measures the same kinds on *audio* far from
4QAED: the quadrant set of ``benchmarks/cue_probe.py`` (synthetic additive-piano pieces whose
labels are the cue configuration they were rendered with, see that script: a probe of cue
sensitivity, not an emotion dataset). The default recipe (``fusion``, calibrated as shipped, its
early-fusion SVM frozen at the shipped C, gamma) is fitted on all 900 4QAED songs; then per draw
``k`` pieces per quadrant are the labelled examples and every kind is scored on the other pieces:

- ``none``: the model as trained; ``relative (quadrant sums)`` / ``relative (axis models)``:
  ``merkit predict --relative`` over the whole set, from the quadrant probabilities or from
  arousal/valence models fitted on the 900 songs (the shipped default has them);
- ``bias``: :class:`merkit.product.adapt.Recalibration` (strength 4);
- ``refit``: the SVM refitted on its support vectors plus the examples (weight 3);
- ``shift``: ``merkit adapt --kind shift`` (per-quadrant offset from the examples, prior 10);
- ``auto``: ``merkit adapt --kind auto`` (refit or shift by leave-one-out on the examples), what
  ``merkit adapt`` does without ``--kind`` for the default model;
- ``align`` / ``align+refit``: the *unlabelled* pieces used too: every column of the model's input
  space moved and scaled onto the training songs' mean and spread
  (:class:`merkit.estimators.align.FeatureAlignment`, prior 10, fitted on the whole quadrant set
  without its labels), then nothing / the refit on the aligned examples;
- ``auto+unlabelled``: ``merkit adapt --kind auto --unlabelled``: refit, shift or align+refit
  by leave-one-out on the examples (the alignment fixed; ties: refit, then shift).

A probe piece is one 30 s window, so its model inputs are what ``merkit predict`` computes for
it (``tests/test_predict_training_path.py``); the kinds act on the model's input space exactly as
:func:`merkit.product.adapt.adapt_model` does (reused from ``adapt_fewshot.py``).

``--collection NAME --collection-root ROOT`` does the same on a labelled dataset of 30 s clips
that merkit has a loader for (e.g. ``musifeast17``: real music from outside 4QAED) instead of
the probe.

Example::

    nice -n 19 python benchmarks/adapt_probe.py --root ../shared/data/4qaed \\
        --config benchmarks/configs/fusion_default.yaml --frozen 4,0.00048828125 \\
        --out benchmarks/results/cue_probe_adapt
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

import numpy as np

from _common import command_line, draw_few, footer, machine, timestamp, versions
from adapt_fewshot import SpaceModel, choose_auto, label_shift, pick, pick_margin
from axes_familiarity import Setup, add_setup_arguments
from cue_probe import add_probe_arguments, probe_inputs, quadrant_pieces, render_all
from merkit.core.labels import QUADRANTS
from merkit.estimators.align import FeatureAlignment
from merkit.estimators.axes import model_space
from merkit.product.adapt import Recalibration
from merkit.product.relative import relative_placements
from merkit.protocol.metrics import fold_metrics

KINDS = (
    "none",
    "relative (quadrant sums)",
    "relative (axis models)",
    "bias",
    "refit",
    "shift",
    "auto",
    "align",
    "align+refit",
    "auto+unlabelled",
    "auto+unlabelled (margin 2)",
)


def collection_inputs(
    name: str, root: str | None, inputs: list[str]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """A labelled dataset's model inputs (``resolve_inputs``, cached) and its quadrants: each
    30 s clip is one window, so these are what ``merkit predict`` computes for it."""
    from merkit.datasets import load_dataset
    from merkit.protocol.runner import resolve_inputs

    dataset = load_dataset(name, root)
    arrays = resolve_inputs(dataset, inputs, progress=False)
    return {k: np.asarray(arrays[k]) for k in inputs}, [s.quadrant for s in dataset.songs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setup_arguments(parser)
    add_probe_arguments(parser)
    parser.add_argument("--k", type=lambda s: [int(v) for v in s.split(",")], default=[2, 5])
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--prior", type=float, default=10.0)
    parser.add_argument("--out", type=Path, required=True, help="results path without suffix")
    parser.add_argument(
        "--collection",
        default=None,
        help="adapt to this labelled dataset (a merkit loader name) instead of the probe",
    )
    parser.add_argument("--collection-root", default=None, help="root of --collection")
    args = parser.parse_args()
    args.available_only, args.songs_from = False, None
    started = time.perf_counter()
    setup = Setup(args)
    everything = np.arange(len(setup.y))
    model = setup.fit_quadrant(everything)
    axes = setup.fit_axes(everything)
    space = SpaceModel(model)
    Z_train = model_space(model, setup.X(everything))
    train_pred = space.proba(Z_train).argmax(1)
    means = np.stack([Z_train[train_pred == c].mean(0) for c in range(4)])

    if args.collection:
        inputs, quadrants = collection_inputs(
            args.collection, args.collection_root, list(setup.resolved.inputs)
        )
    else:
        pieces = quadrant_pieces(args.per_quadrant)
        paths = render_all(pieces, args.audio_dir)
        inputs = probe_inputs(pieces, paths, list(setup.resolved.inputs))
        quadrants = [p.quadrant for p in pieces]
    X = setup.resolved.estimator_input(inputs, np.arange(len(quadrants)))
    y = np.array([QUADRANTS.index(q) for q in quadrants])
    Z = model_space(model, X)
    proba = space.proba(Z)
    Z_al = FeatureAlignment(prior=args.prior).fit(Z_train, Z).transform(Z)
    if not np.allclose(proba, model.predict_proba(X)):
        raise SystemExit("model-space probabilities differ from the model's own")
    relative = {
        "relative (quadrant sums)": relative_placements(proba, min_files=2),
        "relative (axis models)": relative_placements(
            proba, min_files=2, axes=axes.predict_proba(X)
        ),
    }
    relative_pred = {
        k: np.array([QUADRANTS.index(p.quadrant) for p in v]) for k, v in relative.items()
    }

    rows = []
    for k in args.k:
        for draw in range(args.draws):
            chosen, rest = draw_few(y, k, np.random.default_rng([draw, k]))
            yc = y[chosen]
            delta = label_shift(Z[chosen], yc, means, args.prior)
            answers = {
                "none": proba.argmax(1),
                **relative_pred,
                "bias": Recalibration("bias", 4.0).fit(proba[chosen], yc).transform(proba),
                "refit": space.refit(Z[chosen], yc, 3.0).proba(Z),
                "shift": space.refit(Z[chosen] - delta, yc, 3.0).proba(Z - delta),
                "align": space.proba(Z_al),
                "align+refit": space.refit(Z_al[chosen], yc, 3.0).proba(Z_al),
            }
            _, right = choose_auto(space, Z, chosen, yc, means, args.prior, Z_al)
            auto = pick(right, ("refit", "shift-labels+refit"))
            auto3 = pick(right)
            named = {"refit": "refit", "shift-labels+refit": "shift", "align+refit": "align+refit"}
            answers["auto"] = answers[named[auto]]
            answers["auto+unlabelled"] = answers[named[auto3]]
            auto3m = pick_margin(right, 2)
            answers["auto+unlabelled (margin 2)"] = answers[named[auto3m]]
            for kind in KINDS:
                a = answers[kind]
                pred = a if a.ndim == 1 else a.argmax(1)
                m = fold_metrics(y[rest], pred[rest])
                rows.append(
                    {
                        "k": k,
                        "draw": draw,
                        "kind": kind,
                        "f1": m["f1"],
                        "accuracy": m["accuracy"],
                        "auto_chose": {
                            "auto": auto,
                            "auto+unlabelled": auto3,
                            "auto+unlabelled (margin 2)": auto3m,
                        }.get(kind, ""),
                        "answered": np.bincount(pred[rest], minlength=4).tolist(),
                    }
                )
        print(f"k={k}: {args.draws} draws done", flush=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(
        json.dumps({"command": command_line(), "rows": rows}, indent=1)
    )
    what = (
        f"the `{args.collection}` collection ({len(y)} songs: "
        + ", ".join(f"{q} {int((y == i).sum())}" for i, q in enumerate(QUADRANTS))
        + "; its loader's quadrants; each clip one window)"
        if args.collection
        else "the synthetic piano cue probe"
    )
    lines = [
        f"# Few-shot adaptation of the default recipe to {what}",
        "",
        f"Generated by `benchmarks/adapt_probe.py` at {timestamp()} "
        f"({time.perf_counter() - started:.0f} s).",
        "",
        f"Command: `{command_line()}`",
        "",
        (
            f"The default recipe is fitted on all 900 4QAED songs; `k` songs per quadrant of "
            f"`{args.collection}` are the labelled examples, {args.draws} seeded draws; macro F1 "
            "and accuracy on the collection's other songs, mean ± std (min–max) over draws. "
            "`none` is the quadrant model's own argmax (the shipped product combines it with "
            "its axis models). The unlabelled songs the `align` kinds use are the whole "
            "collection without its labels."
            if args.collection
            else "**The probe is synthetic** (`benchmarks/results/cue_probe.md`: one additive "
            "piano, labels = the cue configuration each piece was rendered with, no listener "
            "ratings). The default recipe is fitted on all 900 4QAED songs; `k` probe pieces per "
            f"quadrant are the labelled examples, {args.draws} seeded draws; macro F1 and "
            f"accuracy on the other pieces of the {len(y)}-piece quadrant set, mean ± std "
            "(min–max) over draws. `none` is the quadrant model's own argmax: unadapted it "
            "answers these pieces Q1 or Q4 only (the shipped product combines it with its axis "
            "models, `cue_probe.md`: 40.3 %)."
        ),
        "",
        "| k | kind | macro F1 % | ± std | min–max | accuracy % | answers Q1/Q2/Q3/Q4 (draw 0) |",
        "|---:|---|---:|---:|---|---:|---|",
    ]
    for k in args.k:
        for kind in KINDS:
            part = [r for r in rows if r["k"] == k and r["kind"] == kind]
            f1 = 100 * np.array([r["f1"] for r in part])
            acc = 100 * np.mean([r["accuracy"] for r in part])
            first = "/".join(str(v) for v in part[0]["answered"])
            lines.append(
                f"| {k} | {kind} | {f1.mean():.1f} | {f1.std(ddof=1):.1f} | "
                f"{f1.min():.1f}–{f1.max():.1f} | {acc:.1f} | {first} |"
            )
        for auto_kind in ("auto", "auto+unlabelled", "auto+unlabelled (margin 2)"):
            chose = [r["auto_chose"] for r in rows if r["k"] == k and r["kind"] == auto_kind]
            lines.append(
                f"| {k} | ({auto_kind} chose shift in "
                f"{sum(c == 'shift-labels+refit' for c in chose)}, align+refit in "
                f"{sum(c == 'align+refit' for c in chose)} of {len(chose)} draws) | | | | | |"
            )
    notes = [
        "The same functions as `adapt_fewshot.py` (`SpaceModel`, `label_shift`, `choose_auto`), "
        "which match `merkit adapt`'s kinds in the model's input space."
    ]
    args.out.with_suffix(".md").write_text("\n".join(lines + footer(machine(), versions(), notes)))
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
