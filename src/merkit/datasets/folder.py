"""A user's own audio, one sub-folder per quadrant: ``ROOT/Q1/*.mp3`` ... ``ROOT/Q4/*.wav``."""

from __future__ import annotations

from pathlib import Path

from merkit.core.errors import DataError
from merkit.core.labels import QUADRANTS
from merkit.datasets._scan import (
    Problems,
    note_root_extras,
    quadrant_dirs,
    require_dir,
    scan_audio,
)
from merkit.datasets.base import Dataset, FileSource, Song


def load_folder(
    root: Path | str | None, *, name: str = "folder", collect: Problems | None = None
) -> Dataset:
    """Songs from ``ROOT/Q1`` .. ``ROOT/Q4``; the song id is the file name without extension.

    Raises
    ------
    DataError
        If the root is missing, has no quadrant folders or no audio, or a song id repeats.
    """
    base = require_dir(root, "folder dataset")
    problems = collect if collect is not None else Problems(f"folder dataset at {base}")
    folders = quadrant_dirs(base, problems)
    if not folders:
        raise DataError(f"no Q1..Q4 sub-folders in {base} (expected one folder per quadrant)")
    note_root_extras(base, problems)
    songs: dict[str, Song] = {}
    for quadrant in QUADRANTS:
        if quadrant not in folders:
            problems.warn(f"no {quadrant} folder in {base}")
            continue
        for song_id, path in scan_audio(folders[quadrant], problems).items():
            if song_id in songs:
                problems.error(
                    f"song id {song_id} is used twice: {songs[song_id].source.description} "
                    f"({songs[song_id].quadrant}) and {path} ({quadrant})"
                )
                continue
            songs[song_id] = Song(song_id, FileSource(path), quadrant)
    if collect is None:
        problems.raise_if_any()
    if not songs:
        raise DataError(f"no audio files found under {base}")
    return Dataset(name=name, songs=list(songs.values()), root=base)
