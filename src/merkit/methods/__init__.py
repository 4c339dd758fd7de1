"""Methods by name: each a :class:`MethodSpec`, inputs plus a builder of an unfitted estimator.

Each methods module registers its specs with :func:`register_method` where they are defined;
importing this package imports them. :func:`resolve_method` turns a name and settings into inputs
and a validated estimator.
"""

from __future__ import annotations

from merkit.methods.base import MethodSpec
from merkit.methods.registry import METHODS, get_method, register_method
from merkit.methods.resolve import ResolvedMethod, merge_settings, read_settings, resolve_method

# Imported for their registrations (order = the order ``merkit methods`` lists them).
from merkit.methods import svm, deep, augmented, hybrid, segment, embedding, transfer, fusion  # noqa: F401  isort: skip
from merkit.methods import deepsmote  # noqa: F401  isort: skip

# the pre-trained networks' representations, which methods and settings name
import merkit.transfer.representations  # noqa: F401  isort: skip

__all__ = [
    "METHODS",
    "MethodSpec",
    "ResolvedMethod",
    "get_method",
    "merge_settings",
    "read_settings",
    "register_method",
    "resolve_method",
]
