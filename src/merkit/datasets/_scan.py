"""Shared helpers for loaders: problem collection and audio-folder scanning."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from merkit.core.errors import AudioError, DataError
from merkit.core.labels import QUADRANTS
from merkit.datasets.base import AUDIO_EXTENSIONS

MAX_LISTED = 20


@dataclass
class Problems:
    """Collects every problem a loader finds, so one run reports all of them."""

    where: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rejected: set[str] = field(default_factory=set)
    """Song ids whose audio file was found and reported as unusable (not "missing" as well)."""

    def error(self, message: str) -> None:
        self.errors.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def raise_if_any(self) -> None:
        if not self.errors:
            return
        shown = self.errors[:MAX_LISTED]
        more = len(self.errors) - len(shown)
        lines = [f"{len(self.errors)} problem(s) in {self.where}:"] + [f"  - {e}" for e in shown]
        if more:
            lines.append(f"  ... and {more} more (run `merkit data check` for the full list)")
        raise DataError("\n".join(lines))


def require_dir(root: Path | str | None, what: str) -> Path:
    """Return ``root`` as an existing directory or raise a DataError naming it."""
    if root is None:
        raise DataError(f"{what} needs --root DIR")
    path = Path(root).expanduser()
    if not path.exists():
        raise DataError(f"{what} root does not exist: {path}")
    if not path.is_dir():
        raise DataError(f"{what} root is not a directory: {path}")
    return path


def note_root_extras(root: Path, problems: Problems, known_files: tuple[str, ...] = ()) -> None:
    """Note what a dataset root holds that merkit does not read (one line for each kind).

    Folders that are not Q1..Q4 (e.g. ``Q5/``) and files other than ``known_files`` are ignored:
    the note says so, naming them, so a misplaced quadrant or a stray file is never silent.
    """
    folders, files = [], []
    for child in sorted(root.iterdir()):
        if child.name.startswith(".") or child.name.upper() in QUADRANTS:
            continue
        if child.is_dir():
            count = sum(1 for p in child.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
            folders.append(f"{child.name}/ ({count} audio file(s))")
        elif child.name not in known_files:
            files.append(child.name)
    if folders:
        problems.warn(
            f"folder(s) in {root} that are not a quadrant (Q1..Q4) are ignored: "
            + ", ".join(folders[:MAX_LISTED])
        )
    if files:
        problems.warn(
            f"file(s) at the root of {root} that merkit does not read are ignored: "
            + ", ".join(files[:MAX_LISTED])
            + (f" and {len(files) - MAX_LISTED} more" if len(files) > MAX_LISTED else "")
        )


def read_text_csv(path: Path, problems: Problems | None = None, **options: object) -> Any:
    """``pandas.read_csv`` of a small text file: UTF-8 (with or without a BOM), else Latin-1.

    A file that is not UTF-8 is read as Latin-1 (every byte is a character there, as Excel on
    Windows writes them), with a note naming the file. Raises pandas' own errors otherwise.
    """
    import pandas as pd

    try:
        return pd.read_csv(path, encoding="utf-8-sig", **options)
    except UnicodeDecodeError as exc:
        note = (
            f"{path} is not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "read as Latin-1: check that accented names came out right"
        )
        if problems is not None:
            problems.warn(note)
        else:
            logging.getLogger(__name__).warning("%s", note)
        return pd.read_csv(path, encoding="latin-1", **options)


def quadrant_dirs(root: Path, problems: Problems | None = None) -> dict[str, Path]:
    """Map Q1..Q4 to the matching sub-folders of ``root`` (folder names are case-insensitive).

    An entry named like a quadrant that is not a folder (a file, a symlink loop) is reported to
    ``problems`` when given.
    """
    found: dict[str, Path] = {}
    for child in sorted(root.iterdir()):
        if child.name.upper() not in QUADRANTS:
            continue
        if child.is_dir():
            found[child.name.upper()] = child
        elif problems is not None:
            problems.error(f"{child} is named like a quadrant folder but is not a folder")
    return found


def scan_audio(folder: Path, problems: Problems) -> dict[str, Path]:
    """Audio files directly inside ``folder`` keyed by file stem (the song id).

    Every entry with an audio extension is checked without being opened
    (:func:`merkit.audio.files.check_audio_file` with ``content=False``): FIFOs, devices, sockets,
    folders, symlink loops and broken links are reported, never skipped silently (and a FIFO is
    never opened). Unreadable or non-audio content is found by ``data check`` and on decoding.
    """
    from merkit.audio.files import check_audio_file

    files: dict[str, Path] = {}
    nested, other = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            if path.is_dir():
                found = sum(1 for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
                if found:
                    nested.append(f"{path.name}/ ({found})")
            else:
                other.append(path.name)
            continue
        try:
            if path.is_file() and path.stat().st_size == 0:
                problems.error(f"empty (zero-length) audio file: {path}")
                problems.rejected.add(path.stem)
                continue
            check_audio_file(path, content=False)
        except (AudioError, OSError) as error:
            problems.error(str(error) if isinstance(error, AudioError) else f"{path}: {error}")
            problems.rejected.add(path.stem)
            continue
        if path.stem in files:
            problems.error(f"song {path.stem} has two audio files: {files[path.stem]} and {path}")
            continue
        files[path.stem] = path
    if nested:
        problems.warn(
            f"audio in sub-folders of {folder} is ignored (only files directly in it are read): "
            + ", ".join(nested[:MAX_LISTED])
        )
    if other:
        problems.warn(
            f"{len(other)} file(s) in {folder} without an audio extension are ignored: "
            + ", ".join(other[:MAX_LISTED])
        )
    return files
