"""MERGE archives: loading the published layout (generated fixture trees), its fixed splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import write_tone
from merkit.cli import app
from merkit.core.errors import ConfigError, DataError
from merkit.core.labels import QUADRANTS
from merkit.datasets import load_dataset
from merkit.datasets.base import Dataset, Song
from merkit.protocol.fixed import fixed_split_folds, protocol_for
from merkit.protocol.results import load_results

PER_QUADRANT = 6  # 24 songs: 70-15-15 -> 4 train, 1 validate, 1 test per quadrant


def make_merge_tree(
    parent: Path,
    kind: str = "complete",
    *,
    split_dirs: tuple[str, str] = ("tvt_70_15_15", "tvt_403030"),
) -> Path:
    """A miniature ``MERGE_Audio_<Kind>`` archive: Q1..Q4 tones, metadata, AV values, splits.

    Songs are named like MERGE's (``A001``...); arousal/valence put each song in its quadrant.
    """
    root = parent / f"MERGE_Audio_{kind.capitalize()}"
    songs: list[tuple[str, str, float, float]] = []
    for q_index, quadrant in enumerate(QUADRANTS):
        for k in range(PER_QUADRANT):
            song = f"A{q_index * PER_QUADRANT + k + 1:03d}"
            write_tone(root / quadrant / f"{song}.wav", 220.0 * (q_index + 1) + 7 * k, seconds=1.5)
            arousal = 0.8 if quadrant in ("Q1", "Q2") else 0.2
            valence = 0.8 if quadrant in ("Q1", "Q4") else 0.2
            songs.append((song, quadrant, arousal, valence))
    meta = ["Song,Quadrant,Artist,Title,Year"]
    meta += [f"{s},{q},Artist {i % 5},Title {i},2000" for i, (s, q, _, _) in enumerate(songs)]
    (root / f"merge_audio_{kind}_metadata.csv").write_text("\n".join(meta) + "\n")
    av = ["Song,Arousal,Valence"] + [f"{s},{a},{v}" for s, _, a, v in songs]
    (root / f"merge_audio_{kind}_av_values.csv").write_text("\n".join(av) + "\n")
    for folder, shares in zip(split_dirs, ((4, 1, 1), (2, 2, 2)), strict=True):
        tag = folder.removeprefix("tvt_")
        parts: dict[str, list[str]] = {"train": [], "validate": [], "test": []}
        for quadrant in QUADRANTS:
            mine = [s for s, q, _, _ in songs if q == quadrant]
            n_train, n_val, _ = shares
            parts["train"] += mine[:n_train]
            parts["validate"] += mine[n_train : n_train + n_val]
            parts["test"] += mine[n_train + n_val :]
        labels = {s: q for s, q, _, _ in songs}
        for part, ids in parts.items():
            path = root / "tvt_dataframes" / folder / f"tvt_{tag}_{part}_audio_{kind}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            lines = ["Song,Quadrant", *[f"{s},{labels[s]}" for s in ids]]
            path.write_text("\n".join(lines) + "\n")
        # Lyrics tables beside them are not the audio split and must not be picked.
        lyrics = root / "tvt_dataframes" / folder / f"tvt_{tag}_train_lyrics_{kind}.csv"
        lyrics.write_text("Song,Quadrant\nL999,Q1\n")
    return root


@pytest.fixture
def merge_root(tmp_path: Path) -> Path:
    return make_merge_tree(tmp_path)


def test_load_merge_keeps_av_values_and_both_split_layouts(merge_root: Path) -> None:
    dataset = load_dataset("merge", merge_root)
    assert dataset.name == "merge-complete"
    assert len(dataset) == 4 * PER_QUADRANT
    assert dataset.counts() == dict.fromkeys(QUADRANTS, PER_QUADRANT)
    first = dataset.songs[0]
    assert (first.song_id, first.quadrant, first.arousal, first.valence) == ("A001", "Q1", 0.8, 0.8)
    q3 = next(s for s in dataset.songs if s.quadrant == "Q3")
    assert (q3.arousal, q3.valence) == (0.2, 0.2)
    # tvt_70_15_15 and tvt_403030 both found; the lyrics table is not used.
    assert sorted(dataset.splits) == ["40-30-30", "70-15-15"]
    parts = dataset.splits["70-15-15"]
    assert [len(parts[p]) for p in ("train", "validate", "test")] == [16, 4, 4]
    assert "L999" not in parts["train"]
    # The parent folder of the archive works as root too.
    assert len(load_dataset("merge", merge_root.parent)) == len(dataset)


def test_fixed_split_fold_has_disjoint_parts(merge_root: Path) -> None:
    dataset = load_dataset("merge", merge_root)
    (fold,) = fixed_split_folds(dataset, protocol_for("tvt-40-30-30"))
    ids = np.array(dataset.song_ids)
    train, validate, test = set(ids[fold.train]), set(ids[fold.validate]), set(ids[fold.test])
    assert (len(train), len(validate), len(test)) == (8, 8, 8)
    assert not (train & test) and not (train & validate) and not (validate & test)
    assert set(ids[fold.test]) == set(dataset.splits["40-30-30"]["test"])
    with pytest.raises(ConfigError, match="unknown --protocol 'tvt-80-20'"):
        protocol_for("tvt-80-20")
    plain = Dataset("plain", [Song("a", None, "Q1")])
    with pytest.raises(ConfigError, match="needs a dataset that publishes that split"):
        fixed_split_folds(plain, protocol_for("tvt-70-15-15"))


def test_bad_merge_archives_are_named(tmp_path: Path) -> None:
    root = make_merge_tree(tmp_path / "a")
    split = root / "tvt_dataframes" / "tvt_70_15_15" / "tvt_70_15_15_test_audio_complete.csv"
    split.write_text("Song,Quadrant\nA001,Q1\nZ404,Q2\n")  # A001 is also in train
    with pytest.raises(DataError) as error:
        load_dataset("merge", root)
    text = str(error.value)
    assert "song Z404 is not in the dataset" in text
    assert "split tvt-70-15-15 puts song A001 in train and test" in text
    with pytest.raises(DataError, match="no merge_audio_<kind>_metadata.csv"):
        load_dataset("merge", tmp_path)
    make_merge_tree(tmp_path / "both", "complete")
    make_merge_tree(tmp_path / "both", "balanced")
    with pytest.raises(DataError, match="holds several MERGE archives"):
        load_dataset("merge", tmp_path / "both")


def test_data_check_merge_fixture(merge_root: Path) -> None:
    result = CliRunner().invoke(
        app, ["data", "check", "--dataset", "merge", "--root", str(merge_root)]
    )
    assert result.exit_code == 0, result.output
    assert "merge-complete" in result.output and "24 songs" in result.output
    assert "split tvt-70-15-15: train 16, validate 4, test 4" in result.output
    assert "no problems found" in result.output


@pytest.mark.slow
def test_tvt_quick_benchmark_on_merge_fixture(merge_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["benchmark", "--dataset", "merge", "--root", str(merge_root), "--protocol"]
    args += ["tvt-70-15-15", "--quick", "--methods", "svm-own,dnn-own"]
    args += ["--out", str(out), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run = load_results(out)
    method = run["svm-own"]
    assert method.complete and len(method.per_fold) == 1
    assert run["dnn-own"].complete
    assert method.protocol.describe() == "fixed train/validate/test split tvt-70-15-15"
    record = method.per_fold[0]
    dataset = load_dataset("merge", merge_root)
    assert sorted(record.test_ids) == sorted(dataset.splits["70-15-15"]["test"])
    # The tones are separable by pitch: the held-out test songs are mostly right.
    assert record.metrics.accuracy >= 0.75
    html = (out / "report.html").read_text()
    assert "fixed train/validate/test split tvt-70-15-15" in html
    assert "a single split" in html  # no t-test over one fold
    assert html.count('class="annotated"') == 2  # songs at their MERGE arousal/valence
    annotations = pd.read_csv(out / "annotations.csv", index_col="song")
    assert annotations.loc["A001"].tolist() == ["Q1", 0.8, 0.8]
    assert annotations.loc["A013"].tolist() == ["Q3", 0.2, 0.2]
    assert "svm-own vs dnn-own" in html or "dnn-own vs svm-own" in html  # McNemar instead
    result = CliRunner().invoke(app, args)  # a rerun resumes: nothing recomputed
    assert result.exit_code == 0, result.output
