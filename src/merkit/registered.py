"""What a model's manifest may name: registered representations and estimators only.

A manifest names the functions and classes that prediction imports (an input's ``fn``, a torch
estimator's ``class_path``); editing the JSON file must not make merkit import and call any
module. :func:`check_registered` asks the registries by name before anything is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from merkit.core.errors import ModelError
from merkit.core.moved import current_path

SELF_SAVING_ESTIMATORS: set[str] = {"merkit.training.classifier:TorchClassifier"}
"""``module:Class`` of the estimators a manifest may name with ``estimator.format = "torch"``
(their class is imported and its ``load`` called); add one with
:func:`register_estimator_class`."""


def register_estimator_class(cls: type) -> type:
    """Allow manifests to name ``cls`` (an estimator with ``save(path)`` / ``load(path)``)."""
    SELF_SAVING_ESTIMATORS.add(current_path(f"{cls.__module__}:{cls.__qualname__}"))
    return cls


def check_registered(manifest: Any, where: Path) -> None:
    """Refuse a manifest (a :class:`merkit.product.model_dir.ModelManifest`) that names code this
    merkit has not registered, before any import.

    A manifest names functions and classes merkit imports: each representation input must be a
    registered representation computed by its registered function (``fn``), and an estimator
    loaded by its class (``format: torch``) a registered one (:data:`SELF_SAVING_ESTIMATORS`).
    Only the registries are asked, by name; nothing the manifest names is imported here.

    Raises
    ------
    ModelError
        Naming the manifest entry and what it names.
    """
    from merkit.representations.registry import REPRESENTATIONS

    for i, spec in enumerate(manifest.inputs):
        if spec.kind != "representation":
            continue
        rep = REPRESENTATIONS.get(spec.name)
        if rep is None:
            raise ModelError(
                f"{where}: inputs[{i}] names the representation {spec.name!r}, which this "
                f"merkit does not have (known: {', '.join(sorted(REPRESENTATIONS))})"
            )
        if spec.fn is not None and current_path(spec.fn) != current_path(rep.fn):
            raise ModelError(
                f"refusing {where}: inputs[{i}].fn is {spec.fn!r}, but the representation "
                f"{spec.name!r} is computed by {rep.fn!r}; a manifest may name only registered "
                "representations and estimators (nothing it names was imported)"
            )
    info = manifest.estimator
    if (
        info is not None
        and info.format == "torch"
        and current_path(info.class_path) not in SELF_SAVING_ESTIMATORS
    ):
        raise ModelError(
            f"refusing {where}: estimator.class_path {info.class_path!r} is not a registered "
            f"estimator ({', '.join(sorted(SELF_SAVING_ESTIMATORS))}); a manifest may name only "
            "registered representations and estimators (nothing it names was imported)"
        )


__all__ = ["SELF_SAVING_ESTIMATORS", "check_registered", "register_estimator_class"]
