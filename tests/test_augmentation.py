"""merkit.estimators.augmentation: augmented training sets for any method, leak-free and
seeded per repeat."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from conftest import make_4qaed_tree
from merkit.core.errors import ConfigError, DataError
from merkit.datasets.fourqaed import load_4qaed
from merkit.estimators.augmentation import (
    ORIGINAL,
    AugmentedClassifier,
    SpecAugmentMask,
    augment_method,
    parse_augment,
)
from merkit.methods import resolve_method
from merkit.methods.resolve import ResolvedMethod
from merkit.protocol.folds import ProtocolConfig, make_folds
from merkit.protocol.runner import repeat_seed, resolve_inputs, run_method
from merkit.representations import augmented as augment
from merkit.representations import extract
from merkit.representations.cache import FeatureCache
from merkit.representations.logmel import LogMelConfig, logmel

SR = 16_000


class Recorder(ClassifierMixin, BaseEstimator):
    """Predicts the majority class and records every training set it is given."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, tag: int = 0) -> None:
        self.tag = tag

    def fit(self, X: Any, y: Any, groups: Any = None) -> Recorder:
        Recorder.seen.append({"X": np.array(X), "y": np.array(y), "groups": groups})
        self.classes_ = np.unique(y)
        self.majority_ = np.bincount(np.asarray(y)).argmax()
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        proba = np.zeros((len(X), len(self.classes_)))
        proba[:, list(self.classes_).index(self.majority_)] = 1.0
        return proba

    def predict(self, X: Any) -> np.ndarray:
        return np.full(len(X), self.majority_)


# --------------------------------------------------------------------------------------------
# Settings


def test_parse_augment_forms_and_errors() -> None:
    assert parse_augment(None) == ()
    assert parse_augment("tfm, rg") == (("tfm", {}), ("rg", {}))
    assert parse_augment([{"classic": {"copies": ["pitch_shifted"]}}]) == (
        ("classic", {"copies": ["pitch_shifted"]}),
    )
    with pytest.raises(ConfigError, match="unknown augmentation 'tmf'"):
        parse_augment(["tmf"])
    with pytest.raises(ConfigError, match="unknown option"):
        parse_augment([{"rg": {"gain": 3}}])
    with pytest.raises(ConfigError, match="unknown copies"):
        parse_augment([{"classic": {"copies": ["reversed"]}}])
    with pytest.raises(ConfigError, match="more than once"):
        parse_augment("rg,rg")


def test_registered_methods_and_the_general_form() -> None:
    for name, aug, rep in (
        ("cnn+tfm", "tfm", "aug-tfm"),
        ("cnn+sb", "sb", "aug-sb"),
        ("cnn+rg", "rg", "aug-rg"),
        ("cnn+classic", "classic", "classic-aug"),
    ):
        resolved = resolve_method(name)
        assert resolved.inputs == ("logmel", rep)
        assert resolved.roles == (ORIGINAL, aug)
        assert resolved.settings["augment"] == [aug]
        inner = resolved.estimator.estimator
        # The baseline recipe: SGD 0.01, batch 150, the 90 % training-accuracy rule.
        assert (inner.optimizer, inner.lr, inner.batch_size) == ("sgd", 0.01, 150)
        assert inner.stop_train_accuracy == 0.90
    crnn = resolve_method("crnn", {"augment": ["tfm", "rg"], "lr": 0.01})
    assert crnn.inputs == ("logmel", "aug-tfm", "aug-rg")
    assert crnn.estimator.estimator.lr == 0.01
    # An empty list turns a method's default augmentation off.
    assert resolve_method("cnn+tfm", {"augment": []}).inputs == ("logmel",)
    with pytest.raises(ConfigError, match="method 'svm'.*cannot augment"):
        resolve_method("svm", {"augment": "tfm"})
    with pytest.raises(ConfigError, match="several inputs"):
        resolve_method("hybrid", {"augment": "tfm"})


# --------------------------------------------------------------------------------------------
# The training set


def test_training_set_stacks_originals_and_chosen_copies_with_their_groups() -> None:
    n = 5
    original = np.arange(n, dtype=np.float32)[:, None, None] * np.ones((n, 3, 2), np.float32)
    classic = original[:, None] + np.array([10, 20, 30, 40], np.float32)[None, :, None, None]
    rg = original + 100
    y = np.array([0, 1, 0, 1, 1])
    model = AugmentedClassifier(
        Recorder(), augment=[{"classic": {"copies": ["pitch_shifted", "db_shifted"]}}, "rg"]
    )
    Recorder.seen.clear()
    model.fit({ORIGINAL: original, "classic": classic, "rg": rg}, y)
    (seen,) = Recorder.seen
    assert seen["X"].shape == (4 * n, 3, 2)
    # Rows: originals, then the pitch copies, the dB copies and the gain copies.
    np.testing.assert_array_equal(seen["X"][:, 0, 0], np.r_[0:5, 20:25, 40:45, 100:105])
    np.testing.assert_array_equal(seen["groups"], np.tile(np.arange(n), 4))
    np.testing.assert_array_equal(seen["y"], np.tile(y, 4))
    assert model.augment_info_["copies_per_song"] == 3.0
    assert model.augment_info_["training_rows"] == 4 * n
    # Prediction reads the originals only (the copies may be absent).
    assert model.predict({ORIGINAL: original}).shape == (n,)
    assert model.predict(original).shape == (n,)


def test_training_set_rejects_missing_or_mismatched_copies() -> None:
    original = np.zeros((4, 3, 2), np.float32)
    y = np.array([0, 1, 0, 1])
    with pytest.raises(DataError, match="copies are missing"):
        AugmentedClassifier(Recorder(), augment=["rg"]).fit({ORIGINAL: original}, y)
    with pytest.raises(DataError, match="do not match"):
        AugmentedClassifier(Recorder(), augment=["rg"]).fit(
            {ORIGINAL: original, "rg": np.zeros((4, 3, 3), np.float32)}, y
        )


def test_augment_method_refuses_another_input() -> None:
    with pytest.raises(ConfigError, match="makes copies of 'logmel'"):
        augment_method("m", Recorder(), ("logmel-paper",), None, parse_augment("tfm"))


# --------------------------------------------------------------------------------------------
# Seeds and leakage, through the protocol on a tiny dataset


@pytest.fixture
def tiny(tmp_path: Path) -> Any:
    root = tmp_path / "4qaed"
    make_4qaed_tree(root, per_quadrant=3, features=False)
    return load_4qaed(root)


def test_copies_differ_between_repeats_and_repeat_with_the_seed(tiny: Any, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "cache")
    protocol = ProtocolConfig(n_splits=3, n_repeats=2, random_state=1)
    seeds = [repeat_seed(protocol, r) for r in range(2)]
    assert seeds[0] != seeds[1]
    assert repeat_seed(ProtocolConfig(n_splits=3, n_repeats=2, random_state=2), 0) not in seeds
    first = [extract.compute(tiny, "aug-rg", cache=cache, seed=s, progress=False) for s in seeds]
    again = extract.compute(tiny, "aug-rg", cache=None, seed=seeds[0], progress=False)
    np.testing.assert_array_equal(first[0], again)  # same seed, same copies (cache or not)
    differs = [not np.array_equal(first[0][i], first[1][i]) for i in range(len(tiny))]
    assert all(differs)


def test_no_copy_of_a_test_song_reaches_training(tiny: Any, tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path / "cache")
    protocol = ProtocolConfig(n_splits=3, n_repeats=2, random_state=1)
    folds = make_folds(tiny.labels, protocol)
    estimator, inputs, roles = augment_method(
        "rec", Recorder(), ("logmel",), None, parse_augment("rg")
    )
    method = ResolvedMethod.of("rec", estimator, dict(zip(roles, inputs, strict=True)))
    Recorder.seen.clear()
    logmels = resolve_inputs(tiny, ["logmel"], cache=cache, progress=False)
    run_method(method, tiny, logmels, folds, protocol, tmp_path / "out", progress=False,
               cache=cache)  # fmt: skip
    assert len(Recorder.seen) == len(folds)
    # Every song's original and its copy of each repeat, computed independently.
    copies = {
        r: extract.compute(tiny, "aug-rg", cache=None, seed=repeat_seed(protocol, r),
                           progress=False)
        for r in range(2)
    }  # fmt: skip
    originals = logmels["logmel"]
    for fold, seen in zip(folds, Recorder.seen, strict=True):
        sources = []
        for row in seen["X"]:
            match = [i for i in range(len(tiny)) if np.array_equal(row, originals[i])]
            match += [i for i in range(len(tiny)) if np.array_equal(row, copies[fold.repeat][i])]
            assert len(match) == 1
            sources.append(match[0])
        sources = np.array(sources)
        assert set(sources.tolist()) == set(fold.train.tolist())
        assert not set(sources.tolist()) & set(fold.test.tolist())
        np.testing.assert_array_equal(sources, np.tile(fold.train, 2))
        # The copy rows are the repeat's copies: the same in every fold of the repeat.
        np.testing.assert_array_equal(seen["X"][len(fold.train) :], copies[fold.repeat][fold.train])
    # Fold records and the method's config say what was trained on.
    record = json.loads((tmp_path / "out" / "rec" / "folds" / "r01_f00.json").read_text())
    info = record["extras"]["augment"]
    assert info["augment"] == ["rg"] and info["copies_per_song"] == 1.0
    assert info["copy_seed"] == repeat_seed(protocol, 1)
    assert info["audiomentations"] == importlib.metadata.version("audiomentations")
    config = json.loads((tmp_path / "out" / "rec" / "config.json").read_text())
    assert config["info"]["audiomentations"] == info["audiomentations"]


# --------------------------------------------------------------------------------------------
# Transforms with known answers not covered by test_augment


def test_gain_moves_rms_by_the_drawn_decibels() -> None:
    y = (0.05 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)
    for seed in range(4):
        pipeline = augment.AUGMENTATIONS["rg"]()
        with augment.seeded_global_random(seed):
            replay = pipeline(samples=y, sample_rate=SR)
        drawn_db = 20 * np.log10(pipeline.transforms[0].parameters["amplitude_ratio"])
        out = augment.audiomentations_copy(y, SR, seed=seed, transform="rg")
        np.testing.assert_array_equal(out, replay)
        rms_db = 20 * np.log10(np.sqrt(np.mean(out**2)) / np.sqrt(np.mean(y**2)))
        assert rms_db == pytest.approx(drawn_db, abs=1e-3)
        assert -12 <= drawn_db <= 12


def test_gentle_stretch_rates_scale_onset_spacing() -> None:
    from test_augment import _onsets, _sine

    n, spacing = 8 * SR, 8000  # a 1 kHz tone gated on for 0.25 s every 0.5 s
    y = (_sine(1000.0, 8.0) * ((np.arange(n) % spacing) < spacing // 2)).astype(np.float32)
    for rate in (0.8, 1.25):
        out = augment.time_stretch(y, SR, np.random.default_rng(0), rates=(rate,))
        assert out.shape == y.shape
        onsets = _onsets(out)
        mean_spacing = (onsets[-1] - onsets[0]) / (len(onsets) - 1)
        assert mean_spacing == pytest.approx(spacing / rate, rel=0.03)


def test_classic_copies_use_the_given_stretch_rates() -> None:
    y = (0.3 * np.random.default_rng(1).standard_normal(2 * SR)).astype(np.float32)
    gentle = augment.classic_augmented_logmels(y, SR, seed=3, stretch_rates=(0.8,))
    paper = augment.classic_augmented_logmels(y, SR, seed=3)
    stretch_rng = np.random.default_rng(np.random.SeedSequence(3).spawn(4)[2])
    cfg = LogMelConfig()
    expected = logmel(augment.time_stretch(y, SR, stretch_rng, rates=(0.8,)), cfg)
    np.testing.assert_allclose(gentle[2], expected, atol=1e-4)
    np.testing.assert_array_equal(gentle[[0, 1, 3]], paper[[0, 1, 3]])  # the others unchanged
    assert not np.allclose(gentle[2], paper[2])


def test_specaugment_masks_spans_of_the_drawn_widths_with_the_minimum() -> None:
    batch = torch.arange(2 * 50 * 20, dtype=torch.float32).reshape(2, 50, 20) + 5.0
    mask = SpecAugmentMask(time_masks=1, max_time=10, freq_masks=1, max_freq=4)
    out = mask(batch, torch.Generator().manual_seed(0))
    again = mask(batch, torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, again)
    for b in range(2):
        floor = batch[b].min()
        masked = out[b] == floor
        masked[0, 0] = False  # the minimum itself
        rows = masked.all(dim=1).sum().item()
        cols = masked.all(dim=0).sum().item()
        assert 0 <= rows <= 10 and 0 <= cols <= 4
        changed = out[b] != batch[b]
        assert changed.sum().item() <= rows * 20 + cols * 50
    with pytest.raises(ConfigError, match="max_time"):
        SpecAugmentMask(max_time=-1)


class ValidatingRecorder(Recorder):
    """A Recorder with an inner validation split, like TorchClassifier's."""

    def __init__(self, validation_fraction: float | None = 0.25, random_state: int = 0) -> None:
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    def fit(self, X: Any, y: Any, groups: Any = None, validation: Any = None) -> Recorder:
        super().fit(X, y, groups)
        Recorder.seen[-1]["validation"] = validation
        Recorder.seen[-1]["fraction"] = self.validation_fraction
        return self


def test_inner_validation_holds_out_whole_songs() -> None:
    n = 12
    original = np.arange(n, dtype=np.float32)[:, None, None] * np.ones((n, 2, 2), np.float32)
    y = np.repeat([0, 1, 2, 3], 3)
    Recorder.seen.clear()
    AugmentedClassifier(ValidatingRecorder(0.25), augment=["rg"]).fit(
        {ORIGINAL: original, "rg": original + 100}, y
    )
    (seen,) = Recorder.seen
    assert seen["fraction"] is None  # the trainer does not split rows again
    val_x, val_y = seen["validation"]
    held = set(val_x[:, 0, 0].tolist())
    trained = set((seen["X"][:, 0, 0] % 100).tolist())
    assert len(held) == 4 and len(val_y) == 4  # one song per class (25 % of 3, rounded)
    assert not held & trained  # neither the original nor the copy of a held-out song trains
    assert held | trained == set(range(n))


def test_saved_augmented_model_predicts_from_originals_only(tiny: Any, tmp_path: Path) -> None:
    from merkit.product.export import save_model, train_final
    from merkit.product.predict import load_model
    from merkit.representations.cache import NullCache

    model = train_final("cnn+rg", tiny, params={"epochs": 1}, cache=NullCache(), progress=False)
    assert [spec.name for spec in model.manifest.inputs] == ["logmel"]
    assert model.manifest.params["augment"] == ["rg"]
    loaded = load_model(save_model(model, tmp_path / "model"))
    song = tiny.songs[0]
    result = loaded.predict(song.source.path)
    assert sum(result.probabilities.values()) == pytest.approx(1.0)
