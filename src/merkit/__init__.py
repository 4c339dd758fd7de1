"""merkit: music emotion recognition in Russell's four arousal/valence quadrants."""

from merkit.errors import AudioError, ConfigError, DataError, MerkitError, ModelError
from merkit.labels import QUADRANT_MEANINGS, QUADRANTS

__version__ = "0.1.0"

__all__ = [
    "QUADRANTS",
    "QUADRANT_MEANINGS",
    "AudioError",
    "ConfigError",
    "DataError",
    "MerkitError",
    "ModelError",
    "__version__",
]
