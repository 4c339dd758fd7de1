"""Dataset loaders on generated trees, including every bad input of issue 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import FOURQAED, make_4qaed_tree, needs_4qaed, write_tone
from merkit.core.errors import DataError
from merkit.datasets import load_dataset
from merkit.datasets.check import check_dataset


def test_4qaed_layout_loads_songs_labels_and_features(tiny_4qaed: Path) -> None:
    dataset = load_dataset("4qaed", tiny_4qaed)
    assert len(dataset) == 12
    assert dataset.counts() == {"Q1": 3, "Q2": 3, "Q3": 3, "Q4": 3}
    assert dataset.song_ids == sorted(dataset.song_ids)
    features = dataset.table("top100")
    assert features.shape == (12, 2)
    # F0001 was written as quadrant index + noise: aligned rows reproduce the labels.
    np.testing.assert_array_equal(np.rint(features[:, 0]).astype(int), dataset.labels)


def test_4qaed_accepts_mixed_audio_formats(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    make_4qaed_tree(root, per_quadrant=2, features=False)
    wav = next((root / "Q1").glob("*.wav"))
    wav.unlink()
    write_tone(wav.with_suffix(".flac"), 330.0, sr=44_100, channels=2)
    dataset = load_dataset("4qaed", root)
    assert {s.source.path.suffix for s in dataset.songs} == {".wav", ".flac"}


def test_subset_keeps_listed_songs(tiny_4qaed: Path, tmp_path: Path) -> None:
    keep = load_dataset("4qaed", tiny_4qaed).song_ids[::2]
    listing = tmp_path / "subset.csv"
    listing.write_text("SongID\n" + "\n".join(keep) + "\n")
    dataset = load_dataset("4qaed", tiny_4qaed, subset=listing)
    assert dataset.song_ids == keep
    assert dataset.name == "4qaed-subset"


def test_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist.*nowhere"):
        load_dataset("4qaed", tmp_path / "nowhere")


def test_empty_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no Q1..Q4"):
        load_dataset("folder", tmp_path)
    for quadrant in ("Q1", "Q2"):
        (tmp_path / quadrant).mkdir()
    with pytest.raises(DataError, match="no audio files"):
        load_dataset("folder", tmp_path)


def test_zero_length_file_is_named(tiny_4qaed: Path) -> None:
    empty = tiny_4qaed / "Q2" / "MT1000000000.wav"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="zero-length.*MT1000000000.wav"):
        load_dataset("4qaed", tiny_4qaed)


def test_unknown_label_names_file_and_row(tiny_4qaed: Path) -> None:
    path = tiny_4qaed / "panda_dataset_taffc_annotations.csv"
    path.write_text(path.read_text().replace("MT0000000001,Q1", "MT0000000001,Q7"))
    with pytest.raises(DataError, match=r"unknown quadrant label 'Q7'.*row 3"):
        load_dataset("4qaed", tiny_4qaed)


def test_csv_without_id_column_names_the_file(tiny_4qaed: Path) -> None:
    path = tiny_4qaed / "panda_dataset_taffc_annotations.csv"
    path.write_text(path.read_text().replace("Song,Quadrant", "Track,Quadrant"))
    with pytest.raises(DataError, match="annotations.csv has no song id column"):
        load_dataset("4qaed", tiny_4qaed)


def test_feature_table_without_id_column_names_the_file(tiny_4qaed: Path) -> None:
    path = tiny_4qaed / "top100_features.csv"
    path.write_text(path.read_text().replace('"SongID"', '"Track"'))
    with pytest.raises(DataError, match="top100_features.csv"):
        load_dataset("4qaed", tiny_4qaed)


def test_listed_song_without_audio(tiny_4qaed: Path) -> None:
    (tiny_4qaed / "Q3" / "MT2000000001.wav").unlink()
    with pytest.raises(DataError, match="MT2000000001 .*has no audio"):
        load_dataset("4qaed", tiny_4qaed)


def test_conflicting_labels_between_folder_and_csv(tiny_4qaed: Path) -> None:
    (tiny_4qaed / "Q1" / "MT0000000002.wav").rename(tiny_4qaed / "Q4" / "MT0000000002.wav")
    with pytest.raises(DataError, match="label conflict for MT0000000002.*Q1.*Q4"):
        load_dataset("4qaed", tiny_4qaed)


def test_conflicting_labels_between_feature_table_and_annotations(tiny_4qaed: Path) -> None:
    path = tiny_4qaed / "top100_features.csv"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ',"Q3"'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="label conflict.*top100_features.csv says Q3"):
        load_dataset("4qaed", tiny_4qaed)


def test_all_problems_reported_in_one_error(tiny_4qaed: Path) -> None:
    (tiny_4qaed / "Q3" / "MT2000000001.wav").unlink()
    (tiny_4qaed / "Q2" / "MT1000000000.wav").write_bytes(b"")
    with pytest.raises(DataError) as info:
        load_dataset("4qaed", tiny_4qaed)
    message = str(info.value)
    assert "MT2000000001" in message and "MT1000000000" in message


def test_csv_dataset_and_its_bad_inputs(tmp_path: Path) -> None:
    write_tone(tmp_path / "a.wav", 440)
    write_tone(tmp_path / "b.wav", 220)
    listing = tmp_path / "songs.csv"
    listing.write_text("path,quadrant\na.wav,Q1\nb.wav,3\n")
    dataset = load_dataset("csv", listing)
    assert [s.quadrant for s in dataset.songs] == ["Q1", "Q3"]

    listing.write_text("file,quadrant\na.wav,Q1\n")
    with pytest.raises(DataError, match="no 'path' column"):
        load_dataset("csv", listing)
    listing.write_text("path,quadrant\na.wav,Q1\na.wav,Q2\nmissing.wav,Q2\n")
    with pytest.raises(DataError) as info:
        load_dataset("csv", listing)
    assert "labelled both Q1 and Q2" in str(info.value)
    assert "missing.wav" in str(info.value)


def test_check_lists_every_problem_including_undecodable_audio(tiny_4qaed: Path) -> None:
    (tiny_4qaed / "Q1" / "MT0000000000.wav").write_text("this is not audio")
    (tiny_4qaed / "Q4" / "MT3000000000.mp3").write_text("a text file named .mp3")
    (tiny_4qaed / "Q4" / "MT3000000000.wav").unlink()
    (tiny_4qaed / "Q3" / "MT2000000002.wav").unlink()
    report = check_dataset("4qaed", tiny_4qaed, progress=False)
    text = "\n".join(report.problems)
    assert not report.ok
    assert "MT2000000002" in text  # listed but no audio
    assert "MT0000000000.wav" in text  # undecodable wav
    assert "MT3000000000.mp3" in text  # text file named .mp3
    assert report.counts == {"Q1": 3, "Q2": 3, "Q3": 2, "Q4": 3}


def test_check_summarises_a_healthy_dataset(tiny_4qaed: Path) -> None:
    report = check_dataset("4qaed", tiny_4qaed, progress=False)
    assert report.ok, report.problems
    assert report.sample_rates == {16_000: 12}
    assert report.duration_summary()["median"] == pytest.approx(1.5)


@needs_4qaed
def test_real_4qaed_loads_900_balanced_songs_with_top100() -> None:
    dataset = load_dataset("4qaed", FOURQAED)
    assert len(dataset) == 900
    assert set(dataset.counts().values()) == {225}
    assert dataset.table("top100").shape == (900, 100)
