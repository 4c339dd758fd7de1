"""Leave-one-genre-out folds: how a method fares on a genre it never saw.

4QAED's metadata (``panda_dataset_taffc_metadata.csv``) lists one to five AllMusic genres per song
in ``GenresStr`` (e.g. ``"Electronic; International; Pop/Rock"``), mostly in alphabetical order,
so the first listed is not the most telling one. Each song gets one *genre group*:

1. its **most specific** listed genre, i.e. the one the fewest songs of the dataset list (ties by
   name): a song tagged ``Jazz; Vocal`` goes to ``Vocal`` (88 songs) rather than ``Jazz`` (167),
   ``Blues; R&B`` to ``Blues``; a song with one genre keeps it;
2. groups with fewer than ``min_size`` songs (default 30) are merged into ``Other`` (on 4QAED:
   Avant-Garde, Easy Listening, Comedy/Spoken, Holiday, New Age, Religious, Classical,
   Children's); a song without genres goes there too.

Each group is then one fold: trained on every other song, tested on the group's songs. Genres
are unbalanced in quadrants (4QAED's Blues has no Q2 song), so a test fold may lack quadrants;
the protocol's macro F1 averages over the quadrants *present in the test songs*
(:func:`merkit.protocol.metrics.fold_metrics`): a song predicted into an absent quadrant still
counts as an error through its own quadrant's recall and the accuracy.

The fold file is persisted like K-fold folds (song ids of each test fold, plus the group name),
so every method runs on the same folds.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from merkit.core.errors import ConfigError, DataError
from merkit.datasets.base import Dataset
from merkit.protocol.folds import FOLDS_FORMAT, Fold, ProtocolConfig, write_json_atomic

METADATA = "panda_dataset_taffc_metadata.csv"
GENRE_COLUMN = "GenresStr"
MIN_GROUP = 30
"""Songs a genre needs to be its own group (smaller ones are merged into ``OTHER``)."""
OTHER = "Other"
LEAVE_OUT = "genre"
"""``ProtocolConfig.leave_out`` value of this protocol (``--protocol logo-genre``)."""


def read_genres(path: Path | str) -> dict[str, list[str]]:
    """Song id -> its listed genres, from a 4QAED-style metadata CSV (``Song``, ``GenresStr``).

    Raises
    ------
    DataError
        The file is missing or lacks the ``Song`` or ``GenresStr`` column.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"leave-one-genre-out needs the genre metadata file {path}")
    frame = pd.read_csv(path, dtype=str)
    for column in ("Song", GENRE_COLUMN):
        if column not in frame.columns:
            raise DataError(f"{path} has no {column!r} column (needed for genre groups)")
    return {
        str(song).strip(): [g.strip() for g in str(text).split(";") if g.strip()]
        for song, text in zip(frame["Song"], frame[GENRE_COLUMN].fillna(""), strict=True)
    }


def genre_groups(
    genres: Mapping[str, Sequence[str]],
    song_ids: Sequence[str],
    *,
    min_size: int = MIN_GROUP,
) -> dict[str, str]:
    """One genre group per song by the module's rule (most specific genre, small ones merged).

    Parameters
    ----------
    genres : mapping
        Song id -> listed genres (:func:`read_genres`); songs absent or without genres go to
        ``Other``.
    song_ids : sequence of str
        The songs to group; genre frequencies are counted over these songs only.
    min_size : int
        Smallest group kept under its own name.

    Returns
    -------
    dict
        Song id -> group name.
    """
    listed = {song: list(dict.fromkeys(genres.get(song, ()))) for song in song_ids}
    frequency = Counter(g for names in listed.values() for g in names)
    first = {
        song: min(names, key=lambda g: (frequency[g], g)) if names else OTHER
        for song, names in listed.items()
    }
    sizes = Counter(first.values())
    return {song: g if sizes[g] >= min_size else OTHER for song, g in first.items()}


def dataset_genre_groups(dataset: Dataset, *, min_size: int | None = None) -> dict[str, str]:
    """:func:`genre_groups` of a dataset in 4QAED's layout (metadata CSV in its root).

    ``min_size`` defaults to :data:`MIN_GROUP`.

    Raises
    ------
    ConfigError
        The dataset has no root folder (e.g. the synthetic one).
    DataError
        The metadata file or its columns are missing.
    """
    if dataset.root is None:
        raise ConfigError(
            f"--protocol logo-genre needs a dataset with {METADATA} (genres); "
            f"{dataset.name!r} has no folder"
        )
    size = MIN_GROUP if min_size is None else min_size
    return genre_groups(read_genres(dataset.root / METADATA), dataset.song_ids, min_size=size)


def group_table(groups: Mapping[str, str], dataset: Dataset) -> pd.DataFrame:
    """Songs per group and quadrant (rows by size, largest first), with an ``n`` column."""
    quadrant = {s.song_id: s.quadrant for s in dataset.songs}
    frame = pd.crosstab(
        pd.Series([groups[s] for s in dataset.song_ids], name="genre"),
        pd.Series([quadrant[s] for s in dataset.song_ids], name="quadrant"),
    )
    frame["n"] = frame.sum(axis=1)
    return frame.sort_values(["n"], ascending=False, kind="stable")


def leave_one_group_out(groups: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    """(group, test rows) per group, largest group first (ties by name)."""
    values = np.asarray(groups, dtype=object)
    names = sorted(set(values.tolist()), key=lambda g: (-int((values == g).sum()), g))
    return [(name, np.flatnonzero(values == name)) for name in names]


def genre_protocol(dataset: Dataset, random_state: int = 1) -> ProtocolConfig:
    """The leave-one-genre-out :class:`ProtocolConfig` of ``dataset`` (one fold per group).

    Raises
    ------
    ConfigError
        Fewer than two genre groups.
    """
    n_groups = len(set(dataset_genre_groups(dataset).values()))
    if n_groups < 2:
        raise ConfigError(
            f"--protocol logo-genre needs at least 2 genre groups; {dataset.name!r} has "
            f"{n_groups} (groups under {MIN_GROUP} songs are merged into {OTHER})"
        )
    return ProtocolConfig(
        n_splits=n_groups,
        n_repeats=1,
        random_state=random_state,
        stratify=False,
        leave_out=LEAVE_OUT,
    )


def genre_folds_path(folder: Path, dataset: Dataset) -> Path:
    return folder / f"{dataset.name}-{dataset.fingerprint()}-logo-genre.json"


def load_or_create_genre_folds(
    folder: Path, dataset: Dataset, protocol: ProtocolConfig
) -> list[Fold]:
    """Leave-one-genre-out folds of ``dataset``, read from ``folder`` or created and saved there.

    Stored like K-fold folds (song ids of each test fold, plus its ``group``); the train rows of a
    fold are every other song.

    Raises
    ------
    DataError
        A stored file for another song list, or a damaged one.
    ConfigError
        The number of groups differs from ``protocol.n_splits``.
    """
    path = genre_folds_path(folder, dataset)
    ids = dataset.song_ids
    all_rows = np.arange(len(ids))
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
            if stored.get("song_ids") != ids:
                raise DataError(f"fold file {path} was made for a different song list; delete it")
            position = {song: i for i, song in enumerate(ids)}
            tests = [
                np.sort(np.array([position[s] for s in e["test"]], dtype=np.int64))
                for e in stored["folds"]
            ]
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(
                f"fold file {path} is damaged ({type(exc).__name__}: {exc}); delete it to recreate"
            ) from None
    else:
        groups = dataset_genre_groups(dataset)
        split = leave_one_group_out([groups[s] for s in ids])
        tests = [rows for _, rows in split]
        payload = {
            "format": FOLDS_FORMAT,
            "dataset": dataset.name,
            "fingerprint": dataset.fingerprint(),
            "protocol": protocol.stamp(),
            "rule": "most specific listed genre, small groups merged into " + OTHER,
            "song_ids": ids,
            "folds": [
                {"repeat": 0, "fold": i, "group": name, "test": [ids[r] for r in rows]}
                for i, (name, rows) in enumerate(split)
            ],
        }
        write_json_atomic(path, payload)
    if len(tests) != protocol.n_splits:
        raise ConfigError(
            f"{path} holds {len(tests)} genre folds but the protocol expects "
            f"{protocol.n_splits}; delete the file to recreate"
        )
    return [Fold(0, i, np.setdiff1d(all_rows, test), test) for i, test in enumerate(tests)]


def fold_groups(folder: Path, dataset: Dataset) -> list[str]:
    """Group name of each persisted genre fold, in fold order."""
    path = genre_folds_path(folder, dataset)
    try:
        return [str(e["group"]) for e in json.loads(path.read_text())["folds"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read the genre folds {path}: {exc}") from None


__all__ = [
    "GENRE_COLUMN",
    "LEAVE_OUT",
    "MIN_GROUP",
    "OTHER",
    "dataset_genre_groups",
    "fold_groups",
    "genre_folds_path",
    "genre_groups",
    "genre_protocol",
    "group_table",
    "leave_one_group_out",
    "load_or_create_genre_folds",
    "read_genres",
]
