"""Compute a representation for every song of a dataset, through the on-disk feature cache.

:func:`compute` (one representation) and :func:`compute_many` (several, in one pass over the
songs) are the drivers: each song's values are read from :mod:`merkit.representations.cache` or
computed from one
decode of its audio (in worker processes from :mod:`merkit.core.parallel` when ``n_jobs > 1``, else
in this process: two songs at a time in threads, or with the next songs decoded ahead in a
thread), validated, and stacked.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from merkit.core.errors import ConfigError, DataError
from merkit.core.threads import blas_limited
from merkit.representations.cache import FeatureCache, NullCache, key_for
from merkit.representations.registry import FrontEndSplit, Representation, get_representation

if TYPE_CHECKING:
    from merkit.datasets.base import AudioSource, Dataset

_log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Computing over a dataset


def song_seed(source_key: str, seed: int) -> int:
    """Per-song seed in ``[0, 2**32)`` from the audio content key and a global seed.

    Depends only on the song's content, so a song gets the same random augmentation wherever it
    sits in a dataset and whichever worker computes it.
    """
    digest = hashlib.sha256(f"{int(seed)}:{source_key}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


@dataclass(frozen=True)
class SongJob:
    """Computes one representation of one song through a cache: ``job(source)``.

    Picklable (it runs in worker processes and Ray tasks). :meth:`cached` is the lookup alone, so
    a driver can skip the songs its cache already holds before it sends any work out.
    """

    rep: Representation
    sr: int
    params: dict[str, Any]
    cache: FeatureCache | NullCache
    seed: int

    def key(self, source: AudioSource, source_key: str | None = None) -> str:
        """The cache key of this song's value (``source_key``: the song's content key, if known).

        A file's content key hashes the whole file; pass it when it is already known.
        """
        key_params = {"sr": self.sr, **self.params}
        if self.rep.stochastic:
            key_params["__seed__"] = int(self.seed)
        content = source.key if source_key is None else source_key
        return key_for(content, self.rep.name, key_params, self.rep.version)

    def cached(self, source: AudioSource, source_key: str | None = None) -> np.ndarray | None:
        """The cached, valid value of this song, or None (an unusable entry is logged)."""
        cached = self.cache.get(self.key(source, source_key))
        if cached is None:
            return None
        problem = self.rep.problem(cached, self.sr, self.params)
        if problem is None:
            return cached
        # Never trust a bad entry (a hand edit, another version's bug, a disk error): recompute.
        _log.warning(
            "merkit: cached %s of %s is unusable (%s); recomputing it",
            self.rep.name,
            source.description,
            problem,
        )
        return None

    def value(
        self,
        y: np.ndarray,
        source: AudioSource,
        source_key: str,
        split: FrontEndSplit | None = None,
    ) -> np.ndarray:
        """Compute this song's value from its waveform ``y`` (at :attr:`sr`) and cache it.

        Returns the value in its storage dtype (float16 for the log-mels). Computed with one
        BLAS thread, as every prediction is (:mod:`merkit.core.threads`: the thread count
        changes the rounding), so training and prediction get the same bits on any machine.
        With ``split`` (this job's :meth:`split`), ``y`` is its front end's output already and
        only the rest is computed.
        """
        seed = song_seed(source_key, self.seed)
        with blas_limited():
            if split is None:
                value = np.asarray(self.rep.fn(y, self.sr, seed=seed, **self.params))
            else:
                value = np.asarray(split.rest(y, self.sr, seed=seed))
        stored = value.astype(self.rep.dtype)
        self.cache.put(self.key(source, source_key), stored)
        return stored

    def split(self) -> FrontEndSplit | None:
        """The representation's :attr:`~merkit.representations.registry.Representation.split`
        of this job's parameters, or ``None`` (none, or a key that cannot be shared)."""
        if self.rep.split is None:
            return None
        split = self.rep.split(self.params)
        try:
            hash(split.key)
        except TypeError:  # e.g. a list among the front end's parameters: computed unshared
            return None
        return split

    def __call__(self, source: AudioSource) -> tuple[np.ndarray, bool]:
        """Value of the song in its storage dtype, and whether it came from the cache.

        Runs in a worker when ``n_jobs > 1``: it returns the compact stored array (float16 for
        the log-mels), which halves what travels back to the parent process.
        """
        return SongJobs((self,))(source)[0]


UNKEYED = "unkeyed"
"""The content key :class:`SongJobs` gives a song none of whose jobs needs one (no cache, no
stochastic representation): nothing is stored under it, and the seed it gives is unused."""


@dataclass(frozen=True)
class _Prepared:
    """A song after the I/O stage: cached values, and the audio the missing values need."""

    source: AudioSource
    source_key: str
    cached: tuple[np.ndarray | None, ...]
    waveforms: dict[int, np.ndarray]
    decoded: tuple[np.ndarray, int] | None = None
    mono: bool = True  # whether ``decoded`` is mixed down, or (frames, channels) to mix still


@dataclass(frozen=True)
class SongJobs:
    """Several representations of one song in one pass: ``jobs(source)``.

    The song's content key is hashed once (where a job needs it: :meth:`keyed`) and its audio
    decoded once, whichever values are missing from the cache (the hybrid's ``logmel`` and
    ``own-features`` share one decode), and representations that split off the same front end
    share one computation of it (:meth:`finish`);
    a source with a ``decode_frames()`` or ``decode()`` method
    (:class:`merkit.datasets.base.FileSource`) is decoded once even for several sample rates,
    other sources are loaded once per rate. Work is split in two stages so a driver can overlap
    them across songs: :meth:`prepare` (hashing, cache lookups, decoding: file I/O and C code
    that releases the GIL) and :meth:`finish` (the mixdown to mono, resampling, the
    representations, the cache writes). Decoding takes about half of a cold log-mel's CPU time,
    so the mixdown sits in :meth:`finish` to even the two stages out. Picklable, for worker
    processes.
    """

    jobs: tuple[SongJob, ...]

    def keyed(self) -> bool:
        """Whether a job needs the song's content key: it reads or writes a cache, or its
        representation is stochastic (its seed comes from the key). Otherwise the song is not
        hashed (:data:`UNKEYED`): the SHA-1 of a window's samples cost 1.3 ms of a 0.33 s
        prediction of a 30 s 16 kHz clip on the Xeon, 2.9 ms per 30 s at 44.1 kHz."""
        return any(job.rep.stochastic or not isinstance(job.cache, NullCache) for job in self.jobs)

    def prepare(self, source: AudioSource) -> _Prepared:
        """Hash the song (where :meth:`keyed`), look up every value in the cache, decode what
        the misses need."""
        source_key = source.key if self.keyed() else UNKEYED
        cached = tuple(job.cached(source, source_key) for job in self.jobs)
        rates = sorted({job.sr for job, hit in zip(self.jobs, cached, strict=True) if hit is None})
        frames = getattr(source, "decode_frames", None)
        if rates and callable(frames):  # the mixdown waits for finish (the other thread)
            return _Prepared(source, source_key, cached, {}, frames(), mono=False)
        decode = getattr(source, "decode", None)
        if rates and callable(decode):
            return _Prepared(source, source_key, cached, {}, decode())
        return _Prepared(source, source_key, cached, {sr: source.load(sr) for sr in rates})

    def finish(self, prepared: _Prepared) -> tuple[tuple[np.ndarray, bool], ...]:
        """Compute and cache the missing values; ``(value, was_cached)`` for each job.

        Missing values whose representations split off the same front end (at the same rate,
        :meth:`SongJob.split`: the ``*-canon`` entries) share one computation of it, bit for bit
        what each computes alone."""
        from merkit.audio.decode import conform, to_mono

        waveforms = prepared.waveforms
        decoded = prepared.decoded
        if decoded is not None and not prepared.mono:
            decoded = (to_mono(decoded[0], prepared.source.description), decoded[1])
        missing = [i for i, hit in enumerate(prepared.cached) if hit is None]
        splits = {i: self.jobs[i].split() for i in missing}
        readers = Counter(
            (self.jobs[i].sr, split.key) for i, split in splits.items() if split is not None
        )
        for i, split in splits.items():  # a front end read by one job only runs inside it
            if split is not None and readers[(self.jobs[i].sr, split.key)] < 2:
                splits[i] = None
        shared_fronts = {
            (self.jobs[i].sr, split.key) for i, split in splits.items() if split is not None
        }
        # What reads each rate's waveform: the jobs computed whole, and each shared front end.
        uses = Counter(self.jobs[i].sr for i, split in splits.items() if split is None)
        uses.update(sr for sr, _ in shared_fronts)
        fronts: dict[tuple[int, Any], np.ndarray] = {}

        # A source that keeps its resampled samples (a predicted Window, whose signal checks
        # resampled it already) gives them: conformed from them, the same bits.
        resampled = getattr(prepared.source, "resampled", None)

        def waveform(sr: int) -> np.ndarray:
            if sr not in waveforms:
                assert decoded is not None  # prepare decoded for every missing rate
                y, native_sr = decoded
                if native_sr != sr and callable(resampled):
                    y, native_sr = resampled(sr), sr
                waveforms[sr] = conform(y, native_sr, sr)
            uses[sr] -= 1
            # A function may change its input in place: only the last one gets the original.
            return waveforms[sr] if uses[sr] == 0 else waveforms[sr].copy()

        results: list[tuple[np.ndarray, bool]] = []
        for i, (job, hit) in enumerate(zip(self.jobs, prepared.cached, strict=True)):
            if hit is not None:
                results.append((hit, True))
                continue
            split = splits[i]
            if split is None:
                y = waveform(job.sr)
            else:
                shared = (job.sr, split.key)
                if shared not in fronts:
                    with blas_limited():  # as SongJob.value computes it unshared
                        fronts[shared] = np.asarray(split.front(waveform(job.sr), job.sr))
                readers[shared] -= 1
                # The rest may change its input in place: only the last reader gets the original.
                y = fronts[shared] if readers[shared] == 0 else fronts[shared].copy()
            results.append((job.value(y, prepared.source, prepared.source_key, split), False))
        waveforms.clear()  # keep peak memory to the songs in flight
        fronts.clear()
        return tuple(results)

    def __call__(self, source: AudioSource) -> tuple[tuple[np.ndarray, bool], ...]:
        return self.finish(self.prepare(source))


SongMapper = Callable[[SongJob, list["AudioSource"]], Iterator[tuple[np.ndarray, bool]]]
"""Runs a :class:`SongJob` over sources and yields its results in input order (e.g. on Ray)."""


@dataclass
class ComputeStats:
    """How a :func:`compute` call was served: songs computed now and songs read from the cache."""

    computed: int = 0
    cached: int = 0


def _song_job(
    name: str,
    params: Mapping[str, Any] | None,
    cache: FeatureCache | NullCache,
    seed: int,
) -> SongJob:
    rep = get_representation(name)
    merged = {**rep.params, **(params or {})}
    value = merged.pop("sr", rep.sr)
    try:
        sr = int(value)
        exact = not isinstance(value, bool) and float(value) == sr
    except (TypeError, ValueError):
        sr, exact = 0, False
    if not exact or sr <= 0:
        raise ConfigError(f"representation {name!r}: sr must be a positive integer, got {value!r}")
    return SongJob(rep, sr, merged, cache, int(seed))


def compute(
    dataset: Dataset,
    name: str,
    *,
    params: Mapping[str, Any] | None = None,
    cache: FeatureCache | NullCache | None = None,
    n_jobs: int = 1,
    progress: bool = True,
    seed: int = 0,
    stats: ComputeStats | None = None,
    mapper: SongMapper | None = None,
) -> np.ndarray | list[np.ndarray]:
    """Apply representation ``name`` to every song of ``dataset``, through the cache.

    Parameters
    ----------
    dataset : Dataset
        Songs with audio sources (:class:`merkit.datasets.base.Dataset`).
    name : str
        A key of :data:`REPRESENTATIONS`.
    params : Mapping, optional
        Overrides of the representation's default parameters, e.g. ``{"time_reversed": True}``;
        ``"sr"`` changes the rate the audio is loaded at.
    cache : FeatureCache or NullCache, optional
        Default ``FeatureCache()`` (``$MERKIT_CACHE`` or ``~/.cache/merkit``); pass
        ``NullCache()`` to compute without storing.
    n_jobs : int
        Songs processed in parallel (:mod:`merkit.core.parallel` worker processes, which end with
        this one); ``-1`` uses every core. With 1, songs are computed in this process: two at
        a time in threads (:func:`threaded`) where every representation allows it, else with
        the next two songs decoded ahead in a thread (:func:`pipelined`).
    progress : bool
        Show a rich progress bar.
    seed : int
        Global seed; each song gets :func:`song_seed` of it and its content key.
    stats : ComputeStats, optional
        Filled with how many songs were computed and how many came from the cache.
    mapper : callable, optional
        Runs the per-song :class:`SongJob` over the sources instead of :mod:`merkit.core.parallel`
        (``n_jobs`` is then unused): the Ray executor computes songs as cluster tasks this way.

    Returns
    -------
    np.ndarray or list of np.ndarray
        float32, aligned with ``dataset.songs``: one stacked array when every song's result has the
        same shape, else a list (e.g. a variable number of chunks per song).

    Raises
    ------
    ConfigError
        Unknown representation or invalid parameters.
    DataError
        A song has no audio source.
    AudioError
        A song's audio cannot be decoded (the message names the file).
    """
    per_name = {name: stats} if stats is not None else None
    return compute_many(
        dataset,
        [name],
        params={name: params} if params else None,
        cache=cache,
        n_jobs=n_jobs,
        progress=progress,
        seed=seed,
        stats=per_name,
        mapper=mapper,
    )[name]


def compute_many(
    dataset: Dataset,
    names: Sequence[str],
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    cache: FeatureCache | NullCache | None = None,
    n_jobs: int = 1,
    progress: bool = True,
    seed: int = 0,
    stats: Mapping[str, ComputeStats] | None = None,
    mapper: SongMapper | None = None,
) -> dict[str, np.ndarray | list[np.ndarray]]:
    """:func:`compute` for several representations in one pass over the songs.

    Each song is hashed once and decoded and resampled once per sample rate, whichever of its
    values are missing from the cache (:class:`SongJobs`); e.g. the hybrid's ``logmel`` and
    ``own-features`` share one decode. Values are identical to separate :func:`compute` calls.

    Parameters
    ----------
    names : sequence of str
        Representation names (duplicates are computed once).
    params : Mapping, optional
        Per-name parameter overrides, ``{name: {...}}``.
    stats : Mapping, optional
        Per-name :class:`ComputeStats` to fill.
    mapper : callable, optional
        A :data:`SongMapper` (e.g. the Ray executor's): it takes one representation at a time,
        so each name is then computed in its own pass.

    Other parameters are those of :func:`compute`.

    Returns
    -------
    dict
        ``{name: array or list}`` as :func:`compute` returns for each name.
    """
    names = list(dict.fromkeys(names))
    for name in names:
        get_representation(name)  # ConfigError for an unknown name, before anything else
    if n_jobs == 0:
        raise ConfigError("n_jobs must be a positive number of processes or -1 (all cores), not 0")
    cache = FeatureCache() if cache is None else cache
    params = params or {}
    jobs = tuple(_song_job(name, params.get(name), cache, seed) for name in names)
    songs = list(dataset.songs)
    missing = [s.song_id for s in songs if s.source is None]
    if missing:
        raise DataError(
            f"representation {', '.join(map(repr, names))} needs audio, but {len(missing)} "
            "song(s) have none: " + ", ".join(missing[:10])
        )
    sources = [song.source for song in songs]
    stats = stats or {}
    label = f"{' + '.join(names)} ({len(songs)} songs)"
    columns = [_Stacker(len(songs), _expected_shape(job)) for job in jobs]
    with _Progress(progress, label, len(songs)) as advance:
        for results in _run(jobs, sources, n_jobs, mapper):
            for column, name, (array, was_cached) in zip(columns, names, results, strict=True):
                column.add(array)
                if name in stats:
                    if was_cached:
                        stats[name].cached += 1
                    else:
                        stats[name].computed += 1
            advance()
    return {name: column.result() for name, column in zip(names, columns, strict=True)}


def fill_cache(
    dataset: Dataset,
    names: Sequence[str],
    *,
    cache: FeatureCache | None = None,
    n_jobs: int = 1,
    progress: bool = True,
    seed: int = 0,
) -> dict[str, ComputeStats]:
    """Compute the missing values of several representations into ``cache``, keeping none.

    One pass over the songs (:class:`SongJobs`: one hash and one decode per song for all of
    them), for a run whose steps each read some of the representations later: they then only
    read the cache. Nothing is stacked or returned but the counts.

    Returns
    -------
    dict
        ``{name: ComputeStats}``.
    """
    names = list(dict.fromkeys(names))
    for name in names:
        get_representation(name)
    cache = FeatureCache() if cache is None else cache
    jobs = tuple(_song_job(name, None, cache, seed) for name in names)
    sources = [song.source for song in dataset.songs if song.source is not None]
    stats = {name: ComputeStats() for name in names}
    label = f"{' + '.join(names)} ({len(sources)} songs)"
    with _Progress(progress, label, len(sources)) as advance:
        for results in _run(jobs, sources, n_jobs, None):
            for name, (_, was_cached) in zip(names, results, strict=True):
                if was_cached:
                    stats[name].cached += 1
                else:
                    stats[name].computed += 1
            advance()
    return stats


def _run(
    jobs: tuple[SongJob, ...],
    sources: list[AudioSource],
    n_jobs: int,
    mapper: SongMapper | None,
) -> Iterator[tuple[tuple[np.ndarray, bool], ...]]:
    """Per song, ``(value, was_cached)`` for every job, in input order."""
    if mapper is not None:
        # A mapper runs one SongJob at a time: one pass per representation.
        yield from zip(*(mapper(job, sources) for job in jobs), strict=True)
        return
    from merkit.core.parallel import map_ordered, resolve_jobs

    many = SongJobs(jobs)
    warm = any(job.rep.uses_numba for job in jobs)
    if resolve_jobs(n_jobs) > 1:
        yield from map_ordered(many, sources, n_jobs, warm_numba=warm)
        return
    if warm:  # as merkit.core.parallel does for one job: verify the cache, serialise its file I/O
        from merkit.core.numba_cache import ensure_numba_cache, lock_numba_cache_io

        ensure_numba_cache()
        lock_numba_cache_io()
    if all(job.rep.thread_safe for job in jobs):
        yield from threaded(many, sources)
    else:
        yield from pipelined(many, sources)


def _expected_shape(job: SongJob) -> tuple[int | None, ...] | None:
    """The shape the representation declares for this job's values; None where it declares none
    or cannot say (bad parameters are reported by the representation's own function)."""
    if job.rep.shape is None:
        return None
    try:
        return tuple(job.rep.shape(job.sr, job.params))
    except Exception:  # only a hint for preallocating: the values decide
        return None


class _Stacker:
    """Collects one representation's per-song arrays, in song order, as float32.

    For a representation of fixed shape each array is converted into one preallocated float32
    block as it arrives, so the conversion overlaps with the songs still being computed instead
    of following them. Otherwise (e.g. a variable number of chunks per song) the arrays are kept
    and stacked at the end when their shapes agree, else returned as a list.
    """

    def __init__(self, total: int, shape: tuple[int | None, ...] | None) -> None:
        self.total = total
        self.fixed = shape is not None and None not in shape
        self.block: np.ndarray | None = None
        self.rows: list[np.ndarray] = []
        self.count = 0

    def add(self, array: np.ndarray) -> None:
        if self.fixed and self.count == 0:
            self.block = np.empty((self.total, *array.shape), dtype=np.float32)
        if self.block is not None and array.shape != self.block.shape[1:]:
            self.rows = [row.copy() for row in self.block[: self.count]]  # not expected
            self.block = None
        if self.block is not None:
            self.block[self.count] = array
        else:
            self.rows.append(array)
        self.count += 1

    def result(self) -> np.ndarray | list[np.ndarray]:
        """One float32 block when every song's array has the same shape, else a float32 list."""
        if self.block is not None:
            return self.block[: self.count]
        arrays = self.rows
        if len({a.shape for a in arrays}) > 1:
            return [a.astype(np.float32, copy=False) for a in arrays]
        # Fill a float32 block row by row, dropping each compact row as it is copied.
        out = np.empty((len(arrays), *arrays[0].shape), dtype=np.float32)
        for i in range(len(arrays)):
            out[i] = arrays[i]
            arrays[i] = out[i]  # release the stored-dtype copy
        return out


class _Progress:
    """Context manager yielding an ``advance()`` callable; a no-op when disabled."""

    def __init__(self, enabled: bool, description: str, total: int) -> None:
        self.enabled, self.description, self.total = enabled, description, total
        self._bar: Any = None

    def __enter__(self) -> Callable[[], None]:
        if not self.enabled:
            return lambda: None
        from merkit.core.progress import progress_bar

        self._bar = progress_bar()
        self._bar.start()
        task = self._bar.add_task(self.description, total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


# ---- Running one song job over many songs in threads of one process, results in input order.
# Two drivers for a one-process extraction (:func:`merkit.representations.extract.compute` with
# ``n_jobs=1``):
# :func:`pipelined` overlaps one song's decoding with another's computing, :func:`threaded` runs
# whole songs in several threads. Both rely on the heavy steps being C code that releases the GIL.


class TwoStage(Protocol):
    """A song job split in an I/O stage and a compute stage (:class:`SongJobs`)."""

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
    :func:`merkit.audio.decode.quiet_stderr`); fd 2 belongs to the whole process, so a line another
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
    (:attr:`merkit.representations.registry.Representation.thread_safe`).

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
