"""What a dataset is: songs with an audio source and a quadrant, plus optional feature tables."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from merkit.core.errors import DataError
from merkit.core.labels import QUADRANTS

AUDIO_EXTENSIONS: tuple[str, ...] = (
    ".mp3",
    ".ogg",
    ".opus",
    ".wav",
    ".flac",
    ".m4a",
    ".aiff",
    ".aif",
)
"""Audio file extensions merkit recognises when it scans folders."""


@runtime_checkable
class AudioSource(Protocol):
    """Where a song's audio comes from.

    ``key`` identifies the audio *content* (not its location), so caches survive moving a dataset;
    ``load`` decodes it to mono float32 at ``sr``.
    """

    @property
    def key(self) -> str: ...

    @property
    def description(self) -> str: ...

    def load(self, sr: int) -> np.ndarray: ...


@dataclass(frozen=True)
class FileSource:
    """Audio stored in a file of any common format (see :func:`merkit.audio.decode.load_audio`)."""

    path: Path

    @property
    def key(self) -> str:
        from merkit.audio.files import check_audio_file

        check_audio_file(self.path)  # never open a FIFO (it blocks) or a folder for hashing
        digest = hashlib.sha1()
        with open(self.path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return f"file:{digest.hexdigest()}"

    @property
    def description(self) -> str:
        return str(self.path)

    def load(self, sr: int) -> np.ndarray:
        from merkit.audio.decode import load_audio

        return load_audio(self.path, sr=sr)

    def decode(self) -> tuple[np.ndarray, int]:
        """Mono samples at the file's own rate and that rate (``load`` = this + ``conform``)."""
        from merkit.audio.decode import decode_mono

        return decode_mono(self.path)

    def decode_frames(self) -> tuple[np.ndarray, int]:
        """``(frames, channels)`` samples at the file's own rate and that rate (``decode`` without
        the mixdown; :func:`merkit.audio.decode.to_mono` completes it)."""
        from merkit.audio.decode import decode_frames

        return decode_frames(self.path)


@dataclass(frozen=True)
class Song:
    """One labelled song.

    Attributes
    ----------
    song_id : str
        Stable identifier, e.g. ``MT0000004637``.
    source : AudioSource or None
        Its audio; ``None`` for feature-only datasets.
    quadrant : str
        ``"Q1"``..``"Q4"``.
    group : str or None
        Songs sharing a group (e.g. an artist) are kept on one side of every split.
    arousal, valence : float or None
        The song's annotated arousal and valence where the dataset gives them (MERGE: 0-1).
    """

    song_id: str
    source: AudioSource | None
    quadrant: str
    group: str | None = None
    arousal: float | None = None
    valence: float | None = None

    @property
    def label(self) -> int:
        return QUADRANTS.index(self.quadrant)


@dataclass
class Dataset:
    """A list of songs (sorted by id) and feature tables keyed by song id.

    Feature tables are ``DataFrame`` objects indexed by song id whose columns are numeric features.
    ``missing_tables`` maps the name of a table the loader looked for but did not find to the file
    it expected, so that asking for it names that file. ``splits`` holds a dataset's published
    fixed splits: name (e.g. ``"70-15-15"``) -> part (``train``/``validate``/``test``) -> song ids.
    """

    name: str
    songs: list[Song]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    root: Path | None = None
    missing_tables: dict[str, Path] = field(default_factory=dict)
    splits: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.songs = sorted(self.songs, key=lambda s: s.song_id)
        ids = [s.song_id for s in self.songs]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise DataError(
                f"dataset {self.name!r} lists songs more than once: {', '.join(dupes[:10])}"
            )
        if not self.songs:
            raise DataError(f"dataset {self.name!r} has no songs")

    def __len__(self) -> int:
        return len(self.songs)

    @property
    def song_ids(self) -> list[str]:
        return [s.song_id for s in self.songs]

    @property
    def labels(self) -> np.ndarray:
        """Integer labels 0..3 aligned with :attr:`songs`."""
        return np.array([s.label for s in self.songs], dtype=np.int64)

    @property
    def groups(self) -> np.ndarray | None:
        if all(s.group is None for s in self.songs):
            return None
        return np.array([s.group or s.song_id for s in self.songs], dtype=object)

    def counts(self) -> dict[str, int]:
        """Songs per quadrant."""
        values = self.labels
        return {q: int((values == i).sum()) for i, q in enumerate(QUADRANTS)}

    def fingerprint(self) -> str:
        """Hash of the song ids and labels: fold indices are valid for exactly this list."""
        text = "\n".join(f"{s.song_id}\t{s.quadrant}\t{s.group or ''}" for s in self.songs)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    def table(self, name: str) -> np.ndarray:
        """Feature table ``name`` as a float array aligned with :attr:`songs`.

        Raises
        ------
        DataError
            If the table does not exist or lacks rows for some songs.
        """
        if name not in self.tables:
            known = ", ".join(sorted(self.tables)) or "none"
            expected = self.missing_tables.get(name)
            where = f": its file {expected} does not exist" if expected is not None else ""
            raise DataError(
                f"dataset {self.name!r} has no feature table {name!r}{where} (available: {known})"
            )
        frame = self.tables[name]
        missing = [i for i in self.song_ids if i not in frame.index]
        if missing:
            raise DataError(
                f"feature table {name!r} has no row for {len(missing)} song(s): "
                + ", ".join(missing[:10])
                + (" ..." if len(missing) > 10 else "")
            )
        return frame.loc[self.song_ids].to_numpy(dtype=np.float64)

    def subset(self, song_ids: Sequence[str], name: str | None = None) -> Dataset:
        """The songs in ``song_ids`` (e.g. a New-4QAED B list), keeping feature tables."""
        wanted = set(song_ids)
        unknown = sorted(wanted - set(self.song_ids))
        if unknown:
            raise DataError(f"subset names songs not in {self.name!r}: {', '.join(unknown[:10])}")
        return Dataset(
            name=name or f"{self.name}-subset",
            songs=[s for s in self.songs if s.song_id in wanted],
            tables=self.tables,
            root=self.root,
            missing_tables=self.missing_tables,
            splits={
                name: {part: [i for i in ids if i in wanted] for part, ids in parts.items()}
                for name, parts in self.splits.items()
            },
        )

    def require_per_quadrant(self, minimum: int, why: str) -> None:
        """Raise a DataError naming every quadrant with fewer than ``minimum`` songs.

        Parameters
        ----------
        minimum : int
            Songs each quadrant needs, e.g. the number of folds of stratified CV.
        why : str
            What needs them, e.g. ``"10-fold stratified CV"``.
        """
        counts = self.counts()
        short = [f"{q} has {n}" for q, n in counts.items() if n < minimum]
        if short:
            listed = ", ".join(f"{q} {n}" for q, n in counts.items())
            raise DataError(
                f"{why} needs at least {minimum} songs per quadrant, but {' and '.join(short)} "
                f"(songs per quadrant: {listed})"
            )


DatasetLoader = Callable[..., Dataset]
