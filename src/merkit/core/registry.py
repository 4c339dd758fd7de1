"""One name-keyed table type for every kind of registered part: methods, representations,
augmentations, datasets, models, shipped models, embedding families.

A part registers itself where it is defined (``@MODELS.register("cnn")`` on a class, or
``METHODS.register(spec.name, spec)`` beside a recipe), as the real object, never as a
``"module:function"`` string. A lookup of an unknown name raises one error of the table's own
kind (:class:`~merkit.core.errors.ConfigError` unless told otherwise) that names the closest known
name and lists them all.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

from merkit.core.errors import ConfigError, MerkitError

T = TypeVar("T")
_MISSING: Any = object()


def suggest(name: str, known: list[str] | tuple[str, ...]) -> str:
    """``"; did you mean 'svm'?"`` for the closest of ``known`` (empty when none is close)."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else ""


class Registry(Generic[T]):
    """Parts of one kind by name, in registration order.

    Parameters
    ----------
    kind : str
        What an entry is, for messages (``"method"``, ``"representation"``).
    error : type of MerkitError
        Raised for an unknown name or a name registered twice.

    Examples
    --------
    >>> SHAPES: Registry[int] = Registry("shape")
    >>> SHAPES.register("square", 4)
    4
    >>> SHAPES.get("square")
    4
    >>> "circle" in SHAPES
    False
    """

    def __init__(self, kind: str, *, error: type[MerkitError] = ConfigError) -> None:
        self.kind = kind
        self.error = error
        self._entries: dict[str, T] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, entry: T, *, replace: bool = False) -> T: ...

    def register(self, name: str, entry: T = _MISSING, *, replace: bool = False) -> Any:
        """Add ``entry`` under ``name`` and return it; without ``entry``, a decorator that does.

        Raises
        ------
        MerkitError
            (the registry's ``error``) ``name`` is taken and ``replace`` is False.
        """
        if entry is _MISSING:
            return lambda value: self.register(name, value, replace=replace)
        if not isinstance(name, str) or not name:
            raise self.error(f"a {self.kind} needs a non-empty name, not {name!r}")
        if name in self._entries and not replace:
            raise self.error(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return its entry (for tests and plug-ins that replace one)."""
        entry = self.get(name)
        del self._entries[name]
        return entry

    def get(self, name: str, default: Any = _MISSING) -> T:
        """The entry called ``name``; ``default`` if given and ``name`` is unknown.

        Raises
        ------
        MerkitError
            (the registry's ``error``) for an unknown name without a ``default``; the message
            names the closest known name and lists them all.
        """
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            if default is not _MISSING:
                return default
            known = tuple(self._entries)
            hint = suggest(name, known) if isinstance(name, str) else ""
            raise self.error(
                f"unknown {self.kind} {name!r}{hint} (known: {', '.join(known) or 'none'})"
            ) from None

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __setitem__(self, name: str, entry: T) -> None:
        """``register(name, entry, replace=True)``: what ``monkeypatch.setitem`` needs."""
        self.register(name, entry, replace=True)

    def __delitem__(self, name: str) -> None:
        self.unregister(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order."""
        return tuple(self._entries)

    def items(self) -> list[tuple[str, T]]:
        return list(self._entries.items())

    def values(self) -> list[T]:
        return list(self._entries.values())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"


__all__ = ["Registry", "suggest"]
