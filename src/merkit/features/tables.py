"""Read handcrafted-feature tables (CSV, one row per song) such as 4QAED's ``top100_features.csv``.

Accepted layouts, all keyed by song id:

- ``"SongID", F0525, ..., "Quadrant"`` (4QAED's top-100 file: quoted header, label last);
- ``IDSong, F0001, ...`` (the reference repo's ``top_100_*.csv``, no label);
- ``,IDSong, F0001, ...`` with a leftover unnamed row-index first column (the 1714-feature CSV).

The ID column may be called ``Song``, ``SongID`` or ``IDSong`` (any case, any position). A
``Quadrant`` column (any case) is split off as the label. Missing values are kept as NaN (the
estimator imputes them inside each training fold); columns that are entirely missing are dropped.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from merkit.core.errors import DataError

__all__ = [
    "ID_COLUMNS",
    "LABEL_COLUMN",
    "FeatureTableWarning",
    "read_feature_table",
]

ID_COLUMNS: Final[tuple[str, ...]] = ("Song", "SongID", "IDSong")
"""Accepted names of the song-id column (matched case-insensitively)."""

LABEL_COLUMN: Final[str] = "Quadrant"
"""Name of the label column detected automatically (matched case-insensitively)."""

_DELIMITERS: Final[tuple[str, ...]] = (",", ";", "\t")
_MAX_LISTED: Final[int] = 5


class FeatureTableWarning(UserWarning):
    """A feature table was read, but with missing values or dropped columns worth knowing about."""


def _listing(items: list[str]) -> str:
    shown = ", ".join(repr(i) for i in items[:_MAX_LISTED])
    return shown + (f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")


def _read_header(path: Path) -> tuple[list[str], str]:
    """The header cells (unquoted, stripped) and the delimiter, sniffed among , ; and tab."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            first = handle.readline()
    except FileNotFoundError:
        raise DataError(f"feature table not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read feature table {path}: {exc}") from None
    if not first.strip():
        raise DataError(f"feature table {path} is empty (no header line)")
    delimiter = max(_DELIMITERS, key=first.count)
    cells = next(csv.reader([first], delimiter=delimiter))
    return [c.strip() for c in cells], delimiter


def _find_column(header: list[str], wanted: tuple[str, ...], path: Path, what: str) -> int | None:
    lowered = {w.lower() for w in wanted}
    hits = [i for i, name in enumerate(header) if name.lower() in lowered]
    if len(hits) > 1:
        names = [header[i] for i in hits]
        raise DataError(f"feature table {path} has several {what} columns: {_listing(names)}")
    return hits[0] if hits else None


def _drop_index_columns(table: pd.DataFrame, unnamed: dict[str, int], path: Path) -> pd.DataFrame:
    """Drop unnamed columns that are a leftover row index (integers); reject any other.

    ``unnamed`` maps pandas' ``Unnamed: i`` names to 1-based positions in the file.
    """
    for column, position in unnamed.items():
        values = pd.to_numeric(table[column], errors="coerce")
        is_index = values.notna().all() and bool((values == np.round(values)).all())
        if not is_index:
            raise DataError(
                f"feature table {path}: column {position} has no name and is not a row index; "
                "name it or remove it"
            )
    return table.drop(columns=list(unnamed))


def _to_numeric(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Every column as float; a column with text that is not a number is a user error."""
    converted = {}
    for column in table.columns:
        series = table[column]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            converted[column] = series.astype(np.float64)
            continue
        numbers = pd.to_numeric(series, errors="coerce")
        bad = series[numbers.isna() & series.notna()]
        if len(bad):
            raise DataError(
                f"feature table {path}: column {column!r} is not numeric "
                f"(e.g. {bad.iloc[0]!r} for song {bad.index[0]!r})"
            )
        converted[column] = numbers.astype(np.float64)
    return pd.DataFrame(converted, index=table.index)


def _handle_missing(features: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Turn inf into NaN, drop all-NaN columns, and warn about what remains missing."""
    features = features.replace([np.inf, -np.inf], np.nan)
    empty = [str(c) for c in features.columns[features.isna().all()]]
    if empty:
        warnings.warn(
            f"feature table {path}: dropped {len(empty)} column(s) with no values: "
            f"{_listing(empty)}",
            FeatureTableWarning,
            stacklevel=3,
        )
        features = features.drop(columns=empty)
    n_missing = int(features.isna().sum().sum())
    if n_missing:
        columns = [str(c) for c in features.columns[features.isna().any()]]
        rows = int(features.isna().any(axis=1).sum())
        warnings.warn(
            f"feature table {path}: {n_missing} missing value(s) in {len(columns)} column(s) "
            f"({_listing(columns)}) across {rows} song(s); they are kept as NaN for in-fold "
            "imputation",
            FeatureTableWarning,
            stacklevel=3,
        )
    return features


def read_feature_table(
    path: str | Path, *, label_column: str | None = None
) -> tuple[pd.DataFrame, pd.Series | None]:
    """Read a per-song feature CSV into a numeric table indexed by song id.

    Parameters
    ----------
    path : str or Path
        CSV file (``,``, ``;`` or tab separated) with a header row. It must have an ID column named
        ``Song``, ``SongID`` or ``IDSong`` (any case, quoted or not, any position).
    label_column : str, optional
        Name of the label column to split off (matched case-insensitively); it must exist. By
        default a ``Quadrant`` column is split off when present.

    Returns
    -------
    features : pandas.DataFrame
        float64 feature columns in file order, index = song id (``str``, named ``song_id``).
        Missing values stay NaN; columns with no value at all are dropped (with a warning).
    labels : pandas.Series or None
        The label column as stripped strings, indexed like ``features``; ``None`` when the file has
        no label column.

    Raises
    ------
    DataError
        If the file is missing or empty, has no ID column (or several), a requested label column
        is absent, song ids are duplicated or blank, a feature column holds non-numbers, or there is
        no feature column at all.

    Warns
    -----
    FeatureTableWarning
        When values are missing or all-missing columns were dropped.
    """
    path = Path(path)
    header, delimiter = _read_header(path)
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1 and h})
        if dupes:
            raise DataError(f"feature table {path} has duplicate column names: {_listing(dupes)}")

    id_pos = _find_column(header, ID_COLUMNS, path, "song-id")
    if id_pos is None:
        raise DataError(
            f"feature table {path} has no song-id column; expected one named "
            f"{', '.join(ID_COLUMNS)} (found {_listing(header)})"
        )
    wanted_label = (label_column,) if label_column is not None else (LABEL_COLUMN,)
    label_pos = _find_column(header, wanted_label, path, "label")
    if label_column is not None and label_pos is None:
        raise DataError(f"feature table {path} has no label column {label_column!r}")

    try:
        table = pd.read_csv(
            path,
            sep=delimiter,
            dtype={id_pos: str} if label_pos is None else {id_pos: str, label_pos: str},
            keep_default_na=True,
            encoding="utf-8-sig",
            skipinitialspace=True,
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"feature table {path} is empty") from None
    except (pd.errors.ParserError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse feature table {path}: {exc}") from None
    if table.empty:
        raise DataError(f"feature table {path} has a header but no rows")

    table.columns = [str(c).strip() for c in table.columns]
    id_name = table.columns[id_pos]
    ids = table[id_name].astype("string").str.strip()
    blank = ids.isna() | (ids == "")
    if blank.any():
        rows = [str(int(i) + 2) for i in np.flatnonzero(blank.to_numpy())]  # +2: header, 1-based
        raise DataError(f"feature table {path}: empty song id on line(s) {_listing(rows)}")
    duplicated = ids[ids.duplicated()].unique().tolist()
    if duplicated:
        raise DataError(f"feature table {path}: duplicate song ids {_listing(duplicated)}")
    table.index = pd.Index(ids.astype(str).to_numpy(), name="song_id")

    labels: pd.Series | None = None
    drop = [id_name]
    if label_pos is not None:
        label_name = table.columns[label_pos]
        raw = table[label_name].astype("string").str.strip()
        unlabelled = raw.index[raw.isna() | (raw == "")].tolist()
        if unlabelled:
            raise DataError(
                f"feature table {path}: empty {label_name!r} for song(s) {_listing(unlabelled)}"
            )
        labels = pd.Series(raw.astype(str).to_numpy(), index=table.index, name=label_name)
        drop.append(label_name)
    unnamed = {
        c: i + 1
        for i, c in enumerate(table.columns)
        if (c.startswith("Unnamed:") or c == "") and c not in drop
    }
    rest = _drop_index_columns(table.drop(columns=drop), unnamed, path)
    if rest.shape[1] == 0:
        raise DataError(f"feature table {path} has no feature columns besides the id and label")

    features = _handle_missing(_to_numeric(rest, path), path)
    if features.shape[1] == 0:
        raise DataError(f"feature table {path}: every feature column is empty")
    return features, labels
