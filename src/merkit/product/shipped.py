"""The models shipped inside the package, by name: ``default`` and ``fast``.

``merkit predict --model fast`` and ``merkit.load_model("fast")`` name a shipped model; any other
value is a model directory (a folder called ``fast`` where merkit runs is the user's, not ours).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from merkit.core.errors import ModelError
from merkit.product.model_dir import MANIFEST

SHIPPED_MODELS: dict[str, str] = {
    "default": "the best audio-only model: own features + CRNN tag log-odds (CRNNs downloaded)",
    "fast": "own features only (svm-own): no neural network, about half the CPU per clip",
}
"""Models shipped inside the package (``merkit/pretrained/<name>``), by name."""


def shipped_model_dir(name: str = "default") -> Path:
    """Where the shipped model ``name`` (a key of :data:`SHIPPED_MODELS`) lives."""
    from importlib.resources import files

    if name not in SHIPPED_MODELS:
        raise ModelError(f"no shipped model named {name!r} (shipped: {', '.join(SHIPPED_MODELS)})")
    return Path(str(files("merkit") / "pretrained" / name))


class FastModelWarning(UserWarning):
    """The default model's pre-trained checkpoints are missing, so the fast model answers."""


def missing_weights(model_dir: Path) -> list[str]:
    """Checkpoint files a model's inputs name (``checkpoints`` parameters) that the user has not
    put in ``$MERKIT_PRETRAINED``; merkit ships no third-party weights."""
    from merkit.product.model_dir import read_manifest
    from merkit.transfer.pooled import missing_checkpoints

    missing: list[str] = []
    for spec in read_manifest(model_dir).inputs:
        missing += missing_checkpoints(spec.params.get("checkpoints", []))
    return sorted(set(missing))


def resolve_model_dir(path: Path | str | None) -> Path:
    """The model directory meant by ``path``: the name of a shipped model (``default``,
    ``fast``) that is not also an existing folder here is that shipped model; anything else is
    the path itself. ``None`` is the default model, or, while the CRNN checkpoints it needs are
    not downloaded, the fast one, with a :class:`FastModelWarning` saying how to get them.

    Raises
    ------
    ModelError
        A shipped model whose files are not installed.
    """
    if path is None and (shipped_model_dir("default") / MANIFEST).is_file():
        missing = missing_weights(shipped_model_dir("default"))
        if missing:
            from merkit.transfer.pooled import CRNN_SOURCE, pretrained_dir

            warnings.warn(
                f"using the fast model: the default model needs {', '.join(missing)} in "
                f"{pretrained_dir()} (Won's CRNN taggers, MIT, from {CRNN_SOURCE}; or set "
                "$MERKIT_PRETRAINED)",
                FastModelWarning,
                stacklevel=2,
            )
            path = "fast"
    if path is None or (str(path) in SHIPPED_MODELS and not Path(path).exists()):
        where = shipped_model_dir("default" if path is None else str(path))
        if not (where / MANIFEST).is_file():
            raise ModelError(
                f"the shipped model {where.name!r} is not installed (expected {where}); "
                "pass a model directory made with 'merkit train'"
            )
        return where
    return Path(path)


__all__ = [
    "SHIPPED_MODELS",
    "FastModelWarning",
    "missing_weights",
    "resolve_model_dir",
    "shipped_model_dir",
]
