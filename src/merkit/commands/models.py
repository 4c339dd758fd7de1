"""``merkit models list`` (which models can answer now) and ``merkit models download`` (the
pre-trained checkpoints the default model needs, from upstream or a local folder)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from merkit.commands import err_console, user_errors

if TYPE_CHECKING:
    from merkit.transfer.weights import Checkpoint

models_app = typer.Typer(
    no_args_is_help=True,
    help="The shipped models and the pre-trained checkpoints they need.",
)

_STATUS_TEXT = {
    "ready": "[green]ready[/]",
    "missing": "[red]missing[/]",
    "damaged": "[red]another file (SHA-256 differs)[/]",
}


@models_app.command("list")
@user_errors
def list_models() -> None:
    """Show each shipped model and checkpoint and whether it is ready to use."""
    from rich.console import Console
    from rich.table import Table

    from merkit.product.model_dir import MANIFEST, read_manifest
    from merkit.product.shipped import SHIPPED_MODELS, checkpoints_of, shipped_model_dir
    from merkit.transfer.pooled import pretrained_dir
    from merkit.transfer.weights import CHECKPOINTS, checkpoint_status, not_ready

    console = Console()
    models = Table(title="shipped models (merkit predict --model NAME)", title_justify="left")
    for column in ("model", "status", "what it is"):
        models.add_column(column)
    for name, summary in SHIPPED_MODELS.items():
        where = shipped_model_dir(name)
        if not (where / MANIFEST).is_file():
            models.add_row(name, "[red]not installed[/]", escape(summary))
            continue
        needed = checkpoints_of([spec.params for spec in read_manifest(where).inputs])
        bad = not_ready(needed)
        status = (
            "[green]ready[/]"
            if not bad
            else f"[red]needs[/] {escape(', '.join(bad))}: merkit models download"
        )
        models.add_row(name, status, escape(summary))
    console.print(models)
    folder = pretrained_dir()
    checkpoints = Table(title=f"pre-trained checkpoints in {escape(str(folder))}")
    for column in ("file", "status", "what it is"):
        checkpoints.add_column(column)
    for checkpoint in CHECKPOINTS.values():
        checkpoints.add_row(
            checkpoint.file_name,
            _STATUS_TEXT[checkpoint_status(checkpoint, folder)],
            escape(checkpoint.description),
        )
    console.print(checkpoints)


@models_app.command("download")
@user_errors
def download(
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Install from this folder instead of downloading (offline machines): the files "
            "under merkit's names (crnn_mtat.pth, ...) or a copy of Won's repository "
            "(models/mtat/crnn/best_model.pth, ...)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Fetch the CRNN checkpoints the default model needs (Won et al., MIT licence, ~5 MB) from
    their upstream URLs, each checked by SHA-256, into $MERKIT_PRETRAINED
    (default ~/.cache/merkit/pretrained). Files already there and verified are kept."""
    from merkit.transfer.pooled import pretrained_dir
    from merkit.transfer.weights import CHECKPOINTS, download_checkpoints, install_checkpoints

    dest = pretrained_dir()

    def said(checkpoint: Checkpoint, outcome: str) -> None:
        where = f"from {checkpoint.url}" if outcome == "downloaded" else ""
        err_console.print(
            f"{checkpoint.file_name}: {outcome} {escape(where)}".rstrip(), highlight=False
        )

    if source is None:
        err_console.print(
            f"downloading {len(CHECKPOINTS)} checkpoints into {escape(str(dest))}",
            highlight=False,
        )
        download_checkpoints(dest=dest, on_file=said)
    else:
        install_checkpoints(source, dest=dest, on_file=said)
    err_console.print(
        "[green]the default model is ready[/] (merkit models list shows every model)",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    """Add ``models list`` and ``models download`` to the ``merkit`` app."""
    app.add_typer(models_app, name="models")
