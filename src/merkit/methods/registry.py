"""The method registry: each methods module registers its specs where they are defined."""

from __future__ import annotations

from merkit.core.registry import Registry, suggest
from merkit.methods.base import MethodSpec

METHODS: Registry[MethodSpec] = Registry("method")
"""Every method by name (``merkit methods`` lists them)."""


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to :data:`METHODS` under its name (names are unique) and return it."""
    return METHODS.register(spec.name, spec)


def get_method(name: str) -> MethodSpec:
    """The method called ``name``; ConfigError naming the closest and listing the known ones."""
    return METHODS.get(name)


__all__ = ["METHODS", "get_method", "register_method", "suggest"]
