"""The method registry: each methods module registers its specs where they are defined."""

from __future__ import annotations

import difflib

from merkit.core.errors import ConfigError
from merkit.methods.base import MethodSpec

METHODS: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to the registry (names are unique) and return it."""
    if spec.name in METHODS:
        raise ValueError(f"method {spec.name!r} is registered twice")
    METHODS[spec.name] = spec
    return spec


def suggest(name: str, known: list[str] | tuple[str, ...]) -> str:
    """``"; did you mean 'svm'?"`` for the closest of ``known`` (empty when none is close)."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


def get_method(name: str) -> MethodSpec:
    """The method called ``name``; ConfigError naming the closest and listing the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(
            f"unknown method {name!r}{suggest(name, tuple(METHODS))} "
            f"(available: {', '.join(METHODS)})"
        ) from None
