"""Folds, metrics and the resumable runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, precision_score, recall_score
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.pipeline import make_pipeline

from merkit.core.errors import ConfigError, DataError
from merkit.datasets.base import Dataset, Song
from merkit.methods import ResolvedMethod, get_method, resolve_method
from merkit.protocol import (
    ProtocolConfig,
    fold_metrics,
    load_or_create_folds,
    make_folds,
    run_method,
    summarize,
)


def feature_dataset(n_per_class: int = 10, name: str = "toy") -> Dataset:
    songs = [Song(f"S{q}{i:03d}", None, f"Q{q + 1}") for q in range(4) for i in range(n_per_class)]
    import pandas as pd

    rng = np.random.default_rng(0)
    ids = [s.song_id for s in songs]
    values = np.array([[s.label + rng.normal(0, 0.3), rng.normal()] for s in songs])
    table = pd.DataFrame(values, index=ids, columns=["signal", "noise"])
    return Dataset(name=name, songs=songs, tables={"top100": table})


def test_folds_equal_sklearn_repeated_stratified_kfold() -> None:
    labels = np.repeat(np.arange(4), 10)
    folds = make_folds(labels, ProtocolConfig(n_splits=5, n_repeats=3, random_state=1))
    reference = list(
        RepeatedStratifiedKFold(n_splits=5, n_repeats=3, random_state=1).split(labels, labels)
    )
    assert len(folds) == 15
    for fold, (_, test) in zip(folds, reference, strict=True):
        np.testing.assert_array_equal(fold.test, np.sort(test))
        assert np.bincount(labels[fold.test]).tolist() == [2, 2, 2, 2]  # stratified
        assert np.intersect1d(fold.train, fold.test).size == 0
        assert fold.train.size + fold.test.size == 40
    # every song is tested exactly once per repeat
    for repeat in range(3):
        tested = np.concatenate([f.test for f in folds if f.repeat == repeat])
        np.testing.assert_array_equal(np.sort(tested), np.arange(40))


def test_groups_never_straddle_a_split() -> None:
    labels = np.repeat(np.arange(4), 12)
    groups = np.array([f"artist{i // 3}" for i in range(48)])
    for fold in make_folds(labels, ProtocolConfig(n_splits=4, n_repeats=2), groups):
        assert not set(groups[fold.train]) & set(groups[fold.test])


def test_too_few_songs_per_quadrant_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="at least 10 songs per quadrant"):
        make_folds(np.repeat(np.arange(4), 3), ProtocolConfig())


def test_folds_are_persisted_and_reused(tmp_path: Path) -> None:
    dataset = feature_dataset()
    protocol = ProtocolConfig(n_splits=5, n_repeats=2)
    first = load_or_create_folds(tmp_path, dataset, protocol)
    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1
    stored = json.loads(files[0].read_text())
    assert stored["song_ids"] == dataset.song_ids
    # The stored file (not a recomputation) is what is read back: tamper with it and see.
    stored["folds"][0]["test"] = stored["folds"][0]["test"][::-1]
    files[0].write_text(json.dumps(stored))
    second = load_or_create_folds(tmp_path, dataset, protocol)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.test, b.test)
        np.testing.assert_array_equal(a.train, b.train)
    # A changed song list is detected, not silently misaligned.
    smaller = feature_dataset(n_per_class=9)
    smaller.name = dataset.name
    other = load_or_create_folds(tmp_path, smaller, protocol)  # different fingerprint -> new file
    assert len(list(tmp_path.glob("*.json"))) == 2 and len(other) == 10
    files[0].write_text(json.dumps({**stored, "song_ids": stored["song_ids"][:-1]}))
    with pytest.raises(DataError, match="different song list"):
        load_or_create_folds(tmp_path, dataset, protocol)


def test_fold_metrics_match_hand_computed_values() -> None:
    y_true = np.array([0, 0, 1, 1, 2, 2, 3, 3])
    y_pred = np.array([0, 1, 1, 1, 2, 0, 3, 3])
    m = fold_metrics(y_true, y_pred)
    # per class precision: Q1 1/2, Q2 2/3, Q3 1, Q4 1 ; recall: 1/2, 1, 1/2, 1
    assert m["precision"] == pytest.approx((0.5 + 2 / 3 + 1 + 1) / 4)
    assert m["recall"] == pytest.approx((0.5 + 1 + 0.5 + 1) / 4)
    assert m["f1_per_class"] == pytest.approx([0.5, 0.8, 2 / 3, 1.0])
    assert m["f1"] == pytest.approx(np.mean([0.5, 0.8, 2 / 3, 1.0]))
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["confusion"][0] == [1, 1, 0, 0]
    assert m["f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro"))
    assert m["precision"] == pytest.approx(precision_score(y_true, y_pred, average="macro"))
    assert m["recall"] == pytest.approx(recall_score(y_true, y_pred, average="macro"))


def test_summary_is_mean_of_fold_f1_not_f1_of_means() -> None:
    a = fold_metrics(np.array([0, 1, 2, 3]), np.array([0, 1, 2, 3]))
    b = fold_metrics(np.array([0, 1, 2, 3]), np.array([1, 1, 1, 1]))
    s = summarize([a, b])
    assert s["f1"] == pytest.approx((1.0 + 0.1) / 2)
    assert s["f1_std"] == pytest.approx(0.45)
    assert np.array(s["confusion"]).sum() == 8


class SpyScaler(TransformerMixin, BaseEstimator):
    """Records the ids (column 0) of every row it is fitted on."""

    fitted_on: list[set[float]] = []  # noqa: RUF012 - shared on purpose across clones

    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> SpyScaler:
        SpyScaler.fitted_on.append(set(X[:, 0].tolist()))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return X[:, 1:]


def test_no_transform_ever_sees_a_test_row(tmp_path: Path) -> None:
    dataset = feature_dataset()
    ids = np.arange(len(dataset), dtype=float)[:, None]
    inputs = {"x": np.hstack([ids, dataset.table("top100")])}
    protocol = ProtocolConfig(n_splits=5, n_repeats=2)
    folds = load_or_create_folds(tmp_path / "folds", dataset, protocol)
    SpyScaler.fitted_on = []
    run_method(
        ResolvedMethod.of("spy", make_pipeline(SpyScaler(), LogisticRegression()), ("x",)),
        dataset,
        inputs,
        folds,
        protocol,
        tmp_path,
        progress=False,
    )
    assert len(SpyScaler.fitted_on) == len(folds)
    for seen, fold in zip(SpyScaler.fitted_on, folds, strict=True):
        assert seen == set(fold.train.astype(float).tolist())
        assert not seen & set(fold.test.astype(float).tolist())


class CountingClassifier(ClassifierMixin, BaseEstimator):
    calls = 0

    def __init__(self, random_state: int = 0) -> None:
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> CountingClassifier:
        CountingClassifier.calls += 1
        self.classes_ = np.unique(y)
        self.model_ = LogisticRegression().fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(X)


def test_runner_resumes_without_refitting_finished_folds(tmp_path: Path) -> None:
    dataset = feature_dataset()
    inputs = {"table:top100": dataset.table("top100")}
    protocol = ProtocolConfig(n_splits=5, n_repeats=2)
    folds = load_or_create_folds(tmp_path / "folds", dataset, protocol)
    CountingClassifier.calls = 0
    counting = ResolvedMethod.of("counting", CountingClassifier(), ("table:top100",))
    first = run_method(
        counting,
        dataset,
        inputs,
        folds[:4],
        protocol,
        tmp_path,
        progress=False,
    )
    assert CountingClassifier.calls == 4
    # Simulate a kill mid-write of fold 5: a truncated file is recomputed, not trusted.
    fold_dir = tmp_path / "counting" / "folds"
    (fold_dir / f"{folds[4].name}.json").write_text('{"format": 2, "repeat"')
    full = run_method(counting, dataset, inputs, folds, protocol, tmp_path, progress=False)
    assert CountingClassifier.calls == 4 + 6
    assert len(first.per_fold) == 4 and full.complete and len(full.per_fold) == 10
    seeds = [r.seed for r in full.per_fold]
    assert len(set(seeds)) == len(seeds)  # each fold has its own seed
    again = run_method(counting, dataset, inputs, folds, protocol, tmp_path, progress=False)
    assert CountingClassifier.calls == 10
    assert again.summary == full.summary


def test_runner_refuses_to_mix_configurations(tmp_path: Path) -> None:
    dataset = feature_dataset()
    inputs = {"table:top100": dataset.table("top100")}
    protocol = ProtocolConfig(n_splits=5, n_repeats=1)
    folds = load_or_create_folds(tmp_path / "folds", dataset, protocol)
    inputs_of = ("table:top100",)
    run_method(
        ResolvedMethod.of("m", CountingClassifier(), inputs_of, settings={"C": 1}),
        dataset,
        inputs,
        folds,
        protocol,
        tmp_path,
        progress=False,
    )
    with pytest.raises(ConfigError, match="another dataset, protocol or configuration"):
        run_method(
            ResolvedMethod.of("m", CountingClassifier(), inputs_of, settings={"C": 2}),
            dataset,
            inputs,
            folds,
            protocol,
            tmp_path,
            progress=False,
        )


def test_svm_method_learns_an_informative_feature(tmp_path: Path) -> None:
    dataset = feature_dataset(n_per_class=15)
    protocol = ProtocolConfig(n_splits=5, n_repeats=1)
    folds = load_or_create_folds(tmp_path / "folds", dataset, protocol)
    result = run_method(
        resolve_method("svm", {"C": 8, "gamma": 0.5}),
        dataset,
        {"table:top100": dataset.table("top100")},
        folds,
        protocol,
        tmp_path,
        progress=False,
    )
    assert result.summary["f1"] > 0.7  # chance is 0.25; Bayes rate ~0.9


def test_svm_inner_grid_search_tunes_on_the_training_fold_only() -> None:
    dataset = feature_dataset(n_per_class=12)
    X, y = dataset.table("top100"), dataset.labels
    model = get_method("svm").make({"grid": True, "grid_step": 5, "inner_folds": 3})
    model.fit(X[:40], y[:40])
    search = model.named_steps["svm"]
    assert len(search.cv_results_["params"]) == 5 * 4  # C: 2^-5..2^15 step 5; γ: 2^-15..2^3 step 5
    assert search.best_params_["C"] in [2.0**e for e in range(-5, 16, 5)]
    assert search.n_splits_ == 3 and search.best_estimator_.n_features_in_ == 2


# ---- one way from a name to an estimator; a fold as a unit of work ----------------------------


def test_resolve_method_merges_quick_settings_and_swaps_inputs_by_role() -> None:
    own = {"features": "own-features", "logmel": "logmel", "augmented": "classic-aug"}
    resolved = resolve_method("hybrid", {"cnn": {"lr": 0.1}, "inputs": own}, quick=True)
    assert resolved.inputs == ("own-features", "logmel", "classic-aug")
    assert resolved.roles == ("features", "logmel", "augmented")
    assert resolved.settings["cnn"] == {"epochs": 2, "lr": 0.1}  # quick cap kept, lr added
    assert resolved.estimator.cnn == {"epochs": 2, "lr": 0.1}
    assert "inputs" not in resolved.settings
    cnn = resolve_method("cnn", {"inputs": ["logmel-paper"]})
    assert cnn.inputs == ("logmel-paper",) and cnn.roles is None
    assert resolve_method("cnn").estimator.epochs == 200  # no quick: the paper's cap


def test_a_multi_input_method_gets_a_dict_keyed_by_role() -> None:
    resolved = resolve_method("hybrid")
    arrays = {
        "table:top100": np.arange(12.0).reshape(6, 2),
        "logmel": np.zeros((6, 3, 4)),
        "classic-aug": np.ones((6, 2, 3, 4)),
    }
    rows = np.array([4, 1])
    given = resolved.estimator_input(arrays, rows)
    assert list(given) == ["features", "logmel", "augmented"]
    np.testing.assert_array_equal(given["features"], [[8.0, 9.0], [2.0, 3.0]])
    single = resolve_method("svm").estimator_input(arrays, rows)
    np.testing.assert_array_equal(single, [[8.0, 9.0], [2.0, 3.0]])


def test_every_method_registers_where_it_is_defined() -> None:
    from merkit.methods import METHODS, MethodSpec, deep, hybrid, svm

    defined = {
        value.name
        for module in (svm, deep, hybrid)
        for value in vars(module).values()
        if isinstance(value, MethodSpec)
    } | {spec.name for spec in deep.SPECS}
    assert defined <= set(METHODS)
    assert METHODS["cnn"].quick == {"epochs": 2}


def test_fit_fold_writes_nothing_and_repeats_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from merkit.protocol import fit_fold

    monkeypatch.chdir(tmp_path)
    dataset = feature_dataset()
    protocol = ProtocolConfig(n_splits=5, n_repeats=1)
    fold = make_folds(dataset.labels, protocol)[2]
    method = resolve_method("svm", {"C": 8, "gamma": 0.5})
    inputs = {"table:top100": dataset.table("top100")}
    first = fit_fold(method, inputs, dataset.labels, fold, protocol, song_ids=dataset.song_ids)
    again = fit_fold(method, inputs, dataset.labels, fold, protocol, song_ids=dataset.song_ids)
    assert list(tmp_path.iterdir()) == []
    assert first.model_dump(exclude={"seconds", "fit_seconds", "predict_seconds"}) == (
        again.model_dump(exclude={"seconds", "fit_seconds", "predict_seconds"})
    )
    assert (first.repeat, first.fold) == (0, 2) and len(first.y_pred) == 8
    assert first.test_ids == [dataset.song_ids[i] for i in fold.test]
    assert first.metrics.f1 == pytest.approx(
        f1_score(first.y_true, first.y_pred, average="macro", labels=range(4), zero_division=0)
    )


class ReversedExecutor:
    """Runs tasks last first: the driver must not depend on the order results arrive in."""

    def map(self, fn, tasks):
        for task in reversed(list(tasks)):
            yield fn(task)


def test_run_method_takes_any_executor_and_load_results_reads_the_run_back(
    tmp_path: Path,
) -> None:
    from merkit.protocol import load_results

    dataset = feature_dataset()
    inputs = {"table:top100": dataset.table("top100")}
    protocol = ProtocolConfig(n_splits=5, n_repeats=2)
    folds = load_or_create_folds(tmp_path / "folds", dataset, protocol)
    runs = {}
    for name, settings in (("svm", {"C": 8, "gamma": 0.5}), ("svm-own", None)):
        method = resolve_method("svm", settings)
        method = ResolvedMethod.of(name, method.estimator, ("table:top100",))
        runs[name] = run_method(
            method,
            dataset,
            inputs,
            folds,
            protocol,
            tmp_path,
            executor=ReversedExecutor(),
            progress=False,
        )
    assert [(r.repeat, r.fold) for r in runs["svm"].per_fold] == [(f.repeat, f.fold) for f in folds]
    run = load_results(tmp_path)
    assert sorted(run.methods) == ["svm", "svm-own"]
    for name, result in runs.items():
        assert run[name].complete and run[name].n_total == 10
        assert run[name].per_fold == result.per_fold
        assert run[name].summary == result.summary
