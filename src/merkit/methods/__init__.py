"""Methods by name: each a :class:`MethodSpec`, inputs plus a builder of an unfitted estimator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from merkit.errors import ConfigError
from merkit.methods.base import MethodSpec

METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to the registry (names are unique)."""
    if spec.name in METHODS:
        raise ValueError(f"method {spec.name!r} is registered twice")
    METHODS[spec.name] = spec
    return spec


def get_method(name: str) -> MethodSpec:
    """The method called ``name``; ConfigError listing the known ones otherwise."""
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; available: {', '.join(METHODS)}") from None


def read_settings(path: Path | None) -> dict[str, dict[str, Any]]:
    """Per-method overrides from a YAML file: ``{method: {param: value}}`` (``{}`` for None)."""
    if path is None:
        return {}
    import yaml

    if not path.is_file():
        raise ConfigError(f"config file does not exist: {path}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(loaded, dict) or not all(isinstance(v, dict) for v in loaded.values()):
        raise ConfigError(
            f"config file {path} must map method names to settings, e.g. 'svm: {{C: 4}}'"
        )
    return loaded


def _register_builtin() -> None:
    from merkit.methods import deep, hybrid, svm

    for spec in (svm.SVM, svm.SVM_OWN, *deep.SPECS, hybrid.HYBRID, hybrid.HYBRID_OWN):
        register_method(spec)


_register_builtin()

__all__ = ["METHODS", "MethodSpec", "get_method", "read_settings", "register_method"]
