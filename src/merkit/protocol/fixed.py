"""A dataset's published train/validate/test split as the protocol's one fold.

MERGE (Louro et al. 2024) ships fixed 70-15-15 and 40-30-30 splits. Under ``--protocol
tvt-70-15-15`` a method is fitted on the train songs, may select with the validate songs (a
method whose ``fit`` takes ``validation=(X, y)`` gets them; others ignore them, they are never
merged into training), and is scored on the test songs. The result is one fold record in the same
files as K-fold, so summaries and the HTML report read it the same way.
"""

from __future__ import annotations

import numpy as np

from merkit.core.errors import ConfigError, DataError
from merkit.datasets.base import Dataset
from merkit.protocol.folds import Fold, ProtocolConfig

PROTOCOLS = {"tvt-70-15-15": "70-15-15", "tvt-40-30-30": "40-30-30"}
"""``--protocol`` names of the fixed splits -> the split's name in :attr:`Dataset.splits`."""
PARTS = ("train", "validate", "test")


def protocol_for(name: str, random_state: int = 1) -> ProtocolConfig:
    """The :class:`ProtocolConfig` of a ``--protocol`` name (``kfold`` gives the default K-fold).

    Raises
    ------
    ConfigError
        An unknown name.
    """
    if name == "kfold":
        return ProtocolConfig(random_state=random_state)
    if name == "logo-genre":
        # the number of folds is the dataset's number of genre groups: merkit.protocol.genre
        return ProtocolConfig(
            n_repeats=1, random_state=random_state, stratify=False, leave_out="genre"
        )
    if name == "cross-dataset":
        # the two datasets' names are set by merkit.protocol.cross.cross_protocol
        return ProtocolConfig(
            n_splits=2, n_repeats=1, random_state=random_state, stratify=False, leave_out="dataset"
        )
    if name not in PROTOCOLS:
        raise ConfigError(
            f"unknown --protocol {name!r}; choose kfold, logo-genre, cross-dataset or "
            f"{', '.join(sorted(PROTOCOLS))}"
        )
    return ProtocolConfig(split=PROTOCOLS[name], random_state=random_state)


def fixed_split_folds(dataset: Dataset, protocol: ProtocolConfig) -> list[Fold]:
    """The one fold of ``protocol.split``: train, validate and test rows of ``dataset``.

    Raises
    ------
    ConfigError
        The dataset has no such split.
    DataError
        A part is empty, or a song is in two parts (that would leak test songs into training).
    """
    split = protocol.split
    if split is None:
        raise ConfigError("fixed_split_folds needs a protocol with a split")
    if split not in dataset.splits:
        have = ", ".join(f"tvt-{name}" for name in sorted(dataset.splits)) or "none"
        raise ConfigError(
            f"--protocol tvt-{split} needs a dataset that publishes that split; "
            f"{dataset.name!r} has: {have}"
        )
    parts = dataset.splits[split]
    position = {song: row for row, song in enumerate(dataset.song_ids)}
    rows: dict[str, np.ndarray] = {}
    seen: dict[str, str] = {}
    for part in PARTS:
        ids = [song for song in parts.get(part, []) if song in position]
        for song in ids:
            if song in seen and seen[song] != part:
                raise DataError(
                    f"split tvt-{split} puts song {song} in both {seen[song]} and {part}"
                )
            seen[song] = part
        rows[part] = np.sort(np.array([position[s] for s in ids], dtype=np.int64))
    for part in ("train", "test"):
        if rows[part].size == 0:
            raise DataError(f"split tvt-{split} has no {part} songs in {dataset.name!r}")
    return [Fold(0, 0, rows["train"], rows["test"], rows["validate"])]


__all__ = ["PROTOCOLS", "fixed_split_folds", "protocol_for"]
