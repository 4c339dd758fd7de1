"""Arousal and valence as answers of their own, and how familiar a song is to a model.

Axis models
-----------
Two binary classifiers trained on the quadrant model's inputs: *arousal* (high = Q1, Q2 against
low = Q3, Q4) and *valence* (positive = Q1, Q4 against negative = Q2, Q3). Each is the quadrant
model's recipe with binary labels (:func:`axis_target`), calibrated like it (out-of-fold decision
values into a logistic regression), so ``P(high arousal)`` and ``P(positive valence)`` come from
models that learned each axis on its own instead of sums of the four quadrant probabilities.

The answer (:func:`combine`, rule ``"joint"``)
---------------------------------------------
The quadrant model's probabilities ``p(q)`` and the two axis probabilities are combined as
independent experts, ``p*(q) ∝ p(q) · P_arousal(side of q) · P_valence(side of q)``; the final
arousal is high when ``p*(Q1) + p*(Q2) >= 0.5``, the final valence positive when
``p*(Q1) + p*(Q4) >= 0.5``, and the final quadrant is the one on those two sides, so the quadrant
always agrees with the axes. ``"quadrant"`` (the quadrant model's argmax, axes from its sums: the
two can disagree), ``"sides"`` (the quadrant on the sides of the quadrant model's own sums) and
``"axes"`` (the axis models alone) are the alternatives measured beside it.

Familiarity
-----------
:class:`Familiarity` measures how far a song lies from the training songs in the model's own input
space (:func:`model_space`: the imputed, standardised rows its SVM sees): the mean Euclidean
distance to the ``k`` nearest training songs, divided by a threshold, the ``quantile`` of the same
distance for held-out training songs (each scored against the other folds of an inner
``n_splits``-fold split); and the fraction of its features outside the training songs' central
range, over its own threshold (a song slightly off in many features at once, such as pink
noise). A score above 1 means the song is farther from the training music, by either measure,
than all but ``1 - quantile`` of held-out songs like it were.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.model_selection import KFold

from merkit.core.errors import ModelError
from merkit.core.labels import HIGH_AROUSAL, POSITIVE_VALENCE, QUADRANTS

AXES: tuple[str, str] = ("arousal", "valence")
"""The two axes, in the column order of :meth:`AxisModels.predict_proba`."""

AXIS_SIDES: dict[str, tuple[str, str]] = {
    "arousal": ("high", "low"),
    "valence": ("positive", "negative"),
}
"""Each axis's (positive side, negative side) names."""

Rule = Literal["joint", "quadrant", "axes", "sides"]
RULES: tuple[str, ...] = ("joint", "quadrant", "axes", "sides")


def side_masks(labels: Sequence[str] = QUADRANTS) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks over ``labels``: high-arousal quadrants, positive-valence quadrants."""
    return (
        np.array([q in HIGH_AROUSAL for q in labels]),
        np.array([q in POSITIVE_VALENCE for q in labels]),
    )


def axis_target(y: np.ndarray, axis: str, labels: Sequence[str] = QUADRANTS) -> np.ndarray:
    """1 where the quadrant code ``y`` (index into ``labels``) lies on ``axis``'s positive side
    (high arousal, positive valence), else 0."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, not {axis!r}")
    high, positive = side_masks(labels)
    mask = high if axis == "arousal" else positive
    return mask[np.asarray(y, dtype=np.int64)].astype(np.int64)


def quadrant_of_sides(high: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Quadrant codes (0..3 = Q1..Q4) of boolean arousal/valence sides."""
    high, positive = np.asarray(high, bool), np.asarray(positive, bool)
    return np.where(high, np.where(positive, 0, 1), np.where(positive, 3, 2))


def combine(
    proba: np.ndarray,
    p_axes: np.ndarray,
    rule: Rule = "joint",
    labels: Sequence[str] = QUADRANTS,
) -> tuple[np.ndarray, np.ndarray]:
    """Final quadrant codes and axis probabilities from the quadrant and axis models.

    Parameters
    ----------
    proba : (n, 4) array
        The quadrant model's probabilities, columns in ``labels`` order.
    p_axes : (n, 2) array
        ``P(high arousal)``, ``P(positive valence)`` from the axis models.
    rule : {"joint", "quadrant", "axes", "sides"}
        See the module docstring.

    Returns
    -------
    quadrant : (n,) int array
        Codes into ``labels`` (Q1..Q4 order assumed by the side names).
    final_axes : (n, 2) array
        The final ``P(high arousal)``, ``P(positive valence)``; the quadrant lies on the sides
        where these are >= 0.5 (for every rule but ``"quadrant"``, whose quadrant is the argmax).
    """
    proba = np.atleast_2d(np.asarray(proba, dtype=np.float64))
    p_axes = np.atleast_2d(np.asarray(p_axes, dtype=np.float64))
    high, positive = side_masks(labels)
    if list(labels) != list(QUADRANTS):
        raise ModelError(f"axis answers need the labels {QUADRANTS}, got {tuple(labels)}")
    if rule == "quadrant":
        final = np.stack([proba[:, high].sum(1), proba[:, positive].sum(1)], axis=1)
        return proba.argmax(axis=1), final
    if rule == "sides":
        final = np.stack([proba[:, high].sum(1), proba[:, positive].sum(1)], axis=1)
    elif rule == "axes":
        final = p_axes
    elif rule == "joint":
        eps = 1e-9
        pa = np.clip(p_axes, eps, 1 - eps)
        weight = np.where(high, pa[:, :1], 1 - pa[:, :1]) * np.where(
            positive, pa[:, 1:], 1 - pa[:, 1:]
        )
        joint = np.clip(proba, eps, None) * weight
        joint /= joint.sum(axis=1, keepdims=True)
        final = np.stack([joint[:, high].sum(1), joint[:, positive].sum(1)], axis=1)
    else:
        raise ValueError(f"rule must be one of {RULES}, not {rule!r}")
    return quadrant_of_sides(final[:, 0] >= 0.5, final[:, 1] >= 0.5), final


class AxisModels:
    """The fitted arousal and valence classifiers of a model (one pickle in the model folder).

    Parameters
    ----------
    arousal, valence : fitted binary classifiers
        Trained on :func:`axis_target` labels (1 = high arousal / positive valence), taking the
        quadrant model's estimator input; they give ``predict_proba``.
    rule : {"joint", "quadrant", "axes"}
        How :func:`combine` turns them and the quadrant probabilities into the answer.
    """

    def __init__(self, arousal: Any, valence: Any, rule: Rule = "joint") -> None:
        self.arousal = arousal
        self.valence = valence
        self.rule = rule

    def predict_proba(self, X: Any) -> np.ndarray:
        """``(n, 2)``: ``P(high arousal)``, ``P(positive valence)``."""
        columns = []
        for model in (self.arousal, self.valence):
            proba = np.asarray(model.predict_proba(X), dtype=np.float64)
            classes = [int(c) for c in np.asarray(model.classes_)]
            if 1 not in classes:
                raise ModelError("an axis model was never trained on its positive side")
            columns.append(proba[:, classes.index(1)])
        return np.stack(columns, axis=1)


def fit_axis_models(template: Any, X: Any, y: np.ndarray, *, rule: Rule = "joint") -> AxisModels:
    """Fit a clone of ``template`` (an unfitted classifier with ``predict_proba``) per axis on
    the rows ``X`` with quadrant codes ``y``."""
    fitted = [clone(template).fit(X, axis_target(y, axis)) for axis in AXES]
    return AxisModels(*fitted, rule=rule)


# ---------------------------------------------------------------------------------------------
# The model's own input space


def model_space(estimator: Any, X: Any) -> np.ndarray:
    """The rows the fitted ``estimator``'s final classifier sees for input ``X`` (after its
    imputers, scalers and selectors), as float64 with non-finite values replaced by ±1e6.

    Reaches through merkit's calibration wrappers, scikit-learn's ``CalibratedClassifierCV``
    (``ensemble=False``), ``GridSearchCV``, pipelines (every step but the last), early fusion
    (:meth:`merkit.estimators.fusion.FusionClassifier.early_inputs`) and adapted models (``base``).

    Raises
    ------
    ModelError
        An estimator whose input space is not known.
    """
    rows = _space(estimator, X)
    return np.nan_to_num(np.asarray(rows, dtype=np.float64), nan=0.0, posinf=1e6, neginf=-1e6)


def _space(est: Any, X: Any) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline

    from merkit.estimators.calibration import CrossValCalibratedClassifier
    from merkit.estimators.fusion import FusionClassifier

    if isinstance(est, CrossValCalibratedClassifier):
        return _space(est.estimator_, X)
    if isinstance(est, CalibratedClassifierCV):
        if len(est.calibrated_classifiers_) != 1:
            raise ModelError("the input space of an ensemble of calibrated copies is not defined")
        return _space(est.calibrated_classifiers_[0].estimator, X)
    if isinstance(est, GridSearchCV):
        return _space(est.best_estimator_, X)
    if isinstance(est, FusionClassifier):
        if est.combine != "early":
            raise ModelError("familiarity needs one input space: early fusion, not late")
        rows = est.early_inputs(X)
        final = est.final_estimator_
        return final[:-1].transform(rows) if isinstance(final, Pipeline) else rows
    if isinstance(est, Pipeline):
        return est[:-1].transform(X)
    if hasattr(est, "base"):  # merkit.product.adapt.RecalibratedClassifier
        return _space(est.base, X)
    raise ModelError(f"the input space of {type(est).__name__} is not known to merkit")


# ---------------------------------------------------------------------------------------------
# Familiarity


def _knn_distance(reference: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Mean Euclidean distance of each row to its ``k`` nearest rows of ``reference``."""
    from sklearn.metrics import pairwise_distances

    k = min(k, len(reference))
    dist = pairwise_distances(rows, reference)
    return np.sort(dist, axis=1)[:, :k].mean(axis=1)


def _outside(lower: np.ndarray, upper: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Fraction of each row's columns outside ``[lower, upper]``."""
    return ((rows < lower) | (rows > upper)).mean(axis=1)


def _joint_quantile(held: np.ndarray, tail: np.ndarray, rate: float, floor: float) -> float:
    """The quantile ``q`` at which rows with ``held / Q_held(q)`` or ``tail / Q_tail(q)`` above
    1 are at most ``rate`` of the rows (the union of the two flags calibrated together)."""

    def flagged(q: float) -> float:
        d = held / np.quantile(held, q)
        t = tail / max(float(np.quantile(tail, q)), floor)
        return float(np.mean(np.maximum(d, t) > 1))

    lo, hi = 1.0 - rate, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if flagged(mid) > rate else (lo, mid)
    return hi


class Familiarity(BaseEstimator):
    """How far rows lie from the training rows, calibrated on held-out training rows.

    Two measures, each over its own threshold, the larger one reported: the mean Euclidean
    distance to the ``k`` nearest training rows (a song far from every training song), and,
    with ``tail`` > 0, the fraction of the row's columns outside the training rows' central
    ``[tail, 1 - tail]`` range, column by column (a song a little off in many features at once:
    pink noise lies within the usual distance of its nearest training songs, but a third of
    its features lie outside the range of any music the model learned from). Both thresholds
    are quantiles of the held-out training rows' values at one level, chosen so that held-out
    rows flagged by either are ``1 - quantile`` of them.

    Parameters
    ----------
    k : int
        Nearest training songs averaged.
    quantile : float
        1 minus the share of held-out in-distribution rows flagged (score above 1).
    n_splits : int
        Inner folds that hold training rows out to calibrate the thresholds.
    random_state : int
        Seed of the inner split.
    tail : float
        Per-column quantile outside which a value counts as out of range (0: distance only,
        the measure of models saved before this setting existed).
    """

    def __init__(
        self,
        k: int = 5,
        quantile: float = 0.95,
        n_splits: int = 10,
        random_state: int = 0,
        tail: float = 0.01,
    ) -> None:
        self.k = k
        self.quantile = quantile
        self.n_splits = n_splits
        self.random_state = random_state
        self.tail = tail

    def fit(self, Z: np.ndarray, y: Any = None) -> Familiarity:
        """Keep the training rows ``Z`` (the model space) and calibrate the thresholds."""
        Z = np.asarray(Z, dtype=np.float64)
        if not 0 < self.quantile < 1:
            raise ValueError(f"quantile must be in (0, 1), not {self.quantile}")
        if not 0 <= self.tail < 0.5:
            raise ValueError(f"tail must be in [0, 0.5), not {self.tail}")
        if len(Z) < max(2 * self.k, self.n_splits):
            raise ValueError(f"familiarity needs at least {max(2 * self.k, self.n_splits)} rows")
        held = np.zeros(len(Z))
        outside = np.zeros(len(Z))
        split = KFold(self.n_splits, shuffle=True, random_state=self.random_state)
        for train, test in split.split(Z):
            held[test] = _knn_distance(Z[train], Z[test], self.k)
            if self.tail > 0:
                lower, upper = np.quantile(Z[train], [self.tail, 1 - self.tail], axis=0)
                outside[test] = _outside(lower, upper, Z[test])
        self.held_out_distances_ = held
        self.reference_ = Z.astype(np.float32)
        if self.tail > 0:
            floor = 1.0 / Z.shape[1]  # at least one column out of range
            level = _joint_quantile(held, outside, 1 - self.quantile, floor)
            self.level_ = level
            self.threshold_ = float(np.quantile(held, level))
            self.held_out_outside_ = outside
            self.tail_threshold_ = max(float(np.quantile(outside, level)), floor)
            self.lower_, self.upper_ = np.quantile(Z, [self.tail, 1 - self.tail], axis=0)
        else:
            self.level_ = self.quantile
            self.threshold_ = float(np.quantile(held, self.quantile))
            self.tail_threshold_ = None
        return self

    def distance(self, Z: np.ndarray) -> np.ndarray:
        """Mean distance of each row to its ``k`` nearest training rows."""
        return _knn_distance(self.reference_.astype(np.float64), np.asarray(Z, np.float64), self.k)

    def outside(self, Z: np.ndarray) -> np.ndarray | None:
        """Fraction of each row's columns outside the training range (``None`` without
        ``tail``)."""
        if getattr(self, "tail_threshold_", None) is None:  # also a model saved before `tail`
            return None
        return _outside(self.lower_, self.upper_, np.asarray(Z, np.float64))

    def relative_distance(self, Z: np.ndarray) -> np.ndarray:
        """The larger of the two measures over its threshold: <= 1 familiar, > 1 unlike the
        training music."""
        score = self.distance(Z) / self.threshold_
        outside = self.outside(Z)
        if outside is not None:
            score = np.maximum(score, outside / self.tail_threshold_)
        return score

    def extended(self, rows: np.ndarray) -> Familiarity:
        """A copy that also counts ``rows`` (model space) as known music: they join the
        reference rows and widen the training range; the thresholds stay. No row scored
        familiar before scores less familiar after (``merkit adapt``: the user's examples)."""
        import copy

        rows = np.asarray(rows, dtype=np.float64)
        out = copy.copy(self)
        out.reference_ = np.concatenate([self.reference_, rows.astype(np.float32)])
        if getattr(self, "tail_threshold_", None) is not None:
            out.lower_ = np.minimum(self.lower_, rows.min(axis=0))
            out.upper_ = np.maximum(self.upper_, rows.max(axis=0))
        return out


__all__ = [
    "AXES",
    "AXIS_SIDES",
    "RULES",
    "AxisModels",
    "Familiarity",
    "axis_target",
    "combine",
    "fit_axis_models",
    "model_space",
    "quadrant_of_sides",
    "side_masks",
]
