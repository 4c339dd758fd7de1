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


def test_a_truncated_config_beside_finished_folds_is_rebuilt_keeping_the_folds(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 27: refused with the advice to delete the whole method folder (throwing away intact
    # folds), where the README says it warns and recomputes.
    bench(tmp_path, ["svm"])
    folds = {p.name: p.read_bytes() for p in (tmp_path / "svm" / "folds").glob("*.json")}
    config = tmp_path / "svm" / "config.json"
    whole = config.read_text()
    config.write_text(whole[:20])
    with caplog.at_level(logging.WARNING):
        bench(tmp_path, ["svm"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(config) in warnings[0] and "kept" in warnings[0]
    assert json.loads(config.read_text()) == json.loads(whole)  # rebuilt, the same stamp
    after = {p.name: p.read_bytes() for p in (tmp_path / "svm" / "folds").glob("*.json")}
    assert after == folds  # the intact folds were kept, not recomputed


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


# ---- issue 27: run folders are read as a whole; outputs never overwrite a run's files ----------


def _fold_bytes(out: Path, method: str = "svm") -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / method / "folds").glob("*.json"))}


def test_D1_report_out_never_overwrites_a_run_file_or_a_folder(tmp_path: Path) -> None:
    from merkit.report.html import write_report

    run = tmp_path / "r1"
    bench(run, ["svm"])
    results = (run / "results.csv").read_bytes()
    with pytest.raises(ConfigError, match=r"results\.csv would overwrite a file of run folder"):
        write_report([run], run / "results.csv")
    assert (run / "results.csv").read_bytes() == results
    with pytest.raises(ConfigError, match=r"svm.*would overwrite"):
        write_report([run], run / "svm" / "config.json")
    with pytest.raises(ConfigError, match="is a folder; give the report's file name"):
        write_report([run], tmp_path)  # was IsADirectoryError
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    with pytest.raises(ConfigError, match="not an HTML report merkit wrote"):
        write_report([run], notes)
    assert notes.read_text() == "my notes"
    # A report merkit wrote is replaced; so is the run's own report.html.
    elsewhere = write_report([run], tmp_path / "report.html")
    write_report([run], elsewhere)
    write_report([run], run / "report.html")
    assert "merkit report" in elsewhere.read_text()


def test_D1_the_report_command_refuses_a_run_file_with_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from merkit.cli import app

    run = tmp_path / "r1"
    bench(run, ["svm"])
    before = (run / "results.csv").read_bytes()
    result = CliRunner().invoke(app, ["report", str(run), "--out", str(run / "results.csv")])
    assert result.exit_code == 1
    assert "error:" in result.output and "Traceback" not in result.output
    assert (run / "results.csv").read_bytes() == before


def test_W1_an_extra_fold_file_keeps_the_finished_row(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from merkit.protocol import load_results

    bench(tmp_path, ["svm"])
    honest = f1_of(tmp_path)["svm"]
    folds = tmp_path / "svm" / "folds"
    (folds / "r05_f07.json").write_bytes((folds / "r00_f00.json").read_bytes())  # 3x1 run
    with caplog.at_level(logging.WARNING):
        bench(tmp_path, ["svm"])
    assert f1_of(tmp_path) == {"svm": pytest.approx(honest, abs=1e-9)}  # the row is kept
    assert "| svm |" in (tmp_path / "report.md").read_text()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("r05_f07.json" in w and "ignored (not deleted)" in w for w in warnings)
    assert (folds / "r05_f07.json").is_file()  # nothing a user put there is deleted
    run = load_results(tmp_path)
    assert [m.method for m in run.complete()] == ["svm"]
    assert any("r05_f07.json" in note for note in run.notes)


def test_a_fold_file_holding_another_folds_record_is_recomputed(tmp_path: Path) -> None:
    bench(tmp_path, ["svm"])
    honest = f1_of(tmp_path)["svm"]
    folds = tmp_path / "svm" / "folds"
    (folds / "r00_f01.json").write_bytes((folds / "r00_f00.json").read_bytes())
    bench(tmp_path, ["svm"])
    assert f1_of(tmp_path)["svm"] == pytest.approx(honest, abs=1e-9)
    assert json.loads((folds / "r00_f01.json").read_text())["fold"] == 1


def test_W2_a_deleted_config_with_other_settings_is_refused_not_relabelled(
    tmp_path: Path,
) -> None:
    bench(tmp_path, ["svm"], params={"svm": {"C": 2}})
    folds = _fold_bytes(tmp_path)
    config = tmp_path / "svm" / "config.json"
    config.unlink()
    with pytest.raises(ConfigError, match=r"config\.json is missing.*cannot be relabelled"):
        bench(tmp_path, ["svm"], params={"svm": {"C": 8}})
    assert not config.exists()  # no config.json claiming C=8 over folds made with C=2
    assert _fold_bytes(tmp_path) == folds
    # The settings that made the folds: resumed, config.json rebuilt, nothing recomputed.
    bench(tmp_path, ["svm"], params={"svm": {"C": 2}})
    assert json.loads(config.read_text())["config"]["params"] == {"C": 2}
    assert _fold_bytes(tmp_path) == folds


def test_W2_a_fold_copied_from_another_configuration_is_refused(tmp_path: Path) -> None:
    bench(tmp_path / "a", ["svm"], params={"svm": {"C": 2}})
    bench(tmp_path / "b", ["svm"], params={"svm": {"C": 8}})
    alien = (tmp_path / "a" / "svm" / "folds" / "r00_f01.json").read_bytes()
    (tmp_path / "b" / "svm" / "folds" / "r00_f01.json").write_bytes(alien)
    with pytest.raises(ConfigError, match=r"r00_f01.*another configuration"):
        bench(tmp_path / "b", ["svm"], params={"svm": {"C": 8}})


def test_report_on_a_truncated_fold_says_the_method_is_incomplete_and_recomputes_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from merkit.report.html import write_report

    bench(tmp_path, ["svm"])
    bench(tmp_path, [LOGREG])
    fold = tmp_path / "svm" / "folds" / "r00_f01.json"
    fold.write_text(fold.read_text()[:40])
    damaged = fold.read_bytes()
    with caplog.at_level(logging.WARNING):
        path = write_report([tmp_path], tmp_path / "report.html")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert not any("recomput" in w and "rerun" not in w for w in warnings), warnings
    assert any("svm is incomplete: 2 of 3 folds finished" in w and str(fold) in w for w in warnings)
    html = path.read_text()
    assert 'id="not-shown"' in html and "svm is incomplete: 2 of 3 folds finished" in html
    assert fold.read_bytes() == damaged  # the report recomputes nothing
    # With no complete method at all: one clear error giving the reason.
    (tmp_path / LOGREG / "folds" / "r00_f00.json").unlink()
    with pytest.raises(ConfigError, match=r"has all its folds finished\n.*svm is incomplete"):
        write_report([tmp_path], tmp_path / "report.html")


def test_a_folder_where_a_fold_file_belongs_is_a_clear_error(tmp_path: Path) -> None:
    bench(tmp_path, ["svm"])
    fold = tmp_path / "svm" / "folds" / "r00_f01.json"
    fold.unlink()
    fold.mkdir()
    with pytest.raises(ConfigError, match=r"r00_f01\.json: not a regular file where a fold"):
        bench(tmp_path, ["svm"])  # was IsADirectoryError
    assert fold.is_dir()


def test_M6_n_features_beyond_the_data_is_refused_before_any_work(tmp_path: Path) -> None:
    # The songs have no audio: extracting own-features would fail differently.
    with pytest.raises(ConfigError, match=r"'svm-own'.*'n_features' is 100000.*317 features"):
        bench(tmp_path, ["svm-own"], params={"svm-own": {"n_features": 100000}})
    assert not (tmp_path / "svm-own").exists()
    # Every own feature, less those 'exclude_features' removes first: more than there are.
    excluded = {"n_features": 317, "exclude_features": "codec-sensitive"}
    with pytest.raises(ConfigError, match=r"'n_features' is 317.*has 3\d\d features \(\d+ excl"):
        bench(tmp_path, ["svm-own"], params={"svm-own": excluded})


@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_M6_n_features_zero_names_the_setting_not_an_internal_class(value: object) -> None:
    from merkit.methods import resolve_method

    with pytest.raises(ConfigError, match=r"method 'svm-own'.*setting 'n_features'") as info:
        resolve_method("svm-own", {"n_features": value})
    assert "ReliefFSelector" not in str(info.value)


class _Ref:
    """A fake Ray object reference: hashable by identity, like Ray's."""

    def __init__(self, fn: object, task: object) -> None:
        self.fn, self.task = fn, task


class _DyingRay:
    """Just enough of Ray for RayExecutor.map: the first task runs, then the node dies."""

    def __init__(self, error: str = "LocalRayletDiedError") -> None:
        import ray.exceptions

        self.exceptions = ray.exceptions
        self.error = getattr(ray.exceptions, error)
        self.finished = 0
        self.dead = False

    def nodes(self) -> list[dict]:
        return [{"Alive": True, "Resources": {"CPU": 2.0, "memory": 2.0**33}}]

    def put(self, value: object) -> object:
        return value

    def wait(self, refs: list, num_returns: int = 1) -> tuple[list, list]:
        if self.dead:
            raise self.exceptions.LocalRayletDiedError()
        return refs[:1], refs[1:]

    def get(self, ref: _Ref) -> object:
        if self.finished:
            self.dead = True
            raise self.error("the node died")
        self.finished += 1
        return ref.fn(ref.task)  # type: ignore[operator]

    def cancel(self, ref: object, force: bool = False) -> None:
        pass

    def shutdown(self) -> None:
        raise RuntimeError("the raylet is gone")


class _Remote:
    def options(self, **options: object) -> _Remote:
        return self

    def remote(self, fn: object, task: object) -> _Ref:
        return _Ref(fn, task)


@pytest.mark.parametrize("error", ["LocalRayletDiedError", "NodeDiedError"])
def test_ray_node_death_is_summarised_by_merkit_with_the_resume_hint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, error: str
) -> None:
    # Measured with a real local instance whose raylet was killed (SIGKILL) mid-fold: Ray
    # reports NodeDiedError, then LocalRayletDiedError, then ends the driver; merkit now stops
    # at the first and prints its summary before that.
    from merkit.protocol import TasksFailed
    from merkit.protocol.ray_executor import RayExecutor

    executor = RayExecutor(retries=1)
    executor._ray, executor._remote, executor._owned = _DyingRay(error), _Remote(), True
    with caplog.at_level(logging.WARNING), pytest.raises(TasksFailed) as failed:
        bench(tmp_path, ["svm"], executor=executor)
    message = str(failed.value)
    assert "2 svm task(s) failed after their retries: r00_f01, r00_f02" in message
    assert message.count(error) == 1  # each distinct reason once
    assert "1 of 3 svm folds are finished and saved in" in message
    assert "rerun the same command to resume" in message
    ray_lines = [r.getMessage() for r in caplog.records if error in r.getMessage()]
    assert len(ray_lines) == 1 and "rerun the same command to resume" in ray_lines[0]
    executor.close()  # a dead node's shutdown error does not replace the summary
    finished = _fold_bytes(tmp_path)
    assert list(finished) == ["r00_f00.json"]
    bench(tmp_path, ["svm"])  # the rerun resumes: the finished fold is kept as it was
    assert _fold_bytes(tmp_path)["r00_f00.json"] == finished["r00_f00.json"]
    assert len(_fold_bytes(tmp_path)) == 3


def test_M6_the_benchmark_command_refuses_n_features_before_any_work(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from merkit.cli import app

    config = tmp_path / "settings.yaml"
    config.write_text("svm-own: {n_features: 100000}\n")
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            *("benchmark", "--methods", "svm-own", "--config", str(config)),
            *("--quick", "--quiet", "--out", str(out)),
        ],
    )
    assert result.exit_code == 1, result.output
    assert "'n_features' is 100000, but its input 'own-features' has 317" in result.output
    assert not out.exists()  # refused before the folds, the cache or the extraction
