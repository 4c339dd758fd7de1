"""Installed libraries: the versions a model depends on, and the optional extras a command needs.

``pip install merkit`` brings what ``predict``, ``serve`` and ``train`` of the shipped models need;
research parts (tuning, statistics, augmentation, oversampling) come with ``merkit[research]``,
Ray with ``merkit[ray]``, OpenL3 with ``merkit[openl3]``. :func:`require_extra` imports such a
library where it is used and, when it is absent, raises one :class:`~merkit.core.errors.MerkitError`
line naming the extra to install.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
from collections.abc import Sequence
from types import ModuleType

from merkit.core.errors import MissingExtraError

LIBRARIES = ("numpy", "scikit-learn", "torch", "librosa", "soundfile", "soxr")
"""Libraries whose versions a manifest records."""

RESULT_LIBRARIES = ("numpy", "scikit-learn", "librosa", "torch")
"""Libraries whose major.minor version can change a model's numbers (features, unpickled
estimators, network layers); ``torch`` only for estimators saved in torch format."""


CPU_FEATURES = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
"""CPU features that change the last bits of float results (BLAS kernels, bf16 in hardware): two
machines give bit-identical answers only where their CPU model and these features agree."""


def cpu_kind() -> tuple[str, list[str]]:
    """This machine's CPU model name and which of :data:`CPU_FEATURES` it has (Linux
    ``/proc/cpuinfo``; ``("unknown", [])`` where it cannot be read)."""
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name") and model == "unknown":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return model, [f for f in CPU_FEATURES if f in flags]


class ModelVersionWarning(UserWarning):
    """A library that computes a model's numbers differs from the version that trained it."""


EXTRAS: dict[str, str] = {
    "optuna": "research",
    "statsmodels": "research",
    "scikit_posthocs": "research",
    "audiomentations": "research",
    "imblearn": "research",
    "h5py": "research",
    "matplotlib": "research",
    "ray": "ray",
    "openl3": "openl3",
}
"""The extra (``pip install 'merkit[EXTRA]'``) that brings each optional library, by module."""


def require_extra(module: str, *, needed_by: str) -> ModuleType:
    """Import the optional library ``module`` (a key of :data:`EXTRAS`, or a submodule of one).

    Parameters
    ----------
    module : str
        The module to import, e.g. ``"optuna"`` or ``"statsmodels.stats.multitest"``.
    needed_by : str
        What needs it, for the message: ``"merkit tune"``, ``"the tfm augmentation"``.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingExtraError
        The library is not installed; one line naming the extra, e.g. ``merkit tune needs the
        research extra: pip install 'merkit[research]'``.
    """
    top = module.split(".")[0]
    extra = EXTRAS[top]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] != top:
            raise  # the library is there but one of its own imports is broken: not ours to hide
        raise MissingExtraError(
            f"{needed_by} needs the {extra} extra: pip install 'merkit[{extra}]'"
        ) from None


RESEARCH_COMMAND_LIBRARIES = ("matplotlib", "statsmodels", "scikit_posthocs")
"""What ``merkit benchmark`` and ``merkit report`` need beyond the core: plots and statistics."""


def require_extras(modules: Sequence[str], *, needed_by: str) -> None:
    """:func:`require_extra` for each of ``modules``, found but not imported (a command checks
    its extras before any work)."""
    for module in modules:
        if not extra_available(module):
            require_extra(module, needed_by=needed_by)


def extra_available(module: str) -> bool:
    """Whether the optional library ``module`` can be imported (found, not imported)."""
    import importlib.util

    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except ImportError:  # a finder that refuses the name outright
        return False


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
    "EXTRAS",
    "LIBRARIES",
    "RESEARCH_COMMAND_LIBRARIES",
    "RESULT_LIBRARIES",
    "ModelVersionWarning",
    "extra_available",
    "library_versions",
    "merkit_version",
    "require_extra",
    "require_extras",
    "version_mismatches",
]
