"""Where folds run: an executor maps a function over tasks and yields results as they finish.

:class:`SerialExecutor` runs them one after another in this process; :class:`ProcessExecutor`
runs them in :mod:`merkit.core.parallel` worker processes on this machine; the Ray executor
(:mod:`merkit.protocol.ray_executor`) runs them on a Ray cluster. All satisfy :class:`Executor`:
results may come in any order (each :class:`~merkit.protocol.records.FoldRecord` says which fold
it is), and a task whose worker died is retried a bounded number of times, then reported in a
:class:`TasksFailed` raised after every other result has been yielded — so the runner has written
every finished fold before the error reaches the user.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from merkit.core.errors import MerkitError

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class TaskNeeds:
    """What one task asks of the machine that runs it (used by schedulers such as Ray).

    Attributes
    ----------
    cpus : float
        CPU cores.
    gpus : float
        GPUs, or a fraction of one (0 for a method that does not train a network).
    memory : int
        Bytes of working memory beyond the shared inputs (0: no reservation).
    label : str
        What the task is, for messages (e.g. the method name).
    """

    cpus: float = 1.0
    gpus: float = 0.0
    memory: int = 0
    label: str = "task"


class TasksFailed(MerkitError):
    """Tasks whose workers died more often than the retries allow; ``failures`` maps each
    task's index (in the order given to ``map``) to the reason.

    ``names`` (a name per task index, e.g. fold names) and ``kept`` (what was saved) make the
    message a summary a user can act on: which tasks failed, why (each distinct reason once),
    what was kept, and that rerunning the same command resumes.
    """

    def __init__(
        self,
        label: str,
        failures: dict[int, str],
        *,
        names: Sequence[str] | None = None,
        kept: str | None = None,
    ) -> None:
        self.failures = dict(failures)
        self.label = label
        failed = sorted(failures)
        listed = [names[i] if names is not None else f"task {i}" for i in failed]
        shown = ", ".join(listed[:8]) + (f" and {len(listed) - 8} more" if len(listed) > 8 else "")
        reasons = list(dict.fromkeys(failures[i] for i in failed))
        why = "; ".join(reason[:200] for reason in reasons[:3])
        super().__init__(
            f"{len(failures)} {label} task(s) failed after their retries: {shown} ({why}). "
            f"{kept or 'Every other result was kept'}: rerun the same command to resume "
            "(only the failed ones run again)"
        )


class Executor(Protocol):
    """Runs ``fn`` on each task; yields each result as soon as it is ready.

    ``needs`` is optional: the runner passes it only to a ``map`` that accepts it.
    """

    def map(
        self, fn: Callable[[T], R], tasks: Iterable[T], *, needs: TaskNeeds | None = None
    ) -> Iterator[R]: ...


class SerialExecutor:
    """Runs tasks in order, in this process."""

    def map(
        self, fn: Callable[[T], R], tasks: Iterable[T], *, needs: TaskNeeds | None = None
    ) -> Iterator[R]:
        for task in tasks:
            yield fn(task)


class ProcessExecutor:
    """Runs tasks in ``workers`` processes of this machine (:mod:`merkit.core.parallel`).

    ``fn`` (with the inputs it holds) is sent to each worker once. A worker that dies breaks the
    pool: the tasks without a result then run again in a fresh pool, at most ``retries`` times,
    and are reported in :class:`TasksFailed` after that. Ctrl-C cancels the pending tasks and
    stops the workers (they die with this process in any case).

    Parameters
    ----------
    workers : int
        Worker processes (``-1``: one per core).
    retries : int
        Fresh pools started after a worker died.
    """

    def __init__(self, workers: int = 2, *, retries: int = 2) -> None:
        from merkit.core.parallel import resolve_jobs

        self.workers = resolve_jobs(workers)
        self.retries = int(retries)

    def map(
        self, fn: Callable[[T], R], tasks: Iterable[T], *, needs: TaskNeeds | None = None
    ) -> Iterator[R]:
        from merkit.core.parallel import WorkerDied, map_unordered

        todo = list(enumerate(tasks))
        attempt = 0
        while todo:
            finished: set[int] = set()
            items = [task for _, task in todo]
            try:
                for position, result in map_unordered(
                    fn, items, self.workers, send_once=True, window=len(items)
                ):
                    finished.add(position)
                    yield result
                return
            except WorkerDied as died:
                todo = [pair for position, pair in enumerate(todo) if position not in finished]
                attempt += 1
                if attempt > self.retries:
                    label = needs.label if needs else "task"
                    raise TasksFailed(label, {index: str(died) for index, _ in todo}) from None


__all__ = ["Executor", "ProcessExecutor", "SerialExecutor", "TaskNeeds", "TasksFailed"]
