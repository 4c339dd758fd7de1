"""Shared helpers for loaders: problem collection and audio-folder scanning."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in AUDIO_EXTENSIONS:
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
    return files
