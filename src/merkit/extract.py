"""Compute a representation for every song of a dataset, through the on-disk feature cache.

:func:`compute` is the one driver: each song's value is read from :mod:`merkit.cache` or computed
(in worker processes from :mod:`merkit.parallel` when ``n_jobs > 1``), validated, and stacked.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from merkit.cache import FeatureCache, NullCache, key_for
from merkit.errors import ConfigError, DataError
from merkit.representations import Representation, get_representation

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

    def key(self, source: AudioSource) -> str:
        """The cache key of this song's value."""
        key_params = {"sr": self.sr, **self.params}
        if self.rep.stochastic:
            key_params["__seed__"] = int(self.seed)
        return key_for(source.key, self.rep.name, key_params, self.rep.version)

    def cached(self, source: AudioSource) -> np.ndarray | None:
        """The cached, valid value of this song, or None (an unusable entry is logged)."""
        cached = self.cache.get(self.key(source))
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

    def __call__(self, source: AudioSource) -> tuple[np.ndarray, bool]:
        """Value of the song in its storage dtype, and whether it came from the cache.

        Runs in a worker when ``n_jobs > 1``: it returns the compact stored array (float16 for
        the log-mels), which halves what travels back to the parent process.
        """
        cached = self.cached(source)
        if cached is not None:
            return cached, True
        y = source.load(self.sr)
        value = np.asarray(
            self.rep.load_fn()(y, self.sr, seed=song_seed(source.key, self.seed), **self.params)
        )
        del y  # the waveform is not needed any more; keep peak memory to one song per worker
        stored = value.astype(self.rep.dtype)
        self.cache.put(self.key(source), stored)
        return stored, False


SongMapper = Callable[[SongJob, list["AudioSource"]], Iterator[tuple[np.ndarray, bool]]]
"""Runs a :class:`SongJob` over sources and yields its results in input order (e.g. on Ray)."""


@dataclass
class ComputeStats:
    """How a :func:`compute` call was served: songs computed now and songs read from the cache."""

    computed: int = 0
    cached: int = 0


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
        Songs processed in parallel (:mod:`merkit.parallel` worker processes, which end with
        this one); ``-1`` uses every core.
    progress : bool
        Show a rich progress bar.
    seed : int
        Global seed; each song gets :func:`song_seed` of it and its content key.
    stats : ComputeStats, optional
        Filled with how many songs were computed and how many came from the cache.
    mapper : callable, optional
        Runs the per-song :class:`SongJob` over the sources instead of :mod:`merkit.parallel`
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
    rep = get_representation(name)
    if n_jobs == 0:
        raise ConfigError("n_jobs must be a positive number of processes or -1 (all cores), not 0")
    merged = {**rep.params, **(params or {})}
    sr = int(merged.pop("sr", rep.sr))
    cache = FeatureCache() if cache is None else cache
    songs = list(dataset.songs)
    missing = [s.song_id for s in songs if s.source is None]
    if missing:
        raise DataError(
            f"representation {name!r} needs audio, but {len(missing)} song(s) have none: "
            + ", ".join(missing[:10])
        )
    rep.load_fn()  # fail early (ConfigError) if the function cannot be imported

    from merkit.parallel import map_ordered

    job = SongJob(rep, sr, merged, cache, int(seed))
    sources = [song.source for song in songs]
    if mapper is None:
        results = map_ordered(job, sources, n_jobs, warm_numba=rep.uses_numba)
    else:
        results = mapper(job, sources)
    arrays: list[np.ndarray] = []
    stats = stats if stats is not None else ComputeStats()
    with _Progress(progress, f"{name} ({len(songs)} songs)", len(songs)) as advance:
        for array, was_cached in results:
            arrays.append(array)
            if was_cached:
                stats.cached += 1
            else:
                stats.computed += 1
            advance()
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
        from merkit.progress import progress_bar

        self._bar = progress_bar()
        self._bar.start()
        task = self._bar.add_task(self.description, total=self.total)
        return lambda: self._bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
