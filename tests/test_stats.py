"""Significance tests over persisted folds: numbers against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from merkit.core.errors import ConfigError
from merkit.protocol.folds import ProtocolConfig
from merkit.protocol.records import FoldMetrics, FoldRecord
from merkit.protocol.runner import MethodResult
from merkit.report.stats import (
    corrected_resampled_ttest,
    fold_scores,
    friedman,
    holm,
    mcnemar_exact,
    naive_paired_ttest,
    pairwise_comparisons,
    significance_matrix,
)

# Six fold differences: mean 0.02, sum of squared deviations 0.001, so var(ddof=1) = 0.0002.
DIFFS = [0.02, 0.01, 0.03, 0.00, 0.04, 0.02]


def t5_two_sided_p(t: float) -> float:
    """Two-sided p of Student's t with 5 degrees of freedom, in closed form (odd df)."""
    theta = math.atan(abs(t) / math.sqrt(5))
    s, c = math.sin(theta), math.cos(theta)
    return 1 - (2 / math.pi) * (theta + s * c * (1 + 2 / 3 * c**2))


def test_corrected_statistic_matches_hand_computation():
    # ratio 1/9 (10-fold CV): t = 0.02 / sqrt((1/6 + 1/9) * 0.0002) = 0.02 * sqrt(18000) = sqrt(7.2)
    result = corrected_resampled_ttest(DIFFS, 1 / 9)
    assert result.mean == pytest.approx(0.02)
    assert result.df == 5
    assert result.t == pytest.approx(math.sqrt(7.2), rel=1e-12)
    assert result.p == pytest.approx(t5_two_sided_p(math.sqrt(7.2)), rel=1e-9)
    assert result.p == pytest.approx(0.0436483, abs=1e-6)
    # CI: mean ± t_{0.975,5} * se, se = sqrt(5/18 * 0.0002) = 1/sqrt(18000).
    half = 2.5705818356363146 / math.sqrt(18000)
    assert result.ci_low == pytest.approx(0.02 - half, rel=1e-9)
    assert result.ci_high == pytest.approx(0.02 + half, rel=1e-9)


def test_naive_statistic_matches_hand_computation():
    # t = 0.02 / sqrt(0.0002 / 6) = sqrt(12)
    result = naive_paired_ttest(DIFFS)
    assert result.t == pytest.approx(math.sqrt(12), rel=1e-12)
    assert result.p == pytest.approx(t5_two_sided_p(math.sqrt(12)), rel=1e-9)


def _differences(mean: float, std: float, n: int = 100) -> np.ndarray:
    """n values with exactly this mean and sample std (ddof=1)."""
    z = np.random.default_rng(0).standard_normal(n)
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + std * z


def test_naive_test_declares_a_difference_the_corrected_one_does_not():
    # 10x10 CV: naive se = 0.03/10, corrected se = 0.03*sqrt(0.01 + 1/9): t 3.33 vs 0.96
    d = _differences(0.01, 0.03)
    naive = naive_paired_ttest(d)
    corrected = corrected_resampled_ttest(d, 1 / 9)
    assert naive.t == pytest.approx(0.01 / 0.003)
    assert corrected.t == pytest.approx(0.01 / (0.03 * math.sqrt(0.01 + 1 / 9)))
    assert naive.p < 0.01
    assert corrected.p > 0.3
    assert corrected.ci_low < 0 < corrected.ci_high


def test_both_tests_declare_a_large_difference():
    d = _differences(0.05, 0.03)
    assert naive_paired_ttest(d).p < 1e-6
    corrected = corrected_resampled_ttest(d, 1 / 9)
    assert corrected.p < 1e-3
    assert corrected.ci_low > 0


def test_degenerate_and_bad_inputs():
    assert corrected_resampled_ttest([0.0, 0.0, 0.0], 1 / 9).p == 1.0
    constant = corrected_resampled_ttest([0.1, 0.1, 0.1], 1 / 9)
    assert constant.p == 0.0 and constant.t == math.inf
    with pytest.raises(ConfigError, match="at least 2"):
        corrected_resampled_ttest([0.1], 1 / 9)
    with pytest.raises(ConfigError, match="NaN"):
        corrected_resampled_ttest([0.1, float("nan")], 1 / 9)


def test_holm_adjustment_by_hand():
    # sorted p: 0.01*3 = 0.03, 0.02*2 = 0.04, max(0.04, 0.03*1) = 0.04
    assert holm([0.03, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])


def _record(repeat: int, fold: int, test_ids: list[str], f1: float) -> FoldRecord:
    metrics = FoldMetrics(
        precision=f1,
        recall=f1,
        f1=f1,
        accuracy=f1,
        f1_per_class=[f1] * 4,
        confusion=[[0] * 4 for _ in range(4)],
    )
    n = len(test_ids)
    return FoldRecord(
        repeat=repeat,
        fold=fold,
        seed=0,
        seconds=0.0,
        fit_seconds=0.0,
        predict_seconds=0.0,
        test_ids=test_ids,
        y_true=[0] * n,
        y_pred=[0] * n,
        metrics=metrics,
    )


def _method(name: str, scores: list[float], shift_ids: bool = False) -> MethodResult:
    # 2 folds x 2 repeats over 8 songs: each fold tests 4 songs, trains on 4 (ratio 1).
    ids = [f"s{i}" for i in range(8)]
    splits = [ids[:4], ids[4:], ids[::2], ids[1::2]]
    if shift_ids:
        splits[3] = [*ids[1:8:2][:-1], "s0"]
    per_fold = [
        _record(i // 2, i % 2, split, score)
        for i, (split, score) in enumerate(zip(splits, scores, strict=True))
    ]
    return MethodResult(
        method=name,
        dataset="toy",
        protocol=ProtocolConfig(n_splits=2, n_repeats=2),
        per_fold=per_fold,
        n_total=4,
        seconds=0.0,
        inputs=(),
    )


def test_fold_scores_align_methods_and_give_the_ratio():
    scores, ratio = fold_scores(
        {"a": _method("a", [0.5, 0.6, 0.7, 0.8]), "b": _method("b", [0.4] * 4)}
    )
    assert list(scores.columns) == ["a", "b"]
    assert scores["a"].tolist() == [0.5, 0.6, 0.7, 0.8]
    assert ratio == pytest.approx(1.0)
    comparison = pairwise_comparisons(scores, ratio)[0]
    expected = corrected_resampled_ttest([0.1, 0.2, 0.3, 0.4], 1.0)
    assert comparison.corrected.t == pytest.approx(expected.t)
    assert comparison.corrected.p == pytest.approx(expected.p)
    assert comparison.p_holm == pytest.approx(expected.p)  # one pair: Holm changes nothing


def test_fold_scores_refuse_methods_on_different_folds():
    with pytest.raises(ConfigError, match=r"cannot compare b with a: fold r01_f01 tests other"):
        fold_scores({"a": _method("a", [0.5] * 4), "b": _method("b", [0.5] * 4, shift_ids=True)})
    fewer = _method("c", [0.5] * 4)
    fewer.per_fold = fewer.per_fold[:3]
    with pytest.raises(ConfigError, match=r"cannot compare c with a: .*different folds"):
        fold_scores({"a": _method("a", [0.5] * 4), "c": fewer})


def test_friedman_ranks_and_significance_matrix():
    rng = np.random.default_rng(1)
    base = rng.uniform(0.4, 0.6, size=30)
    scores = pd.DataFrame({"good": base + 0.1, "mid": base + 0.05, "bad": base})
    result = friedman(scores)
    assert result.mean_ranks.to_dict() == {"good": 1.0, "mid": 2.0, "bad": 3.0}
    # Every block ranks the methods alike, rank sums R = 30, 60, 90:
    # chi2 = 12 / (n k (k+1)) * sum(R^2) - 3 n (k+1) = 12600 / 30 - 360 = 60
    assert result.statistic == pytest.approx(60.0)
    assert result.p < 1e-10
    assert result.nemenyi.loc["good", "bad"] < 0.001
    with pytest.raises(ConfigError, match="at least 3 methods"):
        friedman(scores[["good", "bad"]])
    comparisons = pairwise_comparisons(scores, 1 / 9)
    matrix = significance_matrix(comparisons, scores.columns)
    assert matrix.loc["good", "good"] == 1.0
    assert matrix.loc["good", "bad"] == matrix.loc["bad", "good"]


def test_mcnemar_exact_by_hand():
    # 8 discordant songs split 7:1 -> p = 2 * (C(8,0) + C(8,1)) / 2^8 = 18/256
    assert mcnemar_exact(7, 1) == pytest.approx(18 / 256)
    assert mcnemar_exact(1, 7) == pytest.approx(18 / 256)
    assert mcnemar_exact(0, 0) == 1.0
