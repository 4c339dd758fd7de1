"""merkit: music emotion recognition in Russell's four arousal/valence quadrants."""

from merkit._version import __version__
from merkit.core.errors import AudioError, ConfigError, DataError, MerkitError, ModelError
from merkit.core.labels import QUADRANT_MEANINGS, QUADRANTS


def __getattr__(name: str) -> object:
    # Lazy, so `import merkit` stays light: load_model pulls in scikit-learn and the models.
    if name == "load_model":
        from merkit.product.predict import load_model

        return load_model
    raise AttributeError(f"module 'merkit' has no attribute {name!r}")


__all__ = [
    "QUADRANTS",
    "QUADRANT_MEANINGS",
    "AudioError",
    "ConfigError",
    "DataError",
    "MerkitError",
    "ModelError",
    "__version__",
    "load_model",
]
