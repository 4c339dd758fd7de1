"""Per-song input representations by name: log-mel images, chunked log-mels, waveform chunks,
own features and augmented copies.

A name-keyed registry of :class:`Representation` entries (what a representation computes, at what
sample rate, with which parameters and version, stored in which dtype and shape). The pure
functions live in :mod:`merkit.representations.logmel` (re-exported here);
:func:`merkit.representations.extract.compute` applies
a representation to every song of a dataset through the cache.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import ValidationError

from merkit.audio.frontend import CANONICAL_BAND_SR, CANONICAL_TRIM_DB
from merkit.core.errors import ConfigError
from merkit.core.registry import Registry
from merkit.features.own import extract_own_features
from merkit.representations.codec import band_limited_own_features, codec_own_features
from merkit.representations.logmel import (
    CHUNK_SAMPLES,
    LogMelConfig,
    chunk_waveform,
    logmel,
    logmel_chunks,
)

# ---------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class Representation:
    """A named per-song transform ``fn(y, sr, *, seed, **params) -> np.ndarray``.

    Attributes
    ----------
    name : str
        Registry key.
    fn : callable
        The function itself. A representation whose library is heavy or optional (librosa's
        augmentations, torch networks, openl3) registers a small adapter that imports it when
        called, so ``import merkit`` stays light and a missing optional backend fails only when
        its representation is computed.
    sr : int
        Sample rate the audio is loaded at.
    params : dict
        Default keyword arguments of ``fn``; part of the cache key.
    version : str
        Bump when ``fn``'s output changes, to invalidate cached arrays.
    dtype : str
        Storage dtype in the cache (``"float16"`` halves disk use where the precision is ample).
        :func:`compute` rounds through it even when nothing is cached, so a cold and a warm run
        return identical arrays.
    stochastic : bool
        Whether ``fn`` uses ``seed``; only then does the global seed enter the cache key.
    description : str
        One line for listings.
    shape : callable, optional
        ``shape(sr, params)`` gives the expected array shape, ``None`` for a free axis (e.g. the
        number of chunks); a cached array of another shape is recomputed. ``None`` checks nothing.
    finite : bool
        Whether every value must be finite. True for every built-in representation: log-mels are
        floored dB values, waveforms are checked on load, and the own-feature extractor maps
        undefined statistics to 0.
    uses_numba : bool
        Whether ``fn`` calls librosa's numba-compiled functions (the numba cache is verified
        before computing, see :mod:`merkit.core.numba_cache`).
    thread_safe : bool
        Whether ``fn`` may run in two threads of one process at once: then a one-process
        extraction computes two whole songs at a time in threads
        (:func:`merkit.representations.extract.threaded`), else it decodes ahead in a thread and
        computes here
        (:func:`merkit.representations.extract.pipelined`). Set for pure numpy/scipy functions
        whose heavy
        calls release the GIL; not for models with their own thread pools (torch, TensorFlow).
    batch_fn : callable, optional
        ``batch_fn(ys, sr, *, seeds, **params) -> list of np.ndarray``: :attr:`fn` of several
        songs at once (a network run on a batch; equal to ``fn`` of each up to float rounding),
        which the predictor uses for the windows of a track (:mod:`merkit.product.predict`).
    split : callable, optional
        ``split(params) -> FrontEndSplit``: :attr:`fn` with these parameters as a front end and
        the rest (:class:`FrontEndSplit`), so that representations of one song whose front ends
        are equal compute it once
        (:class:`merkit.representations.extract.SongJobs`: the ``*-canon`` entries).
    """

    name: str
    fn: Callable[..., np.ndarray]
    sr: int = 16_000
    params: dict[str, Any] = field(default_factory=dict)
    version: str = "1"
    dtype: str = "float32"
    stochastic: bool = False
    description: str = ""
    shape: Callable[[int, Mapping[str, Any]], tuple[int | None, ...]] | None = None
    finite: bool = True
    uses_numba: bool = False
    thread_safe: bool = False
    batch_fn: Callable[..., list[np.ndarray]] | None = None
    split: Callable[[Mapping[str, Any]], FrontEndSplit] | None = None

    def problem(self, array: np.ndarray, sr: int, params: Mapping[str, Any]) -> str | None:
        """Why ``array`` is not a valid stored value of this representation, or ``None``."""
        if array.dtype != np.dtype(self.dtype):
            return f"dtype {array.dtype}, expected {self.dtype}"
        if self.shape is not None:
            expected = self.shape(sr, params)
            if len(expected) != array.ndim or any(
                e is not None and e != n for e, n in zip(expected, array.shape, strict=True)
            ):
                shown = "x".join("*" if e is None else str(e) for e in expected)
                return f"shape {'x'.join(map(str, array.shape))}, expected {shown}"
        if array.size == 0:
            return "empty array"
        if self.finite and not np.all(np.isfinite(array)):
            return f"{int(np.size(array) - np.isfinite(array).sum())} NaN or infinite value(s)"
        return None

    @property
    def reference(self) -> str:
        """``"module:qualname"`` of :attr:`fn`, as a model manifest records it."""
        return f"{self.fn.__module__}:{self.fn.__qualname__}"


@dataclass(frozen=True)
class FrontEndSplit:
    """A representation's function as a front end and the rest:
    ``fn(y, sr, seed=seed, **params)`` is ``rest(front(y, sr), sr, seed=seed)``, bit for bit.

    Attributes
    ----------
    key : tuple
        Hashable; two splits with equal keys have front ends that give equal outputs for equal
        audio, so one song's front end can be computed once for both.
    front : callable
        ``front(y, sr) -> np.ndarray`` (it may change ``y`` in place).
    rest : callable
        ``rest(front_output, sr, *, seed) -> np.ndarray`` (it may change its input in place).
    """

    key: tuple[Any, ...]
    front: Callable[[np.ndarray, int], np.ndarray]
    rest: Callable[..., np.ndarray]


REPRESENTATIONS: Registry[Representation] = Registry("representation")
"""Every registered representation by name (``REPRESENTATIONS.get(name)``: a ConfigError listing
the known names for an unknown one). The pre-trained networks' representations register in
:mod:`merkit.transfer.representations`, which the layers that take names from users or model
manifests (methods, product) import."""


def inputs_need_numba(inputs: Iterable[Any]) -> bool:
    """Whether computing these model inputs (``InputSpec``-like: ``kind``, ``name``, ``fn``) from
    audio calls librosa's numba-compiled functions.

    Inputs the registry marks as numba-free, such as own features, do not; an input the registry
    does not know, or computed by another function than the registry's, counts as needing numba.
    """
    for spec in inputs:
        if spec.kind != "representation":
            continue
        rep = REPRESENTATIONS.get(spec.name, None)
        if rep is None or rep.uses_numba or (spec.fn is not None and spec.fn != rep.reference):
            return True
    return False


def register_representation(rep: Representation, *, replace: bool = False) -> Representation:
    """Add ``rep`` to :data:`REPRESENTATIONS` (``replace=True`` to overwrite an existing name)."""
    return REPRESENTATIONS.register(rep.name, rep, replace=replace)


def get_representation(name: str) -> Representation:
    """Look up a representation by name.

    Raises
    ------
    ConfigError
        For an unknown name; the message lists the known ones.
    """
    return REPRESENTATIONS.get(name)


def _logmel_config(sr: int, params: Mapping[str, Any]) -> LogMelConfig:
    try:
        return LogMelConfig(**{**params, "sr": sr})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in error.errors()
        )
        raise ConfigError(f"invalid log-mel parameters: {problems}") from None


def logmel_representation(y: np.ndarray, sr: int, *, seed: int = 0, **params: Any) -> np.ndarray:
    """Registry adapter: :func:`logmel` with ``LogMelConfig(sr=sr, **params)`` (seed unused)."""
    return logmel(y, _logmel_config(sr, params))


def logmel_chunks_representation(
    y: np.ndarray, sr: int, *, seed: int = 0, chunk: int = CHUNK_SAMPLES, **params: Any
) -> np.ndarray:
    """Registry adapter: :func:`logmel_chunks` (seed unused)."""
    return logmel_chunks(y, _logmel_config(sr, params), chunk=chunk)


def waveform_chunks_representation(
    y: np.ndarray, sr: int, *, seed: int = 0, chunk: int = CHUNK_SAMPLES
) -> np.ndarray:
    """Registry adapter: :func:`chunk_waveform` (seed unused)."""
    return chunk_waveform(y, chunk)


FRONT_END_KEYS = ("band_sr", "trim_db", "level_percentile", "level_dbfs")
"""Parameters of :func:`canonical_representation` that set the front end; the others belong to
the inner representation."""


def canonical_representation(
    y: np.ndarray,
    sr: int,
    *,
    seed: int = 0,
    inner: str,
    band_sr: int | None,
    trim_db: float | None,
    level_percentile: float = 100.0,
    level_dbfs: float = -0.1,
    **params: Any,
) -> np.ndarray:
    """Registry adapter: representation ``inner``'s function on
    :func:`merkit.audio.frontend.canonical`
    audio. ``params`` are ``inner``'s parameters (a ``*-canon`` entry holds them, so they key the
    cache). :func:`canonical_split` is this function in two steps."""
    front = canonical_front(
        y,
        sr,
        band_sr=band_sr,
        trim_db=trim_db,
        level_percentile=level_percentile,
        level_dbfs=level_dbfs,
    )
    return canonical_inner(front, sr, seed=seed, inner=inner, **params)


def canonical_front(
    y: np.ndarray,
    sr: int,
    *,
    band_sr: int | None,
    trim_db: float | None,
    level_percentile: float = 100.0,
    level_dbfs: float = -0.1,
) -> np.ndarray:
    """The front end of :func:`canonical_representation`:
    :func:`merkit.audio.frontend.canonical`."""
    from merkit.audio.frontend import canonical

    return canonical(
        y,
        sr,
        band_sr=band_sr,
        trim_db=trim_db,
        level_percentile=level_percentile,
        level_dbfs=level_dbfs,
    )


def canonical_inner(
    front: np.ndarray, sr: int, *, seed: int = 0, inner: str, **params: Any
) -> np.ndarray:
    """The rest of :func:`canonical_representation`: ``inner``'s function on the front end's
    output."""
    return get_representation(inner).fn(front, sr, seed=seed, **params)


CANONICAL_FRONT_DEFAULTS: dict[str, Any] = {
    k: p.default
    for k, p in inspect.signature(canonical_representation).parameters.items()
    if k in FRONT_END_KEYS and p.default is not inspect.Parameter.empty
}
"""The defaults of :func:`canonical_representation`'s front-end parameters, read off its
signature (a parameter given as its default keys the same front end as one left out)."""


def canonical_split(params: Mapping[str, Any]) -> FrontEndSplit:
    """:func:`canonical_representation` with ``params`` as :func:`canonical_front` and
    :func:`canonical_inner` (a :attr:`Representation.split`). The default model's two inputs
    (``own-features-canon``, ``crnn-tags3-canon``) share one front end this way (the soxr
    round trip of ``band_limit``: soxr took 13.7 instead of 7.4 ms of a prediction of a 30 s
    clip in a cProfile on the Xeon)."""
    from functools import partial

    settings = {
        **CANONICAL_FRONT_DEFAULTS,
        **{k: params[k] for k in FRONT_END_KEYS if k in params},
    }
    rest = {k: v for k, v in params.items() if k not in FRONT_END_KEYS}
    return FrontEndSplit(
        key=("canonical", *sorted(settings.items())),
        front=partial(canonical_front, **settings),
        rest=partial(canonical_inner, **rest),
    )


def classic_aug_representation(
    y: np.ndarray, sr: int, *, seed: int = 0, **params: Any
) -> np.ndarray:
    """Registry adapter: :func:`merkit.representations.augmented.classic_augmented_logmels`
    (imported when called: librosa's effects compile numba kernels on import)."""
    from merkit.representations.augmented import classic_augmented_logmels

    return classic_augmented_logmels(y, sr, seed=seed, **params)


def audiomentations_representation(
    y: np.ndarray, sr: int, *, seed: int = 0, **params: Any
) -> np.ndarray:
    """Registry adapter: :func:`merkit.representations.augmented.augmented_logmel` (imported
    when called, as :func:`classic_aug_representation`)."""
    from merkit.representations.augmented import augmented_logmel

    return augmented_logmel(y, sr, seed=seed, **params)


def _config_params(cfg: LogMelConfig) -> dict[str, Any]:
    return cfg.model_dump(exclude={"sr"})


# ---- Output shapes of the registered representations, from the sample rate and the parameters.
# Each function is ``shape(sr, params) -> tuple`` (``None`` for a length that depends on the song),
# a :class:`merkit.representations.registry.Representation`'s ``shape``; module-level functions, not
# lambdas, so that a representation pickles to worker processes.


def logmel_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    return (params.get("n_frames"), int(params.get("n_mels", 128)))


def classic_aug_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    return (4, *logmel_shape(sr, params))


def logmel_chunks_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    frames = 1 + int(params.get("chunk", CHUNK_SAMPLES)) // int(params.get("hop_length", 512))
    return (None, frames, int(params.get("n_mels", 128)))


def waveform_chunks_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    return (None, int(params.get("chunk", CHUNK_SAMPLES)))


def own_features_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    from merkit.features.own import OWN_FEATURE_NAMES

    return (len(OWN_FEATURE_NAMES),)


def codec_own_features_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    from merkit.features.own import OWN_FEATURE_NAMES
    from merkit.representations.codec import CODECS

    return (len(params.get("codecs", CODECS)), len(OWN_FEATURE_NAMES))


_CHUNK_CFG = LogMelConfig(n_frames=None, crop_samples=None)

for _rep in (
    Representation(
        name="logmel",
        fn=logmel_representation,
        params=_config_params(LogMelConfig()),
        # dB values in [-100, +60]: float16's 0.03 dB resolution there is far below model noise.
        dtype="float16",
        shape=logmel_shape,
        thread_safe=True,
        description="942 x 128 log-mel at 16 kHz (the paper's intent, correct filterbank)",
    ),
    Representation(
        name="logmel-paper",
        fn=logmel_representation,
        params=_config_params(LogMelConfig.paper_code()),
        dtype="float16",
        shape=logmel_shape,
        thread_safe=True,
        description="942 x 128 log-mel exactly as the paper's code computes it (quirks on)",
    ),
    Representation(
        name="logmel-chunks",
        fn=logmel_chunks_representation,
        params={**_config_params(_CHUNK_CFG), "chunk": CHUNK_SAMPLES},
        dtype="float16",
        shape=logmel_chunks_shape,
        thread_safe=True,
        description="n_chunks x 116 x 128 log-mels of 59 049-sample chunks (ShortChunk CNN)",
    ),
    Representation(
        name="waveform-chunks",
        fn=waveform_chunks_representation,
        params={"chunk": CHUNK_SAMPLES},
        dtype="float32",
        shape=waveform_chunks_shape,
        thread_safe=True,
        description="n_chunks x 59 049 raw waveform chunks (Sample CNN)",
    ),
    Representation(
        name="own-features",
        fn=extract_own_features,
        dtype="float32",
        # 2: float32 spectral analysis (values move by < 0.5 %, most by < 1e-4 relative);
        # computing it with merkit.audio.dsp instead of librosa changed no value, so still 2
        version="2",
        shape=own_features_shape,
        uses_numba=False,  # merkit.audio.dsp: numpy/scipy only
        description="merkit's own handcrafted feature vector (librosa's definitions, no numba)",
    ),
    Representation(
        name="own-features-bl",
        fn=band_limited_own_features,
        params={"via_sr": 48_000},
        dtype="float32",
        shape=own_features_shape,
        uses_numba=False,
        description="own features of the audio band-limited as any resampled file is (codecs)",
    ),
    Representation(
        name="codec-own-features",
        fn=codec_own_features,
        params={"codecs": ["mp3-22k", "opus-48k"]},
        dtype="float32",
        shape=codec_own_features_shape,
        uses_numba=False,
        description="own features after an MP3 and an Opus round trip (the codec augmentation)",
    ),
):
    register_representation(_rep)


# The canonical front end (merkit.audio.frontend) before a representation: the same band and ends
# for every encoding of a song. The inner entry's parameters and version key the cache too.
_FRONT_END = {"band_sr": CANONICAL_BAND_SR, "trim_db": CANONICAL_TRIM_DB}


def register_canonical(inner: str) -> Representation:
    """Register ``<inner>-canon``: the registered ``inner`` on the canonical front end."""
    base = REPRESENTATIONS.get(inner)
    return register_representation(
        Representation(
            name=f"{inner}-canon",
            fn=canonical_representation,
            params={"inner": inner, **_FRONT_END, **base.params},
            split=canonical_split,
            version=f"1.{base.version}",
            dtype=base.dtype,
            shape=base.shape,
            uses_numba=base.uses_numba,
            description=f"{inner} of the canonical front end (band to 6.3 kHz, ends trimmed)",
        )
    )


register_canonical("own-features")

# Augmented copies are stored per song, so taking a fold's training rows takes exactly the
# training songs' copies: augmentation can never leak across the train/test line.
register_representation(
    Representation(
        name="classic-aug",
        fn=classic_aug_representation,
        params=_config_params(LogMelConfig()),
        dtype="float16",
        stochastic=True,
        shape=classic_aug_shape,
        uses_numba=True,
        description="4 x 942 x 128: time shift, pitch shift ±2 st, time stretch, ±10 dB (Hybrid)",
    )
)
register_representation(
    Representation(
        name="classic-aug-paper",
        fn=classic_aug_representation,
        params={**_config_params(LogMelConfig.paper_code()), "compat": True},
        dtype="float16",
        stochastic=True,
        shape=classic_aug_shape,
        uses_numba=True,
        description="the classic augmentations exactly as the paper's code makes them",
    )
)
register_representation(
    Representation(
        name="classic-aug-compat",
        fn=classic_aug_representation,
        params={**_config_params(LogMelConfig()), "compat": True},
        dtype="float16",
        stochastic=True,
        shape=classic_aug_shape,
        uses_numba=True,
        description="classic copies drawn as the paper's code does (pitch always +2 st)",
    )
)
register_representation(
    Representation(
        name="classic-aug-gentle",
        fn=classic_aug_representation,
        params={**_config_params(LogMelConfig()), "stretch_rates": [0.8, 1.25]},
        dtype="float16",
        stochastic=True,
        shape=classic_aug_shape,
        uses_numba=True,
        description="classic copies with gentler time-stretch rates 0.8/1.25",
    )
)
for _transform, _what in (
    ("tfm", "time mask + band-stop filter"),
    ("sb", "seven-band parametric EQ"),
    ("rg", "random gain ±12 dB"),
    ("tanh", "tanh distortion (not in the paper)"),
):
    register_representation(
        Representation(
            name=f"aug-{_transform}",
            fn=audiomentations_representation,
            params={"transform": _transform, **_config_params(LogMelConfig())},
            dtype="float16",
            stochastic=True,
            shape=logmel_shape,
            uses_numba=True,
            description=f"942 x 128 log-mel of one audiomentations copy: {_what}",
        )
    )
