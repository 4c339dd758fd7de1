"""Versions a model depends on: merkit's, and the libraries that compute its numbers."""

from __future__ import annotations

import importlib.metadata
import platform

LIBRARIES = ("numpy", "scikit-learn", "torch", "librosa", "soundfile", "soxr")
"""Libraries whose versions a manifest records."""

RESULT_LIBRARIES = ("numpy", "scikit-learn", "librosa", "torch")
"""Libraries whose major.minor version can change a model's numbers (features, unpickled
estimators, network layers); ``torch`` only for estimators saved in torch format."""


class ModelVersionWarning(UserWarning):
    """A library that computes a model's numbers differs from the version that trained it."""


def merkit_version() -> str:
    """The running merkit's version."""
    from merkit._version import __version__

    return __version__


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries a model's numbers depend on (None: not installed)."""
    versions: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    versions["python"] = platform.python_version()
    return versions


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split("+")[0].split(".")[:2])


def version_mismatches(recorded_versions: dict[str, str | None], *, torch: bool) -> list[str]:
    """One line per library whose running major.minor version differs from the recorded one.

    Only libraries that can change the model's numbers are compared (:data:`RESULT_LIBRARIES`;
    torch only when ``torch``, i.e. for a torch model); a library the model was trained without is
    not compared.
    """
    running = library_versions()
    names = [n for n in RESULT_LIBRARIES if n != "torch" or torch]
    lines = []
    for name in names:
        recorded = recorded_versions.get(name)
        if not recorded:
            continue
        now = running.get(name)
        if now is None:
            lines.append(
                f"{name} {recorded} trained this model but {name} is not installed; "
                "its results may differ"
            )
        elif _major_minor(recorded) != _major_minor(now):
            lines.append(
                f"{name} {recorded} trained this model but {name} {now} is running; "
                "its results may differ"
            )
    return lines


__all__ = [
    "LIBRARIES",
    "RESULT_LIBRARIES",
    "ModelVersionWarning",
    "library_versions",
    "merkit_version",
    "version_mismatches",
]
