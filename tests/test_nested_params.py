"""Nested settings scikit-learn can see: ``model__`` / ``train__`` of the torch classifier,
``<stage>__`` of the Hybrid, through get_params, set_params, clone, GridSearchCV and resolve."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.model_selection import GridSearchCV
from torch import nn

from merkit.core.errors import ConfigError
from merkit.core.protocols import AcceptsValidation, ReportsTraining, ValidatesSettings
from merkit.methods import resolve_method
from merkit.methods.hybrid import HybridClassifier
from merkit.training.classifier import TorchClassifier


class TinyNet(nn.Module):
    """A linear classifier of 2-D inputs with a width to vary."""

    def __init__(self, n_features: int = 4, n_classes: int = 2, hidden: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(n_features, hidden), nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    x = rng.normal(size=(40, 4)).astype(np.float32) + y[:, None]
    return x, y


def test_torch_classifier_nested_params_round_trip() -> None:
    options = {"momentum": 0.5}
    est = TorchClassifier(model=TinyNet, model_params={"hidden": 3}, train_options=options)
    deep = est.get_params(deep=True)
    assert deep["model__hidden"] == 3 and deep["train__momentum"] == 0.5
    assert "model__hidden" not in est.get_params(deep=False)  # what __init__ got, only
    est.set_params(model__hidden=5, train__momentum=0.8, train__lr=0.2)
    assert est.model_params == {"hidden": 5} and est.train_options == {"momentum": 0.8}
    assert est.lr == 0.2 and options == {"momentum": 0.5}  # the given dict is not mutated
    copy = clone(est)
    assert copy.get_params(deep=True) == est.get_params(deep=True)
    assert copy._config().momentum == 0.8
    with pytest.raises(ValueError, match="train__bogus"):
        est.set_params(train__bogus=1)
    with pytest.raises(ValueError, match="nope"):
        est.set_params(nope=1)


def test_grid_search_reaches_train_and_model_settings() -> None:
    x, y = _data()
    base = TorchClassifier(
        model=TinyNet, epochs=2, batch_size=8, device="cpu", random_state=0,
        stop_train_accuracy=None, train_options={"num_threads": 1},
    )  # fmt: skip
    search = GridSearchCV(
        base, {"train__momentum": [0.0, 0.9], "model__hidden": [2, 7]}, cv=2, refit=True
    ).fit(x, y)
    best = search.best_estimator_
    momentum, hidden = best.train_options["momentum"], best.model_params["hidden"]
    assert search.best_params_ == {"train__momentum": momentum, "model__hidden": hidden}
    assert best._config().momentum == momentum  # the fitted model trained with it
    assert best.model_.body[0].out_features == hidden
    assert {p["model__hidden"] for p in search.cv_results_["params"]} == {2, 7}


def test_hybrid_stage_settings_are_parameters() -> None:
    hybrid = HybridClassifier(cnn={"epochs": 5})
    deep = hybrid.get_params(deep=True)
    assert deep["cnn__epochs"] == 5 and deep["cnn__lr"] == HybridClassifier.CNN_DEFAULTS["lr"]
    assert deep["dnn__epochs"] == HybridClassifier.DNN_DEFAULTS["epochs"]
    hybrid.set_params(cnn__lr=0.1, fusion__train__momentum=0.5)
    assert hybrid.cnn == {"epochs": 5, "lr": 0.1}
    assert hybrid.stage_settings()["fusion"]["train__momentum"] == 0.5
    copy = clone(hybrid)
    assert copy.get_params(deep=False) == hybrid.get_params(deep=False)
    stage = copy._stage(copy.FUSION_DEFAULTS, copy.fusion, "dnn", 3)
    assert stage.train_options == {"momentum": 0.5} and stage.lr == 0.01
    assert copy._stage(copy.CNN_DEFAULTS, copy.cnn, "cnn-h", 2).lr == 0.1
    with pytest.raises(ValueError, match="dnn__bogus"):
        hybrid.set_params(dnn__bogus=1)
    with pytest.raises(ValueError, match="cnn__random_state"):
        hybrid.set_params(cnn__random_state=1)


def test_hybrid_grid_search_sets_a_stage_setting() -> None:
    # The grid's candidates, as GridSearchCV builds them: clone, then set_params.
    hybrid = HybridClassifier()
    for lr in (0.001, 0.02):
        candidate = clone(hybrid).set_params(cnn__lr=lr)
        assert candidate.stage_settings()["cnn"]["lr"] == lr
    assert hybrid.cnn is None


def test_resolve_takes_step_param_settings_and_names_a_bad_one() -> None:
    method = resolve_method("hybrid", {"cnn__lr": 0.002, "dnn": {"epochs": 7}})
    assert method.estimator.stage_settings()["cnn"]["lr"] == 0.002
    assert method.estimator.dnn == {"epochs": 7}
    with pytest.raises(ConfigError, match=r"method 'hybrid': unknown setting 'cnn__bogus'"):
        resolve_method("hybrid", {"cnn__bogus": 1})
    with pytest.raises(ConfigError, match=r"setting 'dnn': unknown training setting 'lrr'"):
        resolve_method("hybrid", {"dnn": {"lrr": 1}})
    with pytest.raises(ConfigError, match=r"setting 'cnn_init'"):
        resolve_method("hybrid", {"cnn_init": "warm"})
    with pytest.raises(ConfigError, match=r"unknown setting 'lrr'"):
        resolve_method("cnn", {"lrr": 1})


def test_estimators_declare_their_protocols() -> None:
    est = TorchClassifier()
    assert isinstance(est, AcceptsValidation) and est.accepts_validation
    assert isinstance(est, ValidatesSettings) and isinstance(est, ReportsTraining)
    assert isinstance(HybridClassifier(), ValidatesSettings)
    assert not isinstance(HybridClassifier(), AcceptsValidation)  # its fit takes none
    with pytest.raises(ConfigError, match="invalid training settings"):
        TorchClassifier(optimizer="nope").validate_settings()


def test_a_search_space_addresses_nested_settings() -> None:
    from merkit.tuning.space import load_space

    space = load_space(
        {"method": "hybrid", "params": {"cnn__lr": [0.001, 0.02], "fusion__train__momentum": [0.5]}}
    )
    for point in ({"cnn__lr": 0.001, "fusion__train__momentum": 0.5}, {"cnn__lr": 0.02}):
        estimator = resolve_method("hybrid", space.settings_for(point)).estimator
        settings = estimator.stage_settings()
        assert settings["cnn"]["lr"] == point["cnn__lr"]
        assert settings["fusion"].get("train__momentum") == point.get("fusion__train__momentum")


class _Recorder(ClassifierMixin, BaseEstimator):
    """Records what ``fit`` got; ``fit`` takes ``validation`` whether declared or not."""

    def fit(self, X: Any, y: Any, validation: Any = None) -> _Recorder:
        self.validation_ = validation
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.full((len(X), len(self.classes_)), 1 / len(self.classes_))

    def predict(self, X: Any) -> np.ndarray:
        return np.full(len(X), self.classes_[0])


class _DeclaredRecorder(_Recorder, AcceptsValidation):
    accepts_validation = True

    def training_history(self) -> Any:
        return None


def test_fit_fold_passes_validation_only_to_a_declared_estimator() -> None:
    from merkit.methods import ResolvedMethod
    from merkit.protocol.folds import Fold, ProtocolConfig
    from merkit.protocol.runner import fit_fold

    x, y = _data()
    rows = np.arange(len(y))
    fold = Fold(repeat=0, fold=0, train=rows[:20], test=rows[30:], validate=rows[20:30])
    for estimator, expected in ((_Recorder(), False), (_DeclaredRecorder(), True)):
        method = ResolvedMethod.of("recorder", estimator, ["table:x"])
        record = fit_fold(method, {"table:x": x}, y, fold, ProtocolConfig(), keep_model=True)
        got = record.model.validation_
        assert (got is not None) is expected
        if expected:
            assert np.array_equal(got[1], y[20:30])
