"""Cross-dataset evaluation: trained on one dataset, tested on another, and back.

``merkit benchmark --protocol cross-dataset --root A --root B`` asks how a method fares on music
collected and labelled by someone else. The two datasets are joined into one
:class:`~merkit.datasets.base.Dataset` whose song ids carry their dataset's name
(``"<name>/<song id>"``), and the protocol has two folds:

* fold ``r00_f00``: trained on every song of the first dataset, tested on every song of the second;
* fold ``r00_f01``: trained on the second, tested on the first.

Each fold goes through the same pure :func:`merkit.protocol.runner.fit_fold` as K-fold, so every
scaler, selector, calibration and tuning step is fitted on the training dataset's songs only; the
test dataset is seen once, to be predicted. Per-song inputs (features, log-mels, embeddings) are
computed per song, as in every protocol, and depend on no other song.

Results are per direction (:func:`direction_table`: trained on, tested on, macro P/R/F1, accuracy),
never averaged into one number beside the paper's Table 3 (no paper number is comparable:
:func:`merkit.protocol.comparability.paper_comparison`). A test dataset may lack a quadrant; the
macro averages then run over the quadrants it has (:func:`merkit.protocol.metrics.fold_metrics`).
A training dataset must hold every quadrant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from merkit.core.errors import ConfigError, DataError
from merkit.core.labels import QUADRANTS
from merkit.datasets.base import Dataset
from merkit.protocol.folds import Fold, ProtocolConfig

LEAVE_OUT = "dataset"
"""``ProtocolConfig.leave_out`` value of this protocol (``--protocol cross-dataset``)."""
SEPARATOR = "/"
"""Between a dataset's name and a song id in the joined dataset's song ids."""


def dataset_labels(first: Dataset, second: Dataset) -> tuple[str, str]:
    """Names that tell the two datasets apart in results: each dataset's name, or, when both
    have the same name (two ``folder`` datasets), ``name:<root folder name>``; ``#1``/``#2`` are
    added when even those agree."""
    names = [first.name, second.name]
    if names[0] == names[1]:
        names = [
            f"{d.name}:{d.root.name}" if d.root is not None else d.name for d in (first, second)
        ]
    if names[0] == names[1]:
        names = [f"{names[0]}#1", f"{names[1]}#2"]
    return names[0], names[1]


def _shared_tables(first: Dataset, second: Dataset, labels: tuple[str, str]) -> dict:
    """Feature tables both datasets have with the same columns, their rows renamed."""
    tables = {}
    for name in sorted(set(first.tables) & set(second.tables)):
        a, b = first.tables[name], second.tables[name]
        if list(a.columns) != list(b.columns):
            continue
        parts = []
        for label, frame in zip(labels, (a, b), strict=True):
            renamed = frame.copy()
            renamed.index = [f"{label}{SEPARATOR}{i}" for i in frame.index]
            parts.append(renamed)
        tables[name] = pd.concat(parts)
    return tables


def check_training_dataset(dataset: Dataset, label: str) -> None:
    """A dataset trained on must hold songs of every quadrant.

    Raises
    ------
    DataError
        Naming the dataset (and its folder) and the quadrants it lacks.
    """
    counts = dataset.counts()
    empty = [q for q in QUADRANTS if counts[q] == 0]
    if empty:
        where = f" at {dataset.root}" if dataset.root is not None else ""
        raise DataError(
            f"cross-dataset: dataset {label!r}{where} has no {', '.join(empty)} songs; a dataset "
            f"trained on needs all four quadrants (songs per quadrant: {counts})"
        )


def join_datasets(
    first: Dataset, second: Dataset, labels: tuple[str, str] | None = None
) -> Dataset:
    """The two datasets as one, song ids prefixed by their dataset's label (``label/id``).

    Feature tables both have with the same columns are kept (rows renamed); the others are left
    out (a method reading one is refused by the dataset's own table check).
    """
    labels = labels or dataset_labels(first, second)
    if labels[0] == labels[1]:
        raise ConfigError(f"cross-dataset needs two different dataset names, got {labels[0]!r}")
    for label in labels:
        if SEPARATOR in label:
            raise ConfigError(f"a cross-dataset name may not hold {SEPARATOR!r}: {label!r}")
    songs = [
        replace(
            song,
            song_id=f"{label}{SEPARATOR}{song.song_id}",
            group=None if song.group is None else f"{label}{SEPARATOR}{song.group}",
        )
        for label, dataset in zip(labels, (first, second), strict=True)
        for song in dataset.songs
    ]
    return Dataset(
        name=f"{labels[0]}+{labels[1]}",
        songs=songs,
        tables=_shared_tables(first, second, labels),
    )


def cross_protocol(labels: Sequence[str], random_state: int = 1) -> ProtocolConfig:
    """The cross-dataset :class:`ProtocolConfig` (two folds, one per direction)."""
    return ProtocolConfig(
        n_splits=2,
        n_repeats=1,
        random_state=random_state,
        stratify=False,
        leave_out=LEAVE_OUT,
        datasets=tuple(labels),
    )


def cross_dataset(
    first: Dataset,
    second: Dataset,
    *,
    labels: tuple[str, str] | None = None,
    random_state: int = 1,
) -> tuple[Dataset, ProtocolConfig]:
    """The joined dataset and its protocol for training on ``first`` and testing on ``second``,
    and back; both datasets are checked to hold every quadrant (each is trained on).

    Raises
    ------
    DataError
        A dataset lacks a quadrant (named, with its folder).
    ConfigError
        Both datasets have the same name.
    """
    labels = labels or dataset_labels(first, second)
    for label, dataset in zip(labels, (first, second), strict=True):
        check_training_dataset(dataset, label)
    return join_datasets(first, second, labels), cross_protocol(labels, random_state)


def origin(song_id: str) -> str:
    """The dataset label of a joined dataset's song id."""
    return song_id.split(SEPARATOR, 1)[0]


def cross_folds(dataset: Dataset, protocol: ProtocolConfig) -> list[Fold]:
    """Fold 0: train on the first dataset's songs, test on the second's; fold 1: the reverse.

    Raises
    ------
    ConfigError
        ``protocol`` is not a cross-dataset protocol naming two datasets.
    DataError
        ``dataset`` is not their join (a dataset has no songs in it).
    """
    if protocol.leave_out != LEAVE_OUT or not protocol.datasets or len(protocol.datasets) != 2:
        raise ConfigError("cross_folds needs the protocol of merkit.protocol.cross.cross_dataset")
    owner = np.array([origin(s) for s in dataset.song_ids], dtype=object)
    rows = [np.flatnonzero(owner == label) for label in protocol.datasets]
    for label, found in zip(protocol.datasets, rows, strict=True):
        if found.size == 0:
            raise DataError(f"cross-dataset: {dataset.name!r} holds no song of {label!r}")
    return [Fold(0, 0, rows[0], rows[1]), Fold(0, 1, rows[1], rows[0])]


def direction_table(results: Sequence) -> pd.DataFrame:
    """One row per method and direction: ``method``, ``trained_on``, ``tested_on``,
    ``n_train``, ``n_test``, macro ``precision``/``recall``/``f1``, ``accuracy`` and per-quadrant
    F1 (fractions, 0-1), from finished fold records.

    Parameters
    ----------
    results : sequence of MethodResult
        Methods run under a cross-dataset protocol (others are skipped).
    """
    rows = []
    for result in results:
        protocol = result.protocol
        if protocol.leave_out != LEAVE_OUT or not protocol.datasets:
            continue
        first, second = protocol.datasets
        for record in result.per_fold:
            trained, tested = (first, second) if record.fold == 0 else (second, first)
            n_train = int(result.n_songs - len(record.test_ids)) if result.n_songs else None
            m = record.metrics
            rows.append(
                {
                    "method": result.method,
                    "trained_on": trained,
                    "tested_on": tested,
                    "n_train": n_train,
                    "n_test": len(record.test_ids),
                    "precision": m.precision,
                    "recall": m.recall,
                    "f1": m.f1,
                    "accuracy": m.accuracy,
                    **{f"f1_{q}": v for q, v in zip(QUADRANTS, m.f1_per_class, strict=True)},
                }
            )
    return pd.DataFrame(rows)


def direction_markdown(table: pd.DataFrame) -> str:
    """:func:`direction_table` as a Markdown table in percent (no paper column: none compares)."""
    head = (
        "| method | trained on | tested on | n train | n test | macro P % | macro R % | "
        "macro F1 % | accuracy % | F1 Q1 | F1 Q2 | F1 Q3 | F1 Q4 |"
    )
    lines = [
        head,
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in table.itertuples(index=False):
        quadrant = " | ".join(f"{100 * getattr(row, f'f1_{q}'):.1f}" for q in QUADRANTS)
        n_train = "" if row.n_train is None or pd.isna(row.n_train) else str(int(row.n_train))
        lines.append(
            f"| {row.method} | {row.trained_on} | {row.tested_on} | {n_train} | {row.n_test} | "
            f"{100 * row.precision:.2f} | {100 * row.recall:.2f} | {100 * row.f1:.2f} | "
            f"{100 * row.accuracy:.2f} | {quadrant} |"
        )
    return "\n".join(lines) + "\n"


__all__ = [
    "LEAVE_OUT",
    "SEPARATOR",
    "check_training_dataset",
    "cross_dataset",
    "cross_folds",
    "cross_protocol",
    "dataset_labels",
    "direction_markdown",
    "direction_table",
    "join_datasets",
    "origin",
]
