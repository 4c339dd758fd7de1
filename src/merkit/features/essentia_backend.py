"""Optional handcrafted features from Essentia's ``MusicExtractor`` (several thousand descriptors).

Essentia is AGPL-licensed, so merkit never imports it unless this backend is used; install it with
``pip install 'merkit[essentia]'``. The extractor's frame statistics (mean, var, stdev, median, min,
max and derivative moments) of low-level, rhythm and tonal descriptors are flattened to one named
numeric vector per file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Final

import numpy as np

from merkit.core.errors import AudioError, ConfigError

__all__ = ["ESSENTIA_MISSING", "extract_essentia_features", "flatten_pool"]

ESSENTIA_MISSING: Final[str] = (
    "the essentia backend needs the optional extra: pip install 'merkit[essentia]' (AGPL)"
)

# Descriptors that describe the file rather than the music, or whose length varies per file
# (a fixed-length vector is required to stack songs into a table).
_SKIPPED_PREFIXES: Final[tuple[str, ...]] = ("metadata.",)
_SKIPPED_NAMES: Final[frozenset[str]] = frozenset({"rhythm.beats_position"})
# File formats Essentia's MetadataReader accepts in the PyPI build; others are decoded first.
_NATIVE_SUFFIXES: Final[frozenset[str]] = frozenset({".wav", ".aiff", ".aif"})


def _import_essentia() -> Any:
    try:
        import essentia
        import essentia.standard as es
    except ImportError:
        raise ConfigError(ESSENTIA_MISSING) from None
    # Essentia logs every algorithm's info/warnings to stdout; keep the CLI output clean
    essentia.log.infoActive = False
    essentia.log.warningActive = False
    return es


def flatten_pool(pool: dict[str, Any]) -> tuple[tuple[str, ...], np.ndarray]:
    """Flatten Essentia descriptors into sorted names and float64 values.

    Parameters
    ----------
    pool : dict
        Descriptor name -> value, where a value is a number, a 1-D array (``name.000``, ...), a
        square matrix (upper triangle, ``name.00_01``, ...; covariances are symmetric) or a string.
        Strings are dropped, except ``*.scale`` which becomes ``*.scale_major`` (1.0 for "major").

    Returns
    -------
    names : tuple of str
    values : np.ndarray
    """
    names: list[str] = []
    values: list[float] = []
    for name in sorted(pool):
        if name in _SKIPPED_NAMES or name.startswith(_SKIPPED_PREFIXES):
            continue
        value = pool[name]
        if isinstance(value, str):
            if name.endswith(".scale") or name.endswith("_scale"):
                names.append(f"{name}_major")
                values.append(1.0 if value == "major" else 0.0)
            continue
        array = np.asarray(value, dtype=np.float64)
        if array.ndim == 0:
            names.append(name)
            values.append(float(array))
        elif array.ndim == 1:
            width = len(str(max(len(array) - 1, 0)))
            names.extend(f"{name}.{i:0{width}d}" for i in range(len(array)))
            values.extend(array.tolist())
        elif array.ndim == 2:
            rows, cols = np.triu_indices(array.shape[0], m=array.shape[1])
            width = len(str(max(array.shape) - 1))
            names.extend(
                f"{name}.{r:0{width}d}_{c:0{width}d}" for r, c in zip(rows, cols, strict=True)
            )
            values.extend(array[rows, cols].tolist())
    return tuple(names), np.asarray(values, dtype=np.float64)


def _as_wav(path: Path, workdir: Path) -> Path:
    """A WAV copy of ``path`` for formats Essentia cannot open itself (ogg/opus/mp3/flac)."""
    import soundfile as sf

    try:
        samples, sr = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"cannot decode {path}: {exc}") from None
    if samples.size == 0:
        raise AudioError(f"audio file {path} is empty")
    target = workdir / f"{path.stem}.wav"
    sf.write(target, samples.mean(axis=1), sr, subtype="FLOAT")
    return target


def extract_essentia_features(path: str | Path) -> tuple[tuple[str, ...], np.ndarray]:
    """Run Essentia's ``MusicExtractor`` on one audio file.

    Parameters
    ----------
    path : str or Path
        Audio file in any format soundfile reads (non-WAV files are decoded to a temporary WAV
        first, since Essentia's PyPI build cannot read their metadata).

    Returns
    -------
    names : tuple of str
        Sorted descriptor names (the same for every file).
    values : np.ndarray
        float64 values, ``len(names)`` long; NaN where Essentia produced NaN.

    Raises
    ------
    ConfigError
        If ``essentia`` is not installed.
    AudioError
        If the file is missing or cannot be decoded or analysed.
    """
    es = _import_essentia()
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file not found: {path}")
    with tempfile.TemporaryDirectory(prefix="merkit-essentia-") as tmp:
        source = path if path.suffix.lower() in _NATIVE_SUFFIXES else _as_wav(path, Path(tmp))
        try:
            features, _frames = es.MusicExtractor()(str(source))
        except RuntimeError as exc:
            raise AudioError(f"essentia could not analyse {path}: {exc}") from None
    pool = {name: features[name] for name in features.descriptorNames()}
    return flatten_pool(pool)
