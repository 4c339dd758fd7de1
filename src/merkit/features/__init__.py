"""Handcrafted features: merkit's own extractor, the optional Essentia backend, feature tables and
an in-fold ReliefF selector.

Submodules are imported on first use, so reading a feature table does not load librosa and nothing
here imports the AGPL Essentia unless its backend is called.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "OWN_FEATURE_NAMES": "own",
    "extract_own_features": "own",
    "extract_essentia_features": "essentia_backend",
    "read_feature_table": "tables",
    "ReliefFSelector": "selection",
    "relieff_scores": "selection",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        module = importlib.import_module(f"merkit.features.{_EXPORTS[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'merkit.features' has no attribute {name!r}")
