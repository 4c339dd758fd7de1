"""MUSIFEAST-17: the published layout (a generated miniature), quadrants from the ratings."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import write_tone
from merkit.benchmark import dataset_per_root
from merkit.cli import app
from merkit.core.errors import ConfigError, DataError
from merkit.datasets import load_dataset
from merkit.datasets.musifeast17 import quadrant_of

REAL_ROOT = Path("/work/shared/data/musifeast17")
HEADER = "CLIP_NAME,GENRE,FAMILIARITY,ARTIST,valence_M,valence_SD,arousal_M,arousal_SD"
# (clip, genre, artist, valence, arousal): two clips per quadrant, one video-game clip
CLIPS = [
    ("Pop_HIGH_01", "Pop", "A", 4.2, 4.1),
    ("Dance_LOW_02", "Dance", "B", 3.0, 3.0),  # on the midpoint: the high side, Q1
    ("Metal_MED_01", "Metal", "C", 2.2, 4.6),
    ("Metal_MED_02", "Metal", "C", 2.8, 3.9),
    ("Film_LOW_03", "Film", "D", 2.1, 1.9),
    ("Classical_LOW_04", "Classical", "E", 2.5, 2.2),
    ("Ambient_LOW_05", "Ambient", "F", 3.6, 1.6),
    ("Jazz_MED_06", "Jazz", "G", 3.9, 2.4),
    ("VG_HIGH_07", "Video game", "H", 4.0, 4.0),
]


def make_musifeast_tree(root: Path, clips=CLIPS, *, audio: bool = True) -> Path:
    """A miniature MUSIFEAST-17 repository: ``stimuli/*.wav`` and ``data/MUSIFEAST17_all.csv``."""
    rows = [HEADER]
    for k, (clip, genre, artist, valence, arousal) in enumerate(clips):
        rows.append(f'{clip},{genre},Low,"{artist}",{valence},0.9,{arousal},0.8')
        if audio:
            write_tone(root / "stimuli" / f"{clip}.wav", 200.0 + 30 * k, seconds=1.5)
    (root / "data").mkdir(parents=True, exist_ok=True)
    (root / "data" / "MUSIFEAST17_all.csv").write_text("\n".join(rows) + "\n")
    return root


def test_quadrants_from_the_signs_around_the_midpoint() -> None:
    assert quadrant_of(4.0, 4.0) == "Q1"
    assert quadrant_of(4.0, 2.0) == "Q2"
    assert quadrant_of(2.0, 2.0) == "Q3"
    assert quadrant_of(2.0, 4.0) == "Q4"
    assert quadrant_of(3.0, 3.0) == "Q1"


def test_load_musifeast17_layout(tmp_path: Path) -> None:
    dataset = load_dataset("musifeast17", make_musifeast_tree(tmp_path))
    assert dataset.name == "musifeast17"
    assert dataset.counts() == {"Q1": 2, "Q2": 2, "Q3": 2, "Q4": 2}
    assert "VG_HIGH_07" not in dataset.song_ids  # video-game music is left out by default
    song = {s.song_id: s for s in dataset.songs}
    assert song["Metal_MED_01"].group == song["Metal_MED_02"].group == "C"
    assert song["Pop_HIGH_01"].valence == pytest.approx((4.2 - 1) / 4)  # 1-5 scale -> 0-1
    everything = load_dataset("musifeast17", tmp_path, exclude_genres=())
    assert "VG_HIGH_07" in everything.song_ids


def test_bad_tables_name_file_row_and_column(tmp_path: Path) -> None:
    root = make_musifeast_tree(tmp_path / "bad")
    table = root / "data" / "MUSIFEAST17_all.csv"
    table.write_text(table.read_text().replace("3.9,0.9,2.4", "n/a,0.9,2.4"))
    with pytest.raises(DataError, match=r"row 9 \(clip Jazz_MED_06\): valence_M 'n/a'"):
        load_dataset("musifeast17", root)
    table.write_text(table.read_text().replace("arousal_M", "energy_M"))
    with pytest.raises(DataError, match="MUSIFEAST17_all.csv has no arousal_M column"):
        load_dataset("musifeast17", root)
    make_musifeast_tree(tmp_path / "gap")
    (tmp_path / "gap" / "stimuli" / "Pop_HIGH_01.wav").unlink()
    with pytest.raises(DataError, match="clip Pop_HIGH_01 .* has no audio"):
        load_dataset("musifeast17", tmp_path / "gap")
    with pytest.raises(DataError, match="no MUSIFEAST17_all.csv"):
        load_dataset("musifeast17", tmp_path)


def test_data_check_musifeast17_fixture(tmp_path: Path) -> None:
    root = make_musifeast_tree(tmp_path)
    result = CliRunner().invoke(
        app, ["data", "check", "--dataset", "musifeast17", "--root", str(root), "--no-decode"]
    )
    assert result.exit_code == 0, result.output
    assert "8 songs" in result.output and "left out" in result.output


def test_dataset_per_root() -> None:
    assert dataset_per_root("folder", "cross-dataset", 2) == ["folder", "folder"]
    assert dataset_per_root("4qaed,musifeast17", "cross-dataset", 2) == ["4qaed", "musifeast17"]
    assert dataset_per_root("4qaed", "kfold", 0) == ["4qaed"]
    with pytest.raises(ConfigError, match="only --protocol cross-dataset"):
        dataset_per_root("4qaed,merge", "kfold", 1)
    with pytest.raises(ConfigError, match="two \\(A,B\\)"):
        dataset_per_root("4qaed,merge,folder", "cross-dataset", 2)


@pytest.mark.skipif(
    not (REAL_ROOT / "data" / "MUSIFEAST17_all.csv").is_file(),
    reason=f"the MUSIFEAST-17 repository is not at {REAL_ROOT} (github.com/HazelvdW/MUSIFEAST-17)",
)
def test_real_musifeast17() -> None:
    dataset = load_dataset("musifeast17", REAL_ROOT)
    assert len(dataset) == 335  # 356 clips less the 21 video-game ones
    assert dataset.counts() == {"Q1": 187, "Q2": 14, "Q3": 27, "Q4": 107}


def test_cli_cross_dataset_with_two_dataset_names(tmp_path: Path) -> None:
    from conftest import make_4qaed_tree

    make_4qaed_tree(tmp_path / "4qaed", per_quadrant=3)
    mine = make_musifeast_tree(tmp_path / "m17")
    out = tmp_path / "run"
    args = ["benchmark", "--protocol", "cross-dataset", "-d", "4qaed,musifeast17"]
    args += ["-r", str(tmp_path / "4qaed"), "-r", str(mine), "--methods", "svm-own"]
    result = CliRunner().invoke(app, [*args, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    table = (out / "cross_dataset.md").read_text()
    assert "| svm-own | 4qaed | musifeast17 | 12 | 8 |" in table
    assert "| svm-own | musifeast17 | 4qaed | 8 | 12 |" in table
