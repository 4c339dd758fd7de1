"""A small process pool for per-song work: safe numba cache, no orphans, Ctrl-C safe.

:func:`imap` runs a picklable top-level function over items in worker processes and yields
``(index, result)`` pairs, either as they finish or in input order. It is built on
:class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn`` start method (never ``fork``:
forking a process that has imported torch or started threads can deadlock), and:

- verifies librosa's numba cache in the parent before any worker starts
  (:func:`merkit.core.numba_cache.ensure_numba_cache`): the functions are compiled once, serially,
  so
  workers only read the cache; numba's cache reads and writes are also serialised by a file lock
  in every worker (:func:`merkit.core.numba_cache.lock_numba_cache_io`);
- ties every worker to its parent: on Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` kills it the
  moment the parent dies, even by ``kill -9``; on every platform a watchdog thread ends it within
  half a second of noticing a new parent pid;
- ignores SIGINT in workers, so Ctrl-C reaches only the parent, which cancels pending work and
  terminates the workers before re-raising;
- with ``send_once=True`` ships ``fn`` to each worker once, serialised with cloudpickle (so a
  closure or a lambda inside it travels too), instead of pickling it with every item: the way to
  run many items against large shared arrays (e.g. a fold function holding every song's inputs);
- with ``here=`` this process takes items too (``n_jobs - 1`` workers): it has no start-up to pay
  (what it needs is loaded already) while the workers start, and one process fewer is started
  and holds a copy of what the work needs (e.g. a model);
- with ``retries=`` a worker that dies (killed, out of memory, a crash in native code) costs the
  item it was running one rerun: that worker alone is started again, the others go on and
  finished results are kept (each worker is its own one-process executor, so a death is
  traced to its item).

Workers are created by the thread that iterates (Linux delivers the death signal when the
*thread* that created a process ends): use the iterator from one long-lived thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from merkit.core.errors import MerkitError

T = TypeVar("T")
R = TypeVar("R")

_PR_SET_PDEATHSIG = 1
_WATCHDOG_SECONDS = 0.5
_shared_fn: Callable[[Any], Any] | None = None  # a worker's ``fn`` under ``send_once``


class WorkerDied(MerkitError):
    """A worker process died mid-item (killed, out of memory, a crash in native code).

    ``index`` is the item it was running when that is known (the retries were spent on it).
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


def _died(index: int | None = None, attempts: int = 1) -> WorkerDied:
    which = "" if index is None else f" on item {index} ({attempts} time(s))"
    return WorkerDied(
        f"a worker process died unexpectedly{which} (killed, or crashed in native code); "
        "rerun to resume, or use --jobs 1 to see the error in this process",
        index,
    )


class _Pool:
    """Worker processes that outlive a worker's death: one single-process executor per worker.

    A dead worker breaks its :class:`ProcessPoolExecutor`: every future of that executor then
    fails with :class:`BrokenProcessPool`, also those of items that were only queued. With one
    process per executor a death breaks only the executor it happened in, and the item it was
    running is known: that executor's earliest-submitted unfinished one (it runs its items in
    submission order). So on a break the other workers go on, the dead one's executor is started
    again, its item is charged one death and resubmitted with the ones queued behind it (free).
    An item charged more than ``retries`` times gets ``on_death(item)`` as its result, or
    raises :class:`WorkerDied` naming it; with ``retries=0`` and no ``on_death`` any death
    raises at once. Each break charges an item, so workers that cannot start at all end too.

    ``queued`` items at most wait in each worker (one running, the rest queued): a shared queue
    would balance long items better, but could not tell which item a death belongs to.
    """

    def __init__(
        self,
        fn: Callable[[Any], Any],
        workers: int,
        initargs: tuple[Any, ...],
        *,
        queued: int = 1,
        retries: int = 0,
        on_death: Callable[[Any], Any] | None = None,
    ) -> None:
        self.fn, self.workers, self.initargs, self.queued = fn, workers, initargs, queued
        self.retries, self.on_death = int(retries), on_death
        # future -> (worker slot, submission number, item index, item)
        self.pending: dict[Future[Any], tuple[int, int, int, Any]] = {}
        self.deaths: dict[int, int] = {}
        self._sequence = 0
        self.executors = [self._start() for _ in range(workers)]

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(os.getpid(), *self.initargs),
        )

    def __len__(self) -> int:
        return len(self.pending)

    def _load(self) -> list[int]:
        load = [0] * self.workers
        for slot, *_ in self.pending.values():
            load[slot] += 1
        return load

    def has_room(self) -> bool:
        """Whether some worker has fewer than ``queued`` items."""
        return min(self._load()) < self.queued

    def submit(self, index: int, item: Any, slot: int | None = None) -> None:
        """Hand ``item`` to the least loaded worker (or to ``slot``)."""
        if slot is None:
            load = self._load()
            slot = load.index(min(load))
        future = self.executors[slot].submit(self.fn, item)
        self.pending[future] = (slot, self._sequence, index, item)
        self._sequence += 1

    def wait(self) -> list[tuple[int, Any]]:
        """Block until an item finishes; the ``(index, result)`` pairs finished by then."""
        wait(self.pending, return_when=FIRST_COMPLETED)
        return self.harvest()

    def harvest(self) -> list[tuple[int, Any]]:
        """The ``(index, result)`` pairs of the items finished now (none block); an item's own
        exception is raised; a dead worker is started again (see the class docstring)."""
        results, broken = [], set()
        for future in [f for f in self.pending if f.done()]:
            slot, _, index, _ = self.pending[future]
            if isinstance(future.exception(), BrokenProcessPool):
                broken.add(slot)
                continue
            del self.pending[future]
            results.append((index, future.result()))  # fn's own error propagates
        for slot in sorted(broken):
            results += self._restart(slot)
        return results

    def _restart(self, slot: int) -> list[tuple[int, Any]]:
        lost = sorted(
            (seq, index, item) for s, seq, index, item in self.pending.values() if s == slot
        )
        self.pending = {f: v for f, v in self.pending.items() if v[0] != slot}
        _stop(self.executors[slot])
        if not lost:
            return []
        (_, culprit, item), rest = lost[0], lost[1:]
        if self.retries <= 0 and self.on_death is None:
            raise _died()
        self.deaths[culprit] = self.deaths.get(culprit, 0) + 1
        results = []
        if self.deaths[culprit] > self.retries:
            if self.on_death is None:
                raise _died(culprit, self.deaths[culprit])
            results.append((culprit, self.on_death(item)))
        else:
            rest = lost
        self.executors[slot] = self._start()
        for _, index, queued_item in rest:
            self.submit(index, queued_item, slot)
        return results

    def close(self, *, finished: bool) -> None:
        for executor in self.executors:
            if finished:
                executor.shutdown(wait=True)
            else:  # an error, Ctrl-C or an abandoned generator: stop now, leave nothing behind
                _stop(executor)


def resolve_jobs(n_jobs: int) -> int:
    """Number of worker processes for ``n_jobs`` (``-1``: every core; must not be 0)."""
    if n_jobs == 0 or n_jobs < -1:
        raise MerkitError(f"n_jobs must be a positive number of processes or -1, not {n_jobs}")
    return (os.cpu_count() or 1) if n_jobs == -1 else int(n_jobs)


def _die_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid`` does (prctl on Linux, a watchdog everywhere)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError, TypeError):
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(_WATCHDOG_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="merkit-parent-watchdog", daemon=True).start()


def _init_worker(parent_pid: int, warm_numba: bool, fn_bytes: bytes | None = None) -> None:
    """Worker initializer: die with the parent, leave Ctrl-C to it, guard numba's cache."""
    global _shared_fn
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if warm_numba:
        from merkit.core.numba_cache import ensure_numba_cache, lock_numba_cache_io

        lock_numba_cache_io()
        ensure_numba_cache()  # a stamp check: the parent has verified the cache already
    if fn_bytes is not None:
        _shared_fn = pickle.loads(fn_bytes)


def _call_shared(item: Any) -> Any:
    """Apply the ``fn`` this worker received once (``send_once``) to ``item``."""
    assert _shared_fn is not None, "the worker was started without a shared function"
    return _shared_fn(item)


def _stop(executor: ProcessPoolExecutor) -> None:
    """Cancel pending work and end the workers now (they may be mid-song)."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()
    deadline = time.monotonic() + 5.0
    for process in processes:
        with contextlib.suppress(Exception):
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()


def imap(
    fn: Callable[[T], R],
    items: Iterable[T],
    n_jobs: int,
    *,
    ordered: bool = True,
    warm_numba: bool = True,
    window: int | None = None,
    send_once: bool = False,
    here: Callable[[T], R] | None = None,
    retries: int = 0,
    on_death: Callable[[T], R] | None = None,
) -> Iterator[tuple[int, R]]:
    """Apply ``fn`` to every item in worker processes; yield ``(index, result)`` pairs.

    Parameters
    ----------
    fn : callable
        A picklable top-level function of one argument (use :func:`functools.partial` of one for
        extra arguments).
    items : iterable
        Picklable inputs; consumed lazily, at most ``window`` at a time are in flight.
    n_jobs : int
        Worker processes; ``1`` runs everything in this process (no pool), ``-1`` uses every core.
    ordered : bool
        Yield in input order (results that finish early wait in a buffer of at most ``window``)
        rather than as they finish.
    warm_numba : bool
        Verify and fill librosa's numba cache before starting workers (see
        :mod:`merkit.core.numba_cache`); leave on for anything that may call librosa.
    window : int, optional
        Items in flight or finished but not yet yielded, at most; default ``4 * n_jobs``. Each
        worker is handed one item at a time (see :class:`_Pool`).
    send_once : bool
        Send ``fn`` to each worker once (cloudpickle) rather than with every item.
    here : callable, optional
        What ``fn`` computes, in this process (e.g. with a model loaded here already): this
        process then runs items too, between handing out and collecting the workers' ones, and
        ``n_jobs - 1`` worker processes are started. Each worker has up to two items queued, so
        it never waits while this process is busy with one; ``window`` does not apply.
    retries : int
        Reruns of an item whose worker died while running it (the pool is started again; the
        other unfinished items are resubmitted at no charge, finished results are kept).
    on_death : callable, optional
        The result of an item whose worker died more than ``retries`` times (e.g. a failure
        record), instead of raising :class:`WorkerDied`.

    Yields
    ------
    tuple of (int, result)
        Index of the item in ``items`` and ``fn(item)``.

    Raises
    ------
    Exception
        The first exception ``fn`` raises, re-raised in the parent with its type and message
        (pending items are cancelled and the workers stopped).
    WorkerDied
        If a worker process dies (e.g. killed, or a crash in native code) and ``retries`` are
        spent without ``on_death``.
    """
    jobs = resolve_jobs(n_jobs)
    if warm_numba:
        from merkit.core.numba_cache import ensure_numba_cache, lock_numba_cache_io

        ensure_numba_cache()
        lock_numba_cache_io()
    death = {"retries": retries, "on_death": on_death}
    if here is not None and jobs > 1:
        pool = _Pool(fn, jobs - 1, (warm_numba, None), queued=QUEUED_PER_WORKER, **death)
        yield from _imap_here(pool, here, items, ordered=ordered)
        return
    if jobs == 1:
        for index, item in enumerate(items):
            yield index, (fn if here is None else here)(item)
        return
    window = max(jobs, window or 4 * jobs)
    fn_bytes = None
    if send_once:
        import cloudpickle

        fn_bytes, fn = cloudpickle.dumps(fn), _call_shared
    pool = _Pool(fn, jobs, (warm_numba, fn_bytes), **death)
    done: dict[int, R] = {}
    next_index = 0  # next item index to yield when ordered
    source = enumerate(items)
    exhausted = finished = False
    try:
        while True:
            while not exhausted and pool.has_room() and len(pool) + len(done) < window:
                try:
                    pool.submit(*next(source))
                except StopIteration:
                    exhausted = True
            if not len(pool) and not done:
                break
            if ordered and next_index in done:
                yield next_index, done.pop(next_index)
                next_index += 1
                continue
            if not len(pool):  # cannot happen when ordered: the head is always pending or done
                break
            for index, result in pool.wait():
                if ordered:
                    done[index] = result
                else:
                    yield index, result
        finished = True
    finally:
        pool.close(finished=finished)


QUEUED_PER_WORKER = 2
"""Items handed to each worker ahead under ``here=``: one running, one waiting (the caller may
be busy with an item of its own when a worker finishes one)."""

AHEAD_HERE = 256
"""Under ``here=`` and ordered, results held at most while the head item is still running in a
worker (beyond that this process waits rather than taking more items)."""


def _imap_here(
    pool: _Pool, here: Callable[[T], R], items: Iterable[T], *, ordered: bool
) -> Iterator[tuple[int, R]]:
    """:func:`imap` with this process taking items too (see ``here`` there)."""
    done: dict[int, R] = {}
    next_index = 0
    source = enumerate(items)
    exhausted = finished = False
    try:
        while True:
            while not exhausted and pool.has_room():
                try:
                    pool.submit(*next(source))
                except StopIteration:
                    exhausted = True
            done.update(pool.harvest())
            if done and (not ordered or next_index in done):
                index = next_index if ordered else next(iter(done))
                yield index, done.pop(index)
                next_index += ordered
                continue
            if not exhausted and (not ordered or len(done) < AHEAD_HERE):
                # the workers have their queues full: take the next item here
                try:
                    index, item = next(source)
                except StopIteration:
                    exhausted = True
                    continue
                done[index] = here(item)
                continue
            if not len(pool):
                break
            done.update(pool.wait())
        finished = True
    finally:
        pool.close(finished=finished)


def map_unordered(
    fn: Callable[[T], R], items: Iterable[T], n_jobs: int, **options: Any
) -> Iterator[tuple[int, R]]:
    """:func:`imap` yielding ``(index, result)`` as the results finish."""
    return imap(fn, items, n_jobs, ordered=False, **options)


def map_ordered(
    fn: Callable[[T], R], items: Iterable[T], n_jobs: int, **options: Any
) -> Iterator[R]:
    """:func:`imap` yielding the results alone, in input order."""
    for _, result in imap(fn, items, n_jobs, ordered=True, **options):
        yield result
