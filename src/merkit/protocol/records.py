"""What one fold of a method produced, and its file: typed, checksummed, validated on read.

Each fold file holds a :class:`FoldRecord` as JSON plus a sha256 of the record's canonical JSON
(sorted keys, no whitespace, the checksum itself left out). A file edited by hand, truncated, or
missing fields fails the check on read; what happens then is the reader's to say (a run
recomputes the fold, a report shows the method as incomplete). Each record also carries
``config_sha256``, the hash of its method's configuration stamp
(:func:`merkit.protocol.state.identity_hash`), so a fold file says by itself which settings made it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from merkit.protocol.folds import write_json_atomic

FOLD_FORMAT = 2
log = logging.getLogger(__name__)


class FoldMetrics(BaseModel):
    """Macro precision, recall and F1, accuracy, per-quadrant F1 and the confusion matrix."""

    model_config = ConfigDict(extra="forbid", strict=True)

    precision: float
    recall: float
    f1: float
    accuracy: float
    f1_per_class: list[float]
    confusion: list[list[int]]


class TrainingInfo(BaseModel):
    """How a deep model's training ended (from its history)."""

    epochs_run: int | None = None
    stop_reason: str | None = None
    best_epoch: int | None = None
    device: str | None = None
    final_train_accuracy: float | None = None


class FoldRecord(BaseModel):
    """The outcome of one fold: predictions, probabilities, metrics, timings, training info.

    Attributes
    ----------
    repeat, fold : int
        Which split.
    seed : int
        The seed every ``random_state`` of the estimator got.
    seconds : float
        Fit plus predict time (``fit_seconds + predict_seconds``).
    test_ids : list of str
        Song ids of the test rows, in order; ``y_true``, ``y_pred``, ``proba`` follow it.
    proba : list of list of float, optional
        Class probabilities (rounded to 6 decimals), when the estimator gives them.
    training : TrainingInfo, optional
        For estimators with a training history.
    extras : dict, optional
        Method-specific details, e.g. chunk-level predictions.
    model : object
        The fitted estimator when asked for (``fit_fold(..., keep_model=True)``); never written.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    format: int = FOLD_FORMAT
    repeat: int
    fold: int
    seed: int
    seconds: float
    fit_seconds: float
    predict_seconds: float
    test_ids: list[str]
    y_true: list[int]
    y_pred: list[int]
    proba: list[list[float]] | None = None
    metrics: FoldMetrics
    training: TrainingInfo | None = None
    extras: dict[str, Any] | None = None
    config_sha256: str | None = None
    """Hash of the method configuration that made this fold (None in files of older runs)."""
    model: Any = Field(default=None, exclude=True)

    @property
    def name(self) -> str:
        return f"r{self.repeat:02d}_f{self.fold:02d}"

    def payload(self) -> dict[str, Any]:
        """The record as JSON-ready data, with its checksum."""
        data = self.model_dump(mode="json")
        return {**data, "sha256": checksum(data)}


def checksum(data: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``data`` (sorted keys, compact, ``sha256`` left out)."""
    body = {k: v for k, v in data.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()


def write_fold(path: Path, record: FoldRecord) -> None:
    """Write ``record`` atomically (readers never see half a file)."""
    write_json_atomic(path, record.payload())


def inspect_fold(
    path: Path, test_ids: list[str] | None = None
) -> tuple[FoldRecord | None, str | None]:
    """``(record, None)`` for a valid fold file, ``(None, problem)`` for one that is not.

    The problem (one line) says why: truncated, edited (checksum mismatch), an older format,
    missing fields or of wrong types, written for another fold (its record names another split)
    or for other test songs. A missing file is ``(None, "missing")``.
    """
    if not path.exists():
        return None, "missing"
    if not path.is_file():
        return None, "not a regular file"
    problem = None
    record = None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            problem = "not a JSON object"
        elif data.get("format") != FOLD_FORMAT:
            problem = f"format {data.get('format')!r}, expected {FOLD_FORMAT}"
        elif data.get("sha256") != checksum(data):
            problem = "checksum mismatch (edited or damaged)"
        else:
            record = FoldRecord.model_validate({k: v for k, v in data.items() if k != "sha256"})
            if record.name != path.stem:
                problem = f"it holds the record of fold {record.name}"
                record = None
            elif test_ids is not None and record.test_ids != test_ids:
                problem = "made for other test songs"
                record = None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        problem = f"unreadable ({type(exc).__name__})"
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        problem = f"invalid field {where!r}: {first['msg']}"
    return record, problem


def read_fold(path: Path, test_ids: list[str] | None = None) -> FoldRecord | None:
    """A finished fold's record, or None when it is missing or not valid.

    A missing file is None silently; an invalid one (see :func:`inspect_fold`) is None with a
    one-line warning naming the file and the problem.
    """
    record, problem = inspect_fold(path, test_ids)
    if problem is not None and problem != "missing":
        log.warning("fold file %s is not a valid result (%s)", path, problem)
    return record
