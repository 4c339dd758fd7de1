"""Saving each fold's fitted estimator (``merkit benchmark --save-models``).

An estimator with its own ``save(path)`` (a :class:`~merkit.training.classifier.TorchClassifier`)
writes
``<fold>.pt``; any other (scikit-learn pipelines, including ones holding torch classifiers, the
Hybrid) is pickled with joblib to ``<fold>.joblib`` with its sha256 in ``<fold>.joblib.sha256``,
so a damaged or swapped file is detected before it is unpickled.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from merkit.core.errors import ConfigError, ModelError


def check_saveable(method: str, estimator: Any) -> None:
    """Refuse before any work an estimator that neither saves itself nor pickles.

    Raises
    ------
    ConfigError
        Naming the method and why it cannot be saved.
    """
    if callable(getattr(estimator, "save", None)):
        return
    try:
        pickle.dumps(estimator)
    except Exception as exc:
        raise ConfigError(
            f"--save-models: method {method!r} cannot be saved ({type(exc).__name__}: {exc}); "
            "run it without --save-models"
        ) from None


def save_model(model: Any, stem: Path) -> Path:
    """Save a fitted estimator next to ``stem`` (no suffix); returns the file written."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    if callable(getattr(model, "save", None)):
        return Path(model.save(stem.with_suffix(".pt")))
    import joblib

    path = stem.with_suffix(".joblib")
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        joblib.dump(model, temp)
        digest = _sha256(Path(temp))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    path.with_name(path.name + ".sha256").write_text(f"{digest}  {path.name}\n")
    return path


def load_model(path: Path) -> Any:
    """Load a model written by :func:`save_model` (checking a joblib file's sha256 first)."""
    if path.suffix == ".pt":
        from merkit.training.classifier import TorchClassifier

        return TorchClassifier.load(path)
    import joblib

    sidecar = path.with_name(path.name + ".sha256")
    if not sidecar.is_file():
        raise ModelError(f"{path}: no checksum file {sidecar.name}; refusing to unpickle it")
    expected = sidecar.read_text().split()[0] if sidecar.read_text().strip() else ""
    if _sha256(path) != expected:
        raise ModelError(f"{path} does not match its checksum {sidecar.name}; not loading it")
    return joblib.load(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
