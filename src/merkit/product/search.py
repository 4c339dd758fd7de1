"""Find the audio files to predict among named files and folders (searched recursively)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from merkit.audio.files import unreadable_reason
from merkit.datasets.base import AUDIO_EXTENSIONS


def find_audio_files(
    paths: Iterable[str | os.PathLike[str]],
) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files to predict, and ``(path, message)`` for each path that cannot be read.

    Named files are kept as given; folders are searched recursively for files with an audio
    extension (:data:`merkit.datasets.base.AUDIO_EXTENSIONS`), sorted. Hidden files and folders
    (names starting with ``.``, e.g. macOS ``._song.mp3``) and symbolic links to folders are
    skipped in folders. Every path that cannot be read (missing, a FIFO, device or socket, a
    symbolic-link loop or broken link, no permission, an unreadable folder) is reported with its
    reason; nothing is opened that could block.
    """
    files: list[Path] = []
    problems: list[tuple[str, str]] = []

    def fail(path: Path | str, reason: str) -> None:
        problems.append((str(path), f"'{path}' {reason}"))

    for path in map(Path, paths):
        try:
            is_dir = stat.S_ISDIR(os.stat(path).st_mode)
        except OSError:
            is_dir = False  # unreadable_reason below names the problem
        if not is_dir:
            reason = unreadable_reason(path)
            if reason is None:
                files.append(path)
            else:
                fail(path, reason)
            continue
        found: list[Path] = []
        walk_errors: list[OSError] = []
        for folder, dirnames, filenames in os.walk(path, onerror=walk_errors.append):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith(".") or Path(name).suffix.lower() not in AUDIO_EXTENSIONS:
                    continue
                file = Path(folder) / name
                reason = unreadable_reason(file)
                if reason is None:
                    found.append(file)
                else:
                    fail(file, reason)
        for exc in walk_errors:
            reason = (exc.strerror or type(exc).__name__).lower()
            fail(exc.filename, f"is a folder that cannot be read: {reason}")
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
