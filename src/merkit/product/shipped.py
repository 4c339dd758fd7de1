"""The models shipped inside the package, by name: ``default`` and ``fast``.

``merkit predict --model fast`` and ``merkit.load_model("fast")`` name a shipped model; any other
value is a model directory (a folder called ``fast`` where merkit runs is the user's, not ours).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

from merkit.core.errors import ModelError
from merkit.core.registry import Registry
from merkit.product.model_dir import MANIFEST

SHIPPED_MODELS: Registry[str] = Registry("shipped model", error=ModelError)
"""Models shipped inside the package (``merkit/pretrained/<name>``), by name: what each is."""
SHIPPED_MODELS.register(
    "default", "the most accurate: own features + CRNN tag log-odds (merkit models download)"
)
SHIPPED_MODELS.register(
    "fast", "own features only (svm-own): no neural network, about half the CPU per clip"
)

SHIPPED_SHA256: dict[str, dict[str, str]] = {
    "default": {
        "manifest.json": "60e59d11e1171f91f54efb35dddeeb690943e2a859098249bc8c9644070aed0c",
        "estimator.joblib": "eceacb244215c179d5ccecd77c77f3ace3e281631866af3e6deba4c941cfa0bc",
        "axes.joblib": "dd384d88088878e1ffa00c9c9cc0933d24a43634586519ecf264c5588ed7fef1",
        "familiarity.joblib": "f077ffe59b9f9baeffebd051bc50636f4f0b98b450a15910117cded1215852ff",
        "calibration.json": "46308cc1981e479a498a70f344f4eabb047edeeeed22961364213a7e6e77edd0",
    },
    "fast": {
        "manifest.json": "b52bc663672efd454e94063e82703fb324de1fab6a196c81f2c78c44d4fc4857",
        "estimator.joblib": "fc6e44900522c793ab994f1b9fd12ff268f3e9fe2e82e7588320b20dac3db6a8",
    },
}
"""SHA-256 of every file of a shipped model that is loaded as code (or changes its answers), held
here in the package's code rather than beside the files (a checksum in the same folder only
catches accidents). After retraining a shipped model, put the new digests here (the refusal
message prints them)."""


def model_name(model_dir: Path | None) -> str:
    """How the CLI names a model: ``default`` or ``fast`` for a shipped one, else its folder."""
    if model_dir is None:
        return "a model in memory"
    for name in SHIPPED_MODELS:
        if Path(model_dir).resolve() == shipped_model_dir(name).resolve():
            return name
    return str(model_dir)


def shipped_model_dir(name: str = "default") -> Path:
    """Where the shipped model ``name`` (a key of :data:`SHIPPED_MODELS`) lives."""
    from importlib.resources import files

    SHIPPED_MODELS.get(name)  # ModelError naming the shipped ones
    return Path(str(files("merkit") / "pretrained" / name))


def shipped_name(path: Path | str) -> str | None:
    """The name of the shipped model stored at ``path`` (however it is spelled), else None."""
    try:
        where = Path(path).resolve()
    except OSError:
        return None
    for name in SHIPPED_MODELS:
        if where == shipped_model_dir(name).resolve():
            return name
    return None


def verify_shipped(name: str) -> Path:
    """Check the shipped model ``name`` against :data:`SHIPPED_SHA256`; returns its folder.

    Raises
    ------
    ModelError
        A file is missing or differs from the one merkit was released with.
    """
    where = shipped_model_dir(name)
    for file, expected in SHIPPED_SHA256.get(name, {}).items():
        try:
            actual = hashlib.sha256((where / file).read_bytes()).hexdigest()
        except OSError:
            raise ModelError(
                f"the shipped model {name!r} is incomplete: {where / file} is missing"
            ) from None
        if actual != expected:
            raise ModelError(
                f"refusing to load the shipped model {name!r}: {where / file} is not the file "
                f"this merkit was released with (SHA-256 {actual}, expected {expected}); "
                "reinstall merkit (after retraining it on purpose, put the new digest in "
                "merkit.product.shipped.SHIPPED_SHA256)"
            )
    return where


class FastModelWarning(UserWarning):
    """The default model's pre-trained checkpoints are missing, so the fast model answers."""


def missing_weights(model_dir: Path) -> list[str]:
    """Checkpoint files a model's inputs name (``checkpoints`` parameters) that are not in
    ``$MERKIT_PRETRAINED`` (``merkit models download`` puts them there); merkit ships no
    third-party weights."""
    from merkit.product.model_dir import read_manifest
    from merkit.transfer.pooled import missing_checkpoints

    missing: list[str] = []
    for spec in read_manifest(model_dir).inputs:
        missing += missing_checkpoints(spec.params.get("checkpoints", []))
    return sorted(set(missing))


def checkpoints_of(params_list: list[dict]) -> dict[str, str]:
    """The checkpoints (file name → pinned SHA-256) that inputs with these parameters read, in
    order of first use."""
    pins: dict[str, str] = {}
    for params in params_list:
        for entry in params.get("checkpoints", []):
            pins.setdefault(str(entry[0]), str(entry[1]))
    return pins


def require_checkpoints(pins: dict[str, str], *, needed_by: str) -> None:
    """Raise one :class:`ModelError` before any work when a checkpoint of ``pins`` is missing
    from ``$MERKIT_PRETRAINED`` or is another file than the pinned one, naming the command that
    installs them.

    Parameters
    ----------
    pins : dict
        Checkpoint file name → SHA-256 (:func:`checkpoints_of`).
    needed_by : str
        What needs them, for the message (``"the model 'default'"``).
    """
    from merkit.transfer.pooled import DOWNLOAD_HINT, pretrained_dir
    from merkit.transfer.weights import not_ready

    bad = not_ready(pins)
    if not bad:
        return
    missing = [n for n, s in bad.items() if s == "missing"]
    damaged = [n for n, s in bad.items() if s == "damaged"]
    parts = []
    if missing:
        parts.append(f"{', '.join(missing)} not found")
    if damaged:
        parts.append(f"{', '.join(damaged)} not the published file (another SHA-256)")
    raise ModelError(
        f"{needed_by} needs pre-trained checkpoints: {'; '.join(parts)} in {pretrained_dir()}: "
        + DOWNLOAD_HINT
    )


def require_input_weights(inputs: list[str] | tuple[str, ...], *, needed_by: str) -> None:
    """:func:`require_checkpoints` for a method's input names (representations and tables)."""
    from merkit.core.inputs import parse_input
    from merkit.representations.registry import get_representation

    params = [
        get_representation(parse_input(i).name).params
        for i in inputs
        if parse_input(i).kind == "representation"
    ]
    needed = checkpoints_of(params)
    if needed:
        require_checkpoints(needed, needed_by=needed_by)


def require_model_weights(model_dir: Path, *, name: str | None = None) -> None:
    """:func:`require_checkpoints` for the inputs of the model in ``model_dir``."""
    from merkit.product.model_dir import read_manifest

    manifest = read_manifest(model_dir)
    needed = checkpoints_of([spec.params for spec in manifest.inputs])
    if needed:
        require_checkpoints(needed, needed_by=f"the model {name or model_name(model_dir)!r}")


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
            from merkit.transfer.pooled import pretrained_dir

            warnings.warn(
                f"using the fast model: the default model needs {', '.join(missing)} in "
                f"{pretrained_dir()} (Won's CRNN taggers, MIT licence): run 'merkit models "
                "download' (offline: --from DIR), or set $MERKIT_PRETRAINED",
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
        return verify_shipped(where.name)
    return Path(path)


__all__ = [
    "SHIPPED_MODELS",
    "SHIPPED_SHA256",
    "FastModelWarning",
    "checkpoints_of",
    "missing_weights",
    "require_checkpoints",
    "require_input_weights",
    "require_model_weights",
    "resolve_model_dir",
    "shipped_model_dir",
    "shipped_name",
    "verify_shipped",
]
