"""Companion estimators of a model directory (:class:`merkit.product.model_dir.Companions`): written
beside the quadrant estimator, whose file is copied byte for byte, and loaded with checksums."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from merkit.core import atomic as atomic_dir
from merkit.core.errors import ModelError
from merkit.product.model_dir import (
    MANIFEST,
    MODEL_CARD,
    Companions,
    EstimatorFile,
    ModelManifest,
    _class_path,
    _sha256,
    load_estimator,
    read_manifest,
)


def save_companions(
    model_dir: Path | str,
    objects: dict[str, Any],
    update: dict[str, Any],
    card: str | None = None,
) -> ModelManifest:
    """Add (or replace) companion estimators of an existing model directory.

    ``objects`` maps ``"axes"`` (and optionally ``"familiarity"``) to fitted objects, written as
    ``<name>.joblib``; ``update`` holds the other :class:`Companions` fields. Every other file is
    copied byte for byte (the quadrant estimator's answers do not move), and the new directory
    replaces the old one atomically. ``card`` replaces the model card when given.

    Raises
    ------
    ModelError
        ``model_dir`` is not a model directory, or writing fails.
    """
    import joblib

    model_dir = Path(model_dir)
    manifest = read_manifest(model_dir)
    staging: Path | None = None
    try:
        staging = atomic_dir.staging_dir(model_dir)
        for item in model_dir.iterdir():
            if item.is_file():
                shutil.copy2(item, staging / item.name)
        files: dict[str, EstimatorFile] = {}
        for name, obj in objects.items():
            path = staging / f"{name}.joblib"
            joblib.dump(obj, path, compress=3)
            files[name] = EstimatorFile(
                format="joblib", file=path.name, class_path=_class_path(obj), sha256=_sha256(path)
            )
        companions = Companions(**files, **update)
        manifest = manifest.model_copy(update={"companions": companions})
        (staging / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
        if card is not None:
            (staging / MODEL_CARD).write_text(card)
        atomic_dir.fsync_tree(staging)
        atomic_dir.replace_dir(staging, model_dir)
    except OSError as exc:
        raise ModelError(f"cannot write the model directory {model_dir}: {exc}") from None
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return manifest


def load_companions(manifest: ModelManifest, path: Path | str) -> dict[str, Any]:
    """The companion estimators of a model directory (``{}`` when it has none), checksummed.

    Raises
    ------
    ModelError
        A companion file is missing or damaged.
    """
    path = Path(path)
    companions = manifest.companions
    if companions is None:
        return {}
    loaded = {}
    for name in ("axes", "familiarity"):
        info = getattr(companions, name)
        if info is None:
            continue
        if not (path / info.file).is_file():
            raise ModelError(f"model {path} is incomplete: {info.file} is missing")
        loaded[name] = load_estimator(info, path)
    return loaded


__all__ = ["load_companions", "save_companions"]
