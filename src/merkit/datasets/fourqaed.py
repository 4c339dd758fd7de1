"""4QAED (Panda, Malheiro & Paiva, 2018): 900 clips, 225 per quadrant, official folder layout.

Layout::

    ROOT/Q1/<SongID>.<ext> ... ROOT/Q4/<SongID>.<ext>      (mp3, ogg, opus, wav, flac, ...)
    ROOT/panda_dataset_taffc_annotations.csv              (Song,Quadrant)
    ROOT/panda_dataset_taffc_metadata.csv                 (Song,Artist,...,Quadrant,...)
    ROOT/top100_features.csv                              (SongID, 100 features, Quadrant)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from merkit.core.errors import DataError
from merkit.core.labels import QUADRANTS, normalize_quadrant
from merkit.datasets._scan import (
    Problems,
    note_root_extras,
    quadrant_dirs,
    read_text_csv,
    require_dir,
    scan_audio,
)
from merkit.datasets.base import Dataset, FileSource, Song

ANNOTATIONS = "panda_dataset_taffc_annotations.csv"
METADATA = "panda_dataset_taffc_metadata.csv"
DEFAULT_TABLES = {"top100": "top100_features.csv"}
ID_COLUMNS = ("Song", "SongID", "IDSong")
OFFICIAL_FILES = (
    "readme.txt",
    "features.csv",
    "features_readme.txt",
    "feature_ranking_relieff.csv",
)
"""Other files of the official 4QAED archive (not read; never noted as stray)."""


def read_labels(path: Path, notes: Problems | None = None) -> dict[str, str]:
    """Song id -> quadrant from a CSV with an id column (Song/SongID/IDSong) and ``Quadrant``.

    A file that is not UTF-8 is read as Latin-1 with a note (to ``notes`` when given).
    """
    try:
        frame = read_text_csv(path, notes, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read label file {path}: {exc}") from None
    id_column = next((c for c in ID_COLUMNS if c in frame.columns), None)
    if id_column is None:
        raise DataError(
            f"label file {path} has no song id column (expected one of {', '.join(ID_COLUMNS)}; "
            f"found {', '.join(map(str, frame.columns))})"
        )
    label_column = next((c for c in frame.columns if c.lower() == "quadrant"), None)
    if label_column is None:
        raise DataError(f"label file {path} has no 'Quadrant' column")
    labels: dict[str, str] = {}
    problems = Problems(str(path))
    for row, (song, label) in enumerate(zip(frame[id_column], frame[label_column], strict=True)):
        where = f"{path.name} row {row + 2} (song {song})"
        try:
            quadrant = normalize_quadrant(label, where)
        except DataError as exc:
            problems.error(str(exc))
            continue
        if song in labels and labels[song] != quadrant:
            problems.error(
                f"song {song} is labelled both {labels[song]} and {quadrant} in {path.name}"
            )
        labels[song.strip()] = quadrant
    problems.raise_if_any()
    return labels


def read_subset(path: Path) -> list[str]:
    """Song ids listed in ``path``: a CSV with an id column, or one id per line."""
    if not path.is_file():
        raise DataError(f"subset file does not exist: {path}")
    text = path.read_text().strip().splitlines()
    header = [c.strip().strip('"') for c in text[0].split(",")] if text else []
    if any(c in ID_COLUMNS for c in header):
        frame = pd.read_csv(path, dtype=str)
        column = next(c for c in ID_COLUMNS if c in frame.columns)
        return [s.strip() for s in frame[column]]
    return [line.strip().strip('"') for line in text if line.strip()]


def load_4qaed(
    root: Path | str | None,
    *,
    subset: Path | str | None = None,
    tables: Mapping[str, Path | str] | None = None,
    group_by_artist: bool = False,
    name: str = "4qaed",
    collect: Problems | None = None,
    label_files: Sequence[str] = (ANNOTATIONS, METADATA),
) -> Dataset:
    """Load 4QAED (or any dataset in its layout, e.g. New-4QAED / MERGE audio) from ``root``.

    Parameters
    ----------
    root : path
        Folder holding ``Q1/``..``Q4/`` and the annotation CSV.
    subset : path, optional
        File listing the song ids to keep (e.g. the balanced New-4QAED B list).
    tables : mapping, optional
        Extra feature CSVs ``{name: path}``; ``top100_features.csv`` in ``root`` is loaded as
        ``top100`` automatically.
    group_by_artist : bool
        Use the metadata's ``Artist`` as group, so one artist's songs never straddle a split.
    name : str
        Dataset name used in results and fold files.
    collect : Problems, optional
        Append problems here instead of raising (``merkit data check`` lists them all).
    label_files : sequence of str
        Label CSVs in ``root`` to try, first found wins (a layout's own names, e.g. MERGE's).

    Raises
    ------
    DataError
        Listing every problem found: missing folders or files, label conflicts, unknown labels.
    """
    from merkit.features.tables import read_feature_table

    base = require_dir(root, "4qaed")
    problems = collect if collect is not None else Problems(f"4qaed dataset at {base}")
    folders = quadrant_dirs(base, problems)
    if not folders:
        raise DataError(f"no Q1..Q4 folders in {base}: is this the 4QAED root?")
    table_files = tuple(DEFAULT_TABLES.values()) + tuple(
        Path(v).name for v in (tables or {}).values()
    )
    note_root_extras(base, problems, (*label_files, METADATA, *table_files, *OFFICIAL_FILES))
    for quadrant in QUADRANTS:
        if quadrant not in folders:
            problems.error(f"missing folder {base / quadrant}")

    files: dict[str, tuple[str, Path]] = {}
    for quadrant, folder in folders.items():
        for song_id, path in scan_audio(folder, problems).items():
            if song_id in files:
                problems.error(f"song {song_id} appears in {files[song_id][1]} and {path}")
                continue
            files[song_id] = (quadrant, path)

    label_file = next((base / f for f in label_files if (base / f).is_file()), None)
    labels = (
        read_labels(label_file, problems)
        if label_file
        else {sid: q for sid, (q, _) in files.items()}
    )
    label_name = label_file.name if label_file else "the folder names"
    if label_file is None:
        problems.warn(f"no {label_files[0]} in {base}: labels taken from the folder names")

    songs: list[Song] = []
    for song_id, quadrant in sorted(labels.items()):
        if song_id not in files:
            if song_id in problems.rejected:
                continue  # its file is there but unusable, and was reported as such
            problems.error(
                f"song {song_id} ({quadrant}) is listed in {label_name} but has no audio"
            )
            continue
        folder_quadrant, path = files[song_id]
        if folder_quadrant != quadrant:
            problems.error(
                f"label conflict for {song_id}: {label_name} says {quadrant}, folder says "
                f"{folder_quadrant} ({path})"
            )
            continue
        songs.append(Song(song_id, FileSource(path), quadrant))
    for song_id, (_, path) in sorted(files.items()):
        if song_id not in labels:
            problems.warn(f"audio file without a label is ignored: {path}")

    if group_by_artist:
        artists = _artists(base / METADATA)
        songs = [Song(s.song_id, s.source, s.quadrant, artists.get(s.song_id)) for s in songs]

    loaded_tables: dict[str, pd.DataFrame] = {}
    table_paths = {k: base / v for k, v in DEFAULT_TABLES.items() if (base / v).is_file()}
    # Remembered so that asking for a missing default table names the file that was looked for.
    missing_tables = {k: base / v for k, v in DEFAULT_TABLES.items() if k not in table_paths}
    table_paths.update({k: Path(v) for k, v in (tables or {}).items()})
    for table_name, path in table_paths.items():
        frame, table_labels = read_feature_table(path)
        if table_labels is not None:
            for song_id, label in table_labels.items():
                if song_id in labels and normalize_quadrant(label, path.name) != labels[song_id]:
                    problems.error(
                        f"label conflict for {song_id}: {path.name} says {label}, "
                        f"annotations say {labels[song_id]}"
                    )
        loaded_tables[table_name] = frame

    if collect is None:
        problems.raise_if_any()
    dataset = Dataset(
        name=name,
        songs=songs,
        tables=loaded_tables,
        root=base,
        missing_tables={k: v for k, v in missing_tables.items() if k not in loaded_tables},
    )
    if subset is not None:
        dataset = dataset.subset(read_subset(Path(subset)), name=f"{name}-{Path(subset).stem}")
    return dataset


def _artists(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise DataError(f"grouping by artist needs {path}")
    frame = pd.read_csv(path, dtype=str)
    if "Artist" not in frame.columns:
        raise DataError(f"{path} has no 'Artist' column")
    return dict(zip(frame["Song"].str.strip(), frame["Artist"].fillna("").str.strip(), strict=True))
