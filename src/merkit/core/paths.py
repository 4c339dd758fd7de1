"""Where merkit keeps its own files: the cache root (features, the numba guard's stamps)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MERKIT_CACHE"
"""Environment variable that overrides the default cache root."""


def default_cache_root() -> Path:
    """``$MERKIT_CACHE`` if set, else ``~/.cache/merkit``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "merkit"


__all__ = ["CACHE_ENV", "default_cache_root"]
