"""Groups of ``merkit`` sub-commands, each added to the main typer app by a ``register(app)``.

They live outside :mod:`merkit.cli` so that module stays small; they do not import it (it imports
them). :func:`user_errors` is the one error handling every command shares.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from merkit.core.errors import ConfigError, MerkitError

if TYPE_CHECKING:
    from merkit.datasets.base import Dataset
    from merkit.methods import ResolvedMethod

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


def dataset_options(
    dataset: str, subset: Path | None, group_by_artist: bool = False
) -> dict[str, Any]:
    """Loader options of ``--subset`` and ``--group-by-artist``, refused for other datasets."""
    options: dict[str, Any] = {}
    if subset is not None:
        if dataset != "4qaed":
            raise ConfigError("--subset applies to --dataset 4qaed")
        options["subset"] = subset
    if group_by_artist:
        if dataset != "4qaed":
            raise ConfigError("--group-by-artist applies to --dataset 4qaed")
        options["group_by_artist"] = True
    return options


def load_for_methods(
    dataset: str,
    root: Path | None,
    methods: Sequence[ResolvedMethod],
    *,
    subset: Path | None = None,
    group_by_artist: bool = False,
    quiet: bool = False,
) -> Dataset:
    """The dataset, with the checks (and list of problems) of ``merkit data check --no-decode``,
    requiring every feature table the methods read; each method's feature counts are checked
    against its input (:func:`merkit.methods.resolve.check_feature_counts`)."""
    from merkit.core.inputs import parse_input
    from merkit.datasets.check import load_checked_dataset

    tables = sorted(
        {parse_input(i).name for m in methods for i in m.inputs if parse_input(i).kind == "table"}
    )
    loaded = load_checked_dataset(
        dataset,
        root,
        progress=not quiet,
        require_tables=tables,
        **dataset_options(dataset, subset, group_by_artist),
    )
    from merkit.methods.resolve import check_feature_counts, input_widths

    widths = input_widths(loaded, {name for m in methods for name in m.inputs})
    for method in methods:
        check_feature_counts(method, widths)  # e.g. n_features 100000 of 317, before any work
    return loaded
