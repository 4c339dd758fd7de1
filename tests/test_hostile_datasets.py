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


# ---- issue 27: what a dataset check exists for -----------------------------------------------


def test_W3_an_empty_quadrant_folder_is_refused_by_data_check_and_benchmark(
    tiny_4qaed: Path, tmp_path: Path
) -> None:
    from merkit.benchmark import run_benchmark
    from merkit.protocol import ProtocolConfig

    for wav in (tiny_4qaed / "Q3").glob("*.wav"):
        wav.unlink()  # Q3/ is there, and empty
    report = check_dataset("folder", tiny_4qaed, progress=False)
    assert not report.ok
    assert any(
        p.startswith("quadrant Q3 has no songs") and "Q3 is empty" in p for p in report.problems
    )
    with pytest.raises(DataError, match="quadrant Q3 has no songs"):
        check.load_checked_dataset("folder", tiny_4qaed, progress=False)
    dataset = load_dataset("folder", tiny_4qaed)  # the library path refuses it too
    with pytest.raises(DataError, match="quadrant Q3 has no songs"):
        run_benchmark(dataset, ["svm-own"], ProtocolConfig(n_splits=2, n_repeats=1), tmp_path)
    assert not (tmp_path / "svm-own").exists()


@pytest.mark.parametrize("decode", [True, False])
def test_W4_the_same_audio_under_two_names_and_labels_is_reported(
    tiny_4qaed: Path, decode: bool
) -> None:
    original = tiny_4qaed / "Q1" / "MT0000000001.wav"
    copy = tiny_4qaed / "Q2" / "renamed.wav"
    copy.write_bytes(original.read_bytes())
    same_quadrant = tiny_4qaed / "Q4" / "again.wav"
    same_quadrant.write_bytes((tiny_4qaed / "Q4" / "MT3000000000.wav").read_bytes())
    report = check_dataset("folder", tiny_4qaed, decode=decode, progress=False)
    conflicting = [p for p in report.problems if "labelled Q1 and Q2 (conflicting labels)" in p]
    assert len(conflicting) == 1 and str(original) in conflicting[0] and str(copy) in conflicting[0]
    twice = [p for p in report.problems if p.startswith("duplicate audio under 2 names")]
    assert len(twice) == 1 and "again" in twice[0] and "MT3000000000" in twice[0]
    assert len(report.problems) == 2


def test_data_check_notes_unknown_folders_stray_files_and_nested_audio(tiny_4qaed: Path) -> None:
    from conftest import write_tone

    write_tone(tiny_4qaed / "Q5" / "extra.wav", 300.0)
    write_tone(tiny_4qaed / "Q1" / "live" / "nested.wav", 310.0)
    (tiny_4qaed / "todo.txt").write_text("label the rest\n")
    (tiny_4qaed / "Q2" / "cover.jpg").write_bytes(b"\xff\xd8")
    for name in ("4qaed", "folder"):
        report = check_dataset(name, tiny_4qaed, progress=False)
        notes = "\n".join(report.notes)
        assert "Q5/ (1 audio file(s))" in notes and "not a quadrant" in notes
        assert "todo.txt" in notes
        assert "sub-folders of" in notes and "live/ (1)" in notes
        assert "cover.jpg" in notes
        assert report.ok  # ignored, and said so: not errors
    # The official 4QAED files at its root are expected, not stray.
    assert "panda_dataset_taffc_annotations" not in "\n".join(
        check_dataset("4qaed", tiny_4qaed, progress=False).notes
    )


def test_a_song_id_in_two_quadrants_is_named_by_its_plain_path(tiny_4qaed: Path) -> None:
    from conftest import write_tone

    first = write_tone(tiny_4qaed / "Q1" / "twice.wav", 300.0)
    second = write_tone(tiny_4qaed / "Q2" / "twice.wav", 310.0)
    with pytest.raises(DataError) as info:
        load_dataset("folder", tiny_4qaed)
    text = str(info.value)
    assert f"song id twice is used twice: {first} (Q1) and {second} (Q2)" in text
    assert "FileSource(" not in text and "PosixPath(" not in text


def test_a_latin1_annotations_csv_is_read_with_a_notice(tiny_4qaed: Path) -> None:
    annotations = tiny_4qaed / "panda_dataset_taffc_annotations.csv"
    lines = annotations.read_text().splitlines()
    rows = [lines[0] + ",Title"] + [f"{line},Café Señor" for line in lines[1:]]
    annotations.write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    dataset = load_dataset("4qaed", tiny_4qaed)
    assert len(dataset) == 12
    report = check_dataset("4qaed", tiny_4qaed, progress=False)
    assert report.ok, report.problems
    assert any(str(annotations) in n and "Latin-1" in n for n in report.notes)


def test_data_check_prints_a_table_and_shares_the_default_dataset() -> None:
    import inspect

    from typer.testing import CliRunner

    from merkit import cli
    from merkit.commands import tune

    result = CliRunner().invoke(cli.app, ["data", "check"])
    assert result.exit_code == 0, result.output
    assert "songs per quadrant" in result.output and "Q1 40" in result.output
    assert "{'" not in result.output and "Counter(" not in result.output
    defaults = {
        f.__name__: inspect.signature(f).parameters["dataset"].default
        for f in (cli.data_check, cli.benchmark, tune.tune)
    }
    assert set(defaults.values()) == {"synthetic"}, defaults
