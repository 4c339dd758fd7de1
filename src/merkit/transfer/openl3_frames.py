"""OpenL3 frame embeddings (Cramer et al. 2019), through the optional ``openl3`` package.

The paper's "OpenL3 + RF" (§3.5, after Koh & Dubnov) embeds each clip with ``openl3`` (music
content, ``mel256`` input, 512-d, 1 s windows every 0.1 s: about 298 × 512 for a 30 s clip) and
trains a random forest on it. ``openl3`` needs TensorFlow and ships its weights inside its pip
package; merkit never downloads them at run time. Install with ``pip install 'merkit[openl3]'``.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

from merkit.core.errors import ConfigError

INSTALL_HINT = (
    "OpenL3 embeddings need the optional package 'openl3' (TensorFlow; its model weights come "
    "with the pip package). Install it with: pip install 'merkit[openl3]'"
)


def openl3_available() -> bool:
    """Whether the ``openl3`` package can be imported."""
    return importlib.util.find_spec("openl3") is not None


def require_openl3() -> None:
    """Raise one :class:`ConfigError` saying how to install ``openl3`` when it is absent."""
    if not openl3_available():
        raise ConfigError(INSTALL_HINT)


def openl3_version() -> str | None:
    """The installed ``openl3`` version, or None."""
    if not openl3_available():
        return None
    from importlib.metadata import version

    return version("openl3")


def openl3_frames(
    y: np.ndarray,
    sr: int,
    *,
    seed: int = 0,
    input_repr: str = "mel256",
    content_type: str = "music",
    embedding_size: int = 512,
    hop_size: float = 0.1,
    **_: Any,
) -> np.ndarray:
    """Frame embeddings ``(frames, embedding_size)`` of one clip (openl3 resamples to 48 kHz)."""
    require_openl3()
    import openl3

    embedding, _timestamps = openl3.get_audio_embedding(
        np.asarray(y, dtype=np.float32),
        sr,
        input_repr=input_repr,
        content_type=content_type,
        embedding_size=embedding_size,
        hop_size=hop_size,
        center=True,
        verbose=False,
    )
    return np.asarray(embedding, dtype=np.float32)


__all__ = ["INSTALL_HINT", "openl3_available", "openl3_frames", "openl3_version", "require_openl3"]
