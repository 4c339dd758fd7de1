"""DeepSMOTE: Borderline-SMOTE-2 rows lie where kind 2 puts them, decoded mels get the real dB
scale, seeds decide the samples, and no synthetic sample comes from a test song by default."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

import merkit.estimators.autoencoding as autoencoding
import merkit.estimators.deepsmote as deepsmote_module
from merkit.core.errors import ConfigError, DataError
from merkit.estimators.deepsmote import DeepSMOTE, oversample_latents, scale_stats, to_db_scale
from merkit.estimators.oversampling import OversampledClassifier
from merkit.methods import resolve_method
from merkit.protocol import ProtocolConfig
from merkit.protocol.folds import make_folds
from merkit.protocol.runner import fit_fold

FRAMES, MELS = 32, 16  # tiny log-mels: the autoencoder sizes itself from them
FAST = {"mixed_precision": False, "num_threads": 1}
TINY_AE = {"ae_epochs": 1, "ae_batch_size": 8, "device": "cpu", "train_options": FAST}


def logmels(n: int, seed: int) -> np.ndarray:
    """dB-like images (about -80..0 dB) with one song-specific band."""
    rng = np.random.default_rng(seed)
    f = np.arange(MELS)[None, :]
    out = np.full((n, FRAMES, MELS), -70.0, dtype=np.float32)
    for image in out:
        image += 50 * np.exp(-((f - rng.uniform(2, MELS - 2)) ** 2) / 4)
    return out + rng.normal(0, 2, out.shape).astype(np.float32)


# ---- Borderline-SMOTE kind 2 in the latent space ---------------------------------------------


def _nearest(points: np.ndarray, i: int, k: int) -> np.ndarray:
    distance = np.linalg.norm(points - points[i], axis=1)
    distance[i] = np.inf
    return np.argsort(distance)[:k]


def test_borderline2_rows_lie_on_segments_from_danger_samples_with_kind2_factors() -> None:
    rng = np.random.default_rng(0)
    # two overlapping classes (many borderline samples) and a far, well-separated third one
    latents = np.concatenate(
        [
            rng.normal((0, 0), 1, (20, 2)),
            rng.normal((1.5, 0), 1, (20, 2)),
            rng.normal((50, 50), 1, (6, 2)),
        ]
    )
    labels = np.repeat([0, 1, 2], [20, 20, 6])
    k, m, n_new = 5, 5, 12
    new, new_labels, fallback = oversample_latents(
        latents, labels, n_new, k_neighbors=k, m_neighbors=m, random_state=3
    )
    assert new.shape == (3 * n_new, 2)
    assert np.bincount(new_labels).tolist() == [n_new] * 3
    # class 2 has no borderline sample: its rows come from plain SMOTE within the class
    assert fallback == [2]

    # the danger set, computed here by brute force: m/2 <= other-class neighbours < m
    danger = set()
    for i in range(len(latents)):
        others = int(np.sum(labels[_nearest(latents, i, m)] != labels[i]))
        if m / 2 <= others < m:
            danger.add(i)
    assert danger and not any(labels[i] == 2 for i in danger)

    toward_other = 0
    for row, cls in zip(new, new_labels, strict=True):
        if cls == 2:
            # plain SMOTE: between two real class-2 latents, factor in [0, 1)
            sources = [i for i in range(len(latents)) if labels[i] == 2]
            pairs = [(s, t) for s in sources for t in sources if s != t]
        else:
            pairs = [(s, t) for s in danger if labels[s] == cls for t in _nearest(latents, s, k)]
        found = None
        for s, t in pairs:
            step = latents[t] - latents[s]
            u = float(np.dot(row - latents[s], step) / np.dot(step, step))
            if np.allclose(latents[s] + u * step, row, atol=1e-5):
                found = (s, t, u)
                break
        assert found is not None, f"{row} of class {cls} is on no allowed segment"
        s, t, u = found
        bound = 1.0 if labels[t] == cls else 0.5  # kind 2 halves steps toward other classes
        assert -1e-6 <= u < bound + 1e-6, (s, t, u)
        toward_other += labels[t] != cls
    assert toward_other > 0  # the other-class bound was exercised


def test_oversampling_needs_two_songs_per_class() -> None:
    latents = np.arange(10, dtype=float).reshape(5, 2)
    with pytest.raises(DataError, match="2 songs per class"):
        oversample_latents(latents, np.array([0, 0, 0, 0, 1]), 3)


# ---- back to the dB scale ----------------------------------------------------------------------


def test_db_mapping_uses_the_real_songs_mean_centre_and_half_range() -> None:
    # class 0: ranges [-80, 0] and [-60, 0] -> centres -40, -30, half-ranges 40, 30 -> -35, 35
    # class 1: range [-20, -10] -> centre -15, half-range 5
    real = np.zeros((3, 2, 2), dtype=np.float32)
    real[0] = [[-80, 0], [-40, -40]]
    real[1] = [[-60, 0], [-30, -30]]
    real[2] = [[-20, -10], [-15, -15]]
    real_labels = np.array([0, 0, 1])
    centre, half = scale_stats(real)
    np.testing.assert_allclose(centre, [-40, -30, -15])
    np.testing.assert_allclose(half, [40, 30, 5])

    decoded = np.array([[[1, -1], [0, 0.5]], [[1, -1], [0, 0.5]]], dtype=np.float32)
    by_class = to_db_scale(decoded, np.array([0, 1]), centre, half, real_labels, by="class")
    np.testing.assert_allclose(by_class[0], [[0, -70], [-35, -17.5]])
    np.testing.assert_allclose(by_class[1], [[-10, -20], [-15, -12.5]])
    # all songs: centre -85/3, half-range 25
    pooled = to_db_scale(decoded[:1], np.array([0]), centre, half, real_labels, by="all")
    expected = [[25 - 85 / 3, -25 - 85 / 3], [-85 / 3, 12.5 - 85 / 3]]
    np.testing.assert_allclose(pooled[0], expected, rtol=1e-5)


def test_scale_stats_inverts_the_autoencoder_scaling() -> None:
    mels = logmels(4, 1)
    centre, half = scale_stats(mels)
    scaled = autoencoding.scale_logmels(mels)
    restored = scaled * half[:, None, None] + centre[:, None, None]
    np.testing.assert_allclose(restored, mels, atol=1e-3)


# ---- the oversampler ---------------------------------------------------------------------------


def test_fit_resample_keeps_real_rows_and_adds_n_per_class_in_the_class_db_range() -> None:
    X = logmels(16, 2)
    y = np.arange(16) % 4
    X[y == 3] -= 20  # a quieter class: its synthetic mels must sit lower
    sampler = DeepSMOTE(n_per_class=5, random_state=0, **TINY_AE)
    X_res, y_res = sampler.fit_resample(X, y)
    assert X_res.shape == (16 + 20, FRAMES, MELS) and X_res.dtype == X.dtype
    np.testing.assert_array_equal(X_res[:16], X)
    np.testing.assert_array_equal(y_res[:16], y)
    assert np.bincount(y_res[16:]).tolist() == [5, 5, 5, 5]
    centre, half = scale_stats(X)
    for cls in range(4):
        synthetic = X_res[16:][y_res[16:] == cls]
        low = centre[y == cls].mean() - half[y == cls].mean()
        high = centre[y == cls].mean() + half[y == cls].mean()
        assert low - 1e-3 <= synthetic.min() and synthetic.max() <= high + 1e-3, cls
    assert X_res[16:][y_res[16:] == 3].mean() < X_res[16:][y_res[16:] == 0].mean() - 10
    details = sampler.details()
    assert details["synthetic_per_class"] == {"0": 5, "1": 5, "2": 5, "3": 5}
    assert details["autoencoder_songs"] == 16 and "leak" not in details


def test_renormalise_gives_every_synthetic_mel_its_class_db_range() -> None:
    X = logmels(12, 6)
    y = np.arange(12) % 2
    X[y == 1] -= 15
    sampler = DeepSMOTE(n_per_class=3, renormalise=True, random_state=0, **TINY_AE)
    X_res, y_res = sampler.fit_resample(X, y)
    centre, half = scale_stats(X)
    for cls in (0, 1):
        synthetic = X_res[12:][y_res[12:] == cls].reshape(3, -1)
        c, h = centre[y == cls].mean(), half[y == cls].mean()
        np.testing.assert_allclose(synthetic.min(axis=1), c - h, rtol=1e-4)
        np.testing.assert_allclose(synthetic.max(axis=1), c + h, rtol=1e-4)
    details = sampler.details()
    assert details["synthetic_half_range_db"] == pytest.approx(details["real_half_range_db"], 1e-4)


def test_same_seed_same_synthetic_samples_and_another_seed_others() -> None:
    X, y = logmels(12, 3), np.arange(12) % 3

    def synthetic(seed: int) -> np.ndarray:
        return DeepSMOTE(n_per_class=4, random_state=seed, **TINY_AE).fit_resample(X, y)[0][12:]

    first = synthetic(5)
    np.testing.assert_array_equal(synthetic(5), first)
    assert np.abs(synthetic(6) - first).max() > 1e-3


def test_bad_settings_fail_at_resolve_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"cnn\+deepsmote.*fit_on"):
        resolve_method("cnn+deepsmote", {"fit_on": "global"})
    with pytest.raises(ConfigError, match=r"cnn\+deepsmote.*n_per_class"):
        resolve_method("cnn+deepsmote", {"n_per_class": 0})
    with pytest.raises(ConfigError, match=r"cnn\+deepsmote.*ae_epochs"):
        resolve_method("cnn+deepsmote", {"ae_epochs": -1})
    with pytest.raises(ConfigError, match=r"cnn\+deepsmote.*'bogus'"):
        resolve_method("cnn+deepsmote", {"bogus": 1})


def test_recipe_routes_settings_to_the_cnn_and_the_oversampler() -> None:
    method = resolve_method(
        "cnn+deepsmote", {"epochs": 30, "ae_epochs": 3, "ae_batch_size": 16, "device": "cpu"}
    )
    model = method.estimator
    cnn, sampler = model.estimator, model.sampler
    assert (cnn.model, cnn.epochs, cnn.batch_size, cnn.optimizer, cnn.lr) == (
        "cnn",
        30,
        200,
        "sgd",
        0.01,
    )
    assert cnn.stop_train_accuracy == 0.90
    assert (sampler.ae_epochs, sampler.ae_batch_size, sampler.n_per_class) == (3, 16, 25)
    assert sampler.device == cnn.device == "cpu"


# ---- the wrapper and the protocol ------------------------------------------------------------


class Recorder(ClassifierMixin, BaseEstimator):
    """Predicts the majority class; records what ``fit`` received."""

    def fit(self, X: Any, y: Any, groups: Any = None) -> Recorder:
        self.X_, self.y_, self.groups_ = np.asarray(X), np.asarray(y), np.asarray(groups)
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        proba = np.zeros((len(X), len(self.classes_)))
        proba[:, 0] = 1
        return proba

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def test_synthetic_rows_get_fresh_groups_of_their_own() -> None:
    X, y = logmels(8, 4), np.arange(8) % 2
    model = OversampledClassifier(DeepSMOTE(n_per_class=3, random_state=0, **TINY_AE), Recorder())
    model.fit(X, y, groups=np.array([7, 7, 9, 9, 4, 4, 5, 5]))
    groups = model.estimator_.groups_
    assert len(groups) == 8 + 6 and model.n_synthetic_ == 6
    # the real songs keep their grouping; each synthetic row is a group of its own
    assert groups[:8].tolist() == [2, 2, 3, 3, 0, 0, 1, 1]
    assert groups[8:].tolist() == [4, 5, 6, 7, 8, 9]


def test_fit_on_all_without_other_songs_fits_on_the_given_ones_and_claims_no_leak() -> None:
    # e.g. ``merkit train``: every song is a training song, nothing leaks
    X, y = logmels(8, 7), np.arange(8) % 2
    sampler = DeepSMOTE(n_per_class=2, fit_on="all", random_state=0, **TINY_AE)
    model = OversampledClassifier(sampler, Recorder())
    assert model.needs_all_songs
    model.fit(X, y)
    details = model.sampler_.details()
    assert details["autoencoder_songs"] == 8 and "leak" not in details


def _songs_seen(monkeypatch: pytest.MonkeyPatch, fit_on: str) -> tuple[dict[str, set[int]], Any]:
    """Which songs the autoencoder trained on and SMOTE interpolated, in one protocol fold."""
    mels = logmels(12, 5)
    mels[:, 0, 0] = -200.0 + np.arange(12)  # every song's scaled image is distinct
    labels = np.arange(12) % 4
    reference = autoencoding.scale_logmels(mels).reshape(12, -1)

    def songs_of(scaled: np.ndarray) -> set[int]:
        rows = scaled.reshape(len(scaled), -1)
        return {int(np.flatnonzero(np.all(np.isclose(reference, r), axis=1))[0]) for r in rows}

    seen: dict[str, set[int]] = {}
    original_fit, original_encode = autoencoding.fit_autoencoder, autoencoding.encode
    original_smote = deepsmote_module.oversample_latents

    def fit_spy(scaled: np.ndarray, **kwargs: Any) -> Any:
        seen["autoencoder"] = songs_of(scaled)
        return original_fit(scaled, **kwargs)

    def encode_spy(model: Any, scaled: np.ndarray, **kwargs: Any) -> np.ndarray:
        seen["encoded"] = songs_of(scaled)
        return original_encode(model, scaled, **kwargs)

    def smote_spy(latents: np.ndarray, smote_labels: np.ndarray, *args: Any, **kw: Any) -> Any:
        seen["smote_rows"] = {len(latents)}
        return original_smote(latents, smote_labels, *args, **kw)

    monkeypatch.setattr(autoencoding, "fit_autoencoder", fit_spy)
    monkeypatch.setattr(autoencoding, "encode", encode_spy)
    monkeypatch.setattr(deepsmote_module, "oversample_latents", smote_spy)
    settings = {
        **TINY_AE,
        "n_per_class": 2,
        "fit_on": fit_on,
        "epochs": 1,
        "batch_size": 8,
        "stop_train_accuracy": None,
        "model_params": {"n_frames": FRAMES, "n_mels": MELS},
    }
    # the baseline CNN needs >= 116 frames: test the oversampling with a recording classifier
    method = resolve_method("cnn+deepsmote", settings)
    method = method.__class__.of(
        "cnn+deepsmote",
        OversampledClassifier(method.estimator.sampler, Recorder()),
        ("logmel",),
    )
    protocol = ProtocolConfig(n_splits=3, n_repeats=1, random_state=1)
    fold = make_folds(labels, protocol)[0]
    record = fit_fold(method, {"logmel": mels}, labels, fold, protocol, keep_model=True)
    return seen, (fold, record)


def test_default_mode_never_derives_a_synthetic_sample_from_a_test_song(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen, (fold, record) = _songs_seen(monkeypatch, "train")
    train = set(fold.train.tolist())
    assert seen["autoencoder"] == train
    assert seen["encoded"] == train  # SMOTE's latents are these songs' and no other
    assert seen["smote_rows"] == {len(train)}
    assert record.extras["deepsmote_fit_on"] == "train" and "leak" not in record.extras
    assert record.extras["synthetic_total"] == 8
    fitted = record.model.estimator_
    assert len(fitted.y_) == len(train) + 8  # trained on training songs + synthetic rows
    assert record.test_ids == [str(i) for i in fold.test]  # tested on real songs only


def test_fit_on_all_reproduces_the_published_leak_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the positive control: with the compat switch the test songs do reach the autoencoder/SMOTE
    seen, (fold, record) = _songs_seen(monkeypatch, "all")
    assert seen["autoencoder"] == seen["encoded"] == set(range(12))
    assert seen["smote_rows"] == {12}
    assert record.extras["deepsmote_fit_on"] == "all"
    assert "LEAKY" in record.extras["leak"] and f"{len(fold.test)} songs" in record.extras["leak"]
    # the classifier still trains on training songs + synthetic rows only
    assert len(record.model.estimator_.y_) == len(fold.train) + 8
