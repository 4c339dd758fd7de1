"""One look for merkit's progress bars (rich): label, bar, done/total, elapsed, time left."""

from __future__ import annotations

from typing import Any


def progress_bar(
    label: str = "{task.description}",
    *,
    enabled: bool = True,
    transient: bool = True,
    console: Any = None,
) -> Any:
    """A :class:`rich.progress.Progress` with merkit's columns; a no-op when not ``enabled``.

    Parameters
    ----------
    label : str
        Text of the first column (rich markup; ``{task.description}`` shows each task's own).
    enabled : bool
        False disables it (``--quiet``, or output that is not a terminal the caller chose).
    transient : bool
        Remove the bar when it finishes.
    console : rich.console.Console, optional
        Where to draw it (default: rich's standard console).
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
        disable=not enabled,
    )
