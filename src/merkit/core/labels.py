"""The four quadrants of Russell's circumplex model, as merkit names and numbers them."""

from __future__ import annotations

from typing import Final

from merkit.core.errors import DataError

QUADRANTS: Final[tuple[str, ...]] = ("Q1", "Q2", "Q3", "Q4")
"""Class names in index order: Q1 -> 0, ..., Q4 -> 3 (the paper's encoding)."""

QUADRANT_MEANINGS: Final[dict[str, str]] = {
    "Q1": "happy/excited",
    "Q2": "angry/tense",
    "Q3": "sad/melancholic",
    "Q4": "calm/serene",
}

HIGH_AROUSAL: Final[tuple[str, ...]] = ("Q1", "Q2")
POSITIVE_VALENCE: Final[tuple[str, ...]] = ("Q1", "Q4")


def normalize_quadrant(label: object, where: str = "") -> str:
    """Return the canonical quadrant name for ``label``.

    Accepts ``"Q1"``..``"Q4"`` in any case, bare digits ``1``..``4`` and surrounding whitespace.

    Parameters
    ----------
    label : object
        The raw label, e.g. a CSV cell.
    where : str
        Where the label came from (file, row), used in the error message.

    Raises
    ------
    DataError
        If the label is not one of the four quadrants.
    """
    text = str(label).strip().upper()
    if text.isdigit():
        text = f"Q{text}"
    if text not in QUADRANTS:
        suffix = f" in {where}" if where else ""
        raise DataError(f"unknown quadrant label {label!r}{suffix}; expected one of Q1, Q2, Q3, Q4")
    return text


def quadrant_index(label: object, where: str = "") -> int:
    """Index 0..3 of a quadrant label (see :func:`normalize_quadrant`)."""
    return QUADRANTS.index(normalize_quadrant(label, where))
