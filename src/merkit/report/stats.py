"""Is method A better than method B? Significance tests over the persisted folds (no refitting).

Pairs of methods
    The **corrected resampled t-test** of Nadeau & Bengio (2003, *Machine Learning* 52:239-281),
    in the form Bouckaert & Frank (2004) gave for repeated k-fold cross-validation. With ``J``
    fold scores differences ``d_j`` (``J = k x r``), ``n_test`` / ``n_train`` songs per fold::

        t = mean(d) / sqrt((1/J + n_test/n_train) * var(d, ddof=1)),  df = J - 1

    The plain paired t-test uses ``1/J`` alone. It assumes the ``J`` differences are independent,
    but the folds' training sets overlap (any two share about ``(k-2)/(k-1)`` of their songs in
    10-fold CV) and every song is tested once per repeat, so the differences are positively
    correlated and their sample variance underestimates the variance of their mean. With 100
    folds of 10x10 CV, ``1/J = 0.01`` while ``n_test/n_train = 1/9 = 0.11``: the naive standard
    error is about 3.5 times too small, and its type-I error far above the nominal 5 %
    (Dietterich 1998; Nadeau & Bengio 2003; Bouckaert & Frank 2004). Only the corrected test is
    used for decisions; the naive one is reported beside it so the difference is visible.

    p-values of all pairs are adjusted for multiple comparisons with Holm's step-down method
    (``statsmodels.stats.multitest.multipletests``), which controls the family-wise error rate
    without assumptions on how the tests depend on each other.

One fixed split (MERGE's train/validate/test)
    A single test set has no fold-to-fold variance; methods are compared song by song with
    McNemar's exact test (Dietterich 1998): a two-sided binomial test (``scipy.stats.binomtest``)
    on the test songs exactly one of the two methods gets right, Holm-adjusted across pairs.

All methods together
    Friedman's test on the per-fold ranks (``scipy.stats.friedmanchisquare``), the Nemenyi
    post-hoc test (``scikit_posthocs.posthoc_nemenyi_friedman``) and a critical-difference diagram
    (``scikit_posthocs.critical_difference_diagram``), following Demšar (2006). Demšar's blocks are
    data sets; on one data set the blocks here are folds, which share training songs, so these
    p-values are optimistic in the same way as the naive t-test: read the Friedman/Nemenyi
    output as a description of the ranking, and the corrected pairwise tests for decisions.

Why these libraries: scipy gives the t and chi-square distributions, the paired t-test and
Friedman's test; statsmodels (a dependency of scikit-posthocs) gives Holm's correction;
scikit-posthocs is the maintained implementation of the Nemenyi test and of CD diagrams (autorank
wraps the same tests behind a fixed workflow that picks tests itself; baycomp answers a Bayesian
question). None of them implements the corrected resampled t-test, which is the few lines below.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats as sps

from merkit.core.errors import ConfigError
from merkit.core.versions import require_extra
from merkit.protocol.runner import MethodResult

MIN_VERDICT_FOLDS = 10
"""Fewest shared folds for a significance verdict (and for Friedman's test).

The corrected test's 95 % interval is ``t_{0.975, J-1} * sqrt(1/J + n_test/n_train)`` fold
standard deviations wide on each side. For 10x10 CV (J = 100) that is 0.69; for 10 folds of one
repeat 1.04; for 3 folds of 3-fold CV (a ``--quick`` run) 3.93, with 2 degrees of freedom. Below
10 folds the interval is several times wider than the differences between methods, the t
distribution's tails are too heavy for the test to have power, and a "significant" result on 2-4
degrees of freedom is mostly chance agreement of a few folds. Such comparisons are shown with
their numbers but without a verdict.
"""


@dataclass(frozen=True)
class TTestResult:
    """A t-test on paired per-fold score differences (``a - b``).

    Attributes
    ----------
    mean : float
        Mean difference.
    t, p : float
        Statistic and two-sided p-value (``df`` degrees of freedom).
    ci_low, ci_high : float
        Confidence interval of the mean difference.
    df : int
    """

    mean: float
    t: float
    p: float
    ci_low: float
    ci_high: float
    df: int


def corrected_resampled_ttest(
    differences: Sequence[float] | np.ndarray,
    test_train_ratio: float,
    *,
    confidence: float = 0.95,
) -> TTestResult:
    """Nadeau & Bengio's corrected resampled t-test on per-fold score differences.

    Parameters
    ----------
    differences : array-like of shape (J,)
        Score of method A minus score of method B on each of the ``J`` folds (same folds).
    test_train_ratio : float
        ``n_test / n_train`` of a fold (``1/(k-1)`` for k-fold CV). ``0`` gives the naive test.
    confidence : float
        Level of the confidence interval.

    Returns
    -------
    TTestResult
        ``t = mean / sqrt((1/J + ratio) * var(ddof=1))`` with ``J - 1`` degrees of freedom. When
        all differences are equal, ``t`` is 0 (p = 1) if they are 0, else ``±inf`` (p = 0).

    Raises
    ------
    ConfigError
        Fewer than two folds (a single split has no fold-to-fold variance to test).
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or d.size < 2:
        raise ConfigError(
            f"a t-test over folds needs at least 2 paired fold scores; got {d.size} "
            "(a single fixed split cannot be tested this way)"
        )
    if not np.isfinite(d).all():
        raise ConfigError("fold score differences contain NaN or infinity")
    if test_train_ratio < 0:
        raise ConfigError(f"test_train_ratio must be >= 0; got {test_train_ratio}")
    n = d.size
    mean = float(d.mean())
    df = n - 1
    if np.ptp(d) == 0.0:  # no spread: the variance would be 0 up to rounding
        t = 0.0 if mean == 0.0 else float(np.copysign(np.inf, mean))
        p = 1.0 if mean == 0.0 else 0.0
        return TTestResult(mean, t, p, mean, mean, df)
    se = float(np.sqrt((1.0 / n + test_train_ratio) * d.var(ddof=1)))
    t = mean / se
    p = float(2 * sps.t.sf(abs(t), df))
    half = float(sps.t.ppf(0.5 + confidence / 2, df)) * se
    return TTestResult(mean, float(t), p, mean - half, mean + half, df)


def naive_paired_ttest(
    differences: Sequence[float] | np.ndarray, *, confidence: float = 0.95
) -> TTestResult:
    """The plain paired t-test over folds (anti-conservative for CV folds; for comparison only)."""
    return corrected_resampled_ttest(differences, 0.0, confidence=confidence)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values (family-wise error rate)."""
    multitest = require_extra("statsmodels.stats.multitest", needed_by="Holm's adjustment")
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p
    return np.asarray(multitest.multipletests(p, method="holm")[1], dtype=float)


# -- fold scores of finished methods ----------------------------------------------------------


def fold_scores(
    results: Mapping[str, MethodResult], metric: str = "f1"
) -> tuple[pd.DataFrame, float]:
    """Per-fold scores of methods evaluated on the same folds, and their ``n_test/n_train``.

    Parameters
    ----------
    results : mapping of label -> MethodResult
        The methods to compare (labels name them in messages, e.g. ``run/method``).
    metric : str
        A :class:`~merkit.protocol.records.FoldMetrics` field.

    Returns
    -------
    scores : DataFrame
        One row per fold (index ``r00_f00`` ...), one column per label.
    ratio : float
        Mean over folds of ``n_test / n_train`` (``n`` = songs tested over the folds).

    Raises
    ------
    ConfigError
        When the methods' folds differ (other fold names, or other test songs in a fold), or a
        method has no folds: the labels and the first differing fold are named.
    """
    if not results:
        raise ConfigError("no methods to compare")
    labels = list(results)
    reference = labels[0]
    ref_folds = {r.name: frozenset(r.test_ids) for r in results[reference].per_fold}
    if not ref_folds:
        raise ConfigError(f"{reference} has no finished folds to compare")
    for label in labels[1:]:
        folds = {r.name: frozenset(r.test_ids) for r in results[label].per_fold}
        if folds.keys() != ref_folds.keys():
            only = sorted(folds.keys() ^ ref_folds.keys())
            raise ConfigError(
                f"cannot compare {label} with {reference}: they were evaluated on different "
                f"folds ({len(folds)} vs {len(ref_folds)} folds; e.g. {only[0]} is in only one). "
                "Compare methods run with the same dataset, protocol and seed."
            )
        for name, ids in ref_folds.items():
            if folds[name] != ids:
                raise ConfigError(
                    f"cannot compare {label} with {reference}: fold {name} tests other songs "
                    f"({len(folds[name] ^ ids)} differ). Compare methods run on the same folds."
                )
    scores = pd.DataFrame(
        {
            label: pd.Series(
                {r.name: float(getattr(r.metrics, metric)) for r in results[label].per_fold}
            )
            for label in labels
        }
    ).sort_index()
    n_total = len(frozenset().union(*ref_folds.values()))
    sizes = np.array([len(ids) for ids in ref_folds.values()], dtype=float)
    train = n_total - sizes
    ratio = float(np.mean(sizes / train)) if (train > 0).all() else float("nan")
    return scores, ratio


@dataclass(frozen=True)
class PairComparison:
    """Method ``a`` against method ``b`` on the same folds (difference = a - b)."""

    a: str
    b: str
    corrected: TTestResult
    naive: TTestResult
    p_holm: float
    n_folds: int

    @property
    def underpowered(self) -> bool:
        """Fewer than :data:`MIN_VERDICT_FOLDS` shared folds: no verdict is drawn."""
        return self.n_folds < MIN_VERDICT_FOLDS

    @property
    def significant(self) -> bool:
        """Holm-adjusted corrected p below 0.05, on enough folds to say so."""
        return self.p_holm < 0.05 and not self.underpowered

    @property
    def verdict(self) -> str:
        """One line for tables: which is better, no difference, or why there is no verdict."""
        if self.underpowered:
            return f"underpowered ({self.n_folds} folds < {MIN_VERDICT_FOLDS}): no verdict"
        if self.significant:
            return f"{self.a if self.corrected.mean > 0 else self.b} is better (p < 0.05)"
        return "no significant difference"


def pairwise_comparisons(
    scores: pd.DataFrame, test_train_ratio: float, *, confidence: float = 0.95
) -> list[PairComparison]:
    """Every pair of columns of ``scores``: corrected and naive t-tests, Holm-adjusted p.

    Holm's adjustment runs over the corrected p-values of all pairs. Scores are fractions in
    [0, 1], so a difference lies in [-1, 1]: confidence intervals are cut to that range (a
    t interval on few folds can otherwise reach past it).
    """
    pairs = list(itertools.combinations(scores.columns, 2))
    tests = []
    for a, b in pairs:
        d = (scores[a] - scores[b]).to_numpy()
        tests.append(
            (
                _bounded(corrected_resampled_ttest(d, test_train_ratio, confidence=confidence)),
                _bounded(naive_paired_ttest(d, confidence=confidence)),
            )
        )
    adjusted = holm([c.p for c, _ in tests])
    return [
        PairComparison(str(a), str(b), c, n, float(p), len(scores))
        for (a, b), (c, n), p in zip(pairs, tests, adjusted, strict=True)
    ]


def _bounded(result: TTestResult, low: float = -1.0, high: float = 1.0) -> TTestResult:
    """``result`` with its interval cut to the range a score difference can take."""
    return replace(result, ci_low=max(result.ci_low, low), ci_high=min(result.ci_high, high))


def significance_matrix(
    comparisons: Sequence[PairComparison], labels: Sequence[str]
) -> pd.DataFrame:
    """Square matrix of Holm-adjusted corrected p-values (diagonal 1)."""
    matrix = pd.DataFrame(1.0, index=list(labels), columns=list(labels))
    for c in comparisons:
        matrix.loc[c.a, c.b] = matrix.loc[c.b, c.a] = c.p_holm
    return matrix


@dataclass(frozen=True)
class McNemarComparison:
    """Method ``a`` against ``b`` on one test set: songs only one of them gets right."""

    a: str
    b: str
    only_a: int
    only_b: int
    accuracy_a: float
    accuracy_b: float
    p: float
    p_holm: float

    @property
    def significant(self) -> bool:
        """Holm-adjusted p below 0.05."""
        return self.p_holm < 0.05


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided p of McNemar's exact test from the two discordant counts (1.0 when none)."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    return float(sps.binomtest(min(only_a, only_b), n, 0.5).pvalue)


def single_split_comparisons(results: Mapping[str, MethodResult]) -> list[McNemarComparison]:
    """McNemar's exact test for every pair of methods scored on the same single test set.

    Raises
    ------
    ConfigError
        The methods' test songs differ (see :func:`fold_scores`), or a method has several folds.
    """
    scores, _ = fold_scores(results)
    if len(scores) != 1:
        raise ConfigError(f"McNemar's test compares one split; these methods have {len(scores)}")
    correct = {}
    for label, result in results.items():
        record = result.per_fold[0]
        correct[label] = {
            song: t == p
            for song, t, p in zip(record.test_ids, record.y_true, record.y_pred, strict=True)
        }
    pairs = list(itertools.combinations(results, 2))
    counts = []
    for a, b in pairs:
        only_a = sum(correct[a][s] and not correct[b][s] for s in correct[a])
        only_b = sum(correct[b][s] and not correct[a][s] for s in correct[a])
        counts.append((only_a, only_b, mcnemar_exact(only_a, only_b)))
    adjusted = holm([p for _, _, p in counts])
    accuracy = {label: float(np.mean(list(c.values()))) for label, c in correct.items()}
    return [
        McNemarComparison(a, b, oa, ob, accuracy[a], accuracy[b], p, float(ph))
        for (a, b), (oa, ob, p), ph in zip(pairs, counts, adjusted, strict=True)
    ]


@dataclass(frozen=True)
class FriedmanResult:
    """Friedman's test over folds (blocks) and methods, with Nemenyi post-hoc p-values."""

    statistic: float
    p: float
    mean_ranks: pd.Series
    nemenyi: pd.DataFrame
    n_blocks: int


def friedman(scores: pd.DataFrame) -> FriedmanResult:
    """Friedman's test and Nemenyi's post-hoc test (higher score = better = rank 1).

    Raises
    ------
    ConfigError
        Fewer than three methods (Friedman's test needs three).
    """
    sp = require_extra("scikit_posthocs", needed_by="Friedman's test (Nemenyi post-hoc)")
    if scores.shape[1] < 3:
        raise ConfigError(
            f"Friedman's test needs at least 3 methods; got {scores.shape[1]} "
            "(use the pairwise corrected t-test)"
        )
    statistic, p = sps.friedmanchisquare(*(scores[c].to_numpy() for c in scores.columns))
    ranks = scores.rank(axis=1, ascending=False).mean(axis=0)
    nemenyi = sp.posthoc_nemenyi_friedman(scores.to_numpy())
    nemenyi.index = nemenyi.columns = list(scores.columns)
    return FriedmanResult(float(statistic), float(p), ranks, nemenyi, len(scores))


__all__ = [
    "MIN_VERDICT_FOLDS",
    "FriedmanResult",
    "McNemarComparison",
    "PairComparison",
    "TTestResult",
    "corrected_resampled_ttest",
    "fold_scores",
    "friedman",
    "holm",
    "mcnemar_exact",
    "naive_paired_ttest",
    "pairwise_comparisons",
    "significance_matrix",
    "single_split_comparisons",
]
