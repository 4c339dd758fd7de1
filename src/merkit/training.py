"""The one training loop every deep method uses (spec §1.5–1.7).

* :class:`TrainConfig` — optimiser, batch size, epoch cap and stop rules (frozen, validated).
* :class:`Trainer` — ``fit(model, inputs, y)`` with shuffled mini-batches drawn from numpy arrays
  (float16/float32, memory-mapped is fine: only one batch at a time is converted to float32), the
  paper's "stop once the epoch's training accuracy reaches 90 %" rule (§1.6), optional
  inner-validation early stopping, an optional optimiser/learning-rate schedule, and
  ``predict_proba`` in eval mode.
* :func:`resolve_device`, :func:`seed_everything` and the CPU speed helpers
  (:func:`ensure_malloc_tuning`, :func:`malloc_tuning_active`, :func:`cpu_env_hint`).

Measured CPU choices (``benchmarks/train_speed.py``, results in ``benchmarks/results``):
``channels_last`` for models with 2-D convolutions (on by default), bf16 autocast on CPUs that
compute bf16 in hardware (AMX / AVX512-BF16: 1.4× faster for the CNN, 2.3× for the CRNN;
float32 elsewhere), and glibc malloc tunables, which must be set *before* the interpreter
starts (the CLI re-executes itself with :func:`ensure_malloc_tuning`'s environment).
Flush-denormal did not speed up CPU training (nor did ``torch.compile`` in an earlier
measurement); deterministic algorithms cost nothing measurable but are not needed for
reproducible CPU runs.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from torch import nn
from torch.nn import functional as F

from merkit.errors import ConfigError, DataError, ModelError

MALLOC_TUNABLE: str = "glibc.malloc.hugetlb=1"
"""glibc tunable that makes malloc back large blocks with transparent huge pages.

A training step allocates and frees large activation buffers (the baseline CNN's first conv
output alone is 150 × 16 × 938 × 124 float32 = 1.1 GB at batch 150); glibc maps each one afresh,
so with 4 KiB pages every step pays for hundreds of thousands of page faults. glibc reads
``GLIBC_TUNABLES`` only at process start (glibc ≥ 2.35).
"""

HEAP_REUSE_TUNABLES: str = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
"""Optional extra tunables: serve large blocks from the heap and never give it back.

Activations are then re-used across steps instead of being mapped, faulted in and zeroed again;
the price is heap fragmentation, which raises the peak RSS (about 2× for the baseline CNN, see
``benchmarks/results/train_speed.md``).
"""

StopReason = Literal["train_accuracy", "max_epochs", "early_stopping"]


# --------------------------------------------------------------------------------------------
# configuration


class LRSwitch(BaseModel):
    """One step of an optimiser schedule: from epoch ``epoch + 1`` on, use these settings.

    ``epoch`` counts completed epochs, so ``LRSwitch(epoch=80, optimizer="sgd", lr=1e-3)`` trains
    epochs 1–80 with the initial optimiser and epochs 81… with SGD (the CRNN-MTAT recipe, §2.13).
    Settings not given (``momentum``, ``nesterov``, ``weight_decay``) keep the config's values.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    epoch: int = Field(gt=0)
    optimizer: Literal["sgd", "adam"]
    lr: float = Field(gt=0)
    momentum: float | None = Field(default=None, ge=0)
    nesterov: bool | None = None
    weight_decay: float | None = Field(default=None, ge=0)
    restore_best: bool = False
    """Reload the best-validation-loss weights first (needs validation data)."""


class TrainConfig(BaseModel):
    """Settings of one training run (Keras-compatible defaults, spec §1.6–1.7 and §3).

    Attributes
    ----------
    epochs : int
        Upper bound on the number of epochs.
    batch_size : int
        Mini-batch size; the last batch of an epoch may be smaller (Keras).
    optimizer : {"sgd", "adam"}
        Optimiser; SGD defaults to Keras' plain SGD (no momentum, no Nesterov).
    lr : float
        Learning rate.
    momentum, nesterov, weight_decay : float, bool, float
        SGD momentum / Nesterov, L2 weight decay (both optimisers).
    adam_eps : float
        Adam's epsilon (Keras: 1e-7; PyTorch's default would be 1e-8).
    stop_train_accuracy : float or None
        The paper's rule: stop after the first epoch whose training accuracy (sample-weighted
        mean of per-batch accuracy in train mode) is ≥ this. ``None`` disables it.
    validation_fraction : float or None
        Hold out this stratified fraction of the *training* rows; stop when the validation loss
        has not improved for ``patience`` epochs and restore the best weights.
    patience : int
        Epochs without validation-loss improvement before stopping.
    recalibrate_batchnorm : bool
        After training, re-estimate every trainable BatchNorm's running statistics in one pass
        over the training rows (population mean/variance). Keras' momentum 0.99 needs many
        hundreds of updates before the running statistics follow the batch statistics; with
        few steps (small folds, an epoch cap) they lag far behind and eval-mode predictions
        collapse to one class. ``False`` keeps the exact Keras behaviour.
    schedule : tuple of LRSwitch
        Optimiser switches at given epochs (strictly increasing).
    loss : {"cross_entropy", "mse"}
        Cross-entropy on logits with integer labels, or MSE against float targets (autoencoder).
    device : {"auto", "cpu", "cuda"}
        ``auto`` picks CUDA when available.
    mixed_precision : bool
        bf16 autocast for training and prediction: on CUDA (fp16 + gradient scaling where
        bf16 is unsupported) and on CPUs with native bf16 (:func:`cpu_has_native_bf16`);
        plain float32 elsewhere. ``False`` forces float32 everywhere.
    channels_last : bool
        Store 2-D conv weights (and 4-D inputs) channels-last; measured ~1.5× faster on CPU.
    num_threads : int or None
        ``torch.set_num_threads`` for the run (process-wide); ``None`` keeps torch's default.
    seed : int
        Seeds batch order, the validation split, dropout and (through the estimator) the weights.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int = Field(default=200, ge=1)
    batch_size: int = Field(default=150, ge=1)
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(default=0.01, gt=0)
    momentum: float = Field(default=0.0, ge=0)
    nesterov: bool = False
    weight_decay: float = Field(default=0.0, ge=0)
    adam_eps: float = Field(default=1e-7, gt=0)
    stop_train_accuracy: float | None = Field(default=0.90, gt=0, le=1)
    validation_fraction: float | None = Field(default=None, gt=0, lt=1)
    patience: int = Field(default=10, ge=1)
    schedule: tuple[LRSwitch, ...] = ()
    loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: bool = True
    channels_last: bool = True
    num_threads: int | None = Field(default=None, ge=1)
    seed: int = 0
    recalibrate_batchnorm: bool = True

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.nesterov and self.momentum <= 0:
            raise ValueError("nesterov=True needs momentum > 0")
        epochs = [switch.epoch for switch in self.schedule]
        if epochs != sorted(set(epochs)):
            raise ValueError(f"schedule epochs must be strictly increasing, got {epochs}")
        return self

    @classmethod
    def create(cls, **settings: Any) -> TrainConfig:
        """Build a config, reporting invalid settings as a :class:`ConfigError`.

        Raises
        ------
        ConfigError
            Naming each invalid setting and why.
        """
        try:
            return cls(**settings)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}"
                for e in error.errors()
            )
            raise ConfigError(f"invalid training settings: {problems}") from None


# --------------------------------------------------------------------------------------------
# history


@dataclass
class TrainHistory:
    """What happened during :meth:`Trainer.fit` (plain Python values: JSON- and torch-safe).

    Attributes
    ----------
    loss, accuracy : list of float
        Per epoch: sample-weighted mean training loss and accuracy (train mode, §1.6).
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


# --------------------------------------------------------------------------------------------
# device, seeds, CPU environment


def resolve_device(device: str = "auto") -> torch.device:
    """Turn ``"auto"``/``"cpu"``/``"cuda"`` (or ``"cuda:1"``) into a :class:`torch.device`.

    Parameters
    ----------
    device : str
        ``"auto"`` picks CUDA when available, else the CPU; anything else is forced.

    Returns
    -------
    torch.device

    Raises
    ------
    ConfigError
        If CUDA is requested but not available, or the name is not a device.
    """
    name = device.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use cpu or auto")
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {device!r}; use auto, cpu or cuda")
    return resolved


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python's, numpy's and torch's global generators (CUDA included).

    On the CPU this alone gives bit-identical runs for the same seed and thread count (tested).

    Parameters
    ----------
    seed : int
        Any integer; reduced modulo 2**32 for numpy.
    deterministic : bool
        Also call ``torch.use_deterministic_algorithms(True, warn_only=True)`` (process-wide).
        It cost nothing measurable on the CPU (``benchmarks/train_speed.md``); on CUDA it
        needs ``CUBLAS_WORKSPACE_CONFIG`` and slows some kernels.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def _merge_tunables(current: str, wanted: str) -> str:
    """Add ``wanted``'s ``name=value`` entries to ``current`` unless a name is already set."""
    parts = [part for part in current.split(":") if part]
    names = {part.split("=", 1)[0] for part in parts}
    extra = [part for part in wanted.split(":") if part.split("=", 1)[0] not in names]
    return ":".join([*parts, *extra])


def malloc_tuning_supported() -> bool:
    """True on Linux with glibc ≥ 2.35 and transparent huge pages not disabled."""
    if platform.system() != "Linux":
        return False
    libc, version = platform.libc_ver()
    if libc != "glibc":
        return False
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    if (major, minor) < (2, 35):
        return False
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as handle:
            return "[never]" not in handle.read()
    except OSError:
        return False


def malloc_tuning_active(
    environ: Mapping[str, str] | None = None, *, reuse_heap: bool = False
) -> bool:
    """Whether this process was started with huge-page malloc (see :data:`MALLOC_TUNABLE`).

    glibc reads ``GLIBC_TUNABLES`` once at start-up, so the variable in this process's
    environment tells what is in effect (setting it later changes nothing).

    Parameters
    ----------
    environ : mapping, optional
        Environment to inspect; defaults to ``os.environ``.
    reuse_heap : bool
        Also require :data:`HEAP_REUSE_TUNABLES`.
    """
    env = os.environ if environ is None else environ
    parts = set(env.get("GLIBC_TUNABLES", "").split(":"))
    huge = bool(parts & {"glibc.malloc.hugetlb=1", "glibc.malloc.hugetlb=2"})
    heap = set(HEAP_REUSE_TUNABLES.split(":")) <= parts
    return malloc_tuning_supported() and huge and (heap or not reuse_heap)


def ensure_malloc_tuning(
    environ: Mapping[str, str] | None = None, *, reuse_heap: bool = False
) -> dict[str, str]:
    """Environment for a child process (or an ``os.execve`` re-exec) with huge-page malloc.

    Existing ``GLIBC_TUNABLES`` entries are kept and win over ours, so an explicit
    ``glibc.malloc.hugetlb=0`` opts out. Where the tunable is unsupported the environment is
    returned unchanged.

    Parameters
    ----------
    environ : mapping, optional
        Base environment; defaults to ``os.environ``.
    reuse_heap : bool
        Also add :data:`HEAP_REUSE_TUNABLES` (faster still, but a higher peak RSS; see there).

    Returns
    -------
    dict of str to str
        A new environment dict.
    """
    env = dict(os.environ if environ is None else environ)
    if malloc_tuning_supported():
        wanted = MALLOC_TUNABLE + (":" + HEAP_REUSE_TUNABLES if reuse_heap else "")
        env["GLIBC_TUNABLES"] = _merge_tunables(env.get("GLIBC_TUNABLES", ""), wanted)
    return env


def cpu_env_hint() -> str | None:
    """A one-line hint when CPU training would run faster with huge-page malloc, else None."""
    if not malloc_tuning_supported() or malloc_tuning_active():
        return None
    return (
        f"CPU training of the conv models can run faster with GLIBC_TUNABLES={MALLOC_TUNABLE} "
        "set before Python starts (the merkit CLI does this itself; see "
        "benchmarks/results/train_speed.md)"
    )


# --------------------------------------------------------------------------------------------
# the loop


Inputs = tuple[np.ndarray, ...]


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, restoring the old count afterwards.

    ``None`` leaves the count alone. Fewer threads help when the CPU is shared: OpenMP workers
    that wait for a busy core slow small models down by an order of magnitude.
    """
    if n is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_inputs(model: nn.Module, inputs: Sequence[np.ndarray], n_rows: int | None) -> Inputs:
    arrays = tuple(inputs)
    if not arrays:
        raise DataError("no model inputs given")
    names = getattr(model, "input_names", None)
    if names is not None and len(names) != len(arrays):
        raise DataError(
            f"{type(model).__name__} takes {len(names)} inputs {tuple(names)}, got {len(arrays)}"
        )
    lengths = {len(array) for array in arrays}
    if n_rows is not None:
        lengths.add(n_rows)
    if len(lengths) != 1:
        shapes = ", ".join(str(array.shape) for array in arrays)
        raise DataError(f"inputs and labels differ in length: inputs {shapes}, labels {n_rows}")
    return arrays


def _batch_tensor(
    array: np.ndarray, index: np.ndarray, device: torch.device, channels_last: bool
) -> torch.Tensor:
    # Fancy indexing copies only the batch's rows (also from a memmap); float32 per batch only.
    tensor = torch.from_numpy(np.ascontiguousarray(array[index], dtype=np.float32))
    if channels_last and tensor.ndim == 4:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor.to(device, non_blocking=True)


def _uses_conv2d(model: nn.Module) -> bool:
    return any(isinstance(module, nn.Conv2d) for module in model.modules())


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX tiles or AVX512-BF16).

    Only then is bf16 autocast faster than float32 on CPU (with AMX: 1.4× for the CNN, 2.3× for
    the CRNN, ``benchmarks/results/train_speed.md``); elsewhere oneDNN would emulate it.
    """
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def _autocast_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    if not enabled:
        return None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def _check_output(output: torch.Tensor, target: torch.Tensor, loss: str, max_label: int) -> None:
    if loss == "mse":
        if output.shape != target.shape:
            raise ModelError(
                f"model output shape {tuple(output.shape)} differs from the target shape "
                f"{tuple(target.shape)}"
            )
    elif output.ndim != 2 or output.shape[1] <= max_label:
        raise ModelError(
            f"model output of shape {tuple(output.shape)} does not cover class index "
            f"{max_label}: build the model with enough classes"
        )


def _make_optimizer(
    params: list[nn.Parameter],
    kind: str,
    lr: float,
    momentum: float,
    nesterov: bool,
    weight_decay: float,
    adam_eps: float,
) -> torch.optim.Optimizer:
    if not params:
        raise ModelError("the model has no trainable parameters (all frozen)")
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, eps=adam_eps, weight_decay=weight_decay)
    return torch.optim.SGD(
        params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
    )


def stratified_holdout(
    y: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into (train, validation), stratified by class.

    Each class contributes ``round(fraction * count)`` rows to validation, at least one when it
    has two or more rows, so both parts keep every class that has at least two rows.

    Parameters
    ----------
    y : ndarray
        Labels (any hashable values); for non-class targets pass zeros.
    fraction : float
        Validation share in (0, 1).
    rng : numpy Generator
        Source of the shuffle.

    Returns
    -------
    train, validation : ndarray of int
        Sorted, disjoint row indices.

    Raises
    ------
    DataError
        If the split would leave no training or no validation rows.
    """
    held: list[np.ndarray] = []
    for value in np.unique(y):
        rows = np.flatnonzero(y == value)
        take = round(fraction * len(rows))
        take = min(max(take, 1 if len(rows) >= 2 else 0), len(rows) - 1)
        held.append(rng.permutation(rows)[:take])
    validation = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
    train = np.setdiff1d(np.arange(len(y)), validation)
    if len(validation) == 0 or len(train) == 0:
        raise DataError(
            f"validation_fraction={fraction} leaves no validation or training rows "
            f"for {len(y)} training rows"
        )
    return train, validation


class _Progress:
    """A rich progress display: one bar over epochs, one over the current epoch's batches."""

    def __init__(self, epochs: int, batches: int, enabled: bool) -> None:
        self.enabled = enabled
        if not enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            transient=True,
        )
        self.epoch_task = self.progress.add_task("epochs", total=epochs, info="")
        self.batch_task = self.progress.add_task("batches", total=batches, info="")
        self.progress.start()

    def batch(self) -> None:
        if self.enabled:
            self.progress.advance(self.batch_task)

    def epoch(self, record: EpochRecord) -> None:
        if not self.enabled:
            return
        info = f"loss {record.loss:.4f}"
        if not math.isnan(record.accuracy):
            info += f" acc {record.accuracy:.3f}"
        if record.val_loss is not None:
            info += f" val_loss {record.val_loss:.4f}"
        self.progress.update(self.epoch_task, advance=1, info=info)
        self.progress.reset(self.batch_task)

    def close(self) -> None:
        if self.enabled:
            self.progress.stop()


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
    ) -> TrainHistory:
        """Train ``model`` in place.

        Python's, numpy's and torch's global generators are seeded with ``config.seed`` first
        (dropout draws from torch's); batch order and the validation split use their own
        generator from the same seed. With validation data the best-validation-loss weights are
        restored at the end, whatever stopped training.

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
            return self._fit(
                model,
                inputs,
                y,
                progress=progress,
                validation=validation,
                on_epoch_end=on_epoch_end,
            )

    def _fit(
        self,
        model: nn.Module,
        inputs: Sequence[np.ndarray],
        y: np.ndarray,
        *,
        progress: bool = False,
        validation: tuple[Sequence[np.ndarray], np.ndarray] | None = None,
        on_epoch_end: Callable[[EpochRecord], None] | None = None,
    ) -> TrainHistory:
        cfg = self.config
        started = time.perf_counter()
        y = np.asarray(y)
        arrays = _check_inputs(model, inputs, len(y))
        classify = cfg.loss == "cross_entropy"
        if classify:
            if not np.issubdtype(y.dtype, np.integer):
                raise DataError(f"labels must be integer class indices, got dtype {y.dtype}")
            if len(y) and y.min() < 0:
                raise DataError("labels must be class indices ≥ 0")
        seed_everything(cfg.seed)
        rng = np.random.default_rng(cfg.seed)

        train_rows = np.arange(len(y))
        val_arrays: Inputs | None = None
        val_y: np.ndarray | None = None
        val_rows: np.ndarray | None = None
        if validation is not None:
            val_y = np.asarray(validation[1])
            val_arrays = _check_inputs(model, validation[0], len(val_y))
        elif cfg.validation_fraction is not None:
            strata = y if classify else np.zeros(len(y), dtype=np.int64)
            train_rows, val_rows = stratified_holdout(strata, cfg.validation_fraction, rng)
            val_arrays, val_y = arrays, y
        if len(train_rows) == 0:
            raise DataError("no training rows")
        if val_arrays is None and any(switch.restore_best for switch in cfg.schedule):
            raise ConfigError(
                "a schedule step restores the best weights but there is no validation"
            )

        device = self.device
        model = self.prepare(model)
        amp_dtype = _autocast_dtype(device, cfg.mixed_precision)
        scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = _make_optimizer(
            trainable,
            cfg.optimizer,
            cfg.lr,
            cfg.momentum,
            cfg.nesterov,
            cfg.weight_decay,
            cfg.adam_eps,
        )
        switches = {switch.epoch: switch for switch in cfg.schedule}
        history = TrainHistory(device=str(device))
        best_loss = math.inf
        best_state: dict[str, torch.Tensor] | None = None
        stale = 0
        n_batches = math.ceil(len(train_rows) / cfg.batch_size)
        bar = _Progress(cfg.epochs, n_batches, progress)
        try:
            for epoch in range(cfg.epochs):
                epoch_start = time.perf_counter()
                if epoch in switches:
                    switch = switches[epoch]
                    if switch.restore_best and best_state is not None:
                        model.load_state_dict(best_state)
                    optimizer = _make_optimizer(
                        trainable,
                        switch.optimizer,
                        switch.lr,
                        cfg.momentum if switch.momentum is None else switch.momentum,
                        cfg.nesterov if switch.nesterov is None else switch.nesterov,
                        cfg.weight_decay if switch.weight_decay is None else switch.weight_decay,
                        cfg.adam_eps,
                    )
                loss, accuracy = self._train_epoch(
                    model, arrays, y, train_rows, optimizer, scaler, amp_dtype, rng, bar, epoch
                )
                val_loss = val_accuracy = None
                if val_arrays is not None and val_y is not None:
                    val_loss, val_accuracy = self.evaluate(model, val_arrays, val_y, rows=val_rows)
                lr = float(optimizer.param_groups[0]["lr"])
                record = EpochRecord(
                    epoch + 1,
                    loss,
                    accuracy,
                    val_loss,
                    val_accuracy,
                    lr,
                    time.perf_counter() - epoch_start,
                )
                self._record(history, record)
                bar.epoch(record)
                if on_epoch_end is not None:
                    on_epoch_end(record)

                if val_loss is not None:
                    if val_loss < best_loss:
                        best_loss, stale, history.best_epoch = val_loss, 0, epoch + 1
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    else:
                        stale += 1
                    if stale >= cfg.patience:
                        history.stop_reason = "early_stopping"
                        break
                if (
                    classify
                    and cfg.stop_train_accuracy is not None
                    and accuracy >= cfg.stop_train_accuracy
                ):
                    history.stop_reason = "train_accuracy"
                    break
            else:
                history.stop_reason = "max_epochs"
        finally:
            bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        elif cfg.recalibrate_batchnorm:
            self._recalibrate_batchnorm(model, arrays, train_rows, amp_dtype)
        history.seconds = time.perf_counter() - started
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return history

    @torch.no_grad()
    def _recalibrate_batchnorm(
        self, model: nn.Module, arrays: Inputs, rows: np.ndarray, amp_dtype: torch.dtype | None
    ) -> None:
        """Population statistics for the BatchNorms that trained (frozen branches untouched)."""
        model.train()  # models keep frozen branches in eval mode themselves
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
        order = rows[np.random.default_rng(self.config.seed).permutation(len(rows))]
        for start in range(0, len(order), self.config.batch_size):
            index = np.sort(order[start : start + self.config.batch_size])
            tensors = [_batch_tensor(a, index, device, self.config.channels_last) for a in arrays]
            with _autocast(device, amp_dtype):
                model(*tensors)
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.eval()

    @staticmethod
    def _record(history: TrainHistory, record: EpochRecord) -> None:
        history.loss.append(record.loss)
        history.accuracy.append(record.accuracy)
        if record.val_loss is not None:
            history.val_loss.append(record.val_loss)
            history.val_accuracy.append(
                math.nan if record.val_accuracy is None else record.val_accuracy
            )
        history.lr.append(record.lr)
        history.epoch_seconds.append(record.seconds)
        history.epochs_run = record.epoch

    def _loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "mse":
            return F.mse_loss(output.float(), target)
        return F.cross_entropy(output.float(), target)

    def _target(self, y: np.ndarray, index: np.ndarray, device: torch.device) -> torch.Tensor:
        if self.config.loss == "mse":
            return _batch_tensor(y, index, device, False)
        return torch.from_numpy(np.asarray(y[index], dtype=np.int64)).to(device)

    def _train_epoch(
        self,
        model: nn.Module,
        arrays: Inputs,
        y: np.ndarray,
        rows: np.ndarray,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler | None,
        amp_dtype: torch.dtype | None,
        rng: np.random.Generator,
        bar: _Progress,
        epoch: int,
    ) -> tuple[float, float]:
        cfg = self.config
        device = next(iter(model.parameters())).device
        classify = cfg.loss == "cross_entropy"
        checked = epoch > 0
        model.train()
        order = rows[rng.permutation(len(rows))]
        # Sums stay on the device so a GPU step never waits for a host sync.
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.float64, device=device)
        for start in range(0, len(order), cfg.batch_size):
            # Sorted indices make memmap reads sequential; order within a batch is irrelevant.
            index = np.sort(order[start : start + cfg.batch_size])
            tensors = [_batch_tensor(a, index, device, cfg.channels_last) for a in arrays]
            target = self._target(y, index, device)
            optimizer.zero_grad(set_to_none=True)
            with _autocast(device, amp_dtype):
                output = model(*tensors)
                if not checked:
                    _check_output(output, target, cfg.loss, int(y[rows].max()) if classify else 0)
                    checked = True
                loss = self._loss(output, target)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            loss_sum += loss.detach().double() * len(index)
            if classify:
                correct += (output.detach().argmax(dim=1) == target).sum().double()
            bar.batch()
        mean_loss = float(loss_sum) / len(order)
        if not math.isfinite(mean_loss):
            raise ModelError(
                f"training loss became {mean_loss} in epoch {epoch + 1}: the inputs contain "
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
        arrays = _check_inputs(model, inputs, None)
        device = next(iter(model.parameters())).device
        amp_dtype = _autocast_dtype(device, self.config.mixed_precision)
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
                        _batch_tensor(a, index, device, self.config.channels_last) for a in arrays
                    ]
                    with _autocast(device, amp_dtype):
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


def clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of ``model``'s state dict (contiguous tensors, safe for ``torch.save``)."""
    return {
        key: value.detach().to("cpu", copy=True).contiguous()
        for key, value in model.state_dict().items()
    }


__all__ = [
    "HEAP_REUSE_TUNABLES",
    "MALLOC_TUNABLE",
    "EpochRecord",
    "LRSwitch",
    "TrainConfig",
    "TrainHistory",
    "Trainer",
    "clone_state",
    "cpu_env_hint",
    "ensure_malloc_tuning",
    "malloc_tuning_active",
    "malloc_tuning_supported",
    "resolve_device",
    "seed_everything",
    "stratified_holdout",
    "torch_threads",
]
