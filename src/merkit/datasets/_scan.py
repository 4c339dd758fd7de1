"""Shared helpers for loaders: problem collection and audio-folder scanning."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from merkit.datasets.base import AUDIO_EXTENSIONS
from merkit.errors import DataError
from merkit.labels import QUADRANTS

MAX_LISTED = 20


@dataclass
class Problems:
    """Collects every problem a loader finds, so one run reports all of them."""

    where: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

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


def quadrant_dirs(root: Path) -> dict[str, Path]:
    """Map Q1..Q4 to the matching sub-folders of ``root`` (folder names are case-insensitive)."""
    found: dict[str, Path] = {}
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.upper() in QUADRANTS:
            found[child.name.upper()] = child
    return found


def scan_audio(folder: Path, problems: Problems) -> dict[str, Path]:
    """Audio files directly inside ``folder`` keyed by file stem (the song id)."""
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        if path.stat().st_size == 0:
            problems.error(f"empty (zero-length) audio file: {path}")
            continue
        if path.stem in files:
            problems.error(f"song {path.stem} has two audio files: {files[path.stem]} and {path}")
            continue
        files[path.stem] = path
    return files
