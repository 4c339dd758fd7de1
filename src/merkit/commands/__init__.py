"""Groups of ``merkit`` sub-commands, each added to the main typer app by a ``register(app)``.

They live outside :mod:`merkit.cli` so that module stays small; they do not import it (it imports
them). :func:`user_errors` is the one error handling every command shares.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from merkit.errors import MerkitError

F = TypeVar("F", bound=Callable[..., Any])

# soft_wrap: a one-line error stays one line (no hard breaks at the terminal width)
err_console = Console(stderr=True, soft_wrap=True)


def user_errors(func: F) -> F:
    """Print merkit's own errors as one plain line on stderr and exit 1 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except MerkitError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print(
                "interrupted: finished work is saved; rerun the same command to resume"
            )
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]
