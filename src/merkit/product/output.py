"""Write predictions to a file as each song finishes, and resume an interrupted library run.

``merkit predict DIR --output FILE`` streams its answers through :class:`ResultSink`:

- one record per file (JSON Lines: one line; CSV: the track's row, then its window rows with
  ``--segments``), written with one ``write`` call, flushed and ``fsync``'d before the next file
  starts, so a ``kill -9`` at any moment loses at most the files still in flight;
- every record carries the file's content hash (SHA-256), so ``--resume`` skips a file only when
  both its path *and* its content match a finished record (a changed file is predicted again);
- on resume the finished records are kept, and a record cut short by a kill (a last line without
  its newline, unparsable JSON, a CSV track missing window rows) is discarded, as are failed files
  (tried again) and stale records of changed files; the kept records are written to a temporary
  file, ``fsync``'d and renamed over the output, so nothing the user had is lost before its
  replacement is in place;
- the settings that change the answers (the model, ``--hop``, ``--one-pass``,
  ``--crnn-precision``, ``--segments``) are kept beside the output in ``FILE.settings.json``, and
  ``--resume`` with other settings is refused, naming them: its answers would be mixed with the
  finished ones without a trace.

The sink consumes any stream of outcomes (:meth:`ResultSink.write`), whichever executor produced
them (one process, worker processes, Ray).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from merkit.core.atomic import atomic_file, write_text_atomic
from merkit.core.errors import ConfigError
from merkit.product.prediction import PredictionFailure, PredictionResult

Outcome = PredictionResult | PredictionFailure
Format = Literal["csv", "jsonl"]

CSV_COLUMNS = (
    "level",
    "path",
    "start_s",
    "end_s",
    "quadrant",
    "meaning",
    "p_Q1",
    "p_Q2",
    "p_Q3",
    "p_Q4",
    "arousal",
    "valence",
    "p_high_arousal",
    "p_positive_valence",
    "confidence",
    "mixed",
    "summary",
    "duration_s",
    "n_windows",
    "reliable",
    "warnings",
    "error",
    "relative_quadrant",
    "relative_arousal",
    "relative_valence",
    "quadrant_model",
    "p_high_arousal_axis",
    "p_positive_valence_axis",
    "familiarity",
)
"""Columns of ``merkit predict --format csv``; ``level`` is ``track`` or, with --segments,
``segment`` (one row per window after its track's row)."""

OUTPUT_CSV_COLUMNS = (*CSV_COLUMNS, "sha256")
"""Columns of a CSV ``--output`` file: those of ``--format csv`` and the file's SHA-256."""

EXTENSIONS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}

_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike[str]) -> str | None:
    """SHA-256 of a file's content (hex), or None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def output_format(path: Path, requested: str | None) -> Format:
    """The format of ``--output`` file ``path``: ``--format`` when given, else its extension.

    ``--format json`` means JSON Lines in a file (a JSON array cannot be appended to safely).
    """
    if requested is not None:
        if requested == "csv":
            return "csv"
        if requested in ("json", "jsonl"):
            return "jsonl"
        raise ConfigError(
            f"--output {path}: a {requested} cannot be written to a file; "
            "use --format csv or --format json (JSON Lines)"
        )
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise ConfigError(
            f"--output {path}: cannot tell the format from the extension {suffix or '(none)'!r}; "
            "name the file .csv or .jsonl, or pass --format csv or --format json"
        )
    return EXTENSIONS[suffix]


def _key(path: str) -> str:
    return os.path.abspath(os.path.normpath(path))


# ---------------------------------------------------------------------------------------------
# Records


def _fmt(value: float) -> str:
    return f"{value:.6f}"


def csv_rows(outcome: Outcome) -> list[dict[str, Any]]:
    """The CSV rows of one outcome (:data:`CSV_COLUMNS`): its track row, then its windows'."""
    if isinstance(outcome, PredictionFailure):
        return [{"level": "track", "path": outcome.path, "error": outcome.error}]
    o = outcome
    rows: list[dict[str, Any]] = [
        {
            "level": "track",
            "path": o.path,
            "start_s": 0.0,
            "end_s": o.duration_s,
            "quadrant": o.quadrant,
            "meaning": o.meaning,
            **{f"p_{q}": _fmt(p) for q, p in o.probabilities.items()},
            "arousal": o.arousal,
            "valence": o.valence,
            "p_high_arousal": _fmt(o.p_high_arousal),
            "p_positive_valence": _fmt(o.p_positive_valence),
            "confidence": _fmt(o.confidence),
            "mixed": o.mixed,
            "summary": o.summary,
            "duration_s": o.duration_s,
            "n_windows": o.n_windows,
            "reliable": o.reliable,
            "warnings": "; ".join(o.warnings),
            **_relative_columns(o),
            **_axis_columns(o),
        }
    ]
    for seg in o.segments or []:
        rows.append(
            {
                "level": "segment",
                "path": o.path,
                "start_s": seg.start_s,
                "end_s": seg.end_s,
                "quadrant": seg.quadrant,
                "meaning": seg.meaning,
                **{f"p_{q}": _fmt(p) for q, p in seg.probabilities.items()},
                "confidence": _fmt(seg.probabilities[seg.quadrant]),
                "reliable": not seg.silent,
            }
        )
    return rows


def _axis_columns(result: PredictionResult) -> dict[str, str]:
    """The axis models' and familiarity columns (empty for a model without them)."""
    values = {
        "quadrant_model": result.quadrant_model,
        "p_high_arousal_axis": result.p_high_arousal_axis,
        "p_positive_valence_axis": result.p_positive_valence_axis,
        "familiarity": result.familiarity,
    }
    return {
        key: (f"{value:.6f}" if isinstance(value, float) else str(value))
        for key, value in values.items()
        if value is not None
    }


def _relative_columns(result: PredictionResult) -> dict[str, str]:
    rel = result.relative
    if rel is None:
        return {}
    return {
        "relative_quadrant": rel.quadrant,
        "relative_arousal": f"{rel.relative_arousal:.4f}",
        "relative_valence": f"{rel.relative_valence:.4f}",
    }


def csv_text(outcomes: Iterable[Outcome], columns: tuple[str, ...] = CSV_COLUMNS) -> str:
    """A CSV document (header and rows) of ``outcomes``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for outcome in outcomes:
        writer.writerows(csv_rows(outcome))
    return buffer.getvalue()


def _record_text(outcome: Outcome, sha256: str | None, fmt: Format) -> str:
    if fmt == "jsonl":
        data = {**outcome.model_dump(mode="json"), "sha256": sha256}
        if isinstance(outcome, PredictionFailure):
            data = {"path": outcome.path, "error": outcome.error, "sha256": sha256}
        return json.dumps(data, ensure_ascii=False, allow_nan=False) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=OUTPUT_CSV_COLUMNS, lineterminator="\n")
    writer.writerows({**row, "sha256": sha256} for row in csv_rows(outcome))
    return buffer.getvalue()


def _header(fmt: Format) -> str:
    if fmt == "jsonl":
        return ""
    return ",".join(OUTPUT_CSV_COLUMNS) + "\n"


@dataclass(frozen=True)
class Finished:
    """A finished file read back from an output: its path, content hash and record text."""

    path: str
    sha256: str
    text: str


def read_finished(path: Path, fmt: Format) -> list[Finished]:
    """The complete, successful records of an output file (last one per path wins).

    A record cut short (no final newline, unparsable, a CSV track without all its window rows),
    failures and records without a hash are left out.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read --output {path}: {exc.strerror or exc}") from None
    text = raw.decode("utf-8", errors="replace")
    if not text.endswith("\n"):  # the last line was cut short by a kill
        text = text[: text.rfind("\n") + 1]
    found: dict[str, Finished] = {}
    for record in (_jsonl_records if fmt == "jsonl" else _csv_records)(path, text):
        found[_key(record.path)] = record
    return list(found.values())


def _jsonl_records(path: Path, text: str) -> Iterator[Finished]:
    for line in text.splitlines(keepends=True):
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (
            isinstance(data, dict)
            and isinstance(data.get("path"), str)
            and isinstance(data.get("sha256"), str)
            and "error" not in data
            and "quadrant" in data
        ):
            yield Finished(data["path"], data["sha256"], line)


def _csv_records(path: Path, text: str) -> Iterator[Finished]:
    lines = text.splitlines(keepends=True)
    if not lines:
        return
    if lines[0] != _header("csv"):
        raise ConfigError(
            f"--output {path} has other columns than merkit writes "
            f"({lines[0].strip()[:80]!r}...); cannot resume it: choose another --output"
        )
    rows = list(csv.DictReader(lines[1:], fieldnames=OUTPUT_CSV_COLUMNS))
    i = 0
    while i < len(rows):
        row = rows[i]
        j = i + 1
        while j < len(rows) and rows[j].get("level") == "segment":
            j += 1
        body = "".join(lines[1 + i : 1 + j])
        n_segments = j - i - 1
        ok = (
            row.get("level") == "track"
            and not row.get("error")
            and bool(row.get("sha256"))
            and bool(row.get("quadrant"))
            and (n_segments == 0 or str(n_segments) == row.get("n_windows"))
        )
        if ok:
            yield Finished(row["path"], row["sha256"], body)
        i = j


def settings_path(path: Path) -> Path:
    """Where the settings of the run writing ``path`` are kept: ``FILE.settings.json``."""
    return path.with_name(path.name + ".settings.json")


def _check_settings(path: Path, settings: dict[str, Any], *, resume: bool) -> None:
    """Refuse to resume ``path`` with other settings than it was written with; record them."""
    where = settings_path(path)
    if resume and where.is_file():
        try:
            before = json.loads(where.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(
                f"--output {path}: cannot read its settings file {where} ({exc}); delete it to "
                "resume without the check, or choose another --output"
            ) from None
        changed = [
            f"{key} {json.dumps(before.get(key))} -> {json.dumps(value)}"
            for key, value in settings.items()
            if before.get(key) != value
        ]
        if changed:
            raise ConfigError(
                f"--resume: {path} was written with other settings ({'; '.join(changed)}): "
                "its finished answers would be mixed with answers of another kind. Resume with "
                "the same settings, or choose another --output"
            )
        return
    write_text_atomic(where, json.dumps(settings, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------------------------
# The sink


class ResultSink:
    """Append predictions to ``--output`` as each file finishes (see the module docstring).

    Parameters
    ----------
    path : Path
        The output file.
    fmt : {"csv", "jsonl"}
        Its format (:func:`output_format`).
    resume : bool
        Continue an existing file; without it an existing file is refused (never overwritten).
    settings : mapping, optional
        What the answers depend on (JSON values), stored in :func:`settings_path`; a resume
        with other settings raises ConfigError. An output without the file (from before it
        existed) is resumed unchecked and gets one.
    """

    def __init__(
        self,
        path: Path,
        fmt: Format,
        *,
        resume: bool = False,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.fmt = fmt
        self.written = 0
        self.failed = 0
        self.finished: dict[str, str] = {}
        if path.is_dir():
            raise ConfigError(f"--output {path} is a folder; name a .csv or .jsonl file")
        if not path.parent.is_dir():
            raise ConfigError(f"--output {path}: the folder {path.parent} does not exist")
        exists = path.exists()
        if exists and not resume:
            raise ConfigError(
                f"--output {path} already exists: add --resume to continue it "
                "(finished files are skipped), or choose another file"
            )
        if settings is not None:
            _check_settings(path, dict(settings), resume=exists)
        self._digests: dict[str, str | None] = {}
        if exists:
            # a record of a file whose content changed since is dropped (it is done again)
            kept = [r for r in read_finished(path, fmt) if self._digest(r.path) in (r.sha256, None)]
            self.finished = {_key(r.path): r.sha256 for r in kept}
            self._replace(_header(fmt) + "".join(r.text for r in kept))
        else:
            self._replace(_header(fmt))
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def _replace(self, text: str) -> None:
        """Write ``text`` to a temporary file beside the output, fsync it, rename it over."""
        with atomic_file(self.path, durable=True) as tmp:
            tmp.write_text(text, encoding="utf-8", newline="")

    def _digest(self, path: str | os.PathLike[str]) -> str | None:
        key = _key(str(path))
        if key not in self._digests:
            self._digests[key] = file_digest(path)
        return self._digests[key]

    def is_finished(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` has a finished record whose hash matches the file's content now."""
        done = self.finished.get(_key(str(path)))
        return done is not None and done == self._digest(path)

    def pending(self, paths: Iterable[Path]) -> tuple[list[Path], int]:
        """The files still to predict, and how many were skipped as finished."""
        paths = list(paths)
        todo = [p for p in paths if not self.is_finished(p)]
        return todo, len(paths) - len(todo)

    def write(self, outcome: Outcome, sha256: str | None = None) -> None:
        """Append one file's record and make it durable (flush + fsync) before returning.

        ``sha256`` is the file's content hash, computed here when not given.
        """
        if sha256 is None and outcome.path is not None:
            sha256 = file_digest(outcome.path)
        data = _record_text(outcome, sha256, self.fmt).encode("utf-8")
        view = memoryview(data)
        while view:  # one write call in practice; a loop only for short writes
            view = view[os.write(self._fd, view) :]
        os.fsync(self._fd)
        self.written += 1
        self.failed += isinstance(outcome, PredictionFailure)

    def write_all(self, outcomes: Iterable[Outcome]) -> Iterator[Outcome]:
        """Write each outcome of a stream as it arrives, passing it on (for progress, printing)."""
        for outcome in outcomes:
            self.write(outcome)
            yield outcome

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ResultSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_output(path: Path, fmt: Format | None = None) -> list[Mapping[str, Any]]:
    """Every complete record of an output file, as dicts (JSON objects or CSV track rows)."""
    fmt = fmt or output_format(path, None)
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    if fmt == "jsonl":
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out
    return [row for row in csv.DictReader(io.StringIO(text)) if row.get("level") == "track"]


__all__ = [
    "CSV_COLUMNS",
    "OUTPUT_CSV_COLUMNS",
    "Finished",
    "ResultSink",
    "csv_rows",
    "csv_text",
    "file_digest",
    "output_format",
    "read_finished",
    "read_output",
]
