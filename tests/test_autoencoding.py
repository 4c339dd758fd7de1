"""ae-rf: the autoencoder learns to reconstruct, sees only training songs by default, and feeds a
default random forest."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

import merkit.estimators.autoencoding as autoencoding
from merkit.core.errors import ConfigError
from merkit.estimators.autoencoding import AutoencoderForest, encode, fit_autoencoder, scale_logmels
from merkit.methods import resolve_method
from merkit.protocol import ProtocolConfig
from merkit.protocol.folds import make_folds
from merkit.protocol.runner import fit_fold

FRAMES, MELS = 32, 16  # small log-mels keep the tests fast; the model sizes itself from them
FAST = {"mixed_precision": False, "num_threads": 1}


def banded_logmels(n: int, seed: int) -> np.ndarray:
    """Log-mel-like images: a few bands at random mels, each pulsing at its own rate."""
    rng = np.random.default_rng(seed)
    t = np.arange(FRAMES)[:, None]
    f = np.arange(MELS)[None, :]
    out = np.full((n, FRAMES, MELS), -60.0, dtype=np.float32)
    for image in out:
        for _ in range(2):
            center, rate, phase = rng.uniform(2, MELS - 2), rng.uniform(0.1, 0.5), rng.uniform(0, 6)
            image += 40 * np.exp(-((f - center) ** 2) / 4) * (1 + np.sin(rate * t + phase)) / 2
    return out + rng.normal(0, 0.5, out.shape).astype(np.float32)


def test_scaling_maps_each_song_to_minus_one_one() -> None:
    logmels = banded_logmels(3, 0)
    scaled = scale_logmels(logmels)
    np.testing.assert_allclose(scaled.reshape(3, -1).min(axis=1), -1, atol=1e-6)
    np.testing.assert_allclose(scaled.reshape(3, -1).max(axis=1), 1, atol=1e-6)


def test_autoencoder_reconstructs_held_out_logmels_better_than_a_constant() -> None:
    train = scale_logmels(banded_logmels(48, 0))
    held_out = scale_logmels(banded_logmels(16, 1))
    model, history = fit_autoencoder(
        train, epochs=20, batch_size=8, lr=2e-3, seed=0, device="cpu", train_options=FAST
    )
    assert history.loss[-1] < history.loss[0] / 2
    import torch

    with torch.no_grad():
        reconstruction = model(torch.from_numpy(held_out)).numpy()
    error = np.mean((reconstruction - held_out) ** 2)
    # the best input-independent guess: the training songs' mean image
    constant = np.mean((train.mean(axis=0) - held_out) ** 2)
    assert error < 0.5 * constant, (error, constant)
    latent = encode(model, held_out, train_options=FAST)
    assert latent.shape == (16, model.latent_size)


def _songs_seen(monkeypatch: pytest.MonkeyPatch, fit_on: str) -> tuple[set[int], Any, Any]:
    logmels = banded_logmels(12, 2)
    logmels[:, 0, 0] = np.arange(12)  # makes every song's scaled image distinct
    labels = np.arange(12) % 4
    seen: list[np.ndarray] = []

    def spy(scaled: np.ndarray, **kwargs: Any) -> Any:
        seen.append(scaled.copy())
        return original(scaled, **kwargs)

    original = autoencoding.fit_autoencoder
    monkeypatch.setattr(autoencoding, "fit_autoencoder", spy)
    method = resolve_method("ae-rf", {"epochs": 1, "fit_on": fit_on, "train_options": FAST})
    protocol = ProtocolConfig(n_splits=3, n_repeats=1, random_state=1)
    fold = make_folds(labels, protocol)[0]
    record = fit_fold(method, {"logmel": logmels}, labels, fold, protocol, keep_model=True)
    reference = scale_logmels(logmels).reshape(12, -1)
    songs = set()
    for rows in seen:
        for row in rows.reshape(len(rows), -1):
            songs.add(int(np.flatnonzero(np.all(np.isclose(reference, row), axis=1))[0]))
    return songs, fold, record


def test_default_autoencoder_never_sees_a_test_song(monkeypatch: pytest.MonkeyPatch) -> None:
    songs, fold, record = _songs_seen(monkeypatch, "train")
    assert songs == set(fold.train.tolist())
    assert record.extras["autoencoder_fit_on"] == "train"
    assert record.extras["autoencoder_songs"] == len(fold.train)


def test_fit_on_all_reproduces_the_published_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    # the positive control: the spy does see test songs when the leak is asked for
    songs, _, record = _songs_seen(monkeypatch, "all")
    assert songs == set(range(12))
    assert record.extras["autoencoder_songs"] == 12


def test_forest_has_default_parameters_and_the_fold_seed() -> None:
    logmels = banded_logmels(8, 3)
    labels = np.arange(8) % 2
    model = AutoencoderForest(epochs=1, random_state=7, device="cpu", train_options=FAST)
    first = model.fit(logmels, labels).predict_proba(logmels)
    assert model.forest_.get_params() == RandomForestClassifier(random_state=7).get_params()
    again = AutoencoderForest(epochs=1, random_state=7, device="cpu", train_options=FAST)
    np.testing.assert_array_equal(again.fit(logmels, labels).predict_proba(logmels), first)


def test_bad_settings_fail_before_any_work() -> None:
    with pytest.raises(ConfigError, match="ae-rf.*fit_on"):
        resolve_method("ae-rf", {"fit_on": "everything"})
    with pytest.raises(ConfigError, match="ae-rf.*epochs"):
        resolve_method("ae-rf", {"epochs": -1})
