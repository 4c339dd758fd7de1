"""A user's audio listed in a CSV: columns ``path,quadrant`` (optional ``song_id,group``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from merkit.audio.files import check_audio_file
from merkit.core.errors import AudioError, DataError
from merkit.core.labels import normalize_quadrant
from merkit.datasets._scan import Problems, read_text_csv
from merkit.datasets.base import Dataset, FileSource, Song


def load_csv(
    root: Path | str | None, *, name: str = "csv", collect: Problems | None = None
) -> Dataset:
    """Songs listed in the CSV file ``root``; relative paths are resolved against its folder.

    Raises
    ------
    DataError
        Naming the file, column or row: a missing file or column, unknown labels, missing audio,
        or one song listed twice with different labels.
    """
    if root is None:
        raise DataError("the csv dataset needs --root FILE.csv (columns: path,quadrant)")
    path = Path(root).expanduser()
    if path.is_dir():
        path = path / "dataset.csv"
    if not path.is_file():
        raise DataError(f"dataset CSV does not exist: {path}")
    problems = collect if collect is not None else Problems(f"dataset CSV {path}")
    try:
        frame = read_text_csv(path, problems, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read dataset CSV {path}: {exc}") from None
    columns = {c.strip().lower(): c for c in frame.columns}
    for required in ("path", "quadrant"):
        if required not in columns:
            raise DataError(
                f"dataset CSV {path} has no '{required}' column "
                f"(found: {', '.join(map(str, frame.columns))})"
            )
    songs: dict[str, Song] = {}
    for row, record in enumerate(frame.to_dict("records"), start=2):
        raw_path = str(record[columns["path"]]).strip()
        audio = Path(raw_path).expanduser()
        if not audio.is_absolute():
            audio = path.parent / audio
        song_id = str(record.get(columns.get("song_id", ""), "") or audio.stem).strip()
        try:
            quadrant = normalize_quadrant(record[columns["quadrant"]], f"{path.name} row {row}")
        except DataError as exc:
            problems.error(str(exc))
            continue
        if not audio.is_file() and not audio.exists() and not audio.is_symlink():
            problems.error(f"{path.name} row {row}: audio file does not exist: {audio}")
            continue
        if audio.is_file() and audio.stat().st_size == 0:
            problems.error(f"{path.name} row {row}: empty (zero-length) audio file: {audio}")
            continue
        try:
            check_audio_file(audio, content=False)  # FIFOs, devices, folders, symlink loops
        except AudioError as error:
            problems.error(f"{path.name} row {row}: {error}")
            continue
        if song_id in songs:
            if songs[song_id].quadrant != quadrant:
                problems.error(
                    f"{path.name} row {row}: song {song_id} is labelled both "
                    f"{songs[song_id].quadrant} and {quadrant}"
                )
            else:
                problems.error(f"{path.name} row {row}: song {song_id} is listed twice")
            continue
        group = str(record.get(columns.get("group", ""), "") or "").strip() or None
        songs[song_id] = Song(song_id, FileSource(audio), quadrant, group)
    if collect is None:
        problems.raise_if_any()
    if not songs:
        raise DataError(f"dataset CSV {path} lists no songs")
    return Dataset(name=name, songs=list(songs.values()), root=path.parent)
