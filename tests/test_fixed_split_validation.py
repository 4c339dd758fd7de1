"""A fixed split's validation songs select the deep model (train on train, select on validate)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch
from torch import nn

from merkit.core.errors import DataError
from merkit.methods import ResolvedMethod
from merkit.protocol.folds import Fold, ProtocolConfig
from merkit.protocol.runner import fit_fold
from merkit.training.classifier import TorchClassifier


class WideMLP(nn.Module):
    """Over-sized for 20 random-label rows: its validation loss rises once it memorises them."""

    input_names: ClassVar[tuple[str, ...]] = ("x",)

    def __init__(self, n_classes: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _classifier(**overrides: object) -> TorchClassifier:
    settings: dict[str, object] = {
        "model": WideMLP,
        "epochs": 60,
        "batch_size": 16,
        "optimizer": "adam",
        "lr": 0.01,
        "stop_train_accuracy": None,
        "patience": 3,
        "device": "cpu",
        "random_state": 0,
        "train_options": {"mixed_precision": False},
    }
    settings.update(overrides)
    return TorchClassifier(**settings)


def _random_rows(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 20)).astype(np.float32), rng.integers(0, 4, size=n)


def test_explicit_validation_selects_the_best_epoch() -> None:
    x, y = _random_rows(120, 1)
    xv, yv = _random_rows(40, 2)
    model = _classifier().fit(x, y, validation=(xv, yv))
    history = model.history_
    assert history.stop_reason == "early_stopping"
    assert len(history.val_loss) == history.epochs_run < 60
    assert history.best_epoch == int(np.argmin(history.val_loss)) + 1
    # Without validation data the same settings train to the epoch cap: nothing selects.
    plain = _classifier().fit(x, y)
    assert plain.history_.stop_reason == "max_epochs" and plain.history_.val_loss == []


def test_validation_labels_must_be_training_classes() -> None:
    x, y = _random_rows(40, 3)
    xv, _ = _random_rows(8, 4)
    with pytest.raises(DataError, match=r"validation labels \[7\]"):
        _classifier(epochs=1).fit(x, y, validation=(xv, np.full(8, 7)))


def test_fit_fold_hands_a_fixed_splits_validation_songs_to_the_model() -> None:
    x, y = _random_rows(160, 5)
    rows = np.arange(160)
    fold = Fold(repeat=0, fold=0, train=rows[:100], test=rows[130:], validate=rows[100:130])
    method = ResolvedMethod.of("wide-mlp", _classifier(), ["x"])
    protocol = ProtocolConfig(n_splits=2, n_repeats=1)
    record = fit_fold(method, {"x": x}, y, fold, protocol)
    assert record.training is not None
    assert record.training.stop_reason == "early_stopping"
    assert record.training.best_epoch is not None
    # The same fold without validation rows: no selection.
    kfold = Fold(repeat=0, fold=0, train=rows[:100], test=rows[130:])
    plain = fit_fold(method, {"x": x}, y, kfold, protocol)
    assert plain.training is not None and plain.training.best_epoch is None
