"""Fusion of classifiers that each read their own inputs: late fusion, stacking, early fusion.

The paper's conclusion (§5) is that handcrafted features and learned representations should be
combined. :class:`FusionClassifier` combines any scikit-learn-style classifiers (the members),
each given its own inputs out of a dict keyed by input name:

- ``late``: each member's scores (``decision_function``, else log ``predict_proba``) are
  calibrated by a multinomial logistic regression and the calibrated probabilities are averaged
  with weights chosen on out-of-fold predictions of an inner cross-validation of the training
  rows (never the rows to predict);
- ``stacking``: a logistic regression reads the members' out-of-fold scores;
- ``early``: every member must be a pipeline; its steps up to the classifier transform the
  inputs, the results are concatenated and one classifier (``final_estimator``) is trained.

A member may be tuned by the fusion itself (``param_grids``): every candidate setting is scored
on the same inner folds that give the out-of-fold scores, the best by inner macro F1 is kept and
its out-of-fold scores feed the calibration and the weights, so one inner cross-validation
serves both (the cheap way to tune on a busy CPU).

Every member is refitted on all training rows for prediction. Members that tune their own
hyper-parameters (a :class:`~sklearn.model_selection.GridSearchCV` inside) do so on all training
rows; with ``tuning="frozen"`` the inner folds that produce the out-of-fold scores then reuse the
chosen hyper-parameters (one grid search per member, not one per inner fold), with
``tuning="nested"`` every inner fold tunes again.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, log_loss
from sklearn.model_selection import ParameterGrid, StratifiedKFold
from sklearn.model_selection._search import BaseSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.metaestimators import _BaseComposition, available_if

from merkit.core.errors import ConfigError, DataError, ModelError
from merkit.core.inputs import take
from merkit.estimators.calibration import decision_scores

MemberInputs = Sequence[str] | Mapping[str, str]
"""A member's inputs: input names (one name: the member gets that array; several: a dict keyed
by name) or ``{role: input name}`` (a dict keyed by role)."""


def member_input(X: Mapping[str, Any], spec: MemberInputs, rows: np.ndarray | None = None) -> Any:
    """What a member reads from the fusion's input dict ``X`` (all rows, or ``rows``)."""

    def pick(name: str) -> Any:
        if name not in X:
            raise DataError(f"fusion: input {name!r} is missing (given: {', '.join(X)})")
        return X[name] if rows is None else take(X[name], rows)

    if isinstance(spec, Mapping):
        return {role: pick(name) for role, name in spec.items()}
    names = list(spec)
    if len(names) == 1:
        return pick(names[0])
    return {name: pick(name) for name in names}


def tuned_clone(fitted: Any) -> Any:
    """An unfitted copy of ``fitted`` whose inner searches are replaced by their best settings."""
    if isinstance(fitted, BaseSearchCV):
        return clone(fitted.best_estimator_)
    if isinstance(fitted, Pipeline):
        return Pipeline([(name, tuned_clone(step)) for name, step in fitted.steps])
    return clone(fitted)


def simplex_grid(n: int, step: float) -> np.ndarray:
    """Every weight vector of ``n`` non-negative multiples of ``step`` summing to 1."""
    parts = round(1 / step)
    rows = [c for c in itertools.product(range(parts + 1), repeat=n) if sum(c) == parts]
    return np.asarray(rows, dtype=np.float64) / parts


class FusionClassifier(_BaseComposition, ClassifierMixin, BaseEstimator):
    """Several classifiers, each on its own inputs, combined into one.

    Parameters
    ----------
    estimators : list of (str, estimator)
        The members, named.
    inputs : mapping of str to member inputs
        Each member's inputs (:data:`MemberInputs`); ``fit`` and ``predict`` take a dict keyed
        by input name.
    combine : {"late", "stacking", "early"}
        How the members are combined (module docstring).
    weights : sequence of float, optional
        Late fusion with these fixed weights (one per member); None chooses them by inner CV.
    weight_step : float
        Resolution of the weight grid searched (all weight vectors on the simplex in steps of it).
    scoring : {"log_loss", "f1_macro"}
        What the chosen weights optimise on the inner out-of-fold predictions.
    calibration : bool
        Late fusion: calibrate each member's scores (multinomial logistic regression fitted on
        its out-of-fold scores); False averages softmax-normalised scores.
    inner_cv : int
        Folds of the inner stratified cross-validation of the training rows.
    tuning : {"frozen", "nested"}
        ``frozen``: inner folds reuse the hyper-parameters each member chose on all training rows;
        ``nested``: each inner fold tunes again (slower).
    final_estimator : estimator, optional
        Stacking: the meta-classifier (default logistic regression); early fusion: the classifier
        on the concatenated inputs (required).
    param_grids : mapping of str to mapping, optional
        Per member name, candidate values of its parameters (``{"svm__C": [2, 8, 32]}``), chosen
        on the inner folds (late fusion and stacking).
    random_state : int, optional
        Seeds the inner folds.
    """

    def __init__(
        self,
        estimators: Sequence[tuple[str, Any]],
        inputs: Mapping[str, MemberInputs],
        combine: Literal["late", "stacking", "early"] = "late",
        weights: Sequence[float] | None = None,
        weight_step: float = 0.1,
        scoring: Literal["log_loss", "f1_macro"] = "log_loss",
        calibration: bool = True,
        inner_cv: int = 5,
        tuning: Literal["frozen", "nested"] = "frozen",
        final_estimator: Any = None,
        param_grids: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
        random_state: int | None = 0,
    ) -> None:
        self.estimators = estimators
        self.inputs = inputs
        self.combine = combine
        self.weights = weights
        self.weight_step = weight_step
        self.scoring = scoring
        self.calibration = calibration
        self.inner_cv = inner_cv
        self.tuning = tuning
        self.final_estimator = final_estimator
        self.param_grids = param_grids
        self.random_state = random_state

    # scikit-learn composition: members' parameters as ``<name>__<param>``.
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return self._get_params("estimators", deep=deep)

    def set_params(self, **params: Any) -> FusionClassifier:
        self._set_params("estimators", **params)
        return self

    def validate_settings(self) -> None:
        names = [name for name, _ in self.estimators]
        if not names:
            raise ConfigError("fusion needs at least one member")
        if len(set(names)) != len(names):
            raise ConfigError(f"fusion members need distinct names, got {names}")
        missing = [name for name in names if name not in self.inputs]
        if missing:
            raise ConfigError(f"fusion: no inputs given for member(s) {missing}")
        if self.combine not in ("late", "stacking", "early"):
            raise ConfigError(
                f"setting 'combine' must be late, stacking or early, not {self.combine!r}"
            )
        if self.scoring not in ("log_loss", "f1_macro"):
            raise ConfigError(
                f"setting 'scoring' must be log_loss or f1_macro, not {self.scoring!r}"
            )
        if self.tuning not in ("frozen", "nested"):
            raise ConfigError(f"setting 'tuning' must be frozen or nested, not {self.tuning!r}")
        if self.weights is not None and len(self.weights) != len(names):
            raise ConfigError(
                f"setting 'weights' needs one weight per member ({len(names)}), "
                f"got {list(self.weights)}"
            )
        if not 0 < self.weight_step <= 1:
            raise ConfigError(f"setting 'weight_step' must be in (0, 1], not {self.weight_step}")
        if not isinstance(self.inner_cv, int) or self.inner_cv < 2:
            raise ConfigError(f"setting 'inner_cv' must be an integer >= 2, not {self.inner_cv!r}")
        for name, grid in (self.param_grids or {}).items():
            member = dict(self.estimators).get(name)
            if member is None:
                raise ConfigError(f"setting 'param_grids' names no member {name!r}")
            for candidate in ParameterGrid(dict(grid)):
                try:
                    clone(member).set_params(**candidate)
                except ValueError as exc:
                    raise ConfigError(
                        f"member {name!r} cannot be tuned over {grid}: {exc}"
                    ) from None
        if self.combine == "early":
            if self.final_estimator is None:
                raise ConfigError("early fusion needs a final_estimator")
            for name, member in self.estimators:
                if not isinstance(member, Pipeline) or len(member.steps) < 2:
                    raise ConfigError(
                        f"early fusion: member {name!r} must be a pipeline whose steps before "
                        "the last transform its inputs"
                    )

    def _n_rows(self, X: Any) -> int:
        if not isinstance(X, Mapping):
            raise DataError("FusionClassifier takes a dict of inputs keyed by input name")
        lengths = {name: len(value) for name, value in X.items()}
        if len(set(lengths.values())) != 1:
            raise DataError(f"fusion: inputs differ in number of rows: {lengths}")
        return next(iter(lengths.values()))

    def fit(self, X: Mapping[str, Any], y: Any) -> FusionClassifier:
        """Fit the members (and the combination) on the rows of ``X``."""
        self.validate_settings()
        n = self._n_rows(X)
        self._encoder = LabelEncoder().fit(y)
        self.classes_ = self._encoder.classes_
        codes = self._encoder.transform(y)
        if len(codes) != n:
            raise DataError(f"fusion: {n} input rows but {len(codes)} labels")
        if self.combine == "early":
            return self._fit_early(X, codes)
        oof = self._out_of_fold(X, codes)
        self.estimators_ = [
            clone(member)
            .set_params(**self.best_params_[name])
            .fit(member_input(X, self.inputs[name]), codes)
            if name in self.best_params_
            else self._fitted_[name]
            for name, member in self.estimators
        ]
        del self._fitted_
        if self.combine == "stacking":
            meta = self.final_estimator or LogisticRegression(max_iter=2000)
            self.final_estimator_ = clone(meta).fit(np.hstack(oof), codes)
            return self
        if self.calibration:
            self.calibrators_ = [LogisticRegression(max_iter=2000).fit(s, codes) for s in oof]
        probas = [self._calibrate(i, s) for i, s in enumerate(oof)]
        self.oof_probas_ = probas
        self.weights_ = self._choose_weights(probas, codes)
        return self

    def _out_of_fold(self, X: Mapping[str, Any], codes: np.ndarray) -> list[np.ndarray]:
        """Each member's scores on the training rows, each row scored by a member not fitted on
        it (inner stratified folds of these rows only)."""
        splitter = StratifiedKFold(self.inner_cv, shuffle=True, random_state=self.random_state)
        splits = list(splitter.split(np.zeros(len(codes)), codes))
        grids = self.param_grids or {}
        self.best_params_: dict[str, dict[str, Any]] = {}
        self.inner_f1_: dict[str, float] = {}
        self._fitted_: dict[str, Any] = {}
        out = []
        for name, member in self.estimators:
            if name in grids:
                best_f1, best_scores = -1.0, None
                for candidate in ParameterGrid(dict(grids[name])):
                    base = clone(member).set_params(**candidate)
                    scores = self._member_oof(name, base, X, codes, splits)
                    f1 = f1_score(codes, scores.argmax(axis=1), average="macro")
                    if f1 > best_f1:
                        best_f1, best_scores, self.best_params_[name] = f1, scores, candidate
                self.inner_f1_[name] = float(best_f1)
                out.append(best_scores)
                continue
            # Fitted on all training rows first, so that its own tuning can be frozen.
            fitted = clone(member).fit(member_input(X, self.inputs[name]), codes)
            self._fitted_[name] = fitted
            base = tuned_clone(fitted) if self.tuning == "frozen" else member
            scores = self._member_oof(name, base, X, codes, splits)
            self.inner_f1_[name] = float(f1_score(codes, scores.argmax(axis=1), average="macro"))
            out.append(scores)
        return out

    def _member_oof(
        self,
        name: str,
        base: Any,
        X: Mapping[str, Any],
        codes: np.ndarray,
        splits: list[tuple[np.ndarray, np.ndarray]],
    ) -> np.ndarray:
        scores = np.zeros((len(codes), len(self.classes_)))
        for train, test in splits:
            inner = clone(base).fit(member_input(X, self.inputs[name], train), codes[train])
            scores[test] = decision_scores(inner, member_input(X, self.inputs[name], test))
        return scores

    def _calibrate(self, i: int, scores: np.ndarray) -> np.ndarray:
        if self.calibration:
            return self.calibrators_[i].predict_proba(scores)
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        return shifted / shifted.sum(axis=1, keepdims=True)

    def _choose_weights(self, probas: list[np.ndarray], codes: np.ndarray) -> np.ndarray:
        if self.weights is not None:
            weights = np.asarray(self.weights, dtype=np.float64)
            return weights / weights.sum()
        grid = simplex_grid(len(probas), self.weight_step)
        # Ties go to the most even weighting (the grid sorted by distance to equal weights).
        even = np.full(len(probas), 1 / len(probas))
        grid = grid[np.argsort(np.abs(grid - even).sum(axis=1), kind="stable")]
        stack = np.stack(probas)  # (members, rows, classes)
        labels = np.arange(len(self.classes_))
        best, best_loss = grid[0], np.inf
        for weights in grid:
            fused = np.tensordot(weights, stack, axes=1)
            if self.scoring == "log_loss":
                loss = log_loss(codes, fused, labels=labels)
            else:
                loss = -f1_score(codes, fused.argmax(axis=1), average="macro")
            if loss < best_loss - 1e-12:
                best, best_loss = weights, loss
        self.inner_score_ = -best_loss if self.scoring == "f1_macro" else best_loss
        return best

    def _fit_early(self, X: Mapping[str, Any], codes: np.ndarray) -> FusionClassifier:
        self.transformers_ = []
        blocks = []
        for name, member in self.estimators:
            transformer = clone(member[:-1])
            blocks.append(transformer.fit_transform(member_input(X, self.inputs[name]), codes))
            self.transformers_.append(transformer)
        self.final_estimator_ = clone(self.final_estimator).fit(np.hstack(blocks), codes)
        return self

    def early_inputs(self, X: Mapping[str, Any]) -> np.ndarray:
        """Early fusion: the members' transformed inputs, concatenated (what the final estimator
        sees; :func:`merkit.estimators.axes.model_space` measures familiarity there)."""
        return self._early_inputs(X)

    def _early_inputs(self, X: Mapping[str, Any]) -> np.ndarray:
        return np.hstack(
            [
                transformer.transform(member_input(X, self.inputs[name]))
                for (name, _), transformer in zip(self.estimators, self.transformers_, strict=True)
            ]
        )

    def _has_decision(self) -> bool:
        return self.combine == "early" and hasattr(self.final_estimator, "decision_function")

    @available_if(_has_decision)
    def decision_function(self, X: Mapping[str, Any]) -> np.ndarray:
        """Early fusion: the final estimator's decision values on the concatenated inputs (what
        :class:`merkit.estimators.calibration.CrossValCalibratedClassifier` turns into
        probabilities)."""
        return self.final_estimator_.decision_function(self._early_inputs(X))

    def _has_proba(self) -> bool:
        return self.combine != "early" or hasattr(self.final_estimator, "predict_proba")

    @available_if(_has_proba)
    def predict_proba(self, X: Mapping[str, Any]) -> np.ndarray:
        """Class probabilities, columns in the order of :attr:`classes_`."""
        self._n_rows(X)
        if self.combine == "early":
            return self.final_estimator_.predict_proba(self._early_inputs(X))
        scores = [
            decision_scores(fitted, member_input(X, self.inputs[name]))
            for (name, _), fitted in zip(self.estimators, self.estimators_, strict=True)
        ]
        if self.combine == "stacking":
            return self.final_estimator_.predict_proba(np.hstack(scores))
        probas = np.stack([self._calibrate(i, s) for i, s in enumerate(scores)])
        return np.tensordot(self.weights_, probas, axes=1)

    def supports_refit(self) -> bool:
        """Whether :meth:`refit_with_examples` applies: early fusion into a fitted SVM."""
        from merkit.estimators.support_refit import supports_refit

        final = getattr(self, "final_estimator_", None)
        return self.combine == "early" and final is not None and supports_refit(final)

    def refit_with_examples(
        self, X: Mapping[str, Any], y: Any, sample_weight: np.ndarray
    ) -> FusionClassifier:
        """A copy whose final SVM is refitted on its support vectors plus the rows of ``X``
        (:mod:`merkit.estimators.support_refit`); the members' transforms stay as fitted."""
        from merkit.estimators.support_refit import refit_with_examples

        if not self.supports_refit():
            raise ModelError(
                f"only early fusion into an SVM can be refitted with examples (combine="
                f"{self.combine!r})"
            )
        self._n_rows(X)
        refitted = copy.copy(self)
        refitted.final_estimator_ = refit_with_examples(
            self.final_estimator_,
            self._early_inputs(X),
            self._encoder.transform(np.asarray(y)),
            sample_weight,
        )
        return refitted

    def predict(self, X: Mapping[str, Any]) -> np.ndarray:
        """The most likely class of each row."""
        if self.combine == "early":
            self._n_rows(X)
            codes = self.final_estimator_.predict(self._early_inputs(X))
        else:
            codes = self.predict_proba(X).argmax(axis=1)
        return self._encoder.inverse_transform(np.asarray(codes, dtype=int))


__all__ = ["FusionClassifier", "member_input", "simplex_grid", "tuned_clone"]
