"""``merkit embed``: a dataset's pre-trained embeddings written to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from merkit.commands import user_errors

console = Console()


@user_errors
def embed(
    model: Annotated[str, typer.Option(help="crnn-mtat | crnn-jamendo | crnn-msd | artist")],
    weights: Annotated[Path, typer.Option(help="Checkpoint file (never downloaded)")],
    out: Annotated[Path, typer.Option(help="Output .npz or .csv (SongID, emb_*, Quadrant)")],
    dataset: Annotated[str, typer.Option("--dataset", "-d")] = "4qaed",
    root: Annotated[Path | None, typer.Option("--root", "-r", help="Dataset folder")] = None,
    sha256: Annotated[str | None, typer.Option(help="Expected SHA-256 of the weights")] = None,
    output: Annotated[str, typer.Option(help="CRNN: conv (256) | gru (32) | tags (50)")] = "conv",
    pooling: Annotated[str, typer.Option(help="Artist: mean | mean-std over chunks")] = "mean",
    jobs: Annotated[int, typer.Option(min=1, help="Workers for the input features")] = 1,
    quiet: Annotated[bool, typer.Option(help="No progress bars")] = False,
) -> None:
    """Embed every song of a dataset with a pre-trained network (one row per song)."""
    from merkit.datasets.check import load_checked_dataset
    from merkit.transfer.embed import FAMILIES, embed_dataset, write_embeddings
    from merkit.transfer.embedders import ArtistEmbedding, CRNNEmbedding

    # The model name and the weights file are checked before the dataset is read.
    if model in FAMILIES:
        kind = CRNNEmbedding if FAMILIES[model] == "crnn" else ArtistEmbedding
        kind(str(weights), sha256).validate_settings()
    loaded = load_checked_dataset(dataset, root, progress=not quiet)
    embeddings = embed_dataset(
        loaded,
        model,
        weights,
        sha256=sha256,
        output=output,
        pooling=pooling,
        n_jobs=jobs,
        progress=not quiet,
    )
    path = write_embeddings(embeddings, out)
    console.print(f"{len(embeddings.song_ids)} x {embeddings.values.shape[1]} embeddings: {path}")


def register(app: typer.Typer) -> None:
    """Add ``embed`` to the ``merkit`` app."""
    app.command("embed")(embed)
