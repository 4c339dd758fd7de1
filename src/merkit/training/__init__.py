"""The one training loop every deep method uses, and its parts (one job per module).

* :mod:`~merkit.training.config` — :class:`TrainConfig`, :class:`LRSwitch` (validated settings).
* :mod:`~merkit.training.history` — :class:`TrainHistory`, :class:`EpochRecord`.
* :mod:`~merkit.training.runtime` — device, seeds, threads, autocast, glibc malloc tuning
  (torch-free until used, so the CLI can call it before importing torch).
* :mod:`~merkit.training.data` — batch tensors from numpy arrays, the stratified holdout.
* :mod:`~merkit.training.hooks` — the :class:`Callback` protocol and :class:`FitContext`.
* :mod:`~merkit.training.callbacks` — each training rule as a callback.
* :mod:`~merkit.training.loop` — :class:`Trainer`, the loop that calls the hooks.
* :mod:`~merkit.training.resume` — resumable fits: training states written as a fit trains,
  continued bit for bit (``resume_scope``).

Names are imported lazily (PEP 562), so ``import merkit.training.runtime`` does not pull in
torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "LRSwitch": "config",
    "TrainConfig": "config",
    "EpochRecord": "history",
    "StopReason": "history",
    "TrainHistory": "history",
    "HEAP_REUSE_TUNABLES": "runtime",
    "MALLOC_TUNABLE": "runtime",
    "NO_REEXEC_VARIABLE": "runtime",
    "autocast": "runtime",
    "autocast_dtype": "runtime",
    "cpu_env_hint": "runtime",
    "cpu_has_native_bf16": "runtime",
    "ensure_malloc_tuning": "runtime",
    "malloc_reexec_environment": "runtime",
    "malloc_tuning_active": "runtime",
    "malloc_tuning_supported": "runtime",
    "resolve_device": "runtime",
    "seed_everything": "runtime",
    "torch_threads": "runtime",
    "Inputs": "data",
    "clone_state": "data",
    "stratified_holdout": "data",
    "Batch": "hooks",
    "Callback": "hooks",
    "FitContext": "hooks",
    "BatchNormRecalibration": "callbacks",
    "BatchTransform": "callbacks",
    "EarlyStopping": "callbacks",
    "EpochEndFunction": "callbacks",
    "EpochScoreReport": "callbacks",
    "Freeze": "callbacks",
    "OptimizerSchedule": "callbacks",
    "Progress": "callbacks",
    "TrainAccuracyStop": "callbacks",
    "default_callbacks": "callbacks",
    "RandomChunks": "sampling",
    "Trainer": "loop",
}

if TYPE_CHECKING:
    from merkit.training.callbacks import (
        BatchNormRecalibration,
        BatchTransform,
        EarlyStopping,
        EpochEndFunction,
        EpochScoreReport,
        Freeze,
        OptimizerSchedule,
        Progress,
        TrainAccuracyStop,
        default_callbacks,
    )
    from merkit.training.config import LRSwitch, TrainConfig
    from merkit.training.data import Inputs, clone_state, stratified_holdout
    from merkit.training.history import EpochRecord, StopReason, TrainHistory
    from merkit.training.hooks import Batch, Callback, FitContext
    from merkit.training.loop import Trainer
    from merkit.training.runtime import (
        HEAP_REUSE_TUNABLES,
        MALLOC_TUNABLE,
        NO_REEXEC_VARIABLE,
        autocast,
        autocast_dtype,
        cpu_env_hint,
        cpu_has_native_bf16,
        ensure_malloc_tuning,
        malloc_reexec_environment,
        malloc_tuning_active,
        malloc_tuning_supported,
        resolve_device,
        seed_everything,
        torch_threads,
    )
    from merkit.training.sampling import RandomChunks


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'merkit.training' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"merkit.training.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "HEAP_REUSE_TUNABLES",
    "MALLOC_TUNABLE",
    "NO_REEXEC_VARIABLE",
    "Batch",
    "BatchNormRecalibration",
    "BatchTransform",
    "Callback",
    "EarlyStopping",
    "EpochEndFunction",
    "EpochRecord",
    "EpochScoreReport",
    "FitContext",
    "Freeze",
    "Inputs",
    "LRSwitch",
    "OptimizerSchedule",
    "Progress",
    "RandomChunks",
    "StopReason",
    "TrainAccuracyStop",
    "TrainConfig",
    "TrainHistory",
    "Trainer",
    "autocast",
    "autocast_dtype",
    "clone_state",
    "cpu_env_hint",
    "cpu_has_native_bf16",
    "default_callbacks",
    "ensure_malloc_tuning",
    "malloc_reexec_environment",
    "malloc_tuning_active",
    "malloc_tuning_supported",
    "resolve_device",
    "seed_everything",
    "stratified_holdout",
    "torch_threads",
]
