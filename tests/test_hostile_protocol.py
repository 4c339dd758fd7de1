"""Hostile input to the benchmark protocol: results, settings, fold and config files.

Each case was a defect of the original code (a lost result, a hand edit accepted, a traceback, a
failed run blocking its fix, nothing saved by ``--save-models``); these tests keep them fixed.
They use the public ``run_benchmark``/``read_settings``/``make_folds`` entry points and the
files a run writes.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from merkit.benchmark import run_benchmark
from merkit.core.errors import ConfigError
from merkit.datasets.base import Dataset, Song
from merkit.methods import METHODS, MethodSpec, read_settings, register_method
from merkit.protocol import ProtocolConfig, make_folds

LOGREG = "test-table-logreg"
PROTOCOL = ProtocolConfig(n_splits=3, n_repeats=1)


def _logreg(C: float = 1.0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C))


if LOGREG not in METHODS:
    register_method(
        MethodSpec(LOGREG, "test: logistic regression on top100", ("table:top100",), _logreg)
    )


def table_dataset(n_per_class: int = 8, name: str = "toy") -> Dataset:
    """Songs without audio and a 'top100' table whose first column carries the quadrant."""
    songs = [Song(f"S{q}{i:03d}", None, f"Q{q + 1}") for q in range(4) for i in range(n_per_class)]
    rng = np.random.default_rng(0)
    ids = [s.song_id for s in songs]
    values = np.array([[s.label + rng.normal(0, 0.4), rng.normal()] for s in songs])
    table = pd.DataFrame(values, index=ids, columns=["signal", "noise"])
    return Dataset(name=name, songs=songs, tables={"top100": table})


def bench(out: Path, methods: list[str], **kwargs) -> None:
    run_benchmark(table_dataset(), methods, PROTOCOL, out, progress=False, **kwargs)


def f1_of(out: Path) -> dict[str, float]:
    frame = pd.read_csv(out / "results.csv")
    return dict(zip(frame["method"], frame["f1"], strict=True))


# ---- results of every method are kept ---------------------------------------------------------


def test_a_second_run_into_the_same_folder_keeps_the_first_runs_results(tmp_path: Path) -> None:
    import matplotlib.image

    bench(tmp_path, ["svm"])
    first = f1_of(tmp_path)
    bench(tmp_path, [LOGREG])
    both = f1_of(tmp_path)
    assert sorted(both) == sorted(["svm", LOGREG])
    assert both["svm"] == first["svm"]  # read back, not recomputed differently
    report = (tmp_path / "report.md").read_text()
    assert "| svm |" in report and f"| {LOGREG} |" in report
    # f1.png is 1.2 inch wider per method (figsize max(4, 1.2 n + 2) at 120 dpi): 2 bars.
    assert matplotlib.image.imread(tmp_path / "f1.png").shape[1] == round(120 * (1.2 * 2 + 2))
    # Running a method again replaces its own row, not the others.
    bench(tmp_path, ["svm"])
    assert f1_of(tmp_path) == both


CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
import test_hostile_protocol as t
t.bench(Path({out!r}), [{method!r}])
"""


def test_two_benchmarks_writing_one_folder_at_once_keep_both_methods(tmp_path: Path) -> None:
    out = tmp_path / "shared"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    tests = str(Path(__file__).parent)
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                textwrap.dedent(CHILD.format(tests=tests, out=str(out), method=m)),
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for m in ("svm", LOGREG)
    ]
    for child in children:
        _, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
    assert sorted(f1_of(out)) == sorted(["svm", LOGREG])
    report = (out / "report.md").read_text()
    assert "| svm |" in report and f"| {LOGREG} |" in report


# ---- fold files are validated on read ---------------------------------------------------------


def _first_fold(out: Path, method: str = "svm") -> Path:
    return sorted((out / method / "folds").glob("r00_f00.json"))[0]


@pytest.mark.parametrize(
    "damage",
    ["edit_prediction", "drop_metrics", "wrong_type", "truncate"],
)
def test_a_damaged_fold_file_is_recomputed_with_a_warning(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    bench(tmp_path, ["svm"])
    honest = f1_of(tmp_path)["svm"]
    path = _first_fold(tmp_path)
    record = json.loads(path.read_text())
    if damage == "edit_prediction":  # a hand edit that makes the fold perfect
        record["y_pred"] = record["y_true"]
        record["metrics"]["f1"] = 1.0
        path.write_text(json.dumps(record))
    elif damage == "drop_metrics":
        del record["metrics"]
        path.write_text(json.dumps(record))
    elif damage == "wrong_type":
        record["metrics"]["f1"] = "high"
        path.write_text(json.dumps(record))
    else:
        path.write_text(path.read_text()[: len(path.read_text()) // 2])
    with caplog.at_level(logging.WARNING):
        bench(tmp_path, ["svm"])
    assert f1_of(tmp_path)["svm"] == pytest.approx(honest, abs=1e-6)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0] and "\n" not in warnings[0]
    from merkit.protocol import read_fold

    assert read_fold(path) is not None  # rewritten as a valid, checksummed record


# ---- config.json -------------------------------------------------------------------------------


def test_a_truncated_config_without_finished_folds_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "svm").mkdir(parents=True)
    (tmp_path / "svm" / "config.json").write_text('{"dataset": "to')
    bench(tmp_path, ["svm"])
    assert "svm" in f1_of(tmp_path)
    assert json.loads((tmp_path / "svm" / "config.json").read_text())["dataset"] == "toy"


def test_a_truncated_config_beside_finished_folds_is_a_clear_error(tmp_path: Path) -> None:
    bench(tmp_path, ["svm"])
    config = tmp_path / "svm" / "config.json"
    config.write_text(config.read_text()[:20])
    with pytest.raises(ConfigError, match=r"config\.json"):
        bench(tmp_path, ["svm"])


def test_a_failed_run_does_not_block_its_corrected_rerun(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'C'"):
        bench(tmp_path, ["svm"], params={"svm": {"C": -1}})
    bench(tmp_path, ["svm"], params={"svm": {"C": 4}})
    assert "svm" in f1_of(tmp_path)


def test_a_config_stamp_without_fold_results_accepts_a_new_configuration(tmp_path: Path) -> None:
    # What a run that died before its first fold (e.g. during extraction) leaves behind.
    bench(tmp_path, ["svm"], params={"svm": {"C": 2}})
    for fold in (tmp_path / "svm" / "folds").glob("*.json"):
        fold.unlink()
    bench(tmp_path, ["svm"], params={"svm": {"C": 4}})
    stamp = json.loads((tmp_path / "svm" / "config.json").read_text())
    assert stamp["config"]["params"] == {"C": 4}
    # With finished folds, a different configuration is still refused.
    with pytest.raises(ConfigError, match="another dataset, protocol or configuration"):
        bench(tmp_path, ["svm"], params={"svm": {"C": 8}})


# ---- settings are validated before any work ---------------------------------------------------


@pytest.mark.parametrize(
    ("method", "settings", "named"),
    [
        ("svm", {"C": -1}, "'C'"),
        ("svm", {"C": "lots"}, "'C'"),
        ("svm", {"kernel_size": 3}, "'kernel_size'"),
        ("cnn", {"epochs": "many"}, "epochs"),
        ("cnn", {"lr": -0.1}, "lr"),
        ("hybrid", {"cnn": {"batch_size": 0}}, "batch_size"),
    ],
)
def test_bad_settings_fail_before_any_work_naming_method_and_setting(
    tmp_path: Path, method: str, settings: dict, named: str
) -> None:
    # The songs have no audio: any attempt at feature extraction would fail differently.
    with pytest.raises(ConfigError, match=rf"'{method}'.*{named}"):
        bench(tmp_path, [method], params={method: settings})
    assert not (tmp_path / method).exists()


def test_a_misspelt_method_key_in_a_config_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "settings.yaml"
    config.write_text("svn: {C: 0.0001}\n")
    with pytest.raises(ConfigError, match=r"'svn'.*did you mean 'svm'"):
        read_settings(config)


# ---- impossible fold settings -----------------------------------------------------------------


def test_more_unstratified_folds_than_songs_is_a_config_error() -> None:
    labels = np.repeat(np.arange(4), 10)
    with pytest.raises(ConfigError, match=r"--folds 50.*40"):
        make_folds(labels, ProtocolConfig(n_splits=50, n_repeats=1, stratify=False))


def test_too_few_songs_in_a_quadrant_names_the_quadrant_and_its_count() -> None:
    labels = np.array([0] * 6 + [1] * 6 + [2] * 3 + [3] * 6)
    with pytest.raises(ConfigError, match=r"Q3, has 3"):
        make_folds(labels, ProtocolConfig(n_splits=5, n_repeats=1))


def test_impossible_folds_fail_before_any_method_runs(tmp_path: Path) -> None:
    protocol = ProtocolConfig(n_splits=40, n_repeats=1, stratify=False)
    with pytest.raises(ConfigError, match=r"--folds 40.*32"):
        run_benchmark(table_dataset(), ["svm"], protocol, tmp_path, progress=False)
    assert not (tmp_path / "svm").exists()


# ---- --save-models ----------------------------------------------------------------------------


def _fold_predictions(out: Path, method: str, fold: str) -> list[int]:
    return json.loads((out / method / "folds" / f"{fold}.json").read_text())["y_pred"]


def test_save_models_saves_an_svm_pipeline_with_its_checksum(tmp_path: Path) -> None:
    from merkit.protocol.models import load_model

    dataset = table_dataset()
    run_benchmark(dataset, ["svm"], PROTOCOL, tmp_path, save_models=True, progress=False)
    saved = sorted((tmp_path / "svm" / "models").glob("*.joblib"))
    assert [p.stem for p in saved] == ["r00_f00", "r00_f01", "r00_f02"]
    record = json.loads((tmp_path / "svm" / "folds" / "r00_f01.json").read_text())
    rows = [dataset.song_ids.index(s) for s in record["test_ids"]]
    model = load_model(saved[1])
    assert model.predict(dataset.table("top100")[rows]).tolist() == record["y_pred"]
    # A swapped or damaged file is refused before unpickling.
    saved[1].write_bytes(saved[1].read_bytes() + b"x")
    from merkit.core.errors import ModelError

    with pytest.raises(ModelError, match="checksum"):
        load_model(saved[1])


def test_save_models_saves_a_feature_dnn_pipeline(tmp_path: Path) -> None:
    from merkit.protocol.models import load_model

    dataset = table_dataset()
    settings = {"dnn": {"epochs": 2, "batch_size": 8, "device": "cpu"}}
    run_benchmark(
        dataset, ["dnn"], PROTOCOL, tmp_path, params=settings, save_models=True, progress=False
    )
    saved = sorted((tmp_path / "dnn" / "models").glob("*.joblib"))
    assert len(saved) == 3
    record = json.loads((tmp_path / "dnn" / "folds" / "r00_f00.json").read_text())
    rows = [dataset.song_ids.index(s) for s in record["test_ids"]]
    assert load_model(saved[0]).predict(dataset.table("top100")[rows]).tolist() == record["y_pred"]


def test_save_models_refuses_an_estimator_that_cannot_be_saved(tmp_path: Path) -> None:
    import threading

    from sklearn.dummy import DummyClassifier

    class Unpicklable(DummyClassifier):
        def __init__(self, strategy: str = "prior", lock: object = None) -> None:
            super().__init__(strategy=strategy)
            self.lock = lock

    name = "test-unpicklable"
    if name not in METHODS:
        register_method(
            MethodSpec(
                name,
                "test: holds a lock",
                ("table:top100",),
                lambda: Unpicklable(lock=threading.Lock()),
            )
        )
    with pytest.raises(ConfigError, match=rf"--save-models.*'{name}'"):
        bench(tmp_path, [name], save_models=True)
