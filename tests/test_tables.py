"""Reading per-song feature tables (4QAED's top-100 CSV and the reference repo's layouts)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import FOURQAED, needs_4qaed
from merkit.core.errors import DataError
from merkit.features.tables import FeatureTableWarning, read_feature_table


def write(tmp_path: Path, text: str, name: str = "features.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_4qaed_layout_quoted_id_first_label_last(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '"SongID","F0525","ORIGINAL-TEXTURE-Musical Layers (Mean)","Quadrant"\n'
        '"MT0000004637",4.6433,0.92722,"Q3"\n'
        '"MT0000011357",1.5,-2,"Q1"\n',
    )
    features, labels = read_feature_table(path)
    assert list(features.columns) == ["F0525", "ORIGINAL-TEXTURE-Musical Layers (Mean)"]
    assert list(features.index) == ["MT0000004637", "MT0000011357"]
    assert features.index.name == "song_id"
    assert (features.dtypes == np.float64).all()
    np.testing.assert_allclose(features.to_numpy(), [[4.6433, 0.92722], [1.5, -2.0]])
    assert labels is not None
    assert labels.to_dict() == {"MT0000004637": "Q3", "MT0000011357": "Q1"}


@pytest.mark.parametrize("id_name", ["Song", "SongID", "IDSong", "songid", " IDSONG "])
def test_accepted_id_names_any_position_no_label(tmp_path: Path, id_name: str) -> None:
    path = write(tmp_path, f"f1,{id_name},f2\n1,007,2\n3,010,4\n")
    features, labels = read_feature_table(path)
    assert labels is None
    assert list(features.index) == ["007", "010"]  # ids stay strings: leading zeros kept
    assert list(features.columns) == ["f1", "f2"]
    np.testing.assert_array_equal(features.to_numpy(), [[1, 2], [3, 4]])


def test_leftover_unnamed_index_column_is_dropped(tmp_path: Path) -> None:
    # the reference repo's decorrelated_1714 file: column 0 is a pandas index, column 1 IDSong
    path = write(tmp_path, ",IDSong,F0001,F0002\n0,a,1.0,2.0\n1,b,3.0,4.0\n")
    features, _ = read_feature_table(path)
    assert list(features.columns) == ["F0001", "F0002"]
    assert list(features.index) == ["a", "b"]


def test_unnamed_non_index_column_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "Song,,F0001\na,x,1\nb,y,2\n")
    with pytest.raises(DataError, match="column 2 has no name"):
        read_feature_table(path)


def test_label_column_detected_case_insensitively_and_explicitly(tmp_path: Path) -> None:
    path = write(tmp_path, "Song,f1,mood\na,1,happy\nb,2,sad\n")
    features, labels = read_feature_table(path, label_column="mood")
    assert labels is not None and labels.name == "mood"
    assert labels.tolist() == ["happy", "sad"]
    assert list(features.columns) == ["f1"]
    # with another label requested, a Quadrant column is just a (non-numeric) column: an error
    both = write(tmp_path, "quadrant,Song,f1,mood\nQ2,a,1,happy\n", "both.csv")
    with pytest.raises(DataError, match="'quadrant' is not numeric"):
        read_feature_table(both, label_column="mood")
    upper = write(tmp_path, "QUADRANT,Song,f1\nQ2,a,1\nQ4,b,2\n", "upper.csv")
    features, labels = read_feature_table(upper)
    assert labels is not None and labels.tolist() == ["Q2", "Q4"]
    assert list(features.columns) == ["f1"]


def test_requested_label_column_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "Song,f1\na,1\n")
    with pytest.raises(DataError, match="no label column 'Arousal'"):
        read_feature_table(path, label_column="Arousal")


def test_semicolon_separated(tmp_path: Path) -> None:
    features, _ = read_feature_table(write(tmp_path, "Song;f1;f2\na;1.5;2\n"))
    assert features.loc["a"].tolist() == [1.5, 2.0]


def test_missing_id_column_lists_accepted_names(tmp_path: Path) -> None:
    path = write(tmp_path, "track,f1\na,1\n")
    with pytest.raises(DataError) as info:
        read_feature_table(path)
    message = str(info.value)
    assert str(path) in message
    for name in ("Song", "SongID", "IDSong"):
        assert name in message


def test_duplicate_song_ids_are_named(tmp_path: Path) -> None:
    path = write(tmp_path, "Song,f1\na,1\nb,2\na,3\nc,4\nc,5\n")
    with pytest.raises(DataError, match=r"duplicate song ids 'a', 'c'"):
        read_feature_table(path)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "empty"),
        ("\n\n", "empty"),
        ("Song,f1,f2\n", "no rows"),
        ("Song,Quadrant\na,Q1\n", "no feature columns"),
        ("Song,f1\n,1\n", "empty song id on line"),
        ("Song,f1,Quadrant\na,1,\n", "empty 'Quadrant' for song"),
        ("Song,SongID,f1\na,a,1\n", "several song-id columns"),
        ("Song,f1,f1\na,1,2\n", "duplicate column names: 'f1'"),
    ],
)
def test_malformed_tables(tmp_path: Path, text: str, match: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DataError, match=match) as info:
        read_feature_table(path)
    assert str(path) in str(info.value)


def test_non_numeric_feature_names_column_file_and_song(tmp_path: Path) -> None:
    path = write(tmp_path, "Song,f1,mood\na,1,2\nb,3,happy\n")
    with pytest.raises(DataError) as info:
        read_feature_table(path)
    message = str(info.value)
    assert (
        "'mood'" in message and str(path) in message and "'happy'" in message and "'b'" in message
    )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_feature_table(tmp_path / "absent.csv")


def test_nan_kept_with_warning_and_all_nan_column_dropped(tmp_path: Path) -> None:
    path = write(tmp_path, "Song,f1,empty,f3\na,1,,NA\nb,,NaN,2\nc,3,,inf\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        features, _ = read_feature_table(path)
    assert list(features.columns) == ["f1", "f3"]
    assert features.isna().sum().to_dict() == {"f1": 1, "f3": 2}  # inf counts as missing
    messages = [str(w.message) for w in caught if issubclass(w.category, FeatureTableWarning)]
    assert any("dropped 1 column" in m and "'empty'" in m for m in messages)
    assert any("3 missing value(s) in 2 column(s)" in m for m in messages)


def test_clean_table_warns_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "Song,f1\na,1\nb,2\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_feature_table(path)


def test_round_trip_of_a_pandas_written_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(5, 3)), columns=["x", "y", "z"])
    frame.insert(0, "IDSong", [f"MT{i:010d}" for i in range(5)])
    frame["Quadrant"] = ["Q1", "Q2", "Q3", "Q4", "Q1"]
    frame.to_csv(tmp_path / "t.csv")  # with pandas' unnamed index column
    features, labels = read_feature_table(tmp_path / "t.csv")
    np.testing.assert_allclose(features.to_numpy(), frame[["x", "y", "z"]].to_numpy(), rtol=1e-12)
    assert labels is not None and labels.tolist() == frame["Quadrant"].tolist()


@needs_4qaed
def test_real_4qaed_top100() -> None:
    features, labels = read_feature_table(FOURQAED / "top100_features.csv")
    assert features.shape == (900, 100)
    assert features.columns[0] == "F0525"
    assert features.columns[2] == "ORIGINAL-TEXTURE-Musical Layers (Mean)"
    assert labels is not None
    assert labels.value_counts().to_dict() == {"Q1": 225, "Q2": 225, "Q3": 225, "Q4": 225}
    assert features.index[0] == "MT0000004637"
