"""scikit-learn's estimator checks on merkit's own estimators (the subset that applies)."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from merkit.methods.hybrid import HybridClassifier
from merkit.training.classifier import TorchClassifier
from test_callbacks import TinyMLP

OWN_ERRORS = "merkit raises its own DataError (a MerkitError, not a ValueError) naming the problem"

TORCH_EXCLUDED: dict[str, str] = {
    "check_n_features_in_after_fitting": f"{OWN_ERRORS}; models size themselves from the data",
    "check_complex_data": OWN_ERRORS + " (complex input is rejected by dtype)",
    "check_estimators_empty_data_messages": OWN_ERRORS,
    "check_estimators_nan_inf": "arrays may be multi-GB memory maps: NaN/inf is caught as a "
    "non-finite training loss (ModelError), not by scanning the input",
    "check_estimator_sparse_tag": "dense arrays only; sparse input fails with a DataError",
    "check_estimator_sparse_array": "dense arrays only; sparse input fails with a DataError",
    "check_estimator_sparse_matrix": "dense arrays only; sparse input fails with a DataError",
    "check_classifiers_one_label": "training needs two classes (DataError says so)",
    "check_classifiers_train": OWN_ERRORS + " for X/y of different lengths",
    "check_classifiers_regression_target": OWN_ERRORS + " for non-class labels",
    "check_supervised_y_no_nan": OWN_ERRORS + " (labels are encoded, inf is a class value)",
    "check_supervised_y_2d": "column-vector labels are rejected (DataError), not raveled",
    "check_fit2d_1sample": "training needs two classes (DataError says so)",
    "check_fit1d": OWN_ERRORS + " for 1-D X",
    "check_fit2d_predict1d": OWN_ERRORS + " for 1-D X",
    "check_requires_y_none": OWN_ERRORS + " for y=None",
}

# The Hybrid takes a dict of three arrays (feature table, log-mels, augmented log-mels), so every
# check that fits or predicts on sklearn's single 2-D array cannot apply; the parameter,
# construction, cloning and repr checks do.
HYBRID_NEEDS_DICT = (
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_n_features_in_after_fitting",
    "check_positive_only_tag_during_fit",
    "check_estimators_dtypes",
    "check_complex_data",
    "check_dtype_object",
    "check_estimators_empty_data_messages",
    "check_pipeline_consistency",
    "check_estimators_nan_inf",
    "check_estimator_sparse_tag",
    "check_estimator_sparse_array",
    "check_estimator_sparse_matrix",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_classifier_data_not_an_array",
    "check_classifiers_one_label",
    "check_classifiers_classes",
    "check_classifiers_train",
    "check_classifiers_regression_target",
    "check_supervised_y_no_nan",
    "check_supervised_y_2d",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1sample",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit1d",
    "check_fit2d_predict1d",
    "check_requires_y_none",
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
)
HYBRID_EXCLUDED = {
    name: "X must be a dict of feature table, log-mels and augmented log-mels; sklearn's "
    "checks pass one 2-D array"
    for name in HYBRID_NEEDS_DICT
}


def tiny_torch_classifier() -> TorchClassifier:
    return TorchClassifier(
        model=TinyMLP,
        epochs=10,
        batch_size=32,
        optimizer="adam",
        lr=0.05,
        device="cpu",
        random_state=0,
        train_options={"num_threads": 1, "mixed_precision": False},
    )


def expected_failures(estimator: object) -> dict[str, str]:
    return HYBRID_EXCLUDED if isinstance(estimator, HybridClassifier) else TORCH_EXCLUDED


@parametrize_with_checks(
    [tiny_torch_classifier(), HybridClassifier(random_state=0)],
    expected_failed_checks=expected_failures,
)
def test_sklearn_estimator_checks(estimator, check) -> None:
    check(estimator)


def test_hybrid_is_picklable_with_joblib(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 12
    y = np.arange(n) % 4
    X = {
        "features": (rng.normal(size=(n, 5)) + y[:, None]).astype(np.float32),
        "logmel": (rng.normal(size=(n, 116, 128)) + y[:, None, None]).astype(np.float16),
        "aug": (rng.normal(size=(n, 1, 116, 128)) + y[:, None, None, None]).astype(np.float16),
    }
    tiny = {"epochs": 1, "batch_size": 8, "stop_train_accuracy": None, "device": "cpu"}
    est = HybridClassifier(dnn=tiny, cnn=tiny, fusion=tiny, random_state=0).fit(X, y)
    expected = est.predict_proba(X)
    joblib.dump(est, tmp_path / "hybrid.joblib")
    loaded = joblib.load(tmp_path / "hybrid.joblib")
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)
    # The fusion stage started from the assembled network: its DNN branch stayed frozen.
    assert not any(p.requires_grad for p in loaded.fusion_.model_.dnn.parameters())


@pytest.mark.parametrize("bad", [np.zeros((4, 3), dtype=complex), np.zeros(4)])
def test_torch_classifier_rejects_unusable_x_clearly(bad: np.ndarray) -> None:
    from merkit.core.errors import DataError

    y = np.array([0, 1, 0, 1])
    with pytest.raises(DataError, match="input 'X' must"):
        tiny_torch_classifier().fit(bad, y)
