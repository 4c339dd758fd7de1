"""Find the audio files to predict among named files and folders (searched recursively)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from merkit.datasets.base import AUDIO_EXTENSIONS


def find_audio_files(
    paths: Iterable[str | os.PathLike[str]],
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files to predict, and ``(path, message)`` for each folder that cannot be read.

    Listing is stat-only: no file is opened or checked here, so each path is checked once, by
    the decoder's check (:func:`merkit.audio.files.check_audio_file`) when it is predicted; a
    file that cannot be read (missing, a FIFO, device or socket, a symbolic-link loop or broken
    link, no permission, a name too long) becomes that file's failure, in input order.

    Named paths that are not folders are kept as given; folders are searched recursively for
    entries with an audio extension (:data:`merkit.datasets.base.AUDIO_EXTENSIONS`), sorted.
    Hidden files and folders (names starting with ``.``, e.g. macOS ``._song.mp3``) and symbolic
    links to folders are skipped in folders. Only a folder that cannot be listed is a problem
    here.
    """
    files: list[Path] = []
    problems: list[tuple[str, str]] = []
    for path in map(Path, paths):
        try:
            is_dir = stat.S_ISDIR(os.stat(path).st_mode)
        except OSError:
            is_dir = False  # the decoder's check names the problem
        if not is_dir:
            files.append(path)
            continue
        found: list[Path] = []
        walk_errors: list[OSError] = []
        for folder, dirnames, filenames in os.walk(path, onerror=walk_errors.append):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            found += [
                Path(folder) / name
                for name in filenames
                if not name.startswith(".") and Path(name).suffix.lower() in AUDIO_EXTENSIONS
            ]
        for exc in walk_errors:
            reason = (exc.strerror or type(exc).__name__).lower()
            problems.append(
                (str(exc.filename), f"'{exc.filename}' is a folder that cannot be read: {reason}")
            )
        files += sorted(found)
    return files, problems


class Unreadable(NamedTuple):
    """A path found while expanding folders that cannot be read, with the message."""

    path: str
    error: str


def expand_folders(
    paths: Iterable[str | os.PathLike[str]],
) -> list[str | os.PathLike[str] | Unreadable]:
    """Named files as given (their errors come when they are predicted) and, in their place,
    each folder's audio files (:func:`find_audio_files`) and unreadable entries."""
    items: list[str | os.PathLike[str] | Unreadable] = []
    for path in paths:
        if not os.path.isdir(path):
            items.append(path)
            continue
        files, problems = find_audio_files([path])
        items += [Unreadable(p, e) for p, e in problems]
        items += files
    return items


__all__ = ["Unreadable", "expand_folders", "find_audio_files"]
