"""On-disk cache of per-song arrays (log-mels, chunks, handcrafted features).

One ``.npy`` file per (audio content, representation, parameters, version), named by the SHA-256
of a canonical JSON of those four things and sharded into 256 sub-folders. Writes go to a temporary
file in the same folder and are moved into place with :func:`os.replace`, which is atomic on POSIX
and Windows: a reader sees either no file or a whole one, so several processes may fill one cache
at once. A file that still fails to load (disk full, a crash mid-write on a filesystem without
ordered metadata) counts as a miss and is recomputed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from merkit.core.errors import ConfigError

_COUNTS = threading.Lock()
"""Guards the hit and miss counts: several threads of one extraction look songs up at once."""

CACHE_ENV = "MERKIT_CACHE"
"""Environment variable that overrides the default cache root."""


def default_cache_root() -> Path:
    """``$MERKIT_CACHE`` if set, else ``~/.cache/merkit``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "merkit"


def _json_default(value: Any) -> Any:
    """Make numpy scalars/arrays and paths JSON-serialisable for key hashing."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise ConfigError(
        f"cache key parameter of type {type(value).__name__} is not JSON-serialisable: {value!r}"
    )


def key_for(source_key: str, rep_name: str, params: Mapping[str, Any], version: str) -> str:
    """Cache key: SHA-256 hex of a canonical JSON of the four inputs.

    Parameters
    ----------
    source_key : str
        The audio *content* key (:attr:`merkit.datasets.base.AudioSource.key`).
    rep_name : str
        Representation name, e.g. ``"logmel"``.
    params : Mapping
        Every parameter that changes the output (keys sorted, so order does not matter).
    version : str
        Bumped when the implementation's output changes.

    Returns
    -------
    str
        64 hex characters.
    """
    payload = {
        "source": source_key,
        "representation": rep_name,
        "params": dict(params),
        "version": version,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class FeatureCache:
    """Arrays stored as ``<root>/features/<key[:2]>/<key>.npy``.

    Parameters
    ----------
    root : Path or str, optional
        Cache folder; default :func:`default_cache_root`. Created on the first write.

    Attributes
    ----------
    hits, misses : int
        Counts of :meth:`get` calls in this process that found / did not find a usable array.
    """

    key_for = staticmethod(key_for)

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_cache_root()
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r})"

    def path_for(self, key: str) -> Path:
        """File that holds (or would hold) ``key``."""
        if len(key) < 3 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"cache keys are lowercase hex digests, got {key!r}")
        return self.root / "features" / key[:2] / f"{key}.npy"

    def __contains__(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def get(self, key: str) -> np.ndarray | None:
        """The stored array, or ``None`` when absent or unreadable (a corrupt file is deleted)."""
        path = self.path_for(key)
        try:
            array = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            array = None
        except (OSError, ValueError, EOFError):
            # Truncated or garbled: drop it so the caller recomputes and rewrites it.
            with contextlib.suppress(OSError):
                path.unlink()
            array = None
        with _COUNTS:
            if array is None:
                self.misses += 1
            else:
                self.hits += 1
        return array

    def put(self, key: str, array: np.ndarray, dtype: np.dtype | str | None = None) -> Path:
        """Store ``array`` (cast to ``dtype`` when given) atomically and return its path.

        Raises
        ------
        ConfigError
            If the cache folder cannot be written.
        """
        path = self.path_for(key)
        data = np.ascontiguousarray(array if dtype is None else np.asarray(array).astype(dtype))
        tmp_name: str | None = None
        # The temporary file lives in the final folder so os.replace never crosses filesystems.
        prefix = f".{key[:16]}-"
        try:
            try:
                fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
            except FileNotFoundError:  # the shard's first entry
                path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
            with open(fd, "wb") as handle:
                np.save(handle, data, allow_pickle=False)
            os.replace(tmp_name, path)
            tmp_name = None
        except OSError as error:
            raise ConfigError(
                f"cannot write to the feature cache '{self.root}': {error.strerror or error} "
                f"(set {CACHE_ENV} to a writable folder)"
            ) from None
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)
        return path


class NullCache:
    """A cache that stores nothing: every :meth:`get` misses."""

    root: Path | None = None

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return "NullCache()"

    key_for = staticmethod(key_for)

    def get(self, key: str) -> np.ndarray | None:
        """Always ``None``."""
        with _COUNTS:
            self.misses += 1
        return None

    def put(self, key: str, array: np.ndarray, dtype: np.dtype | str | None = None) -> None:
        """Discard ``array``."""
        return None
