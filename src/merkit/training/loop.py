"""The training loop every deep method uses: :class:`Trainer`, a plain loop that calls hooks.

``Trainer.fit(model, inputs, y)`` draws shuffled mini-batches from numpy arrays (float16 or
float32, memory maps allowed: only one batch at a time becomes a float32 tensor), steps the
optimiser and records each epoch; every rule — optimiser and schedule, the paper's 90 %
training-accuracy stop, inner-validation early stopping, BatchNorm recalibration, progress,
per-batch transforms, freezing — is a callback (:mod:`merkit.training.callbacks`).
``predict_proba`` runs in eval mode.

Why our own loop and not skorch or PyTorch Lightning: both feed batches through a torch
``DataLoader``, and every DataLoader epoch draws a base seed from torch's global generator
(checked with torch 2.13), which shifts the dropout masks, so no run would stay bit-for-bit
identical to the results already published with this loop. Our batches are sorted fancy-index
reads from float16 memory maps, converted to float32 one batch at a time; a DataLoader needs a
custom batch sampler and collate to do the same, and adds per-batch Python overhead for no gain.
Lightning also brings its own seeding, precision plugins and dependencies (torchmetrics,
lightning-utilities, fsspec), and skorch's ``NeuralNet`` would replace our sklearn wrapper and
its ``weights_only`` save format. The loop is ~150 lines; its hooks (named as in Lightning and
skorch) give the same extension points without those costs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from merkit.core.errors import DataError, ModelError
from merkit.training.callbacks import default_callbacks
from merkit.training.config import TrainConfig
from merkit.training.data import (
    Inputs,
    batch_bounds,
    batch_tensor,
    check_inputs,
    check_output,
    has_batchnorm,
    stratified_holdout,
)
from merkit.training.history import EpochRecord, TrainHistory
from merkit.training.hooks import Batch, Callback, FitContext
from merkit.training.resume import FitState
from merkit.training.runtime import (
    autocast,
    autocast_dtype,
    resolve_device,
    seed_everything,
    torch_threads,
)


def _uses_conv2d(model: nn.Module) -> bool:
    return any(isinstance(module, nn.Conv2d) for module in model.modules())


def _overrides(callbacks: Sequence[Callback], hook: str) -> list[Callback]:
    """The callbacks that implement ``hook`` (the per-batch loop skips the others)."""
    base = getattr(Callback, hook)
    return [cb for cb in callbacks if getattr(type(cb), hook) is not base]


class Trainer:
    """Trains and applies a torch model on numpy inputs (see :class:`TrainConfig`).

    Parameters
    ----------
    config : TrainConfig, optional
        Training settings; defaults to the paper's baseline (SGD 0.01, batch 150, ≤ 200 epochs,
        stop at 90 % training accuracy).
    """

    def __init__(self, config: TrainConfig | None = None) -> None:
        self.config = config or TrainConfig()

    @property
    def device(self) -> torch.device:
        """The device this trainer runs on."""
        return resolve_device(self.config.device)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device (channels-last for 2-D conv models when configured)."""
        device = self.device
        model = model.to(device)
        if self.config.channels_last and _uses_conv2d(model):
            model = model.to(memory_format=torch.channels_last)
        return model

    # ---- fit -------------------------------------------------------------------------------

    def fit(
        self,
        model: nn.Module,
        inputs: Sequence[np.ndarray],
        y: np.ndarray,
        *,
        progress: bool = False,
        validation: tuple[Sequence[np.ndarray], np.ndarray] | None = None,
        on_epoch_end: Callable[[EpochRecord], None] | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> TrainHistory:
        """Train ``model`` in place.

        Python's, numpy's and torch's global generators are seeded with ``config.seed`` first
        (dropout draws from torch's); batch order and the validation split use their own
        generator from the same seed. With validation data the best-validation-loss weights are
        restored at the end, whatever stopped training. Inside a
        :func:`~merkit.training.resume.resume_scope` the fit writes its training state as it
        trains and continues from a matching one, bit for bit (:mod:`merkit.training.resume`).

        Parameters
        ----------
        model : nn.Module
            Takes ``len(inputs)`` tensors (in the order of its ``input_names``) and returns
            logits ``(B, n_classes)`` (or a reconstruction, for ``loss="mse"``).
        inputs : sequence of ndarray
            Row-aligned arrays (float16/float32, memory maps allowed), one per model input.
        y : ndarray
            Integer class indices ``0..n_classes-1`` (cross-entropy) or float targets (MSE).
        progress : bool
            Show rich progress bars.
        validation : (inputs, y), optional
            Explicit validation data, used instead of a ``validation_fraction`` split for early
            stopping (``patience``), best-weight restoring and ``restore_best`` switches.
        on_epoch_end : callable, optional
            Called with an :class:`EpochRecord` after every epoch.
        callbacks : sequence of Callback
            Extra callbacks, run after the config's own (:func:`default_callbacks`) unless
            their ``order`` says otherwise. Pass fresh instances: they keep state.

        Returns
        -------
        TrainHistory

        Raises
        ------
        DataError
            Inputs and labels that do not line up, labels out of range.
        ModelError
            A non-finite loss (NaN inputs or a diverging learning rate).
        """
        with torch_threads(self.config.num_threads):
            return self._fit(model, inputs, y, progress, validation, on_epoch_end, callbacks)

    def _fit(
        self,
        model: nn.Module,
        inputs: Sequence[np.ndarray],
        y: np.ndarray,
        progress: bool,
        validation: tuple[Sequence[np.ndarray], np.ndarray] | None,
        on_epoch_end: Callable[[EpochRecord], None] | None,
        extra: Sequence[Callback],
    ) -> TrainHistory:
        cfg = self.config
        started = time.perf_counter()
        y = np.asarray(y)
        arrays = check_inputs(model, inputs, len(y))
        if cfg.loss == "cross_entropy":
            if not np.issubdtype(y.dtype, np.integer):
                raise DataError(f"labels must be integer class indices, got dtype {y.dtype}")
            if len(y) and y.min() < 0:
                raise DataError("labels must be class indices ≥ 0")
        seed_everything(cfg.seed)
        rng = np.random.default_rng(cfg.seed)

        train_rows = np.arange(len(y))
        held: tuple[Inputs, np.ndarray, np.ndarray | None] | None = None
        if validation is not None:
            val_y = np.asarray(validation[1])
            held = (check_inputs(model, validation[0], len(val_y)), val_y, None)
        elif cfg.validation_fraction is not None:
            strata = y if cfg.loss == "cross_entropy" else np.zeros(len(y), dtype=np.int64)
            train_rows, val_rows = stratified_holdout(strata, cfg.validation_fraction, rng)
            held = (arrays, y, val_rows)
        if len(train_rows) == 0:
            raise DataError("no training rows")

        device = self.device
        model = self.prepare(model)
        amp_dtype = autocast_dtype(device, cfg.mixed_precision)
        # Inside a resume scope: this fit's state file, fingerprinted before any training.
        runtime = {"device": device.type, "autocast": str(amp_dtype), "torch": torch.__version__}
        saved = FitState.open(cfg, model, arrays, y, train_rows, held, runtime=runtime)
        ctx = FitContext(
            config=cfg,
            model=model,
            arrays=arrays,
            y=y,
            train_rows=train_rows,
            validation=held,
            device=device,
            amp_dtype=amp_dtype,
            rng=rng,
            history=TrainHistory(device=str(device)),
            grad_scaler=torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None,
        )
        hooks = default_callbacks(
            cfg, has_validation=held is not None, progress=progress, on_epoch_end=on_epoch_end
        )
        hooks = sorted([*hooks, *extra], key=lambda cb: cb.order)  # stable: ties keep order
        try:
            for cb in hooks:
                cb.on_fit_start(ctx)
            if ctx.optimizer is None:
                raise ModelError("no callback built an optimizer (add OptimizerSchedule)")
            start = 0 if saved is None else saved.restore(ctx, hooks)
            # A state written after the stopping epoch goes straight to on_fit_end.
            for epoch in range(start, cfg.epochs) if ctx.stop_reason is None else ():
                ctx.epoch = epoch
                epoch_start = time.perf_counter()
                ctx.train_mode()
                for cb in hooks:
                    cb.on_epoch_start(ctx)
                loss, accuracy = self._train_epoch(ctx, hooks)
                val_loss = val_accuracy = None
                if held is not None:
                    val_loss, val_accuracy = self.evaluate(model, held[0], held[1], rows=held[2])
                record = EpochRecord(
                    epoch + 1,
                    loss,
                    accuracy,
                    val_loss,
                    val_accuracy,
                    float(ctx.optimizer.param_groups[0]["lr"]),
                    time.perf_counter() - epoch_start,
                )
                ctx.history.record(record)
                for cb in hooks:
                    cb.on_epoch_end(ctx, record)
                if saved is not None:
                    last = ctx.stop_reason is not None or epoch + 1 == cfg.epochs
                    saved.after_epoch(ctx, hooks, last=last)
                if ctx.stop_reason is not None:
                    break
            ctx.history.stop_reason = ctx.stop_reason or "max_epochs"
            for cb in hooks:
                cb.on_fit_end(ctx)
        finally:
            for cb in hooks:
                cb.teardown(ctx)
        ctx.history.seconds = time.perf_counter() - started if saved is None else saved.seconds
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return ctx.history

    def _loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "mse":
            return F.mse_loss(output.float(), target)
        return F.cross_entropy(output.float(), target)

    def _target(self, y: np.ndarray, index: np.ndarray, device: torch.device) -> torch.Tensor:
        if self.config.loss == "mse":
            return batch_tensor(y, index, device, False)
        return torch.from_numpy(np.asarray(y[index], dtype=np.int64)).to(device)

    def _train_epoch(self, ctx: FitContext, hooks: Sequence[Callback]) -> tuple[float, float]:
        cfg, model, optimizer = self.config, ctx.model, ctx.optimizer
        assert optimizer is not None
        device = next(iter(model.parameters())).device
        classify = cfg.loss == "cross_entropy"
        checked = ctx.epoch > 0
        starts, ends = _overrides(hooks, "on_batch_start"), _overrides(hooks, "on_batch_end")
        scaler = ctx.grad_scaler
        rows = ctx.rows_this_epoch
        order = rows[ctx.rng.permutation(len(rows))]
        # Sums stay on the device so a GPU step never waits for a host sync.
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.float64, device=device)
        for bounds in batch_bounds(len(order), cfg.batch_size, no_single=has_batchnorm(model)):
            # Sorted indices make memmap reads sequential; order within a batch is irrelevant.
            index = np.sort(order[bounds])
            batch = Batch(
                tuple(batch_tensor(a, index, device, cfg.channels_last) for a in ctx.arrays),
                self._target(ctx.y, index, device),
                index,
            )
            for cb in starts:
                batch = cb.on_batch_start(ctx, batch)
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, ctx.amp_dtype):
                output = model(*batch.inputs)
                if not checked:
                    top = int(ctx.y[rows].max()) if classify else 0
                    check_output(output, batch.target, cfg.loss, top)
                    checked = True
                loss = self._loss(output, batch.target)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            loss_sum += loss.detach().double() * len(index)
            if classify:
                correct += (output.detach().argmax(dim=1) == batch.target).sum().double()
            for cb in ends:
                cb.on_batch_end(ctx, batch, loss)
        mean_loss = float(loss_sum) / len(order)
        if not math.isfinite(mean_loss):
            raise ModelError(
                f"training loss became {mean_loss} in epoch {ctx.epoch + 1}: the inputs contain "
                "NaN/inf or the learning rate is too high"
            )
        accuracy = float(correct) / len(order) if classify else math.nan
        return mean_loss, accuracy

    # ---- inference -------------------------------------------------------------------------

    def predict_outputs(
        self,
        model: nn.Module,
        inputs: Sequence[np.ndarray],
        batch_size: int | None = None,
        *,
        rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """Raw model outputs (logits, or reconstructions) in eval mode, as float32 numpy.

        Parameters
        ----------
        model : nn.Module
            A model on this trainer's device (see :meth:`prepare`).
        inputs : sequence of ndarray
            Row-aligned inputs.
        batch_size : int, optional
            Defaults to the config's batch size.
        rows : ndarray of int, optional
            Only these rows, in this order.
        """
        arrays = check_inputs(model, inputs, None)
        device = next(iter(model.parameters())).device
        amp = autocast_dtype(device, self.config.mixed_precision)
        size = batch_size or self.config.batch_size
        order = np.arange(len(arrays[0])) if rows is None else np.asarray(rows)
        outputs: list[np.ndarray] = []
        was_training = model.training
        model.eval()
        try:
            with torch_threads(self.config.num_threads), torch.inference_mode():
                for start in range(0, len(order), size):
                    index = order[start : start + size]
                    tensors = [
                        batch_tensor(a, index, device, self.config.channels_last) for a in arrays
                    ]
                    with autocast(device, amp):
                        out = model(*tensors)
                    outputs.append(out.float().cpu().numpy())
        finally:
            model.train(was_training)
        if not outputs:
            return np.empty((0,), dtype=np.float32)
        return np.concatenate(outputs)

    def predict_proba(
        self, model: nn.Module, inputs: Sequence[np.ndarray], batch_size: int | None = None
    ) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` (softmax of the logits), eval mode.

        Parameters
        ----------
        model : nn.Module
            A classifier returning logits.
        inputs : sequence of ndarray
            Row-aligned inputs.
        batch_size : int, optional
            Defaults to the config's batch size.

        Returns
        -------
        ndarray of float64
            Rows sum to 1.
        """
        logits = self.predict_outputs(model, inputs, batch_size)
        if logits.ndim != 2:
            raise ModelError(f"expected logits (n, n_classes), got shape {logits.shape}")
        logits = logits.astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def evaluate(
        self,
        model: nn.Module,
        inputs: Sequence[np.ndarray],
        y: np.ndarray,
        *,
        rows: np.ndarray | None = None,
    ) -> tuple[float, float | None]:
        """Mean loss and accuracy (None for MSE) in eval mode on ``rows`` (default: all)."""
        outputs = torch.from_numpy(self.predict_outputs(model, inputs, rows=rows))
        target_rows = np.arange(len(y)) if rows is None else rows
        if self.config.loss == "mse":
            target = torch.from_numpy(np.asarray(y[target_rows], dtype=np.float32))
            return float(F.mse_loss(outputs, target)), None
        target = torch.from_numpy(np.asarray(y[target_rows], dtype=np.int64))
        loss = float(F.cross_entropy(outputs, target))
        accuracy = float((outputs.argmax(dim=1) == target).double().mean())
        return loss, accuracy


__all__ = ["Trainer"]
