"""Where folds run: an executor maps a function over tasks and yields results as they finish.

:class:`SerialExecutor` runs them one after another in this process. A process pool or a Ray
executor satisfies the same :class:`Executor` protocol (results may come in any order; each
:class:`~merkit.protocol.records.FoldRecord` says which fold it is).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Runs ``fn`` on each task; yields each result as soon as it is ready."""

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]: ...


class SerialExecutor:
    """Runs tasks in order, in this process."""

    def map(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[R]:
        for task in tasks:
            yield fn(task)


__all__ = ["Executor", "SerialExecutor"]
