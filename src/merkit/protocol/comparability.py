"""What a result can be compared with: the paper's Table 3, or nothing.

A results row of merkit is a reproduction of the paper's number only when it was produced the way
the paper's was: the original 4QAED (all 900 clips), stratified 10-fold cross-validation, and the
method's own training recipe (the paper's optimiser, learning rate, batch, epoch cap and 90 %
training-accuracy stop). Smoke runs (``--quick``) and CPU-sized runs with lowered epoch caps are
lower bounds, not reproductions; they are labelled so in every table and report, and the paper's
number is left blank beside them with the reason.

The regime of a run (:mod:`merkit.methods.regime`):
    ``full``
        The method's registered recipe (for the paper's methods, the paper's regime), or settings
        that train at least as long.
    ``reduced``
        An epoch cap or the training-accuracy stop set below the recipe's (a lower bound).
    ``quick``
        ``--quick``: the smoke-run caps (2 epochs) on 3 folds x 1 repeat.
    ``unrecorded``
        A run folder written before merkit recorded regimes.
"""

from __future__ import annotations

from typing import Any

PAPER_DATASET = "4qaed"
PAPER_SONGS = 900
PAPER_SPLITS = 10
PAPER_REPEATS = 10


def paper_comparison(
    *,
    paper_f1: float | None,
    dataset: str,
    n_songs: int | None,
    protocol: Any,
    regime: str | None,
) -> str | None:
    """Why a result cannot sit beside the paper's Table 3 number, or None when it can.

    Parameters
    ----------
    paper_f1 : float or None
        The Table 3 number of the row the method reproduces (None: no such row).
    dataset, n_songs
        The run's dataset name and its number of songs.
    protocol : ProtocolConfig
        The run's protocol.
    regime : str or None
        The run's training regime (:func:`merkit.methods.regime.training_regime`).

    Returns
    -------
    str or None
        A short reason for the blank paper column (``"quick smoke run"``, ``"3x1 folds, the
        paper's are 10x10"``, ...), or None when the paper's number is comparable.
    """
    if paper_f1 is None:
        return "no Table 3 row"
    if protocol.leave_out == "dataset":
        return "cross-dataset (trained on one dataset, tested on another); Table 3 is 4QAED K-fold"
    if dataset != PAPER_DATASET:
        return f"the paper's numbers are on 4QAED, not {dataset}"
    if n_songs is not None and n_songs != PAPER_SONGS:
        return f"a {n_songs}-song subset; the paper used all {PAPER_SONGS}"
    if protocol.split is not None or protocol.leave_out is not None:
        return f"{protocol.describe()}; the paper's protocol is 10x10 stratified K-fold"
    if not protocol.stratify or protocol.n_splits != PAPER_SPLITS:
        kind = "stratified" if protocol.stratify else "unstratified"
        return (
            f"{protocol.n_splits}x{protocol.n_repeats} {kind} folds; the paper's are "
            f"{PAPER_SPLITS}x{PAPER_REPEATS} stratified"
        )
    if regime == "quick":
        return "quick smoke run (2-epoch caps)"
    if regime == "reduced":
        return "epoch caps below the paper's (a lower bound)"
    if regime not in ("full", None) and regime != "unrecorded":
        return f"training regime {regime!r}"
    if protocol.n_repeats != PAPER_REPEATS:
        return f"10x{protocol.n_repeats} folds; the paper averages 10x10"
    return None


__all__ = ["PAPER_DATASET", "paper_comparison"]
