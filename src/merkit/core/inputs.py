"""The input-name vocabulary shared by methods, the protocol, model export and representations.

An input name is either ``table:NAME`` (a precomputed feature table of a dataset, e.g.
``table:top100``) or the name of a representation computed from audio (``logmel``,
``own-features``, ``classic-aug`` ...). This module is the one place that parses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from merkit.core.errors import ConfigError

InputArray = np.ndarray | list[np.ndarray]

TABLE_PREFIX = "table:"
InputKind = Literal["table", "representation"]


@dataclass(frozen=True)
class InputName:
    """A parsed input name.

    Attributes
    ----------
    kind : {"table", "representation"}
        Where the data comes from.
    name : str
        The table name (without the prefix) or the representation name.
    """

    kind: InputKind
    name: str

    @property
    def full(self) -> str:
        """The name as written in settings and manifests (``table:top100``, ``logmel``)."""
        return f"{TABLE_PREFIX}{self.name}" if self.kind == "table" else self.name

    @property
    def from_audio(self) -> bool:
        """True when the input can be computed from audio, i.e. for any new song."""
        return self.kind == "representation"


def parse_input(text: str) -> InputName:
    """Parse an input name.

    Parameters
    ----------
    text : str
        ``table:NAME`` or a representation name.

    Returns
    -------
    InputName

    Raises
    ------
    ConfigError
        If ``text`` is not a non-empty string or names an empty table.

    Examples
    --------
    >>> parse_input("table:top100")
    InputName(kind='table', name='top100')
    >>> parse_input("logmel").kind
    'representation'
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"an input name must be a non-empty string, not {text!r}")
    if text.startswith(TABLE_PREFIX):
        name = text.removeprefix(TABLE_PREFIX)
        if not name:
            raise ConfigError(f"input {text!r} names no feature table (write e.g. 'table:top100')")
        return InputName("table", name)
    return InputName("representation", text)


def is_table(text: str) -> bool:
    """True for a ``table:NAME`` input."""
    return parse_input(text).kind == "table"


def take(array: InputArray, rows: np.ndarray) -> InputArray:
    """Rows of an input: fancy indexing for arrays, a list for per-song arrays of varying shape."""
    if isinstance(array, np.ndarray):
        return array[rows]
    return [array[i] for i in rows]


__all__ = ["TABLE_PREFIX", "InputArray", "InputName", "is_table", "parse_input", "take"]
