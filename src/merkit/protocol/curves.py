"""Dataset-size curves: each method trained on nested stratified subsets of every training fold.

For each outer fold one seeded permutation of every quadrant's training songs is drawn; the
subset for fraction ``f`` is the first ``round(f * n_q)`` songs of quadrant ``q``'s permutation.
The same seed serves every fraction, so a smaller subset is always inside a larger one and the
curve isolates data size; the test fold is the full one, shared with the plain run.

A fraction below 1 runs as its own results folder ``<method>@train<f>`` (e.g. ``svm@train0.25``)
next to the plain ``<method>``, which is the fraction 1: fold files never collide, resuming
works per fraction, and a full run already in the folder is reused as the curve's last point.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import numpy as np

from merkit.core.errors import ConfigError
from merkit.methods.resolve import ResolvedMethod
from merkit.protocol.folds import Fold, ProtocolConfig

_NAME = re.compile(r"^(?P<method>.+)@train(?P<fraction>[0-9.]+)$")


def parse_fractions(text: str | Sequence[float]) -> list[float]:
    """Sorted unique fractions from ``"0.25,0.5,1"`` (each in (0, 1]).

    Raises
    ------
    ConfigError
        A value that is not a number in (0, 1], naming it.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    fractions = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            continue
        try:
            value = float(item)
        except (TypeError, ValueError):
            raise ConfigError(f"--train-fraction: {item!r} is not a number") from None
        if not 0 < value <= 1:
            raise ConfigError(f"--train-fraction: {value:g} is not in (0, 1]")
        fractions.append(value)
    if not fractions:
        raise ConfigError("--train-fraction needs at least one fraction, e.g. 0.25,0.5,1")
    return sorted(set(fractions))


def subset_rows(
    train: np.ndarray, labels: np.ndarray, fraction: float, seed: Sequence[int] | int
) -> np.ndarray:
    """The fraction's stratified subset of the ``train`` rows (sorted).

    Each class keeps ``max(1, round(fraction * n_class))`` rows: the first ones of a permutation
    drawn from ``seed`` alone, so subsets for one seed are nested.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    kept = []
    for cls in np.unique(labels[train]):
        rows = train[labels[train] == cls]
        order = rows[rng.permutation(rows.size)]
        kept.append(order[: max(1, round(fraction * rows.size))])
    return np.sort(np.concatenate(kept))


def fraction_folds(
    folds: Sequence[Fold], labels: np.ndarray, fraction: float, protocol: ProtocolConfig
) -> list[Fold]:
    """Every fold with its training rows cut to the fraction (test rows unchanged)."""
    if fraction >= 1:
        return list(folds)
    return [
        dataclasses.replace(
            fold,
            train=subset_rows(
                fold.train, labels, fraction, (protocol.random_state, fold.repeat, fold.fold)
            ),
        )
        for fold in folds
    ]


def fraction_name(method: str, fraction: float) -> str:
    """The results folder of ``method`` at ``fraction`` (the plain name at 1)."""
    return method if fraction >= 1 else f"{method}@train{fraction:g}"


def parse_fraction_name(name: str) -> tuple[str, float]:
    """``"svm@train0.25"`` -> ``("svm", 0.25)``; a plain name -> ``(name, 1.0)``."""
    match = _NAME.match(name)
    if match is None:
        return name, 1.0
    return match.group("method"), float(match.group("fraction"))


def fraction_method(
    method: ResolvedMethod, fraction: float, folds: Sequence[Fold]
) -> ResolvedMethod:
    """``method`` under its fraction's name; its recorded settings carry the fraction and the
    mean training-set size, so the results folder says what it holds."""
    if fraction >= 1:
        return method
    spec = dataclasses.replace(method.spec, name=fraction_name(method.name, fraction))
    settings = {
        **method.settings,
        "train_fraction": fraction,
        "train_songs": float(np.mean([fold.train.size for fold in folds])),
    }
    return dataclasses.replace(method, spec=spec, settings=settings)


__all__ = [
    "fraction_folds",
    "fraction_method",
    "fraction_name",
    "parse_fraction_name",
    "parse_fractions",
    "subset_rows",
]
