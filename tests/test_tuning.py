"""Hyperparameter search (merkit tune, nested tune:) and dataset-size curves."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from merkit.benchmark import run_benchmark
from merkit.core.errors import ConfigError
from merkit.datasets.base import Dataset, Song
from merkit.methods import read_settings, resolve_method
from merkit.methods.registry import METHODS
from merkit.protocol import ProtocolConfig
from merkit.protocol.curves import (
    fraction_folds,
    parse_fraction_name,
    parse_fractions,
    subset_rows,
)
from merkit.protocol.folds import make_folds
from merkit.protocol.results import load_results
from merkit.protocol.runner import fit_fold
from merkit.tuning.nested import resolve_tuned
from merkit.tuning.run import tune_method
from merkit.tuning.search import inner_folds, validate_space
from merkit.tuning.space import load_space, parse_space, shipped_spaces, with_sampler

QUIET = Console(quiet=True)


def table_dataset(labels: np.ndarray, features: np.ndarray, name: str = "toy") -> Dataset:
    songs = [Song(f"S{i:03d}", None, f"Q{q + 1}") for i, q in enumerate(labels)]
    table = pd.DataFrame(features, index=[s.song_id for s in songs])
    return Dataset(name=name, songs=songs, tables={"top100": table})


def separable(n_per_class: int = 15, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(4), n_per_class)
    features = np.column_stack(
        [labels + rng.normal(0, 0.8, labels.size), rng.normal(size=labels.size)]
    )
    return table_dataset(labels, features)


# ---- the space schema ---------------------------------------------------------------------


def test_space_ranges_expand_to_hand_computed_grids() -> None:
    space = parse_space(
        {
            "params": {
                "C": {"log": ["2^-5", "2**3"], "step": 4},
                "n": {"int": [10, 30], "step": 10},
                "lr": {"float": [0.1, 0.3], "step": 0.1},
                "k": [25, "all", "2^3"],
            }
        }
    )
    grid = space.grid()
    assert grid["C"] == [2.0**-5, 2.0**-3, 2.0**-1, 2.0**1, 2.0**3]
    assert grid["n"] == [10, 20, 30]
    assert grid["lr"] == pytest.approx([0.1, 0.2, 0.3])
    assert grid["k"] == [25, "all", 8.0]
    assert space.sampler == "grid"  # every setting finite
    assert space.grid_size() == 5 * 3 * 3 * 3 == space.n_trials(None)
    assert space.settings_for({"cnn.lr": 0.1, "C": 1}) == {"cnn": {"lr": 0.1}, "C": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"params": {"C": [1]}, "samplr": "tpe"}, "unknown key 'samplr'"),
        ({"params": {"C": {"log": [0, 1]}}}, "params.C.log: the range must be positive"),
        ({"params": {"C": {"log": [1, 10], "stp": 2}}}, "params.C: unknown key 'stp'"),
        ({"params": {"C": {"log": [10, 1]}}}, "params.C.log: low must be below high"),
        ({"params": {"C": {"log": [1, "ten"]}}}, "params.C.log: expected a number"),
        ({"params": {"C": []}}, "params.C: the list of choices is empty"),
        ({"params": {"C": {"log": [1, 10]}}, "sampler": "grid"}, "params.C is a continuous"),
        ({"params": {"C": [1]}, "sampler": "bayes"}, "'sampler' must be one of"),
        ({"params": {"C": [1]}, "inner_folds": 1}, "'inner_folds' must be an integer >= 2"),
        ({"C": [1]}, "unknown key 'C'"),
    ],
)
def test_bad_spaces_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_space(data, "space.yaml")


def test_a_continuous_space_defaults_to_tpe_and_needs_a_budget() -> None:
    space = parse_space({"params": {"C": {"log": [1, 10]}}}, "s.yaml")
    assert space.sampler == "tpe"
    with pytest.raises(ConfigError, match="give 'trials'"):
        space.n_trials(None)
    assert space.n_trials(7) == 7
    with pytest.raises(ConfigError, match="params.C is a continuous range"):
        with_sampler(space, "grid")


def test_a_setting_the_method_does_not_take_fails_before_any_work() -> None:
    space = parse_space({"params": {"Cee": [1, 2]}}, "space.yaml")
    with pytest.raises(ConfigError, match=r"space.yaml: method 'svm': unknown setting 'Cee'"):
        validate_space("svm", space)
    bad_value = parse_space({"params": {"C": [-1.0]}}, "space.yaml")
    with pytest.raises(ConfigError, match="bad setting 'C'"):
        validate_space("svm", bad_value)


def test_shipped_spaces_resolve_against_their_methods() -> None:
    shipped = shipped_spaces()
    assert {"svm", "svm-own", "cnn", "cnn-gru", "crnn", "hybrid", "shortchunk", "samplecnn"} <= set(
        shipped
    )
    needs_weights = {"artist-cnn", "crnn-mtat"}
    for method in shipped:
        space = load_space("paper", method)
        assert space.method == method and method in METHODS
        if method not in needs_weights:
            validate_space(method, space)  # every point's settings are the method's own
    own = load_space("paper", "svm-own").grid()
    assert "all" in own["n_features"] and 8.0 in own["C"] and 2.0**-9 in own["gamma"]
    with pytest.raises(ConfigError, match="no shipped search space for method 'dnn'"):
        load_space("paper", "dnn")
    with pytest.raises(ConfigError, match="is for method 'svm-own', not 'svm'"):
        load_space(str(Path(__file__).parents[1] / "src/merkit/spaces/svm-own.yaml"), "svm")


def test_svm_own_keeps_every_feature_with_n_features_all() -> None:
    pipeline = resolve_method("svm-own", {"n_features": "all"}).estimator
    assert pipeline.named_steps["relieff"] == "passthrough"
    with pytest.raises(ConfigError, match="'n_features' must be a positive integer or 'all'"):
        resolve_method("svm-own", {"n_features": "most"})


# ---- merkit tune ---------------------------------------------------------------------------


def test_inner_folds_use_only_the_given_rows() -> None:
    labels = np.repeat(np.arange(4), 10)
    rows = np.arange(0, 40, 2)  # 5 songs per class
    folds = inner_folds(labels, rows, n_splits=5, seed=1)
    assert len(folds) == 5
    for fold in folds:
        assert set(fold.train) | set(fold.test) == set(rows)
        assert np.bincount(labels[fold.test]).tolist() == [1, 1, 1, 1]
    with pytest.raises(ConfigError, match="inner_folds 6 needs at least 6"):
        inner_folds(labels, rows, n_splits=6)


def test_tune_writes_a_config_benchmark_and_train_take_and_resumes(tmp_path: Path) -> None:
    data = separable()
    space = parse_space(
        {"params": {"C": {"log": ["2^-7", "2^3"], "step": 32}, "gamma": [0.01, 1.0]}}
    )
    out = tmp_path / "tune"
    first = tune_method("svm", space, data, out, trials=3, progress=False)
    assert first.n_trials == 3
    frame = pd.read_csv(out / "trials.csv")
    assert len(frame) == 3 and frame["state"].eq("COMPLETE").all()
    # Rerunning with a larger budget continues the same study: the first trials are kept.
    second = tune_method("svm", space, data, out, progress=False)
    assert second.n_trials == space.grid_size() == 6
    again = pd.read_csv(out / "trials.csv")
    pd.testing.assert_frame_equal(
        again.iloc[:3][["params_C", "value"]], frame[["params_C", "value"]]
    )
    # The best is the trial with the highest inner F1, and the YAML is a --config file.
    assert second.best_f1 == pytest.approx(again["value"].max())
    settings = read_settings(out / "best.yaml")
    assert settings == {"svm": {"C": second.best_params["C"], "gamma": second.best_params["gamma"]}}
    resolve_method("svm", settings["svm"])
    search = json.loads((out / "search.json").read_text())
    assert search["best_inner_f1"] == pytest.approx(second.best_f1)
    # A different space into the same folder is refused instead of mixing trials.
    other = parse_space({"params": {"C": [1.0, 2.0]}})
    with pytest.raises(ConfigError, match="holds a search of another method"):
        tune_method("svm", other, data, out, progress=False)


def test_an_interrupted_trial_is_retried(tmp_path: Path) -> None:
    import optuna

    data = separable()
    space = parse_space({"params": {"C": [0.5, 8.0]}})
    out = tmp_path / "tune"
    tune_method("svm", space, data, out, trials=1, progress=False)
    storage = f"sqlite:///{out / 'study.sqlite3'}"
    study = optuna.load_study(study_name="svm", storage=storage)
    study.ask()  # a trial a killed process left RUNNING
    result = tune_method("svm", space, data, out, progress=False)
    states = [t.state for t in optuna.load_study(study_name="svm", storage=storage).trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 2 == result.n_trials
    assert states.count(optuna.trial.TrialState.FAIL) == 1


def test_tune_command_end_to_end(tmp_path: Path, tiny_4qaed: Path) -> None:
    from merkit.cli import app

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"inner_folds": 3, "params": {"C": [1.0, 8.0]}}))
    out = tmp_path / "tune"
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "tune",
            "--method",
            "svm",
            "--space",
            str(space),
            "--dataset",
            "4qaed",
            "--root",
            str(tiny_4qaed),
            "--out",
            str(out),
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "best of 2 trials" in result.output
    bench = runner.invoke(
        app,
        [
            "benchmark",
            "--dataset",
            "4qaed",
            "--root",
            str(tiny_4qaed),
            "--methods",
            "svm",
            "--folds",
            "3",
            "--repeats",
            "1",
            "--config",
            str(out / "best.yaml"),
            "--out",
            str(tmp_path / "bench"),
            "--quiet",
        ],
    )
    assert bench.exit_code == 0, bench.output
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"params": {"C": {"lin": [1, 2]}}}))
    refused = runner.invoke(app, ["tune", "--method", "svm", "--space", str(bad)])
    assert refused.exit_code == 1
    assert "params.C: unknown key 'lin'" in refused.output


# ---- nested tuning: the honest estimate ------------------------------------------------------


def test_test_fold_selection_is_optimistic_and_nested_tuning_is_not(tmp_path: Path) -> None:
    """Random labels: no setting can beat chance. Picking the setting with the best outer
    test-fold score reports well above chance; choosing inside each training fold does not."""
    rng = np.random.default_rng(3)
    labels = rng.permutation(np.repeat(np.arange(4), 15))
    data = table_dataset(labels, rng.normal(size=(60, 5)), name="noise")
    protocol = ProtocolConfig(n_splits=5, n_repeats=1, random_state=0)
    grid = {"C": [2.0**e for e in (-3, 1, 5, 9)], "gamma": [2.0**e for e in (-7, -4, -1, 2)]}

    folds = make_folds(labels, protocol)
    inputs = {"table:top100": data.table("top100")}
    by_test_folds = {}
    for c, gamma in itertools.product(grid["C"], grid["gamma"]):
        method = resolve_method("svm", {"C": c, "gamma": gamma})
        scores = [
            fit_fold(method, inputs, labels, f, protocol, collect_garbage=False).metrics.f1
            for f in folds
        ]
        by_test_folds[(c, gamma)] = float(np.mean(scores))
    picked = max(by_test_folds, key=by_test_folds.get)
    assert by_test_folds[picked] == pytest.approx(0.29758, abs=1e-4)  # "above chance"

    space = {"params": grid, "inner_folds": 4}
    (result,) = run_benchmark(
        data,
        ["svm"],
        protocol,
        tmp_path,
        params={"svm": {"tune": {"space": space}}},
        progress=False,
        console=QUIET,
    )
    nested = result.summary["f1"]
    assert nested == pytest.approx(0.14013, abs=1e-4)  # at (here below) chance
    assert nested < 0.25 < by_test_folds[picked]
    chosen = [
        tuple(r.extras["tuned"]["params"][k] for k in ("C", "gamma")) for r in result.per_fold
    ]
    assert picked not in chosen  # no training fold's search picks the test-fold winner
    # The results say the method was tuned inside each fold.
    row = pd.read_csv(tmp_path / "results.csv").set_index("method").loc["svm"]
    assert row["tuning"].startswith("nested (space inline")
    assert "inner-CV search inside each outer training fold" in (tmp_path / "report.md").read_text()


def test_tune_setting_is_validated_before_any_work() -> None:
    with pytest.raises(ConfigError, match="setting 'tune': unknown key 'trails'"):
        resolve_tuned("svm", {"tune": {"space": "paper", "trails": 3}})
    with pytest.raises(ConfigError, match="unknown setting 'Cee'"):
        resolve_tuned("svm", {"tune": {"space": {"params": {"Cee": [1]}}}})
    plain = resolve_tuned("svm", {"C": 2.0})
    assert plain.settings == {"C": 2.0}


# ---- pruning -------------------------------------------------------------------------------


def test_deep_trials_report_each_epoch_and_hopeless_ones_are_pruned() -> None:
    import optuna

    from merkit.methods import MethodSpec, register_method
    from merkit.training.classifier import TorchClassifier
    from merkit.tuning.search import SearchTask, open_study, optimize

    name = "test-tiny-net"
    if name not in METHODS:
        register_method(
            MethodSpec(
                name,
                "a tiny DNN for pruning tests",
                ("table:top100",),
                build=lambda **s: TorchClassifier(
                    **{
                        "model": "dnn",
                        "model_params": {"hidden_sizes": (32,), "dropout": 0.0},
                        "epochs": 12,
                        "batch_size": 8,
                        "lr": 0.1,
                        "train_options": {"num_threads": 1},
                        "stop_train_accuracy": None,
                        **s,
                    }
                ),
            )
        )
    data = separable(n_per_class=12)
    labels = np.asarray(data.labels)
    space = parse_space({"params": {"lr": [0.1, 0.2, 0.3, 1e-7]}, "sampler": "random"})
    task = SearchTask(
        name,
        {},
        space,
        {"table:top100": data.table("top100")},
        labels,
        tuple(inner_folds(labels, n_splits=2, seed=0)),
        seed=0,
    )
    study = open_study(space)
    for lr in (0.1, 0.2, 0.3, 1e-7):  # a learning rate of 1e-7 learns nothing in 12 epochs
        study.enqueue_trial({"lr": lr})
    optimize(study, task, 4)
    learned, *_, hopeless = study.trials
    assert learned.state == optuna.trial.TrialState.COMPLETE
    # one report per epoch of each inner fold, at fold * 100000 + epoch
    assert sorted(learned.intermediate_values) == [*range(1, 13), *range(100_001, 100_013)]
    assert learned.value > 0.4  # chance is 0.25
    # it trails the median of the finished trials at the same fold and epoch: stopped early
    assert hopeless.state == optuna.trial.TrialState.PRUNED
    assert max(hopeless.intermediate_values) < 100_000


# ---- dataset-size curves ---------------------------------------------------------------------


def test_subsets_are_stratified_and_nested() -> None:
    labels = np.repeat(np.arange(4), 20)
    train = np.arange(80)
    small, large = (subset_rows(train, labels, f, (1, 0, 3)) for f in (0.25, 0.5))
    assert np.bincount(labels[small]).tolist() == [5, 5, 5, 5]
    assert np.bincount(labels[large]).tolist() == [10, 10, 10, 10]
    assert set(small) <= set(large)
    assert subset_rows(train, labels, 1.0, 0).tolist() == train.tolist()
    assert parse_fractions("0.5, 0.25,1") == [0.25, 0.5, 1.0]
    with pytest.raises(ConfigError, match="1.5 is not in"):
        parse_fractions("0.5,1.5")
    assert parse_fraction_name("svm-own@train0.25") == ("svm-own", 0.25)
    assert parse_fraction_name("svm") == ("svm", 1.0)


def test_train_fraction_benchmark_keys_results_by_fraction_and_resumes(tmp_path: Path) -> None:
    data = separable(n_per_class=10)
    protocol = ProtocolConfig(n_splits=5, n_repeats=2, random_state=1)
    run = dict(progress=False, console=QUIET, train_fractions=[0.5, 1.0])
    run_benchmark(data, ["svm"], protocol, tmp_path, **run)
    results = load_results(tmp_path)
    assert set(results.methods) == {"svm", "svm@train0.5"}
    full, half = results["svm"], results["svm@train0.5"]
    # the same full test folds, half the training songs
    assert [r.test_ids for r in half.per_fold] == [r.test_ids for r in full.per_fold]
    assert half.settings["train_songs"] == 16.0  # 4 quadrants x round(0.5 * 8)
    folds = fraction_folds(make_folds(data.labels, protocol), data.labels, 0.5, protocol)
    assert {f.train.size for f in folds} == {16}
    frame = pd.read_csv(tmp_path / "results.csv").set_index("method")
    assert frame.loc["svm@train0.5", "train_fraction"] == 0.5
    assert frame.loc["svm", "train_songs"] == 32.0
    assert (tmp_path / "size_curve.png").stat().st_size > 10_000
    assert 'id="size-curve"' in (tmp_path / "report.html").read_text()
    # A rerun recomputes nothing.
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/folds/*.json")}
    run_benchmark(data, ["svm"], protocol, tmp_path, **run)
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("*/folds/*.json")} == stamps
