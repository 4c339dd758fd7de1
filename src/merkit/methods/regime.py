"""A run's training regime against its method's recipe: full, reduced or quick.

The paper's methods are registered with the paper's training regime (optimiser, learning rate,
batch, epoch cap, the 90 % training-accuracy stop). A run that lowers an epoch cap or the stop is a
CPU-sized lower bound, not a reproduction; ``--quick`` is a smoke run. The regime is recorded with
every run (``<method>/config.json``) and shown in every table and report
(:mod:`merkit.protocol.comparability` decides from it whether the paper's number may sit beside).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

REGIMES = ("full", "reduced", "quick", "unrecorded")


def training_caps(estimator: Any) -> dict[str, float]:
    """Every epoch cap and training-accuracy stop of an estimator, by parameter path.

    Walks ``get_params(deep=True)`` (which holds the Hybrid's effective per-stage settings as
    ``<stage>__<setting>``) and dict-valued parameters, so ``hybrid__cnn__epochs`` or
    ``dnn__epochs`` are found wherever they sit.

    Returns
    -------
    dict
        ``{"epochs": 200, "dnn__epochs": 100, "stop_train_accuracy": 0.9, ...}``: numeric values
        only (``None`` caps are left out).
    """
    caps: dict[str, float] = {}

    def walk(prefix: str, params: Mapping[str, Any]) -> None:
        for key, value in params.items():
            path = f"{prefix}{key}"
            leaf = key.rsplit("__", 1)[-1]
            if isinstance(value, Mapping):
                walk(f"{path}__", value)
            elif (
                (leaf.endswith("epochs") or leaf == "stop_train_accuracy")
                and isinstance(value, int | float)
                and not isinstance(value, bool)
            ):
                caps[path] = float(value)

    if hasattr(estimator, "get_params"):
        # Nested settings are deep parameters: the Hybrid's effective per-stage settings
        # (``cnn__epochs``, its stage defaults included), a torch classifier's ``train__…``.
        walk("", estimator.get_params(deep=True))
    return caps


def training_regime(estimator: Any, recipe: Any, *, quick: bool) -> str:
    """``quick``, ``reduced`` or ``full`` for ``estimator`` against its method's ``recipe``.

    Parameters
    ----------
    estimator : estimator
        The estimator as it will run (the user's settings applied).
    recipe : estimator
        The method's estimator built with no settings (its registered recipe).
    quick : bool
        Whether the run is a ``--quick`` smoke run.
    """
    if quick:
        return "quick"
    ours, theirs = training_caps(estimator), training_caps(recipe)
    lowered = [path for path, value in theirs.items() if path in ours and ours[path] < value]
    return "reduced" if lowered else "full"


__all__ = ["REGIMES", "training_caps", "training_regime"]
