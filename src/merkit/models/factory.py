"""Model factories by name: a registry name, an import reference or a callable → a builder.

Used by :class:`merkit.training.classifier.TorchClassifier` to build its network and to record, in
a saved
state, a reference that builds the same network again.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from merkit.core.errors import ConfigError, ModelError

ModelSpec = str | Callable[..., nn.Module]


def _import_factory(reference: str) -> Callable[..., nn.Module]:
    module_name, _, qualname = reference.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"cannot import model factory {reference!r}: {error}") from None
    if not callable(target):
        raise ConfigError(f"model factory {reference!r} is not callable")
    return target


def resolve_factory(model: ModelSpec) -> Callable[..., nn.Module]:
    """The callable that builds ``model``.

    Parameters
    ----------
    model : str or callable
        A registry name (``"cnn"``), an import reference ``"package.module:Factory"``, or a
        callable returning an ``nn.Module`` (e.g. a model class).

    Raises
    ------
    ConfigError
        Unknown name or unimportable reference.
    """
    if callable(model):
        return model
    if not isinstance(model, str):
        raise ConfigError(f"model must be a registry name or a callable, got {model!r}")
    if ":" in model:
        return _import_factory(model)
    from merkit.models import MODELS

    try:
        return MODELS[model]
    except KeyError:
        raise ConfigError(
            f"unknown model {model!r}; known models: {', '.join(sorted(MODELS))}"
        ) from None


def model_reference(model: ModelSpec) -> str:
    """A string that :func:`resolve_factory` turns back into ``model`` (for saved states).

    Raises
    ------
    ModelError
        If a callable cannot be imported by name (a lambda or a locally defined class).
    """
    if isinstance(model, str):
        return model
    module = getattr(model, "__module__", None)
    qualname = getattr(model, "__qualname__", None)
    if not module or not qualname or "<" in qualname:
        raise ModelError(
            f"cannot save a model built by {model!r}: use a registry name or an importable "
            "module-level factory"
        )
    return f"{module}:{qualname}"


def accepts(factory: Callable[..., Any], name: str) -> bool:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return name in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )
