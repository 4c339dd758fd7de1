"""The thread pools every computation of a song's inputs runs under.

OpenBLAS's thread count changes the summation order inside the own features (by up to 4.8e-7 on
a 4QAED clip, 2.5e-4 on a pure tone, measured; probabilities of the shipped models by up to
4.1e-8, ``benchmarks/results/shipped_one_blas.md``). So training's extraction
(:class:`merkit.representations.extract.SongJob`), every prediction (serial, ``--jobs`` workers,
Ray tasks) and therefore the cache compute with the same count, :data:`BLAS_THREADS`, whatever
the machine's cores: a song gets the same arrays, bit for bit, on any executor and machine of
the same CPU kind. One thread, because a process per core is what scales: N worker processes
each keeping a pool of every core oversubscribe the machine (measured on 2 cores: 1.3 s CPU per
30 s clip with the default model with 2 workers x 2 BLAS threads, 1.0 s with one each), and a
second BLAS thread shortens no song (the matrices are small).

:func:`blas_limited` holds the pool for the duration of a call and restores it after (~36 us a
call, measured).
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

BLAS_THREADS = 1
"""BLAS threads of every computation of a song's inputs (see the module docstring)."""

_POOL_OWNERS = ("numpy", "scipy", "sklearn", "torch")
"""Modules whose import loads a BLAS or OpenMP library."""

_controllers: dict[frozenset[str], Any] = {}


def controller() -> Any:
    """A :class:`threadpoolctl.ThreadpoolController` of the pools loaded now (finding them takes
    ~30 ms; kept for as long as no further pool owner is imported)."""
    from threadpoolctl import ThreadpoolController

    key = frozenset(name for name in _POOL_OWNERS if name in sys.modules)
    if key not in _controllers:
        _controllers[key] = ThreadpoolController()
    return _controllers[key]


@contextlib.contextmanager
def blas_limited() -> Iterator[None]:
    """Compute with :data:`BLAS_THREADS` BLAS threads; the pools are restored afterwards.

    Set from the thread that computes: OpenBLAS does not always show a count set in one thread
    to another (measured: once a process's main thread has set it, a count set in another
    thread does not show there), so each computing thread sets its own.
    """
    with controller().limit(limits=BLAS_THREADS, user_api="blas"):
        yield


@contextlib.contextmanager
def thread_limits(threads: int | None) -> Iterator[None]:
    """BLAS at :data:`BLAS_THREADS` and, with ``threads``, OpenMP and torch at that (a process's
    share of the cores beside worker processes); restored afterwards."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(blas_limited())
        if threads is not None:
            stack.enter_context(controller().limit(limits=threads, user_api="openmp"))
            torch = sys.modules.get("torch")
            if torch is not None:
                before = torch.get_num_threads()
                stack.callback(torch.set_num_threads, before)
                torch.set_num_threads(threads)
        yield


F = TypeVar("F", bound=Callable[..., Any])


def one_blas_thread(function: F) -> F:
    """Decorate a function that computes a song's inputs to run under :func:`blas_limited`."""

    @functools.wraps(function)
    def limited(*args: Any, **kwargs: Any) -> Any:
        with blas_limited():
            return function(*args, **kwargs)

    return limited  # type: ignore[return-value]


def limit_torch(threads: int) -> None:
    """torch's pool to ``threads``, if something has imported torch (a prediction may import it
    on its first file)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


__all__ = [
    "BLAS_THREADS",
    "blas_limited",
    "controller",
    "limit_torch",
    "one_blas_thread",
    "thread_limits",
]
