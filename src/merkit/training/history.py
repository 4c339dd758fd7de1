"""What a training run did: :class:`TrainHistory` (per run) and :class:`EpochRecord` (per epoch)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

StopReason = Literal["train_accuracy", "max_epochs", "early_stopping"]
"""Reasons the built-in callbacks give; a custom callback may give its own string."""


@dataclass(frozen=True)
class EpochRecord:
    """One epoch's numbers, passed to the ``on_epoch_end`` callback of :meth:`Trainer.fit`."""

    epoch: int
    loss: float
    accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    lr: float
    seconds: float


@dataclass
class TrainHistory:
    """What happened during :meth:`Trainer.fit` (plain Python values: JSON- and torch-safe).

    Attributes
    ----------
    loss, accuracy : list of float
        Per epoch: sample-weighted mean training loss and accuracy (train mode, as Keras reports).
        Accuracy is NaN for the MSE loss.
    val_loss, val_accuracy : list of float
        Per epoch on the validation rows (empty without validation).
    lr : list of float
        Learning rate used in each epoch.
    epoch_seconds : list of float
        Wall time of each epoch (validation included).
    epochs_run : int
        Number of epochs trained.
    stop_reason : str
        ``"train_accuracy"`` (the 90 % rule), ``"early_stopping"`` (patience) or
        ``"max_epochs"``.
    best_epoch : int or None
        1-based epoch whose weights were restored (validation only).
    seconds : float
        Total wall time of ``fit``.
    device : str
        Device trained on.
    """

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    epochs_run: int = 0
    stop_reason: str = "max_epochs"
    best_epoch: int | None = None
    seconds: float = 0.0
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists of floats, str, int), e.g. for JSON or ``torch.save``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainHistory:
        """Inverse of :meth:`to_dict` (unknown keys are ignored, for forward compatibility)."""
        names = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in names})

    def record(self, epoch: EpochRecord) -> None:
        """Append one epoch's numbers."""
        self.loss.append(epoch.loss)
        self.accuracy.append(epoch.accuracy)
        if epoch.val_loss is not None:
            self.val_loss.append(epoch.val_loss)
            self.val_accuracy.append(math.nan if epoch.val_accuracy is None else epoch.val_accuracy)
        self.lr.append(epoch.lr)
        self.epoch_seconds.append(epoch.seconds)
        self.epochs_run = epoch.epoch


__all__ = ["EpochRecord", "StopReason", "TrainHistory"]
