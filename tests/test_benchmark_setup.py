"""The benchmark's choices live in the library, not in the CLI: default methods, the protocol by
name, every method resolved once (merkit.benchmark)."""

from __future__ import annotations

import pytest

from merkit.benchmark import benchmark_protocol, default_methods, resolve_methods
from merkit.core.errors import ConfigError
from merkit.datasets import load_dataset


def test_default_methods_follow_the_feature_tables() -> None:
    assert default_methods("4qaed") == ["svm"]
    assert default_methods("synthetic") == ["svm-own"] == default_methods("merge")


def test_benchmark_protocol_by_name() -> None:
    kfold = benchmark_protocol("kfold", folds=5, repeats=2, seed=7, stratify=False)
    assert (kfold.n_splits, kfold.n_repeats, kfold.random_state, kfold.stratify) == (5, 2, 7, False)
    songs = load_dataset("synthetic", n_per_quadrant=2)
    quick = benchmark_protocol("kfold", songs, quick=True)
    assert (quick.n_splits, quick.n_repeats) == (3, 1)
    fixed = benchmark_protocol("tvt-70-15-15", songs, seed=3)
    assert fixed.split is not None and fixed.random_state == 3
    with pytest.raises(ConfigError, match="unknown --protocol 'kfld'"):
        benchmark_protocol("kfld")


def test_resolve_methods_applies_augment_to_every_method() -> None:
    (method,) = resolve_methods(["cnn"], {"cnn": {"epochs": 1}}, augment="specaugment")
    assert method.name == "cnn"
    assert type(method.estimator).__name__ == "AugmentedClassifier"
    with pytest.raises(ConfigError, match="unknown method 'svn'"):
        resolve_methods(["svn"])
