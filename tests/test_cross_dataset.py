"""``--protocol cross-dataset``: trained on one dataset, tested on another, and back.

A real learning test (two synthetic datasets of different seeds: the songs differ, the emotion
cues are shared), the folds and what they hold, results per direction without a paper number,
and ``merkit benchmark`` end to end with one clear error for a bad second root.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import make_4qaed_tree
from merkit.benchmark import cross_dataset, default_methods, roots_for_protocol, run_benchmark
from merkit.core.errors import ConfigError, DataError
from merkit.datasets.base import Dataset, Song
from merkit.datasets.synthetic import load_synthetic
from merkit.protocol import cross
from merkit.protocol.comparability import paper_comparison
from merkit.protocol.results import load_results
from merkit.representations.cache import FeatureCache


def test_folds_train_on_one_dataset_and_test_on_the_other() -> None:
    first = load_synthetic(n_per_quadrant=2, seed=0, duration=1.0)
    second = load_synthetic(n_per_quadrant=3, seed=0, duration=1.0)  # same ids, other dataset
    joined, protocol = cross_dataset(first, second, labels=("a", "b"))
    assert len(joined) == 8 + 12
    assert protocol.describe() == "cross-dataset: trained on a, tested on b, and back"
    assert protocol.n_folds == 2
    folds = cross.cross_folds(joined, protocol)
    ids = np.array(joined.song_ids)
    assert [f.name for f in folds] == ["r00_f00", "r00_f01"]
    assert all(i.startswith("a/") for i in ids[folds[0].train])
    assert all(i.startswith("b/") for i in ids[folds[0].test])
    assert folds[1].train.tolist() == folds[0].test.tolist()
    assert folds[1].test.tolist() == folds[0].train.tolist()
    # the audio of each song is its own dataset's
    assert joined.songs[0].source == first.songs[0].source


def test_labels_tell_datasets_of_one_kind_apart(tmp_path: Path) -> None:
    a = Dataset("folder", [Song("x", None, "Q1")], root=tmp_path / "mine")
    b = Dataset("folder", [Song("x", None, "Q1")], root=tmp_path / "theirs")
    assert cross.dataset_labels(a, b) == ("folder:mine", "folder:theirs")
    c = Dataset("folder", [Song("x", None, "Q1")], root=tmp_path / "x" / "mine")
    assert cross.dataset_labels(a, c) == ("folder:mine#1", "folder:mine#2")


def test_a_training_dataset_lacking_a_quadrant_is_named(tmp_path: Path) -> None:
    full = load_synthetic(n_per_quadrant=2, duration=1.0)
    songs = [Song(f"s{q}", None, q) for q in ("Q1", "Q2", "Q3")]
    partial = Dataset("folder", songs, root=tmp_path / "theirs")
    with pytest.raises(DataError, match=r"'folder' at .*theirs has no Q4 songs"):
        cross_dataset(full, partial)


def test_no_paper_number_and_cross_dataset_defaults() -> None:
    protocol = cross.cross_protocol(("4qaed", "mine"))
    reason = paper_comparison(
        paper_f1=0.7617, dataset="4qaed", n_songs=900, protocol=protocol, regime="full"
    )
    assert reason is not None and "cross-dataset" in reason
    assert default_methods("4qaed", "cross-dataset") == ["svm-own"]
    with pytest.raises(ConfigError, match="needs two --root"):
        roots_for_protocol("cross-dataset", [Path("a")])
    with pytest.raises(ConfigError, match="only --protocol cross-dataset takes two"):
        roots_for_protocol("kfold", [Path("a"), Path("b")])


def test_cross_dataset_learns_on_synthetic_datasets(tmp_path: Path) -> None:
    """Trained on one synthetic collection, tested on another (different songs): well above
    chance (25 %) both ways, with everything fitted on the training dataset."""
    first = load_synthetic(n_per_quadrant=8, seed=0, duration=3.0)
    second = load_synthetic(n_per_quadrant=8, seed=1, duration=3.0)
    joined, protocol = cross_dataset(first, second, labels=("syn-0", "syn-1"))
    out = tmp_path / "run"
    (result,) = run_benchmark(
        joined,
        ["svm-own"],
        protocol,
        out,
        cache=FeatureCache(tmp_path / "cache"),
        progress=False,
    )
    assert result.complete and len(result.per_fold) == 2
    table = pd.read_csv(out / "cross_dataset.csv")
    assert table[["trained_on", "tested_on"]].values.tolist() == [
        ["syn-0", "syn-1"],
        ["syn-1", "syn-0"],
    ]
    assert table["n_train"].tolist() == [32, 32] and table["n_test"].tolist() == [32, 32]
    assert (table["f1"] > 0.6).all(), table
    markdown = (out / "cross_dataset.md").read_text()
    assert "| svm-own | syn-0 | syn-1 | 32 | 32 |" in markdown
    # the run reads back like any other, and its summary shows no paper number
    run = load_results(out)
    assert run.methods["svm-own"].protocol.datasets == ("syn-0", "syn-1")
    assert "cross-dataset" in (out / "report.md").read_text()


def test_cli_cross_dataset_and_a_bad_second_root(tmp_path: Path) -> None:
    from merkit.cli import app

    make_4qaed_tree(tmp_path / "mine", 3)
    make_4qaed_tree(tmp_path / "theirs", 3)
    out = tmp_path / "run"
    base = ["benchmark", "-d", "4qaed", "--methods", "svm", "--protocol", "cross-dataset"]
    roots = ["-r", str(tmp_path / "mine"), "-r", str(tmp_path / "theirs")]
    result = CliRunner().invoke(app, [*base, *roots, "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "trained on 4qaed:mine, tested on 4qaed:theirs" in result.output
    table = pd.read_csv(out / "cross_dataset.csv")
    assert table["trained_on"].tolist() == ["4qaed:mine", "4qaed:theirs"]
    assert (table["f1"] > 0.6).all()  # the table's first feature is the quadrant (chance 0.25)
    again = CliRunner().invoke(app, [*base, *roots, "--out", str(out), "--quiet"])
    assert again.exit_code == 0, again.output  # resumes: the same folds, nothing refused
    assert pd.read_csv(out / "cross_dataset.csv").equals(table)
    missing = tmp_path / "nowhere"
    bad = ["-r", str(tmp_path / "mine"), "-r", str(missing)]
    result = CliRunner().invoke(app, [*base, *bad, "--out", str(tmp_path / "r2"), "--quiet"])
    assert result.exit_code == 1
    # one error, naming the second root only (the loader's one-problem format)
    assert result.output.count("error:") == 1 and "1 problem" in result.output, result.output
    assert str(missing) in result.output and str(tmp_path / "mine") not in result.output
    assert "Traceback" not in result.output
    one = CliRunner().invoke(app, [*base, "-r", str(missing), "--quiet"])
    assert one.exit_code == 1 and "needs two --root" in one.output
