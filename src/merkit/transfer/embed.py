"""Write a dataset's pre-trained embeddings to a file, for any classifier to reuse.

:func:`embed_dataset` computes a network's input representation for every song (cached), runs the
frozen network once per song (cached, keyed by the weight file's content) and returns one row per
song; :func:`write_embeddings` stores them as ``.npz`` (``song_ids``, ``quadrants``,
``embedding``, ``meta``) or as a ``.csv`` feature table (``SongID``, ``emb_0`` …, ``Quadrant``).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from merkit.core.errors import ConfigError

if TYPE_CHECKING:
    from merkit.datasets.base import Dataset

FAMILIES: dict[str, str] = {
    "crnn": "crnn",
    "crnn-mtat": "crnn",
    "crnn-jamendo": "crnn",
    "crnn-msd": "crnn",
    "artist": "artist",
    "artist-cnn": "artist",
}
"""``--model`` names → checkpoint family (any CRNN checkpoint works with any ``crnn*`` name)."""


@dataclass
class Embeddings:
    """One embedding row per song, with what made it."""

    song_ids: list[str]
    quadrants: list[str]
    values: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def embed_dataset(
    dataset: Dataset,
    model: str,
    weights: str | Path,
    *,
    sha256: str | None = None,
    output: str = "conv",
    pooling: str = "mean",
    n_jobs: int = 1,
    progress: bool = True,
) -> Embeddings:
    """Embeddings of every song of ``dataset`` by a pre-trained network.

    Parameters
    ----------
    model : str
        A key of :data:`FAMILIES`.
    weights : path
        The checkpoint (checked, never downloaded).
    output : {"conv", "gru", "tags"}
        CRNN output (see :class:`~merkit.transfer.embedders.CRNNEmbedding`).
    pooling : {"mean", "mean-std"}
        Artist encoder: how the 10 chunk embeddings of a song are combined.
    """
    from merkit.representations import extract
    from merkit.transfer.checkpoints import file_sha256
    from merkit.transfer.embedders import ArtistEmbedding, CRNNEmbedding

    family = FAMILIES.get(model)
    if family is None:
        raise ConfigError(f"unknown embedding model {model!r} (known: {', '.join(FAMILIES)})")
    if family == "crnn":
        embedder: Any = CRNNEmbedding(str(weights), sha256, output=output)  # type: ignore[arg-type]
        rep, front_end = "won-logmel", "Won's CRNN front end: 16 kHz, 96 HTK mels, dB, 29 s"
    else:
        embedder = ArtistEmbedding(str(weights), sha256, pooling=pooling)  # type: ignore[arg-type]
        rep, front_end = "artist-chunks", "Park's artist CNN front end: 22.05 kHz, 10 x 129 frames"
    embedder.fit(None)  # checks the file before any audio is read
    inputs = extract.compute(dataset, rep, n_jobs=n_jobs, progress=progress)
    values = embedder.transform(inputs)
    meta = {
        "model": model,
        "weights": str(weights),
        "weights_sha256": file_sha256(weights),
        "input": rep,
        "front_end": front_end,
        **({"output": output} if family == "crnn" else {"pooling": pooling}),
        "dataset": dataset.name,
    }
    songs = list(dataset.songs)
    return Embeddings(
        [s.song_id for s in songs], [s.quadrant for s in songs], values.astype(np.float32), meta
    )


def write_embeddings(embeddings: Embeddings, out: str | Path) -> Path:
    """Write ``.npz`` or ``.csv`` (by suffix) atomically: a file of that name is only replaced
    once the new one is complete."""
    out = Path(out)
    if out.suffix not in (".npz", ".csv"):
        raise ConfigError(f"--out must end in .npz or .csv, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=out.parent, suffix=out.suffix)
    os.close(handle)
    try:
        if out.suffix == ".npz":
            np.savez(
                temp,
                song_ids=np.asarray(embeddings.song_ids),
                quadrants=np.asarray(embeddings.quadrants),
                embedding=embeddings.values,
                meta=np.asarray(json.dumps(embeddings.meta)),
            )
        else:
            import pandas as pd

            width = embeddings.values.shape[1]
            frame = pd.DataFrame(embeddings.values, columns=[f"emb_{i}" for i in range(width)])
            frame.insert(0, "SongID", embeddings.song_ids)
            frame["Quadrant"] = embeddings.quadrants
            frame.to_csv(temp, index=False)
            Path(out.with_suffix(".json")).write_text(json.dumps(embeddings.meta, indent=2))
        os.replace(temp, out)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return out


__all__ = ["FAMILIES", "Embeddings", "embed_dataset", "write_embeddings"]
