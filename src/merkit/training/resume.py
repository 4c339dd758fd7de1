"""Resumable training: the state of a fit written as it trains, so a killed fit goes on exactly
where it stopped, also from a fresh clone on another machine.

Inside :func:`resume_scope`, every :meth:`~merkit.training.loop.Trainer.fit` writes its state
to ``<folder>/<prefix>.partial.<n>.pt`` (``n``: the fit's position in the scope, 0 for the
first; a fold of a multi-stage method trains several networks, each with its own file) after
an epoch, and a fit that finds a state of its own there continues from the epoch after it. The
state holds what the next epochs read: the model's and the optimiser's state dicts (and the
float16 gradient scaler's), ``ctx.best_state``, the history, every stateful callback's
:meth:`~merkit.training.hooks.Callback.state_dict` (the schedule's phase, early stopping's
best loss and patience count, the per-batch transform's and chunk sampler's generators), and
every random state training draws from: torch's CPU generator (dropout) and CUDA generators,
the batch-order generator, numpy's and Python's global generators. A fit interrupted at any
instant and resumed gives bit-identical weights, history (timings aside) and predictions to an
uninterrupted one (``tests/test_training_resume.py``).

When: after an epoch, once at least ``every_seconds`` (default 30) have passed since the last
write, and always after the last epoch. A baseline-CNN epoch takes ~50 CPU-seconds here, so
it writes after every epoch (a kill loses at most one epoch); a feature DNN's epochs take
milliseconds, and writing a state after each would cost more than training.

Safety: each state is written through :func:`merkit.core.atomic.atomic_file` with ``fsync``
(a temporary file beside it, then ``os.replace``), so a kill mid-write leaves the previous
state, never a half-written one. States are read with ``torch.load(weights_only=True)``: they
hold tensors and plain Python values only, and a state file cannot run code when it is loaded,
whoever made it. Each carries a fingerprint of what is trained: the scope's key (the method's
configuration, the fold's train and test rows and seed, given by the protocol's runner), the
fit's position, its :class:`~merkit.training.config.TrainConfig`, the network's initial weights
(which also cover the seed), the shapes of the inputs and the labels, and the runtime (device
type, autocast dtype — bf16 where the CPU computes it natively —, torch version), so a state is
only continued where its epochs would be computed alike. A state whose fingerprint
or callbacks differ, or that cannot be read (truncated, corrupt, another format version), is
ignored with one warning and the fit starts from scratch; its file is superseded by the fit's
first write. Ignoring rather than refusing keeps a long run going: a stale state is only a lost
head start, never a wrong result. A state whose fingerprint matches but whose content does not
load (a defect, not a stale file) raises one :class:`~merkit.core.errors.ModelError` naming it.

The file of a finished fit is kept until its caller's result is safely written (the protocol's
runner removes a fold's files with :func:`remove_partial` after writing the fold file): a fold
killed after its fits ended resumes straight into ``on_fit_end``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from merkit.core.atomic import atomic_file
from merkit.core.errors import ModelError
from merkit.training.config import TrainConfig
from merkit.training.data import clone_state
from merkit.training.history import TrainHistory
from merkit.training.hooks import Callback, FitContext

_log = logging.getLogger(__name__)

STATE_FORMAT: str = "merkit-fit-state"
STATE_VERSION: int = 1
DEFAULT_EVERY_SECONDS: float = 30.0
"""Least wall time between two writes of a fit's state (the last epoch is always written)."""


@dataclass(frozen=True)
class ResumedFit:
    """A fit that continued from a state: where, and what the earlier sessions had spent."""

    index: int
    epoch: int
    seconds: float
    cpu_seconds: float


@dataclass
class ResumeScope:
    """Where the fits of one unit of work (a fold) keep their states; see :func:`resume_scope`.

    Attributes
    ----------
    folder : Path
        Folder of the state files.
    prefix : str
        Start of their names (a fold's name, ``r00_f02``).
    key : str
        What identifies the work beyond each fit's own settings (part of every fingerprint).
    every_seconds : float
        Least wall time between two writes of one fit's state.
    fits : int
        Fits started in this scope so far.
    resumed : list of ResumedFit
        The fits that continued from a state.
    """

    folder: Path
    prefix: str
    key: str = ""
    every_seconds: float = DEFAULT_EVERY_SECONDS
    fits: int = 0
    resumed: list[ResumedFit] = field(default_factory=list)

    def next_path(self) -> tuple[int, Path]:
        """The position and state file of the next fit."""
        index = self.fits
        self.fits += 1
        return index, self.folder / f"{self.prefix}.partial.{index}.pt"

    def carried(self) -> dict[str, Any] | None:
        """What the resumed fits bring from earlier sessions (for a fold record), or None."""
        if not self.resumed:
            return None
        return {
            "fits": [{"fit": r.index, "epoch": r.epoch} for r in self.resumed],
            "seconds_before": round(sum(r.seconds for r in self.resumed), 3),
            "cpu_seconds_before": round(sum(r.cpu_seconds for r in self.resumed), 3),
        }


_SCOPE: ContextVar[ResumeScope | None] = ContextVar("merkit_resume_scope", default=None)


@contextmanager
def resume_scope(
    folder: str | Path | None,
    prefix: str = "fit",
    key: str = "",
    *,
    every_seconds: float | None = None,
) -> Iterator[ResumeScope | None]:
    """Make the fits inside the block resumable (``folder`` None: make them not resumable).

    Scopes nest: the innermost one holds, so ``resume_scope(None)`` inside a scope keeps the
    fits of an inner search (whose trials may be pruned or skipped on a rerun, so their order is
    not reproducible) from taking numbers of the outer work.

    Parameters
    ----------
    folder : path or None
        Folder of the state files (created at the first write).
    prefix : str
        Start of the state files' names.
    key : str
        Identifies the work (e.g. the fold and the method's configuration); a state made under
        another key is ignored.
    every_seconds : float, optional
        Least wall time between two writes of a fit's state (0: after every epoch); default
        :data:`DEFAULT_EVERY_SECONDS`.

    Yields
    ------
    ResumeScope or None
    """
    every = DEFAULT_EVERY_SECONDS if every_seconds is None else every_seconds
    scope = None if folder is None else ResumeScope(Path(folder), prefix, key, every)
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


def current_scope() -> ResumeScope | None:
    """The innermost :func:`resume_scope` of this thread, or None."""
    return _SCOPE.get()


def partial_files(folder: str | Path, prefix: str) -> list[Path]:
    """The state files of ``prefix`` in ``folder`` (leftover temporary files included)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [*folder.glob(f"{prefix}.partial.*.pt"), *folder.glob(f".{prefix}.partial.*.tmp.pt")]
    return sorted(found)


def remove_partial(folder: str | Path, prefix: str) -> None:
    """Remove the state files of ``prefix`` (call once the work's result is safely written)."""
    for path in partial_files(folder, prefix):
        path.unlink(missing_ok=True)


# ---- fingerprint -------------------------------------------------------------------------


def _tensor_digest(digest: Any, name: str, tensor: torch.Tensor) -> None:
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}".encode())
    digest.update(flat.view(torch.uint8).numpy().tobytes())


def _array_digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(f"{array.dtype.str}{array.shape}".encode() + array.tobytes()).hexdigest()


def fingerprint(
    key: str,
    index: int,
    config: TrainConfig,
    model: nn.Module,
    arrays: Sequence[np.ndarray],
    y: np.ndarray,
    train_rows: np.ndarray,
    validation: tuple[Sequence[np.ndarray], np.ndarray, np.ndarray | None] | None,
    runtime: dict[str, str] | None = None,
) -> str:
    """sha256 of what one fit trains: see the module docstring (called before training)."""
    weights = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        _tensor_digest(weights, name, tensor)
    body = {
        "key": key,
        "fit": index,
        "config": config.model_dump(mode="json"),
        "runtime": runtime,
        "weights": weights.hexdigest(),
        "inputs": [[list(a.shape), np.dtype(a.dtype).str] for a in arrays],
        "y": _array_digest(np.asarray(y)),
        "train_rows": _array_digest(np.asarray(train_rows, dtype=np.int64)),
        "validation": None
        if validation is None
        else {
            "inputs": [[list(a.shape), np.dtype(a.dtype).str] for a in validation[0]],
            "y": _array_digest(np.asarray(validation[1])),
            "rows": None
            if validation[2] is None
            else _array_digest(np.asarray(validation[2], dtype=np.int64)),
        },
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# ---- random states -----------------------------------------------------------------------


def _random_states(ctx: FitContext) -> dict[str, Any]:
    legacy = np.random.get_state()
    version, python_state, gauss = random.getstate()
    cuda = (
        torch.cuda.get_rng_state_all()
        if ctx.device.type == "cuda" and torch.cuda.is_available()
        else None
    )
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "batch_order": ctx.rng.bit_generator.state,
        # numpy's legacy global state is an ndarray: stored as a tensor (weights_only-safe)
        "numpy": [
            legacy[0],
            torch.from_numpy(np.asarray(legacy[1], dtype=np.int64)),
            *map(_plain, legacy[2:]),
        ],
        "python": [version, list(python_state), gauss],
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _set_random_states(ctx: FitContext, states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    ctx.rng.bit_generator.state = states["batch_order"]
    name, keys, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, python_state, gauss = states["python"]
    random.setstate((version, tuple(python_state), gauss))


# ---- one fit's state file ----------------------------------------------------------------


def _callback_keys(hooks: Sequence[Callback]) -> list[tuple[str, Callback]]:
    """Stateful callbacks by ``ClassName#n`` (n: the how-manieth of its class), in hook order."""
    seen: dict[str, int] = {}
    keyed = []
    for cb in hooks:
        if cb.state_dict() is None:
            continue
        name = type(cb).__qualname__
        seen[name] = seen.get(name, 0) + 1
        keyed.append((f"{name}#{seen[name] - 1}", cb))
    return keyed


class FitState:
    """The state file of one fit: reads a matching state at fit start, writes it after epochs.

    Made by :meth:`open` inside a :func:`resume_scope` (None outside one); the loop calls
    :meth:`restore` after ``on_fit_start`` and :meth:`after_epoch` after ``on_epoch_end``.
    """

    def __init__(self, scope: ResumeScope, index: int, path: Path, fingerprint: str) -> None:
        self.scope, self.index, self.path, self.fingerprint = scope, index, path, fingerprint
        self._started = time.perf_counter()
        self._cpu_started = time.process_time()
        self._last_write = self._started
        self.seconds_before = 0.0
        self.cpu_seconds_before = 0.0
        self._failed = False

    @classmethod
    def open(
        cls,
        config: TrainConfig,
        model: nn.Module,
        arrays: Sequence[np.ndarray],
        y: np.ndarray,
        train_rows: np.ndarray,
        validation: tuple[Sequence[np.ndarray], np.ndarray, np.ndarray | None] | None,
        *,
        runtime: dict[str, str] | None = None,
    ) -> FitState | None:
        """This fit's state file in the current scope, or None outside one.

        ``runtime`` (device type, autocast dtype, torch version) joins the fingerprint: epochs
        computed in bf16 and float32, or on two devices, would not add up to either's fit.
        """
        scope = current_scope()
        if scope is None:
            return None
        index, path = scope.next_path()
        key = fingerprint(
            scope.key, index, config, model, arrays, y, train_rows, validation, runtime
        )
        # A temporary file of this state is a dead writer's (one process writes a fold).
        for leftover in path.parent.glob(f".{path.name}.*.tmp.pt") if path.parent.is_dir() else ():
            leftover.unlink(missing_ok=True)
        return cls(scope, index, path, key)

    @property
    def seconds(self) -> float:
        """Wall seconds of this fit, earlier sessions' included (up to their last state)."""
        return self.seconds_before + time.perf_counter() - self._started

    @property
    def cpu_seconds(self) -> float:
        """Process CPU seconds of this fit, earlier sessions' included."""
        return self.cpu_seconds_before + time.process_time() - self._cpu_started

    def _read(self, hooks: Sequence[Callback]) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as exc:  # truncated zip, unpickling errors: many types
            problem = f"unreadable ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
        else:
            problem = self._problem(state, hooks)
        if problem is None:
            return state
        _log.warning(
            "ignoring training state %s: %s; this fit starts from epoch 1 and the file is "
            "replaced by its first state",
            self.path,
            problem,
        )
        return None

    def _problem(self, state: Any, hooks: Sequence[Callback]) -> str | None:
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            return "not a merkit training state"
        if state.get("version") != STATE_VERSION:
            return f"state version {state.get('version')} (this merkit reads {STATE_VERSION})"
        if state.get("fingerprint") != self.fingerprint:
            return (
                "made by another fit (other settings, data, fold, seed or initial weights: "
                "its fingerprint differs)"
            )
        wanted = [key for key, _ in _callback_keys(hooks)]
        found = sorted(state.get("callbacks") or {})
        if found != sorted(wanted):
            return f"made with other stateful callbacks ({found}, this fit has {sorted(wanted)})"
        return None

    def restore(self, ctx: FitContext, hooks: Sequence[Callback]) -> int:
        """Load a matching state into ``ctx`` and the callbacks; the epoch to start from."""
        state = self._read(hooks)
        if state is None:
            return 0
        try:
            epoch = self._load(ctx, hooks, state)
        except (KeyError, IndexError, RuntimeError, TypeError, ValueError) as exc:
            # The fingerprint matched, so this is no stale file: a defect, not a head start lost.
            detail = " ".join(str(exc).split())[:300]
            raise ModelError(
                f"training state {self.path} matches this fit but cannot be loaded "
                f"({type(exc).__name__}: {detail}); move it away to train this fit from epoch 1"
            ) from None
        self.scope.resumed.append(
            ResumedFit(self.index, epoch, self.seconds_before, self.cpu_seconds_before)
        )
        _log.info("resumed training from %s after epoch %d", self.path, epoch)
        return epoch

    def _load(self, ctx: FitContext, hooks: Sequence[Callback], state: dict[str, Any]) -> int:
        ctx.model.load_state_dict(state["model"])
        for key, cb in _callback_keys(hooks):  # the schedule rebuilds its phase's optimiser
            cb.load_state_dict(ctx, state["callbacks"][key])
        assert ctx.optimizer is not None
        ctx.optimizer.load_state_dict(state["optimizer"])
        if ctx.grad_scaler is not None and state["grad_scaler"] is not None:
            ctx.grad_scaler.load_state_dict(state["grad_scaler"])
        best = state["best_state"]
        ctx.best_state = None if best is None else {k: v.to(ctx.device) for k, v in best.items()}
        ctx.history = TrainHistory.from_dict({**state["history"], "device": str(ctx.device)})
        ctx.stop_reason = state["stop_reason"]
        epoch = int(state["epoch"])
        ctx.epoch = max(epoch - 1, 0)  # as after that epoch (on_fit_end may read it)
        _set_random_states(ctx, state["random"])
        self.seconds_before = float(state["seconds"])
        self.cpu_seconds_before = float(state["cpu_seconds"])
        return epoch

    def after_epoch(self, ctx: FitContext, hooks: Sequence[Callback], *, last: bool) -> None:
        """Write the state after epoch ``ctx.epoch`` when due (always after the ``last``)."""
        now = time.perf_counter()
        if self._failed or not (last or now - self._last_write >= self.scope.every_seconds):
            return
        assert ctx.optimizer is not None
        state = {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "fingerprint": self.fingerprint,
            "epoch": ctx.epoch + 1,
            "stop_reason": ctx.stop_reason,
            "model": clone_state(ctx.model),
            "optimizer": ctx.optimizer.state_dict(),
            "grad_scaler": None if ctx.grad_scaler is None else ctx.grad_scaler.state_dict(),
            "best_state": None
            if ctx.best_state is None
            else {k: v.detach().to("cpu") for k, v in ctx.best_state.items()},
            "history": ctx.history.to_dict(),
            "callbacks": {key: cb.state_dict() for key, cb in _callback_keys(hooks)},
            "random": _random_states(ctx),
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
        }
        try:
            write_state(self.path, state)
        except OSError as exc:
            # A full disk or an unwritable folder costs the head start, not the training.
            self._failed = True
            _log.warning("cannot write training state %s (%s); training goes on", self.path, exc)
            return
        self._last_write = time.perf_counter()


def write_state(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` ``state`` to ``path`` atomically and durably (fsync, then rename)."""
    with atomic_file(path, durable=True) as temp:
        torch.save(state, temp)


__all__ = [
    "DEFAULT_EVERY_SECONDS",
    "FitState",
    "ResumeScope",
    "ResumedFit",
    "current_scope",
    "fingerprint",
    "partial_files",
    "remove_partial",
    "resume_scope",
    "write_state",
]
