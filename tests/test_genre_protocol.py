"""Leave-one-genre-out: the grouping rule, persisted folds, metrics of a genre lacking quadrants,
and ``merkit benchmark --protocol logo-genre`` end to end on a miniature 4QAED."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import make_4qaed_tree
from merkit.core.errors import ConfigError, DataError
from merkit.datasets import load_dataset
from merkit.protocol import genre
from merkit.protocol.metrics import fold_metrics


def test_most_specific_genre_and_small_groups_merged() -> None:
    genres = {
        "a": ["Jazz", "Vocal"],  # Jazz listed by 3 songs, Vocal by 2: Vocal is more specific
        "b": ["Jazz"],
        "c": ["Jazz", "Vocal"],
        "d": ["Pop/Rock", "Electronic"],  # Electronic 1 song -> its group has 1 song -> Other
        "e": [],
        "f": ["Pop/Rock"],
        "g": ["Pop/Rock"],
    }
    groups = genre.genre_groups(genres, [*genres, "h"], min_size=2)
    assert groups == {
        "a": "Vocal",
        "b": "Other",  # Jazz alone: 1 song
        "c": "Vocal",
        "d": "Other",
        "e": "Other",
        "f": "Pop/Rock",
        "g": "Pop/Rock",
        "h": "Other",  # not in the metadata
    }
    # ties in frequency go by name
    assert genre.genre_groups({"x": ["B", "A"]}, ["x"], min_size=1) == {"x": "A"}


def test_leave_one_group_out_largest_first_and_covering() -> None:
    split = genre.leave_one_group_out(["b", "a", "b", "c", "a", "b"])
    assert [name for name, _ in split] == ["b", "a", "c"]
    assert [rows.tolist() for _, rows in split] == [[0, 2, 5], [1, 4], [3]]


def test_macro_f1_over_the_quadrants_the_test_songs_have() -> None:
    # a genre with Q1 and Q3 songs only; one Q3 song predicted Q2 (a quadrant it lacks)
    y_true = np.array([0, 0, 2, 2])
    y_pred = np.array([0, 0, 2, 1])
    m = fold_metrics(y_true, y_pred)
    # Q1: P 1, R 1, F1 1; Q3: P 1, R 0.5, F1 2/3. Q2 and Q4 have no songs: not averaged.
    assert m["f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["recall"] == pytest.approx(0.75)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["f1_per_class"] == pytest.approx([1.0, 0.0, 2 / 3, 0.0])
    # all four present: the usual 4-class macro average (unchanged)
    full = fold_metrics(np.array([0, 1, 2, 3]), np.array([0, 1, 2, 2]))
    assert full["f1"] == pytest.approx((1 + 1 + 2 / 3 + 0) / 4)


GENRES = {  # per quadrant index, genres of its 6 songs
    0: ["Pop/Rock", "Pop/Rock", "Jazz; Vocal", "Jazz", "Blues", "Pop/Rock"],
    1: ["Pop/Rock", "Pop/Rock", "Pop/Rock", "Jazz", "Blues; R&B", "Pop/Rock"],
    2: ["Blues", "Blues", "Jazz", "Jazz", "Blues", "Vocal; Jazz"],
    3: ["Jazz", "Jazz", "Blues", "Pop/Rock", "Jazz", "Jazz"],
}


def _tiny_with_genres(root: Path) -> Path:
    labels = make_4qaed_tree(root, per_quadrant=6)
    rows = ['"Song","Artist","Quadrant","GenresStr"']
    for song, quadrant in labels.items():
        q, k = int(song[2]), int(song[3:])
        rows.append(f'"{song}","x","{quadrant}","{GENRES[q][k]}"')
    (root / genre.METADATA).write_text("\n".join(rows) + "\n")
    return root


def test_genre_folds_are_persisted_and_cover_every_song(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(genre, "MIN_GROUP", 3)
    dataset = load_dataset("4qaed", _tiny_with_genres(tmp_path / "4qaed"))
    protocol = genre.genre_protocol(dataset)
    # Jazz;Vocal and Vocal;Jazz -> Vocal (2 songs) and Blues;R&B -> R&B (1 song): both into Other;
    # Jazz and Pop/Rock 8 songs each (ties by name), Blues 5 (none in Q2)
    groups = genre.dataset_genre_groups(dataset)
    table = genre.group_table(groups, dataset)
    assert table["n"].to_dict() == {"Jazz": 8, "Pop/Rock": 8, "Blues": 5, "Other": 3}
    assert protocol.n_splits == 4 and protocol.n_folds == 4
    assert protocol.describe() == "leave-one-genre-out (4 genre groups)"
    folds = genre.load_or_create_genre_folds(tmp_path / "folds", dataset, protocol)
    assert [f.test.size for f in folds] == [8, 8, 5, 3]
    every = np.concatenate([f.test for f in folds])
    assert sorted(every.tolist()) == list(range(len(dataset)))
    for fold in folds:
        assert np.intersect1d(fold.train, fold.test).size == 0
        assert fold.train.size + fold.test.size == len(dataset)
        assert len({groups[dataset.song_ids[i]] for i in fold.test}) == 1
    assert genre.fold_groups(tmp_path / "folds", dataset) == ["Jazz", "Pop/Rock", "Blues", "Other"]
    # read back from the file, even when the rule would now group differently
    monkeypatch.setattr(genre, "MIN_GROUP", 1)
    again = genre.load_or_create_genre_folds(tmp_path / "folds", dataset, protocol)
    assert [f.test.tolist() for f in again] == [f.test.tolist() for f in folds]
    path = genre.genre_folds_path(tmp_path / "folds", dataset)
    stored = json.loads(path.read_text())
    stored["song_ids"] = stored["song_ids"][:-1]
    path.write_text(json.dumps(stored))
    with pytest.raises(DataError, match="different song list"):
        genre.load_or_create_genre_folds(tmp_path / "folds", dataset, protocol)


def test_genre_protocol_refuses_a_dataset_without_genres(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no folder"):
        genre.genre_protocol(load_dataset("synthetic"))
    dataset = load_dataset("4qaed", make_4qaed_tree(tmp_path / "q", 2) and tmp_path / "q")
    with pytest.raises(DataError, match="genre metadata file"):
        genre.genre_protocol(dataset)


def test_cli_benchmark_leave_one_genre_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from merkit.cli import app
    from merkit.protocol.results import load_results

    monkeypatch.setattr(genre, "MIN_GROUP", 3)
    root = _tiny_with_genres(tmp_path / "4qaed")
    out = tmp_path / "run"
    args = ["benchmark", "-d", "4qaed", "-r", str(root), "--methods", "svm", "--protocol"]
    result = CliRunner().invoke(app, [*args, "logo-genre", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "leave-one-genre-out (4 genre groups)" in result.output
    run = load_results(out)
    records = run.methods["svm"].per_fold
    assert len(records) == 4 and run.methods["svm"].complete
    assert [len(r.test_ids) for r in records] == [8, 8, 5, 3]
    # the Blues group has no Q2 song: its F1 averages over the quadrants it has
    blues = records[2]
    present = sorted(set(blues.y_true))
    assert 1 not in present
    expected = fold_metrics(np.array(blues.y_true), np.array(blues.y_pred))["f1"]
    assert blues.metrics.f1 == pytest.approx(expected)
    # rerunning resumes (same folds file, nothing recomputed)
    again = CliRunner().invoke(app, [*args, "logo-genre", "--out", str(out), "--quiet"])
    assert again.exit_code == 0, again.output
