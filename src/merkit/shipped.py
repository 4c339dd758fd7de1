"""The models shipped inside the package, by name: ``default`` and ``fast``.

``merkit predict --model fast`` and ``merkit.load_model("fast")`` name a shipped model; any other
value is a model directory (a folder called ``fast`` where merkit runs is the user's, not ours).
"""

from __future__ import annotations

from pathlib import Path

from merkit.errors import ModelError
from merkit.model_dir import MANIFEST

SHIPPED_MODELS: dict[str, str] = {
    "default": "the best audio-only model: own features + CRNN tag log-odds, one RBF SVM",
    "fast": "own features only (svm-own): no neural network, about half the CPU per clip",
}
"""Models shipped inside the package (``merkit/pretrained/<name>``), by name."""


def shipped_model_dir(name: str = "default") -> Path:
    """Where the shipped model ``name`` (a key of :data:`SHIPPED_MODELS`) lives."""
    from importlib.resources import files

    if name not in SHIPPED_MODELS:
        raise ModelError(f"no shipped model named {name!r} (shipped: {', '.join(SHIPPED_MODELS)})")
    return Path(str(files("merkit") / "pretrained" / name))


def resolve_model_dir(path: Path | str | None) -> Path:
    """The model directory meant by ``path``: ``None`` is the shipped default; the name of a
    shipped model (``default``, ``fast``) that is not also an existing folder here is that
    shipped model; anything else is the path itself.

    Raises
    ------
    ModelError
        A shipped model whose files are not installed.
    """
    if path is None or (str(path) in SHIPPED_MODELS and not Path(path).exists()):
        where = shipped_model_dir("default" if path is None else str(path))
        if not (where / MANIFEST).is_file():
            raise ModelError(
                f"the shipped model {where.name!r} is not installed (expected {where}); "
                "pass a model directory made with 'merkit train'"
            )
        return where
    return Path(path)


__all__ = ["SHIPPED_MODELS", "resolve_model_dir", "shipped_model_dir"]
