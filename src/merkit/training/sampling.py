"""Epoch samplers: train each epoch on a drawn subset of the training rows.

* :class:`RandomChunks` — k random chunks per song per epoch (Won et al.'s sampling for
  segment-level models), driven by the song index of every row.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from merkit.core.errors import ConfigError
from merkit.training.hooks import Callback, FitContext

__all__ = ["RandomChunks", "sample_per_group"]


class RandomChunks(Callback):
    """Train each epoch on ``per_song`` random chunks of every song (Won et al.'s sampling).

    The rows of the training arrays are chunks and ``groups`` says which song each belongs to.
    Every epoch draws, for every song among the training rows, ``per_song`` of its chunks
    without replacement (all of them when it has fewer), so an epoch costs ``per_song`` chunks
    per song instead of all of them (8 for a 30 s clip) and every song weighs the same. The
    draws come from a generator seeded with ``config.seed + seed_offset``: the same seed gives
    the same chunks. The rows left out of training (an inner validation split) are never drawn.
    After training one more draw is left in ``ctx.epoch_rows`` for the BatchNorm statistics
    pass (:class:`~merkit.training.callbacks.BatchNormRecalibration`).

    Parameters
    ----------
    groups : array-like of int, shape (n_rows,)
        Song index of every row of the training arrays.
    per_song : int
        Chunks per song per epoch (>= 1).
    seed_offset : int
        Added to the config's seed for the generator.

    Raises
    ------
    ConfigError
        ``per_song`` < 1, or ``groups`` not one entry per training row.
    """

    order = -5  # before Progress sizes the epoch's bar

    def __init__(self, groups: Any, per_song: int = 1, seed_offset: int = 0) -> None:
        if isinstance(per_song, bool) or not isinstance(per_song, (int, np.integer)):
            raise ConfigError(f"chunks per song must be an integer >= 1, got {per_song!r}")
        if per_song < 1:
            raise ConfigError(f"chunks per song must be >= 1, got {per_song}")
        self.groups = np.asarray(groups)
        self.per_song = int(per_song)
        self.seed_offset = seed_offset
        self._generator: np.random.Generator | None = None

    def on_fit_start(self, ctx: FitContext) -> None:
        if self.groups.shape != (len(ctx.y),):
            raise ConfigError(
                f"RandomChunks needs one song index per training row ({len(ctx.y)}), "
                f"got groups of shape {self.groups.shape}"
            )
        self._generator = np.random.default_rng(ctx.config.seed + self.seed_offset)

    def on_epoch_start(self, ctx: FitContext) -> None:
        assert self._generator is not None
        ctx.epoch_rows = sample_per_group(
            ctx.train_rows, self.groups[ctx.train_rows], self.per_song, self._generator
        )

    def state_dict(self) -> dict[str, Any]:
        assert self._generator is not None
        return {"generator": self._generator.bit_generator.state}

    def load_state_dict(self, ctx: FitContext, state: dict[str, Any]) -> None:
        assert self._generator is not None
        self._generator.bit_generator.state = state["generator"]

    def on_fit_end(self, ctx: FitContext) -> None:
        # A fresh draw for the passes after training (BatchNorm statistics): one epoch's worth
        # of chunks estimates the population statistics at a fraction of the cost of all.
        self.on_epoch_start(ctx)


def sample_per_group(
    rows: np.ndarray, groups: np.ndarray, k: int, rng: np.random.Generator
) -> np.ndarray:
    """Up to ``k`` of ``rows`` from each group, drawn without replacement, in ``rows`` order.

    Parameters
    ----------
    rows : ndarray of int
        Candidate rows.
    groups : ndarray, shape (len(rows),)
        Group of each candidate.
    k : int
        Rows kept per group (a smaller group keeps all its rows).
    rng : numpy Generator

    Returns
    -------
    ndarray of int

    Examples
    --------
    >>> rows = sample_per_group(np.arange(5), np.array([0, 0, 0, 1, 1]), 1,
    ...                         np.random.default_rng(0))
    >>> len(rows), sorted(set(np.array([0, 0, 0, 1, 1])[rows]))
    (2, [0, 1])
    """
    keys = rng.random(len(rows))
    order = np.lexsort((keys, groups))  # by group, randomly within a group
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    return rows[np.sort(order[rank < k])]
