"""``merkit data check``: every problem of a dataset in one run, plus a summary of its audio."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import track

from merkit.core.errors import AudioError, DataError
from merkit.datasets import load_dataset
from merkit.datasets._scan import Problems
from merkit.datasets.base import Dataset, FileSource, Song

_log = logging.getLogger(__name__)


@dataclass
class CheckReport:
    """What ``data check`` found. ``problems`` is empty for a healthy dataset."""

    dataset: Dataset | None
    counts: dict[str, int] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)
    sample_rates: Counter[int] = field(default_factory=Counter)
    channels: Counter[int] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def duration_summary(self) -> dict[str, float]:
        if not self.durations:
            return {}
        values = np.asarray(self.durations)
        return {
            "min": float(values.min()),
            "median": float(np.median(values)),
            "max": float(values.max()),
            "under_29s": int((values < 29.0).sum()),
        }


def check_dataset(
    name: str,
    root: Path | str | None,
    *,
    decode: bool = True,
    progress: bool = True,
    **options: object,
) -> CheckReport:
    """Load a dataset and inspect every audio file, collecting all problems instead of stopping.

    Loader problems (missing files, label conflicts, ...) are split into separate entries; then each
    audio file's header is read (duration, sample rate, channels) and, with ``decode``, the whole
    file is decoded so corrupt data is found too; songs without rows in a feature table are listed.
    A quadrant without songs is a problem, and so is audio found under two song ids (compared by
    a sha1 of the decoded samples with ``decode``, of the file's bytes without: about 1 s for
    900 clips either way); folders, stray files and nested audio a loader ignores are notes.
    """
    from merkit.audio.decode import audio_info

    collected = Problems(f"{name} dataset at {root}")
    if name in ("4qaed", "folder", "csv", "merge", "musifeast17"):
        options = {**options, "collect": collected}
    try:
        dataset = load_dataset(name, root, **options)
    except DataError as exc:
        return CheckReport(dataset=None, problems=[*collected.errors, str(exc)])

    report = CheckReport(
        dataset=dataset,
        counts=dataset.counts(),
        problems=list(collected.errors),
        notes=list(collected.warnings),
    )
    report.problems += empty_quadrants(dataset)
    contents: dict[str, list[Song]] = {}
    for song in track(dataset.songs, description="reading audio", disable=not progress):
        if not isinstance(song.source, FileSource):
            continue
        try:
            info = audio_info(song.source.path)
            if decode:
                samples = song.source.load(16_000)
                digest = "pcm:" + hashlib.sha1(np.ascontiguousarray(samples).tobytes()).hexdigest()
            else:
                digest = song.source.key  # sha1 of the file's bytes
        except AudioError as exc:
            report.problems.append(str(exc))
            continue
        except OSError as exc:
            report.problems.append(f"{song.source.path}: {exc}")
            continue
        contents.setdefault(digest, []).append(song)
        report.durations.append(info.duration)
        report.sample_rates[info.sample_rate] += 1
        report.channels[info.channels] += 1
        if info.duration < 1.0:
            report.problems.append(
                f"audio shorter than 1 s ({info.duration:.2f} s): {song.source.path}"
            )
    report.problems += duplicate_contents(contents.values(), decoded=decode)
    for table_name, frame in dataset.tables.items():
        missing = [s for s in dataset.song_ids if s not in frame.index]
        if missing:
            report.problems.append(
                f"{len(missing)} song(s) have no row in feature table {table_name!r}: "
                + ", ".join(missing[:10])
                + (" ..." if len(missing) > 10 else "")
            )
        extra = sorted(set(frame.index) - set(dataset.song_ids))
        if extra:
            report.notes.append(
                f"feature table {table_name!r} has {len(extra)} rows for unknown songs"
            )
    return report


def empty_quadrants(dataset: Dataset) -> list[str]:
    """One problem per quadrant without songs: macro scores over the other three overstate."""
    folder = dataset.root if dataset.root is not None and dataset.root.is_dir() else None
    return [
        f"quadrant {quadrant} has no songs"
        + (f" ({folder / quadrant} is empty or missing)" if folder is not None else "")
        + ": every quadrant needs songs (a model never tested on one scores a misleading "
        "macro F1)"
        for quadrant, count in dataset.counts().items()
        if count == 0
    ]


def duplicate_contents(groups: Iterable[list[Song]], *, decoded: bool) -> list[str]:
    """One problem per group of songs with identical audio (decoded samples or file bytes).

    Copies under two names put one song on both sides of a split (a leak); under two quadrants
    they are also conflicting labels.
    """
    what = "decode to the same samples" if decoded else "are byte-identical files"
    problems = []
    for songs in groups:
        if len(songs) < 2:
            continue
        listed = ", ".join(f"{s.song_id} ({s.quadrant}, {s.source.description})" for s in songs)
        quadrants = sorted({s.quadrant for s in songs})
        if len(quadrants) > 1:
            problems.append(
                f"the same audio is labelled {' and '.join(quadrants)} (conflicting labels): "
                f"{listed} {what}"
            )
        else:
            problems.append(
                f"duplicate audio under {len(songs)} names: {listed} {what}; a copy would sit "
                "on both sides of a split (keep one)"
            )
    return problems


def load_checked_dataset(
    name: str,
    root: Path | str | None,
    *,
    decode: bool = False,
    progress: bool = True,
    require_tables: Sequence[str] = (),
    **options: object,
) -> Dataset:
    """Load a dataset after the checks of ``merkit data check``, refusing it if any fails.

    The one validation every command shares: ``benchmark`` and ``train`` report exactly the
    problems ``data check`` lists (with ``decode=False``, the same as ``data check --no-decode``:
    each file's header is read, about 3 ms a file; a file whose header is sound but whose data is
    corrupt is reported, naming it, when its features are extracted).

    ``require_tables`` names feature tables the run will use (e.g. ``"top100"`` for the SVM):
    a missing one is reported with the others, naming the file it was expected in, before any
    method runs.

    Raises
    ------
    DataError
        Listing every problem, as ``data check`` does.
    """
    report = check_dataset(name, root, decode=decode, progress=progress, **options)
    for note in report.notes:
        _log.warning("%s", note)
    if report.dataset is not None:
        for table in require_tables:
            if table not in report.dataset.tables:
                try:
                    report.dataset.table(table)
                except DataError as error:
                    report.problems.append(str(error))
    if report.problems or report.dataset is None:
        where = f"{name} dataset at {root}" if root is not None else f"{name} dataset"
        lines = [f"{len(report.problems)} problem(s) in {where}:"]
        lines += [f"  - {problem}" for problem in report.problems]
        raise DataError("\n".join(lines))
    return report.dataset
