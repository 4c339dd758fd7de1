"""Running one song job over many songs in threads of one process, results in input order.

Two drivers for a one-process extraction (:func:`merkit.extract.compute` with ``n_jobs=1``):
:func:`pipelined` overlaps one song's decoding with another's computing, :func:`threaded` runs
whole songs in several threads. Both rely on the heavy steps being C code that releases the GIL.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from merkit.errors import ConfigError

__all__ = ["THREADS", "TwoStage", "pipelined", "threaded"]


class TwoStage(Protocol):
    """A song job split in an I/O stage and a compute stage (:class:`merkit.extract.SongJobs`)."""

    def prepare(self, source: Any) -> Any: ...

    def finish(self, prepared: Any) -> tuple[Any, ...]: ...


def pipelined(
    jobs: TwoStage, sources: Sequence[Any], *, ahead: int = 2
) -> Iterator[tuple[Any, ...]]:
    """Run ``jobs`` over sources in this process, decoding up to ``ahead`` songs ahead in a thread.

    While this thread resamples song *i* and computes its representations, a second thread
    hashes and decodes songs *i + 1* .. *i + ahead* one after another, so on two free cores a cold
    log-mel extraction costs little more than decoding alone. Decoding and computing take about
    the same time per song on average but differ from song to song (a 44.1 kHz stereo MP3 decodes
    and resamples far slower than a 22.05 kHz mono one): with ``ahead=1`` every slow song stalls
    the other thread, while two songs of slack let the fast ones absorb the slow ones
    (``benchmarks/extract_speed.py``). Results (and errors) come in input order; at most
    ``ahead + 1`` songs' waveforms are held at once.

    C libraries' messages on file descriptor 2 are silenced while a file is decoded (see
    :func:`merkit.audio.quiet_stderr`); fd 2 belongs to the whole process, so a line another
    thread writes to stderr at that moment is dropped too.

    Raises
    ------
    ConfigError
        If ``ahead`` is below 1.
    """
    if isinstance(ahead, bool) or not isinstance(ahead, int) or ahead < 1:
        raise ConfigError(f"ahead must be a positive number of songs, got {ahead!r}")
    if not sources:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="merkit-decode") as pool:
        pending = deque(pool.submit(jobs.prepare, source) for source in sources[:ahead])
        submitted = len(pending)
        try:
            while pending:
                prepared = pending.popleft().result()
                if submitted < len(sources):
                    pending.append(pool.submit(jobs.prepare, sources[submitted]))
                    submitted += 1
                yield jobs.finish(prepared)
        finally:
            for future in pending:
                future.cancel()


THREADS = 2
"""Songs :func:`threaded` computes at once in a one-process extraction (``n_jobs=1``)."""


def threaded(
    jobs: Callable[[Any], tuple[Any, ...]],
    sources: Sequence[Any],
    *,
    threads: int = THREADS,
    ahead: int = 2,
) -> Iterator[tuple[Any, ...]]:
    """Run ``jobs`` (e.g. :class:`SongJobs`) over sources, whole songs in ``threads`` threads.

    Each thread takes the next song and does all of its work: hashing, the cache lookups,
    decoding, mixdown, resampling, the representations, the cache writes. Every heavy step is C
    code that releases the GIL (libsndfile through cffi, soxr, ``scipy.fft``, the sparse
    product, numpy), so on two free cores two songs run at once. Unlike :func:`pipelined`, which
    splits each song into a decode stage and a compute stage, the two threads need not take
    equal time per song: a slow song holds up one thread while the other moves on, and neither
    waits for the other's stage. Only for representations that may run in two threads at once
    (:attr:`merkit.representations.Representation.thread_safe`).

    Results (and errors) come in input order; at most ``threads + ahead`` songs are in flight,
    finished ones holding only their (stored-dtype) values.

    Raises
    ------
    ConfigError
        If ``threads`` is not an integer >= 1 or ``ahead`` not an integer >= 0.
    """
    for name, value, least in (("threads", threads, 1), ("ahead", ahead, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
    if not sources:
        return
    window = threads + ahead
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="merkit-song") as pool:
        pending = deque(pool.submit(jobs, source) for source in sources[:window])
        submitted = len(pending)
        try:
            while pending:
                result = pending.popleft().result()
                if submitted < len(sources):
                    pending.append(pool.submit(jobs, sources[submitted]))
                    submitted += 1
                yield result
        finally:
            for future in pending:
                future.cancel()
