"""The training rules, each a small :class:`~merkit.training.hooks.Callback`.

* :class:`OptimizerSchedule` — builds the optimiser and switches it (kind, learning rate) at
  given epochs, e.g. Adam → SGD after epoch 80 (Won et al.'s CRNN-MTAT recipe).
* :class:`TrainAccuracyStop` — the paper's rule: stop after the first epoch whose running
  train-mode accuracy reaches 90 %.
* :class:`EarlyStopping` — inner-validation patience with best-weight restore.
* :class:`BatchNormRecalibration` — population BatchNorm statistics after training.
* :class:`Progress` — rich progress bars.
* :class:`BatchTransform` — a per-batch transform of the training inputs (SpecAugment-style
  masking); prediction never sees it.
* :class:`Freeze` — freeze parameters by name pattern.
* :class:`EpochScoreReport` — a score per epoch for a caller (pruning of search trials).

:func:`default_callbacks` turns a :class:`~merkit.training.config.TrainConfig` into its set.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from merkit.core.errors import ConfigError, ModelError
from merkit.training.config import LRSwitch, TrainConfig
from merkit.training.data import batch_bounds, batch_tensor
from merkit.training.history import EpochRecord
from merkit.training.hooks import Batch, Callback, FitContext
from merkit.training.runtime import autocast


def make_optimizer(
    params: list[nn.Parameter],
    kind: str,
    lr: float,
    momentum: float,
    nesterov: bool,
    weight_decay: float,
    adam_eps: float,
) -> torch.optim.Optimizer:
    """A Keras-like SGD (plain by default) or Adam over ``params``.

    Raises
    ------
    ModelError
        If ``params`` is empty (every parameter frozen).
    """
    if not params:
        raise ModelError("the model has no trainable parameters (all frozen)")
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, eps=adam_eps, weight_decay=weight_decay)
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
    )


class OptimizerSchedule(Callback):
    """Build the optimiser at fit start and replace it at the epochs of ``config.schedule``.

    A switch :class:`~merkit.training.config.LRSwitch` with ``epoch=80`` trains epochs 1–80
    with the config's optimiser and epochs 81… with the switch's; its unset settings keep the
    config's. The new optimiser starts with fresh state (Adam moments, SGD momentum), as when
    a Keras model is recompiled. Only parameters with ``requires_grad`` are optimised.

    Parameters
    ----------
    config : TrainConfig
        Initial optimiser settings and the switches.
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self._switches = {switch.epoch: switch for switch in config.schedule}
        self._params: list[nn.Parameter] = []
        self._active: int | None = None  # epoch of the switch in use (None: the config's)

    def on_fit_start(self, ctx: FitContext) -> None:
        cfg = self.config
        if not ctx.has_validation and any(s.restore_best for s in cfg.schedule):
            raise ConfigError(
                "a schedule step restores the best weights but there is no validation"
            )
        self._params = [p for p in ctx.model.parameters() if p.requires_grad]
        self._build(ctx, None)

    def _build(self, ctx: FitContext, switch: LRSwitch | None) -> None:
        """The optimiser of the config (``switch`` None) or of a switch, in ``ctx.optimizer``."""
        cfg = self.config
        self._active = None if switch is None else switch.epoch
        if switch is None:
            ctx.optimizer = make_optimizer(
                self._params,
                cfg.optimizer,
                cfg.lr,
                cfg.momentum,
                cfg.nesterov,
                cfg.weight_decay,
                cfg.adam_eps,
            )
            return
        ctx.optimizer = make_optimizer(
            self._params,
            switch.optimizer,
            switch.lr,
            cfg.momentum if switch.momentum is None else switch.momentum,
            cfg.nesterov if switch.nesterov is None else switch.nesterov,
            cfg.weight_decay if switch.weight_decay is None else switch.weight_decay,
            cfg.adam_eps,
        )

    def on_epoch_start(self, ctx: FitContext) -> None:
        switch: LRSwitch | None = self._switches.get(ctx.epoch)
        if switch is None:
            return
        if switch.restore_best and ctx.best_state is not None:
            ctx.model.load_state_dict(ctx.best_state)
        self._build(ctx, switch)

    def state_dict(self) -> dict[str, Any]:
        # Which optimiser is in use; its moments travel with ``ctx.optimizer``'s own state.
        return {"switch_epoch": self._active}

    def load_state_dict(self, ctx: FitContext, state: dict[str, Any]) -> None:
        epoch = state["switch_epoch"]
        self._build(ctx, None if epoch is None else self._switches[epoch])


class TrainAccuracyStop(Callback):
    """Stop after the first epoch whose training accuracy is at least ``threshold``.

    The accuracy is the epoch's running one: the sample-weighted mean of per-batch accuracy in
    train mode (dropout on), as Keras reports it — the paper stops at 90 %.

    Parameters
    ----------
    threshold : float
        In (0, 1].
    """

    def __init__(self, threshold: float = 0.90) -> None:
        if not 0 < threshold <= 1:
            raise ConfigError(f"stop_train_accuracy must be in (0, 1], got {threshold}")
        self.threshold = threshold

    def on_epoch_end(self, ctx: FitContext, record: EpochRecord) -> None:
        if record.accuracy >= self.threshold:  # NaN (MSE loss) never stops
            ctx.request_stop("train_accuracy")


class EarlyStopping(Callback):
    """Stop when the validation loss has not improved for ``patience`` epochs.

    Keeps a copy of the best-validation-loss weights in ``ctx.best_state`` (schedule switches
    with ``restore_best`` read it) and restores them at the end, whatever stopped training.

    Parameters
    ----------
    patience : int
        Epochs without improvement before stopping.
    """

    def __init__(self, patience: int = 10) -> None:
        if patience < 1:
            raise ConfigError(f"patience must be at least 1, got {patience}")
        self.patience = patience
        self._best = math.inf
        self._stale = 0

    def on_fit_start(self, ctx: FitContext) -> None:
        if not ctx.has_validation:
            raise ConfigError("early stopping needs validation data (set validation_fraction)")
        self._best, self._stale = math.inf, 0

    def on_epoch_end(self, ctx: FitContext, record: EpochRecord) -> None:
        if record.val_loss is None:
            return
        if record.val_loss < self._best:
            self._best, self._stale = record.val_loss, 0
            ctx.history.best_epoch = record.epoch
            ctx.best_state = {k: v.detach().clone() for k, v in ctx.model.state_dict().items()}
        else:
            self._stale += 1
        if self._stale >= self.patience:
            ctx.request_stop("early_stopping")

    def state_dict(self) -> dict[str, Any]:
        # The best weights themselves are ``ctx.best_state``, saved with the fit.
        return {"best": self._best, "stale": self._stale}

    def load_state_dict(self, ctx: FitContext, state: dict[str, Any]) -> None:
        self._best, self._stale = float(state["best"]), int(state["stale"])

    def on_fit_end(self, ctx: FitContext) -> None:
        if ctx.best_state is not None:
            ctx.model.load_state_dict(ctx.best_state)


class BatchNormRecalibration(Callback):
    """After training, re-estimate the trained BatchNorms' statistics over the training rows.

    Keras' momentum 0.99 needs many hundreds of updates before the running statistics follow
    the batch statistics; with few steps they lag far behind and eval-mode predictions collapse
    to one class. One pass in shuffled batches with a cumulative average gives the population
    mean and (mean of batch) variance. Skipped when best weights were restored (they come with
    their own statistics). BatchNorms kept in eval mode (frozen) are left alone.
    """

    order = 10  # after EarlyStopping's restore

    @torch.no_grad()
    def on_fit_end(self, ctx: FitContext) -> None:
        if ctx.best_state is not None:
            return
        model, cfg = ctx.model, ctx.config
        ctx.train_mode()  # models keep frozen branches in eval mode themselves
        norms = [
            m
            for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and m.training
            and m.track_running_stats
        ]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for module in model.modules():  # dropout and recurrent dropout off, BN in batch mode
            module.training = module in norms
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the pass
        device = next(iter(model.parameters())).device
        # Shuffled batches: the mean of batch variances estimates the population variance only
        # when each batch is a random sample (rows are often sorted by class).
        rows = ctx.rows_this_epoch  # a chunk sampler's draw, else every training row
        order = rows[np.random.default_rng(cfg.seed).permutation(len(rows))]
        for bounds in batch_bounds(len(order), cfg.batch_size, no_single=True):
            index = np.sort(order[bounds])
            tensors = [batch_tensor(a, index, device, cfg.channels_last) for a in ctx.arrays]
            with autocast(device, ctx.amp_dtype):
                model(*tensors)
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.eval()


class Progress(Callback):
    """A rich progress display: one bar over epochs, one over the current epoch's batches."""

    def __init__(self) -> None:
        self._progress: Any = None

    def on_fit_start(self, ctx: FitContext) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        batches = math.ceil(len(ctx.rows_this_epoch) / ctx.config.batch_size)
        self._progress = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            transient=True,
        )
        self._epochs = self._progress.add_task("epochs", total=ctx.config.epochs, info="")
        self._batches = self._progress.add_task("batches", total=batches, info="")
        self._progress.start()

    def on_epoch_start(self, ctx: FitContext) -> None:
        # a sampler (lower order) may have drawn this epoch's rows already
        batches = math.ceil(len(ctx.rows_this_epoch) / ctx.config.batch_size)
        self._progress.reset(self._batches, total=batches)
        self._progress.update(self._epochs, completed=ctx.epoch)  # a resumed fit starts later

    def on_batch_end(self, ctx: FitContext, batch: Batch, loss: torch.Tensor) -> None:
        self._progress.advance(self._batches)

    def on_epoch_end(self, ctx: FitContext, record: EpochRecord) -> None:
        info = f"loss {record.loss:.4f}"
        if not math.isnan(record.accuracy):
            info += f" acc {record.accuracy:.3f}"
        if record.val_loss is not None:
            info += f" val_loss {record.val_loss:.4f}"
        self._progress.update(self._epochs, advance=1, info=info)

    def teardown(self, ctx: FitContext) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


class EpochEndFunction(Callback):
    """Call ``function(record)`` after every epoch (the ``on_epoch_end`` argument of ``fit``)."""

    def __init__(self, function: Callable[[EpochRecord], None]) -> None:
        self.function = function

    def on_epoch_end(self, ctx: FitContext, record: EpochRecord) -> None:
        self.function(record)


class EpochScoreReport(Callback):
    """Score the model after every epoch and hand the score to ``report(score, epoch)``.

    The hook of hyperparameter searches: :mod:`merkit.tuning` reports each epoch's macro F1 on
    the inner validation songs to an Optuna trial, whose pruner may stop a hopeless trial by
    raising from ``report`` (the loop's ``teardown`` still runs). The model is left in eval mode;
    the next epoch puts it back in train mode.

    Parameters
    ----------
    score : callable
        ``score(ctx) -> float``, computed on data the model does not train on.
    report : callable
        ``report(score, epoch)`` with the 1-based epoch.
    """

    order = 50  # after the rules that restore or recalibrate weights at epoch end

    def __init__(
        self, score: Callable[[FitContext], float], report: Callable[[float, int], None]
    ) -> None:
        self.score = score
        self.report = report

    def on_epoch_end(self, ctx: FitContext, record: EpochRecord) -> None:
        self.report(float(self.score(ctx)), record.epoch)


class BatchTransform(Callback):
    """Transform one training input of every batch (never applied at prediction).

    Parameters
    ----------
    function : callable
        ``function(tensor, generator) -> tensor`` on the batch tensor of input ``input_index``
        (e.g. a SpecAugment-style time/frequency mask on a ``(B, T, F)`` log-mel); draw random
        numbers from ``generator`` (a CPU ``torch.Generator`` seeded with ``config.seed +
        seed_offset``) so runs stay reproducible. Must be picklable (a module-level function
        or a callable object) for the estimator to be saved with joblib.
    input_index : int
        Which model input to transform.
    seed_offset : int
        Added to the config's seed for the generator.
    """

    def __init__(
        self,
        function: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
        input_index: int = 0,
        seed_offset: int = 0,
    ) -> None:
        self.function = function
        self.input_index = input_index
        self.seed_offset = seed_offset
        self._generator: torch.Generator | None = None

    def on_fit_start(self, ctx: FitContext) -> None:
        if not 0 <= self.input_index < len(ctx.arrays):
            raise ConfigError(
                f"BatchTransform input_index {self.input_index} out of range for "
                f"{len(ctx.arrays)} model input(s)"
            )
        self._generator = torch.Generator().manual_seed(ctx.config.seed + self.seed_offset)

    def state_dict(self) -> dict[str, Any]:
        assert self._generator is not None
        return {"generator": self._generator.get_state()}

    def load_state_dict(self, ctx: FitContext, state: dict[str, Any]) -> None:
        assert self._generator is not None
        self._generator.set_state(state["generator"])

    def on_batch_start(self, ctx: FitContext, batch: Batch) -> Batch:
        assert self._generator is not None
        inputs = list(batch.inputs)
        inputs[self.input_index] = self.function(inputs[self.input_index], self._generator)
        return Batch(tuple(inputs), batch.target, batch.index)


class Freeze(Callback):
    """Freeze the parameters whose names match any of ``patterns`` (``fnmatch``, e.g. ``"dnn.*"``).

    They get ``requires_grad=False`` before the optimiser is built (so it never sees them), and
    every BatchNorm whose parameters are all frozen stays in eval mode while the model trains
    (its running statistics do not move either), like a Keras layer with ``trainable=False``.

    Parameters
    ----------
    patterns : sequence of str
        Parameter-name patterns (names as in ``model.named_parameters()``).
    """

    order = -10  # before OptimizerSchedule builds the optimiser

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)

    def _matches(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.patterns)

    def on_fit_start(self, ctx: FitContext) -> None:
        matched = [p for name, p in ctx.model.named_parameters() if self._matches(name)]
        if self.patterns and not matched:
            raise ConfigError(
                f"freeze patterns {list(self.patterns)} match no parameter of "
                f"{type(ctx.model).__name__}"
            )
        for parameter in matched:
            parameter.requires_grad_(False)
        for module in ctx.model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                params = list(module.parameters(recurse=False))
                if params and not any(p.requires_grad for p in params):
                    ctx.eval_modules.append(module)


def default_callbacks(
    config: TrainConfig,
    *,
    has_validation: bool,
    progress: bool = False,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
) -> list[Callback]:
    """The callbacks that implement ``config``'s rules, in the order the loop runs them.

    Parameters
    ----------
    config : TrainConfig
        ``freeze``, optimiser and ``schedule``, ``stop_train_accuracy``, ``patience``,
        ``recalibrate_batchnorm``.
    has_validation : bool
        Whether the fit has validation data (adds :class:`EarlyStopping`).
    progress : bool
        Add :class:`Progress`.
    on_epoch_end : callable, optional
        Wrapped in :class:`EpochEndFunction`.
    """
    callbacks: list[Callback] = []
    if config.freeze:
        callbacks.append(Freeze(config.freeze))
    callbacks.append(OptimizerSchedule(config))
    if progress:
        callbacks.append(Progress())
    if on_epoch_end is not None:
        callbacks.append(EpochEndFunction(on_epoch_end))
    if has_validation:
        callbacks.append(EarlyStopping(config.patience))
    if config.stop_train_accuracy is not None and config.loss == "cross_entropy":
        callbacks.append(TrainAccuracyStop(config.stop_train_accuracy))
    if config.recalibrate_batchnorm:
        callbacks.append(BatchNormRecalibration())
    return callbacks


__all__ = [
    "BatchNormRecalibration",
    "BatchTransform",
    "EarlyStopping",
    "EpochEndFunction",
    "EpochScoreReport",
    "Freeze",
    "OptimizerSchedule",
    "Progress",
    "TrainAccuracyStop",
    "default_callbacks",
    "make_optimizer",
]
