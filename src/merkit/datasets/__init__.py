"""Datasets: one module per dataset, reached by name through :func:`load_dataset`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from merkit.core.errors import DataError
from merkit.datasets.base import AUDIO_EXTENSIONS, AudioSource, Dataset, FileSource, Song


def _synthetic(root: Path | str | None = None, **options: Any) -> Dataset:
    from merkit.datasets.synthetic import load_synthetic

    return load_synthetic(root, **options)


def _fourqaed(root: Path | str | None = None, **options: Any) -> Dataset:
    from merkit.datasets.fourqaed import load_4qaed

    return load_4qaed(root, **options)


def _folder(root: Path | str | None = None, **options: Any) -> Dataset:
    from merkit.datasets.folder import load_folder

    return load_folder(root, **options)


def _csv(root: Path | str | None = None, **options: Any) -> Dataset:
    from merkit.datasets.csv import load_csv

    return load_csv(root, **options)


def _merge(root: Path | str | None = None, **options: Any) -> Dataset:
    from merkit.datasets.merge import load_merge

    return load_merge(root, **options)


DATASETS: dict[str, Callable[..., Dataset]] = {
    "synthetic": _synthetic,
    "4qaed": _fourqaed,
    "folder": _folder,
    "csv": _csv,
    "merge": _merge,
}
"""Loaders by name; each takes ``(root, **options)`` and returns a :class:`Dataset`."""


def load_dataset(name: str, root: Path | str | None = None, **options: Any) -> Dataset:
    """Load the dataset ``name`` (see :data:`DATASETS`) from ``root``.

    Raises
    ------
    DataError
        If the name is unknown or the data is missing or inconsistent.
    """
    try:
        loader = DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}") from None
    return loader(root, **options)


__all__ = [
    "AUDIO_EXTENSIONS",
    "DATASETS",
    "AudioSource",
    "Dataset",
    "FileSource",
    "Song",
    "load_dataset",
]
