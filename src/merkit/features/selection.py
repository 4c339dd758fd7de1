"""ReliefF feature selection as a scikit-learn transformer, so it is fitted inside each CV fold.

The TAFFC 2018 work ranked its 1714 features with ReliefF on *all* songs and kept the top 100; run
before cross-validation that leaks the test folds' labels into the feature choice. Putting
:class:`ReliefFSelector` in a :class:`~sklearn.pipeline.Pipeline` makes it see only the training
rows of each fold.
"""

from __future__ import annotations

import hashlib
import numbers
import sys
from collections import OrderedDict
from typing import Final

import numpy as np
from scipy.spatial.distance import pdist, squareform
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin
from sklearn.utils import Tags
from sklearn.utils.validation import check_is_fitted, validate_data

from merkit.core.errors import ConfigError, DataError

__all__ = ["ReliefFSelector", "relieff_scores"]

CATEGORICAL_THRESHOLD: Final[int] = 10
"""skrebate's rule: a feature with at most this many distinct values is discrete."""

_PAIR_CHUNK: Final[int] = 1 << 22  # (pair x feature) cells per chunk: ~32 MB of float64

_MEMO_SIZE: Final[int] = 16
_memo: OrderedDict[str, np.ndarray] = OrderedDict()


def _memo_scores(X: np.ndarray, y: np.ndarray, n_neighbors: int) -> np.ndarray:
    """:func:`relieff_scores`, remembered for the last few training sets of this process.

    A search fits the same selector on the same inner training fold once per setting of the
    classifier after it (and per ``n_features_to_select``, which does not change the scores);
    the scores are a pure function of ``(X, y, k)``, so they are computed once per fold.
    """
    digest = hashlib.blake2b(digest_size=20)
    for part in (np.ascontiguousarray(X), np.ascontiguousarray(y)):
        digest.update(str((part.shape, part.dtype.str)).encode())
        digest.update(part.data)
    digest.update(str(n_neighbors).encode())
    key = digest.hexdigest()
    if key in _memo:
        _memo.move_to_end(key)
        return _memo[key].copy()
    scores = relieff_scores(X, y, n_neighbors)
    _memo[key] = scores.copy()
    while len(_memo) > _MEMO_SIZE:
        _memo.popitem(last=False)
    return scores


def relieff_scores(X: np.ndarray, y: np.ndarray, n_neighbors: int) -> np.ndarray:
    """ReliefF feature weights, vectorised; the same algorithm as ``skrebate.ReliefF`` 0.8.4.

    skrebate loops over instances and features in Python; this computes the identical quantities
    with array operations (~100x faster on 810 x 1714), for data without missing values:

    - features with at most 10 distinct values are discrete (0/1 difference), others continuous
      (absolute difference over the feature's range; in mixed data, 1 when it exceeds the
      feature's standard deviation);
    - distances are Manhattan on range-normalised continuous features (plus, in mixed data,
      the Hamming fraction of discrete features times the number of features);
    - each instance takes its ``n_neighbors`` nearest hits and ``n_neighbors`` nearest misses of
      every other class, in distance order (with the instance itself ranked last, so a class with
      too few members contributes itself as a hit, as skrebate does);
    - weight of feature f: mean over instances of ``-mean hit diff + sum_c (m_c / m)^2 (C - 1)
      mean_c miss diff`` where ``m_c`` misses come from class c and ``m = sum_c m_c``.

    Parameters
    ----------
    X : np.ndarray, shape (n_samples, n_features)
        Finite float features.
    y : np.ndarray, shape (n_samples,)
        Integer class codes ``0..C-1`` (C >= 2).
    n_neighbors : int
        ``k``.

    Returns
    -------
    np.ndarray, shape (n_features,)
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y)
    n, p = X.shape
    n_classes = int(y.max()) + 1
    n_unique = 1 + np.count_nonzero(np.diff(np.sort(X, axis=0), axis=0), axis=0)
    discrete = n_unique <= CATEGORICAL_THRESHOLD
    low, high = X.min(axis=0), X.max(axis=0)
    value_range = high - low
    std = X.std(axis=0)

    # the same distance matrix skrebate builds (same scipy calls, same operation order)
    if discrete.all():
        dist = squareform(pdist(X, metric="hamming"))
    else:
        normalised = (X[:, ~discrete] - low[~discrete]) / value_range[~discrete]
        dist = squareform(pdist(normalised, metric="cityblock"))
        if discrete.any():
            dist = squareform(pdist(X[:, discrete], metric="hamming")) * p + dist
    np.fill_diagonal(dist, float(sys.maxsize))  # skrebate's marker: self sorts last
    order = np.argsort(dist, axis=1)

    # first k neighbours of every class along each instance's distance order
    labels = y[order]
    chosen = np.zeros((n, n), dtype=bool)
    counts = np.zeros((n, n_classes))
    for c in range(n_classes):
        is_c = labels == c
        take = is_c & (np.cumsum(is_c, axis=1) <= n_neighbors)
        chosen |= take
        counts[:, c] = take.sum(axis=1)
    rows = np.arange(n)
    hits = counts[rows, y]
    misses = counts.sum(axis=1) - hits
    # per (instance, neighbour class) weight of one neighbour's feature difference
    weight = np.where(misses[:, None] > 0, (n_classes - 1) * counts, 0.0)
    weight = weight / np.where(misses > 0, misses**2, 1.0)[:, None]
    weight[rows, y] = np.where(hits > 0, -1.0 / np.where(hits > 0, hits, 1.0), 0.0)

    inst, pos = np.nonzero(chosen)
    neigh = order[inst, pos]
    pair_weight = weight[inst, y[neigh]]

    scores = np.zeros(p)
    safe_range = np.where(value_range > 0, value_range, 1.0)
    mixed = discrete.any() and not discrete.all()
    step = max(1, _PAIR_CHUNK // max(p, 1))
    for start in range(0, len(inst), step):
        a, b = X[inst[start : start + step]], X[neigh[start : start + step]]
        raw = np.abs(a - b)
        diff = raw / safe_range
        if mixed:
            diff = np.where(raw > std, 1.0, diff)
        diff = np.where(discrete, (a != b).astype(np.float64), diff)
        scores += pair_weight[start : start + step] @ diff
    return scores / n


def _skrebate_scores(X: np.ndarray, y: np.ndarray, n_neighbors: int, n_jobs: int) -> np.ndarray:
    """ReliefF weights from skrebate itself (handles missing values; slow)."""
    from skrebate import ReliefF  # heavy import, only needed here

    n_classes = int(y.max()) + 1
    relief = ReliefF(
        n_features_to_select=1,
        n_neighbors=n_neighbors,
        n_jobs=n_jobs,
        label_type="binary" if n_classes == 2 else "multiclass",
    )
    # skrebate normalises continuous columns in place: give it a copy
    relief.fit(np.array(X, dtype=np.float64, copy=True), y.astype(np.int64))
    return np.asarray(relief.feature_importances_, dtype=np.float64)


class ReliefFSelector(SelectorMixin, BaseEstimator):
    """Keep the ``n_features_to_select`` features with the highest ReliefF scores.

    ReliefF as implemented by :class:`skrebate.ReliefF` (Kononenko's ReliefF with ``k`` nearest
    hits and ``k`` nearest misses of each other class, Manhattan distance on range-normalised
    features; features with at most 10 distinct values are treated as discrete). Without missing
    values the scores come from :func:`relieff_scores`, a vectorised re-implementation that matches
    skrebate to ~1e-16; with NaN in ``X`` skrebate itself is called. Scores are computed in
    :meth:`fit` only.

    Parameters
    ----------
    n_features_to_select : int, default 100
        How many features to keep; when it is at least the number of features, all are kept.
    n_neighbors : int, default 10
        ``k``: nearest hits and nearest misses (per other class) used per instance; a class with
        fewer members contributes all of them.
    n_jobs : int, default 1
        Processes for skrebate's scoring (joblib), used only when ``X`` has missing values; -1
        uses every core.

    Attributes
    ----------
    scores_ : np.ndarray, shape (n_features,)
        ReliefF weight of each input feature (higher is more relevant; about 0 for noise).
    ranking_ : np.ndarray, shape (n_features,)
        Rank of each feature, 1 = best (as in :class:`sklearn.feature_selection.RFE`); ties are
        broken by column order.
    top_features_ : np.ndarray, shape (n_features,)
        Column indices from best to worst.
    n_features_in_ : int
    feature_names_in_ : np.ndarray
        Only when fitted on a DataFrame with string column names.

    Notes
    -----
    Measured on 810 x 1714 (4 classes, k = 10, one core): 39 s of CPU with skrebate, 2.8 s with
    :func:`relieff_scores`. Both are O(n_samples^2 * n_features).
    """

    def __init__(
        self, n_features_to_select: int = 100, n_neighbors: int = 10, n_jobs: int = 1
    ) -> None:
        self.n_features_to_select = n_features_to_select
        self.n_neighbors = n_neighbors
        self.n_jobs = n_jobs

    def _check_params(self) -> None:
        for name in ("n_features_to_select", "n_neighbors"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
                raise ConfigError(
                    f"ReliefFSelector: {name} must be a positive integer, got {value!r}"
                )
        if not isinstance(self.n_jobs, numbers.Integral) or self.n_jobs == 0:
            raise ConfigError(
                f"ReliefFSelector: n_jobs must be a non-zero integer, got {self.n_jobs!r}"
            )

    def fit(self, X: np.ndarray, y: np.ndarray) -> ReliefFSelector:
        """Score every feature with ReliefF on ``(X, y)``.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Training features. NaN is allowed (skrebate, which skips missing values, then does the
            scoring); inf is not.
        y : array-like, shape (n_samples,)
            Class labels (any hashable type), at least two classes.

        Returns
        -------
        ReliefFSelector
            ``self``.
        """
        self._check_params()
        X, y = validate_data(
            self, X, y, ensure_all_finite="allow-nan", dtype=np.float64, y_numeric=False
        )
        classes, y_codes = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise DataError(
                "ReliefFSelector needs at least two classes to score features, "
                f"got {classes.tolist()}"
            )
        if np.isnan(X).any():
            scores = _skrebate_scores(X, y_codes, int(self.n_neighbors), int(self.n_jobs))
        else:
            scores = _memo_scores(X, y_codes, int(self.n_neighbors))
        scores = np.nan_to_num(scores)
        self.scores_ = scores
        # stable sort on -score: ties keep column order, so results are reproducible
        self.top_features_ = np.argsort(-scores, kind="stable")
        ranking = np.empty(len(scores), dtype=np.int64)
        ranking[self.top_features_] = np.arange(1, len(scores) + 1)
        self.ranking_ = ranking
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self, "scores_")
        k = min(int(self.n_features_to_select), len(self.scores_))
        mask = np.zeros(len(self.scores_), dtype=bool)
        mask[self.top_features_[:k]] = True
        return mask

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        tags.target_tags.required = True
        return tags
