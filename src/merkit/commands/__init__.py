"""Groups of ``merkit`` sub-commands, each added to the main typer app by a ``register(app)``.

They live outside :mod:`merkit.cli` so that module stays small; they do not import it (it imports
them). :func:`user_errors` is the one error handling every command shares.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from merkit.core.errors import ConfigError, MerkitError

if TYPE_CHECKING:
    from merkit.datasets.base import Dataset
    from merkit.methods import ResolvedMethod

F = TypeVar("F", bound=Callable[..., Any])

# soft_wrap: a one-line error stays one line (no hard breaks at the terminal width)
err_console = Console(stderr=True, soft_wrap=True)

# The prediction options ``merkit predict`` and ``merkit serve`` share (one meaning, one help).
ExactWindowsOption = Annotated[
    bool | None,
    typer.Option(
        "--exact-windows/--one-pass",
        help="Long tracks: compute every 30 s window on its own, as training computed a clip "
        "(--exact-windows), or each second of audio once and the windows from it "
        "(--one-pass: less CPU, window probabilities within a few hundredths). "
        "[default: --exact-windows]",
        show_default=False,
    ),
]
CrnnPrecisionOption = Annotated[
    str | None,
    typer.Option(
        "--crnn-precision",
        help="Arithmetic of the CRNN taggers' convolutions: winograd (float32 Winograd "
        "convolutions: ~1.3x less CPU for the default model's taggers, probabilities within "
        "float rounding, not bit-identical), float32 or bf16. [default: as the model stored it]",
        show_default=False,
    ),
]
HopOption = Annotated[
    float | None,
    typer.Option(
        "--hop",
        metavar="SECONDS",
        help="Seconds between the starts of a long track's windows, 1 s to the window "
        "length: e.g. 30.1 (the default models' window) analyses each second once, about "
        "half the windows and CPU of the default half-window hop, with track answers that "
        "can differ (docs/predict.md). A clip of one window is unchanged. [default: the "
        "model's, 15.05 s for the shipped models]",
        show_default=False,
    ),
]


def _no_flag_type(param: Any) -> Any:
    if getattr(param, "is_flag", False) and param.metavar is None:
        param.metavar = ""
    return param


def tidy_help(command: Any) -> Any:
    """Leave the type column of ``--help`` empty for on/off flags (no ``<bool>`` on each, nor on
    ``--help``). Applied to every sub-command and nested group :class:`TidyGroup` hands out.

    (Typer vendors its own click, so parameters are recognised by their attributes.)
    """
    if getattr(command, "_merkit_tidy", False):
        return command
    command._merkit_tidy = True
    for param in command.params:
        _no_flag_type(param)
    get_help_option = command.get_help_option
    command.get_help_option = lambda ctx: _no_flag_type(get_help_option(ctx))
    if hasattr(command, "get_command") and not isinstance(command, TidyGroup):
        get = command.get_command

        def get_tidy(ctx: Any, name: str) -> Any:
            found = get(ctx, name)
            return tidy_help(found) if found is not None else None

        command.get_command = get_tidy
    return command


class TidyGroup(TyperGroup):
    """The ``merkit`` group: its commands' help shows flags without a ``<bool>`` type."""

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        found = super().get_command(ctx, cmd_name)
        return tidy_help(found) if found is not None else None

    def get_help_option(self, ctx: Any) -> Any:
        return _no_flag_type(super().get_help_option(ctx))


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
