"""Hostile dataset folders: every problem reported, by every command alike, naming the thing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import make_4qaed_tree, within
from merkit.core.errors import DataError
from merkit.datasets import check, load_dataset
from merkit.datasets.check import check_dataset

posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


def _four_problems(root: Path) -> None:
    """Break a tiny 4QAED in four independent ways."""
    (root / "Q1" / "MT0000000000.wav").unlink()
    (root / "Q1" / "MT0000000000.mp3").write_text("a text file named .mp3\n" * 20)  # not audio
    sf.write(root / "Q2" / "MT1000000000.wav", np.zeros(4000, dtype=np.float32), 16_000)  # 0.25 s
    (root / "Q3" / "MT2000000002.wav").unlink()  # listed in the annotations, no audio
    (root / "Q4" / "MT3000000001.wav").write_bytes(b"")  # empty


def test_benchmark_validation_reports_the_same_problems_as_data_check(tiny_4qaed: Path) -> None:
    # Issue 8: `merkit benchmark` reported 1 problem where `merkit data check` found 4.
    _four_problems(tiny_4qaed)
    report = check_dataset("4qaed", tiny_4qaed, decode=False, progress=False)
    assert len(report.problems) == 4, report.problems
    with pytest.raises(DataError) as info:
        check.load_checked_dataset("4qaed", tiny_4qaed, progress=False)
    lines = str(info.value).splitlines()
    assert lines[0].startswith("4 problem(s) in 4qaed dataset at")
    assert [line.removeprefix("  - ") for line in lines[1:]] == report.problems
    text = str(info.value)
    for name in ("MT0000000000.mp3", "MT1000000000.wav", "MT2000000002", "MT3000000001.wav"):
        assert name in text


def test_a_checked_healthy_dataset_loads(tiny_4qaed: Path) -> None:
    dataset = check.load_checked_dataset("4qaed", tiny_4qaed, progress=False)
    assert len(dataset) == 12 and dataset.counts() == {"Q1": 3, "Q2": 3, "Q3": 3, "Q4": 3}


def test_too_few_songs_names_the_quadrant(tiny_4qaed: Path) -> None:
    for song in ("MT2000000001", "MT2000000002"):
        (tiny_4qaed / "Q3" / f"{song}.wav").unlink()
    lines = (tiny_4qaed / "panda_dataset_taffc_annotations.csv").read_text().splitlines()
    kept = [line for line in lines if not line.startswith(("MT2000000001", "MT2000000002"))]
    (tiny_4qaed / "panda_dataset_taffc_annotations.csv").write_text("\n".join(kept) + "\n")
    dataset = load_dataset("4qaed", tiny_4qaed)
    with pytest.raises(DataError, match=r"but Q3 has 1 \(songs per quadrant: Q1 3, Q2 3, Q3 1"):
        dataset.require_per_quadrant(3, "3-fold stratified CV")
    dataset.require_per_quadrant(1, "anything")  # every quadrant has at least one


def test_an_empty_quadrant_is_named_too(tiny_4qaed: Path) -> None:
    dataset = load_dataset("4qaed", tiny_4qaed)
    no_q4 = dataset.subset([s for s in dataset.song_ids if not s.startswith("MT3")])
    with pytest.raises(DataError, match="but Q4 has 0"):
        no_q4.require_per_quadrant(2, "2-fold stratified CV")


def test_a_missing_feature_table_names_its_file(tmp_path: Path) -> None:
    root = tmp_path / "4qaed"
    make_4qaed_tree(root, features=False)
    dataset = load_dataset("4qaed", root)
    with pytest.raises(DataError) as info:
        dataset.table("top100")
    assert f"its file {root / 'top100_features.csv'} does not exist" in str(info.value)
    with pytest.raises(DataError, match=r"1 problem\(s\)[\s\S]*top100_features\.csv"):
        check.load_checked_dataset("4qaed", root, progress=False, require_tables=["top100"])
    subset = dataset.subset(dataset.song_ids[:8])
    with pytest.raises(DataError, match="top100_features.csv"):
        subset.table("top100")


@posix_only
def test_a_fifo_in_a_quadrant_folder_is_reported_and_never_opened(tiny_4qaed: Path) -> None:
    fifo = tiny_4qaed / "Q2" / "MT1000000009.mp3"
    os.mkfifo(fifo)
    error = within(10.0, lambda: load_dataset("4qaed", tiny_4qaed))
    assert isinstance(error, DataError), error
    assert f"audio file '{fifo}' is a FIFO (named pipe)" in str(error)
    report = within(10.0, lambda: check_dataset("4qaed", tiny_4qaed, progress=False))
    assert any("FIFO" in p and str(fifo) in p for p in report.problems)  # type: ignore[attr-defined]


def test_a_symlink_loop_in_a_quadrant_folder_is_reported(tiny_4qaed: Path) -> None:
    loop = tiny_4qaed / "Q1" / "MT0000000042.ogg"
    loop.symlink_to(tiny_4qaed / "Q1" / "other.ogg")
    (tiny_4qaed / "Q1" / "other.ogg").symlink_to(loop)
    with pytest.raises(DataError, match=r"MT0000000042\.ogg' is a symbolic-link loop"):
        load_dataset("4qaed", tiny_4qaed)
    report = check_dataset("4qaed", tiny_4qaed, progress=False)
    assert sum("symbolic-link loop" in p for p in report.problems) == 2


def test_a_symlink_loop_in_a_folder_dataset_is_reported(tiny_4qaed: Path) -> None:
    (tiny_4qaed / "Q4" / "x.wav").symlink_to(tiny_4qaed / "Q4" / "x.wav")
    with pytest.raises(DataError, match=r"x\.wav' is a symbolic-link loop"):
        load_dataset("folder", tiny_4qaed)


def test_a_folder_named_like_audio_is_reported(tiny_4qaed: Path) -> None:
    (tiny_4qaed / "Q3" / "live.flac").mkdir()
    with pytest.raises(DataError, match=r"live\.flac' is a directory, not a regular file"):
        load_dataset("folder", tiny_4qaed)


@posix_only
def test_a_csv_row_pointing_at_a_fifo_says_so(tmp_path: Path) -> None:
    t = np.arange(16_000) / 16_000
    sf.write(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 16_000)
    os.mkfifo(tmp_path / "b.wav")
    listing = tmp_path / "dataset.csv"
    listing.write_text("path,quadrant\na.wav,Q1\nb.wav,Q2\n")
    error = within(10.0, lambda: load_dataset("csv", listing))
    assert isinstance(error, DataError)
    assert "dataset.csv row 3" in str(error) and "is a FIFO (named pipe)" in str(error)
