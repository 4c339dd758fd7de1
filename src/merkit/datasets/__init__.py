"""Datasets: one module per dataset, reached by name through :func:`load_dataset`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# each dataset module registers its loader in DATASETS where it defines it
from merkit.datasets import csv, folder, fourqaed, merge, musifeast17, synthetic  # noqa: F401
from merkit.datasets.base import (
    AUDIO_EXTENSIONS,
    DATASETS,
    AudioSource,
    Dataset,
    FileSource,
    Song,
)


def load_dataset(name: str, root: Path | str | None = None, **options: Any) -> Dataset:
    """Load the dataset ``name`` (see :data:`DATASETS`) from ``root``.

    Raises
    ------
    DataError
        If the name is unknown or the data is missing or inconsistent.
    """
    return DATASETS.get(name)(root, **options)


__all__ = [
    "AUDIO_EXTENSIONS",
    "DATASETS",
    "AudioSource",
    "Dataset",
    "FileSource",
    "Song",
    "load_dataset",
]
