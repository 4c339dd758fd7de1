"""Arousal/valence models and the familiarity measure of a trained model
(:mod:`merkit.estimators.axes`), fitted on its training songs and added to its model directory
beside the quadrant estimator.

The axis models take the quadrant model's recipe with binary labels (:func:`axis_template`): its
inputs, members, imputers and scalers, with the final classifier a logistic regression
(:func:`axis_classifier`). The familiarity measure lives in the fitted quadrant estimator's own
input space (:func:`merkit.estimators.axes.model_space`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from merkit.core.errors import ModelError
from merkit.datasets.base import Dataset
from merkit.estimators.axes import AxisModels, Familiarity, Rule, fit_axis_models, model_space

AXIS_CS: tuple[float, ...] = (0.003, 0.01, 0.03, 0.1)
"""Candidate inverse L2 strengths of the axis models' logistic regression (inner log loss)."""

FAMILIARITY = {"k": 5, "quantile": 0.95, "n_splits": 10, "tail": 0.01}
"""The familiarity measure's settings (:class:`merkit.estimators.axes.Familiarity`)."""


def axis_classifier(seed: int = 0) -> Any:
    """The axis models' final step: L2 logistic regression, C from :data:`AXIS_CS` by log loss
    on 3 inner stratified folds (so its probabilities are fitted for calibration)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import StratifiedKFold

    return LogisticRegressionCV(
        Cs=list(AXIS_CS),
        cv=StratifiedKFold(3, shuffle=True, random_state=seed),
        scoring="neg_log_loss",
        max_iter=5000,
    )


def axis_template(method: str, params: dict[str, Any], *, seed: int = 0) -> tuple[Any, str]:
    """An unfitted binary classifier of the quadrant model's recipe whose final classifier is
    :func:`axis_classifier`, and how it was built (for the model card).

    Why linear: far from the training songs an RBF SVM's decision values all decay to its
    intercept, so on unfamiliar music its axis scores lose their order; a linear score keeps
    ranking songs, which ``--relative`` relies on.
    """
    from merkit.methods import resolve_method

    estimator = _with_final(resolve_method(method, params).estimator, axis_classifier(seed))
    cs = ", ".join(f"{c:g}" for c in AXIS_CS)
    how = (
        f"each the `{method}` recipe's inputs and preprocessing (imputation, standardisation, "
        f"fitted on the training songs) into an L2 logistic regression, C in {{{cs}}} chosen by "
        "log loss on 3 inner folds; its probabilities are the logistic regression's own"
    )
    return estimator, how


def _with_final(estimator: Any, final: Any) -> Any:
    """``estimator`` (unfitted) with its last classifier replaced by ``final``."""
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    from merkit.estimators.fusion import FusionClassifier

    if isinstance(estimator, FusionClassifier) and estimator.combine == "early":
        inner = estimator.final_estimator
        replaced = _with_final(inner, final) if isinstance(inner, Pipeline) else final
        return clone(estimator).set_params(final_estimator=replaced)
    if isinstance(estimator, Pipeline):
        name = estimator.steps[-1][0]
        return clone(estimator).set_params(**{name: final})
    raise ModelError(f"axis models need a pipeline or early fusion, not {type(estimator).__name__}")


def fit_companions(
    estimator: Any,
    template: Any,
    X: Any,
    y: np.ndarray,
    *,
    rule: Rule = "joint",
    familiarity: dict[str, Any] | None = None,
    seed: int = 0,
) -> tuple[AxisModels, Familiarity]:
    """Axis models (clones of ``template``) and the familiarity measure in the fitted quadrant
    ``estimator``'s input space, both fitted on the rows ``X`` (quadrant codes ``y``)."""
    axes = fit_axis_models(template, X, y, rule=rule)
    settings = {**FAMILIARITY, **(familiarity or {}), "random_state": seed}
    known = Familiarity(**settings).fit(model_space(estimator, X))
    return axes, known


def add_companions(
    model_dir: Path | str,
    dataset: Dataset,
    *,
    rule: Rule = "joint",
    cv: dict[str, Any] | None = None,
    cache: Any = None,
    progress: bool = True,
    subset: bool = False,
) -> Any:
    """Fit axis models and familiarity on ``dataset`` (the model's training songs: checked by
    fingerprint, unless ``subset`` says it is a part of them, whose size the manifest and card
    record) and add them to ``model_dir``; the quadrant estimator's file stays as it is.

    Returns the new :class:`merkit.product.model_dir.ModelManifest`.

    Raises
    ------
    ModelError
        ``dataset`` is not the songs the model was trained on.
    """
    from merkit.product.card import model_card
    from merkit.product.companion_files import save_companions
    from merkit.product.model_dir import open_model_dir
    from merkit.protocol.runner import resolve_inputs

    model_dir = Path(model_dir)
    manifest, estimator = open_model_dir(model_dir)
    if not subset and dataset.fingerprint() != manifest.training.fingerprint:
        raise ModelError(
            f"{dataset.name!r} is not the song list {model_dir} was trained on (fingerprint "
            f"{dataset.fingerprint()} != {manifest.training.fingerprint})"
        )
    names = [s.name for s in manifest.inputs]
    inputs = resolve_inputs(dataset, names, cache=cache, progress=progress)
    if len(manifest.inputs) == 1:
        X: Any = inputs[manifest.inputs[0].name]
    else:
        X = {s.role or s.name: inputs[s.name] for s in manifest.inputs}
    y = np.asarray(dataset.labels)
    template, recipe = axis_template(manifest.method, manifest.params, seed=manifest.seed)
    axes, known = fit_companions(estimator, template, X, y, rule=rule, seed=manifest.seed)
    familiarity_recipe = familiarity_recipe_of(known, len(y))
    update: dict[str, Any] = {
        "rule": rule,
        "recipe": recipe,
        "familiarity_recipe": familiarity_recipe,
        "cv": cv,
        "n_songs": len(y),
    }
    new = manifest.model_copy(
        update={"companions": _preview(manifest, update)}
    )  # the card renders from the manifest that will be written
    return save_companions(
        model_dir, {"axes": axes, "familiarity": known}, update, card=model_card(new)
    )


def familiarity_recipe_of(known: Familiarity, n_songs: int) -> str:
    """How the fitted familiarity measure ``known`` works, for the manifest and the card."""
    recipe = (
        f"mean Euclidean distance to the {known.k} nearest of {n_songs} training songs in the "
        "quadrant estimator's input space (after its imputers and scalers)"
    )
    if getattr(known, "tail_threshold_", None) is None:
        return recipe + (
            f", over a threshold: the {100 * known.quantile:g}th percentile of that distance for "
            f"training songs held out by {known.n_splits}-fold cross-validation (threshold "
            f"{known.threshold_:.3f})"
        )
    tail = 100 * known.tail
    return recipe + (
        f", and the fraction of its features outside the central {100 - 2 * tail:g} % of the "
        f"training songs' values (between their {tail:g} % and {100 - tail:g} % percentiles, "
        "feature by feature), each over a threshold (distance "
        f"{known.threshold_:.3f}, fraction {known.tail_threshold_:.4f}): the "
        f"{100 * known.level_:.2f}th percentile of each for training songs held out by "
        f"{known.n_splits}-fold cross-validation, the level at which "
        f"{100 * (1 - known.quantile):g} % of those songs exceed either; the larger of the two "
        "ratios is the song's familiarity"
    )


def refresh_familiarity(model_dir: Path | str, card: str | None = None) -> Any:
    """Refit a model directory's familiarity measure with today's :data:`FAMILIARITY` settings
    on its own training rows (its ``reference_``: the training songs in the model's input
    space, so no audio is needed); every other file is copied byte for byte. ``card`` replaces
    the model card. Returns the new manifest.

    Raises
    ------
    ModelError
        The model has no familiarity measure.
    """
    from merkit.product.companion_files import load_companions, save_companions
    from merkit.product.model_dir import read_manifest

    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    loaded = load_companions(manifest, model_dir)
    if manifest.companions is None or "familiarity" not in loaded:
        raise ModelError(f"{model_dir} has no familiarity measure to refit")
    old = loaded["familiarity"]
    rows = np.asarray(old.reference_, dtype=np.float64)
    seed = int(getattr(old, "random_state", 0))
    known = Familiarity(**{**FAMILIARITY, "random_state": seed}).fit(rows)
    c = manifest.companions
    update = {
        "axes": c.axes,  # axes.joblib is copied byte for byte
        "rule": c.rule,
        "n_songs": c.n_songs,
        "recipe": c.recipe,
        "familiarity_recipe": familiarity_recipe_of(known, len(rows)),
        "cv": c.cv,
    }
    return save_companions(model_dir, {"familiarity": known}, update, card)


def _preview(manifest: Any, update: dict[str, Any]) -> Any:
    """The :class:`Companions` entry the saved manifest will hold (file names, placeholder
    checksums) so the model card can be rendered before the files are written."""
    from merkit.product.model_dir import Companions, EstimatorFile

    def entry(name: str, cls: str) -> EstimatorFile:
        return EstimatorFile(format="joblib", file=f"{name}.joblib", class_path=cls, sha256="")

    return Companions(
        axes=entry("axes", "merkit.estimators.axes:AxisModels"),
        familiarity=entry("familiarity", "merkit.estimators.axes:Familiarity"),
        **update,
    )


__all__ = [
    "AXIS_CS",
    "FAMILIARITY",
    "add_companions",
    "axis_classifier",
    "axis_template",
    "familiarity_recipe_of",
    "fit_companions",
    "refresh_familiarity",
]
