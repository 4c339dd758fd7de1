"""The callback protocol of :class:`~merkit.training.loop.Trainer`: hooks and the fit state.

A callback subclasses :class:`Callback` and overrides the hooks it needs (Lightning/skorch
style). Every hook gets the :class:`FitContext` of the running fit, through which it reads the
model, data and config and changes what the loop does: replace ``ctx.optimizer``, keep modules
in eval mode (``ctx.eval_modules``), ask the loop to stop (:meth:`FitContext.request_stop`).

Hook order within one fit::

    on_fit_start
    for each epoch: on_epoch_start -> (on_batch_start -> step -> on_batch_end)* -> on_epoch_end
    on_fit_end            (only when the loop finished without an exception)
    teardown              (always, e.g. to close a progress display)

Callbacks run in the order of their ``order`` attribute (lower first), ties in list order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from merkit.training.config import TrainConfig
from merkit.training.data import Inputs
from merkit.training.history import EpochRecord, TrainHistory


@dataclass
class Batch:
    """One training mini-batch as the model will see it.

    Attributes
    ----------
    inputs : tuple of Tensor
        The model's inputs (on the device, float32).
    target : Tensor
        Class indices (cross-entropy) or float targets (MSE).
    index : ndarray of int
        The batch's row indices into the training arrays (sorted).
    """

    inputs: tuple[torch.Tensor, ...]
    target: torch.Tensor
    index: np.ndarray


@dataclass
class FitContext:
    """The state of one :meth:`Trainer.fit` call, shared by the loop and its callbacks.

    Attributes
    ----------
    config : TrainConfig
        The run's settings.
    model : nn.Module
        The model being trained (on ``device``).
    arrays, y : tuple of ndarray, ndarray
        All training inputs and labels (validation rows of a holdout included).
    train_rows : ndarray of int
        Rows trained on.
    epoch_rows : ndarray of int or None
        The rows of the current epoch when a sampler (e.g.
        :class:`~merkit.training.sampling.RandomChunks`) draws a subset of ``train_rows`` in
        ``on_epoch_start``; ``None`` trains on every row of ``train_rows``.
    validation : (inputs, y, rows) or None
        Validation data (``rows`` None: all of them).
    device : torch.device
    amp_dtype : torch.dtype or None
        Autocast dtype (None: float32).
    rng : numpy Generator
        The batch-order generator (seeded with ``config.seed``).
    history : TrainHistory
        Filled in by the loop (per-epoch numbers) and by callbacks (``best_epoch``).
    grad_scaler : torch.amp.GradScaler or None
        Loss scaling for float16 autocast (CUDA without bf16), else None.
    optimizer : torch.optim.Optimizer or None
        Set by the optimiser callback in ``on_fit_start``; may be replaced at any epoch.
    eval_modules : list of nn.Module
        Modules kept in eval mode while the model trains (frozen BatchNorms).
    best_state : dict or None
        Best-validation-loss weights (kept by early stopping, used by schedule restores).
    epoch : int
        0-based index of the current epoch.
    stop_reason : str or None
        Set by :meth:`request_stop`; the loop stops after the current epoch.
    """

    config: TrainConfig
    model: nn.Module
    arrays: Inputs
    y: np.ndarray
    train_rows: np.ndarray
    validation: tuple[Inputs, np.ndarray, np.ndarray | None] | None
    device: torch.device
    amp_dtype: torch.dtype | None
    rng: np.random.Generator
    history: TrainHistory
    grad_scaler: torch.amp.GradScaler | None = None
    optimizer: torch.optim.Optimizer | None = None
    eval_modules: list[nn.Module] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None
    epoch: int = 0
    stop_reason: str | None = None
    epoch_rows: np.ndarray | None = None

    @property
    def rows_this_epoch(self) -> np.ndarray:
        """The rows the current epoch trains on (``epoch_rows``, else ``train_rows``)."""
        return self.train_rows if self.epoch_rows is None else self.epoch_rows

    @property
    def has_validation(self) -> bool:
        """Whether validation data exists (explicit or a holdout)."""
        return self.validation is not None

    def request_stop(self, reason: str) -> None:
        """Stop after this epoch; the first reason given is the one recorded."""
        if self.stop_reason is None:
            self.stop_reason = reason

    def train_mode(self) -> None:
        """Put the model in train mode, except the modules in :attr:`eval_modules`."""
        self.model.train()
        for module in self.eval_modules:
            module.eval()


class Callback:
    """Base class of training callbacks: every hook does nothing.

    Attributes
    ----------
    order : int
        Run position (lower first). Callbacks that change which parameters train use a
        negative order, so they run before the optimiser is built.
    """

    order: ClassVar[int] = 0

    def on_fit_start(self, ctx: FitContext) -> None:
        """Before the first epoch (the model is on the device, the data is checked)."""

    def on_epoch_start(self, ctx: FitContext) -> None:
        """Before the epoch's first batch (the model is in train mode)."""

    def on_batch_start(self, ctx: FitContext, batch: Batch) -> Batch:
        """Before the forward pass; return the batch to train on (possibly transformed)."""
        return batch

    def on_batch_end(self, ctx: FitContext, batch: Batch, loss: torch.Tensor) -> None:
        """After the optimiser step (``loss`` is the batch's mean loss, still on the device)."""

    def on_epoch_end(self, ctx: FitContext, record: EpochRecord) -> None:
        """After the epoch and its validation; call ``ctx.request_stop(reason)`` to stop."""

    def on_fit_end(self, ctx: FitContext) -> None:
        """After the last epoch, when training finished without an exception."""

    def teardown(self, ctx: FitContext) -> None:
        """Always called last, also after an exception (release displays, files)."""

    def state_dict(self) -> dict[str, Any] | None:
        """What this callback carries from one epoch to the next, for a resumed fit.

        ``None`` (the default): nothing; everything it needs is rebuilt by ``on_fit_start``.
        A callback that keeps state across epochs (a patience counter, a generator) returns it
        as tensors and plain Python values (what ``torch.load(weights_only=True)`` reads), or a
        resumed fit (:mod:`merkit.training.resume`) would not continue exactly.
        """
        return None

    def load_state_dict(self, ctx: FitContext, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (called after ``on_fit_start``)."""

    def __repr__(self) -> str:
        fields: dict[str, Any] = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        args = ", ".join(f"{key}={value!r}" for key, value in fields.items())
        return f"{type(self).__name__}({args})"


__all__ = ["Batch", "Callback", "FitContext"]
