"""The synthetic dataset: deterministic, well-formed, fast, and learnable but not trivial."""

from __future__ import annotations

import time

import librosa
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from merkit.core.errors import ConfigError
from merkit.core.labels import QUADRANTS
from merkit.datasets import AudioSource, load_dataset
from merkit.datasets.synthetic import (
    GENERATOR_VERSION,
    PEAK_DBFS,
    SyntheticSource,
    generate_clip,
    load_synthetic,
)

SR = 16000
PEAK = 10 ** (PEAK_DBFS / 20)  # 0.98855...

# Krumhansl-Kessler key profiles (C major / C minor), for a transposition-invariant mode score.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def _best_key_correlation(chroma_mean: np.ndarray, profile: np.ndarray) -> float:
    keys = np.stack([np.roll(profile, k) for k in range(12)])
    keys = keys - keys.mean(axis=1, keepdims=True)
    c = chroma_mean - chroma_mean.mean()
    return float(np.max(keys @ c / (np.linalg.norm(keys, axis=1) * np.linalg.norm(c))))


def _mode_score(chroma_mean: np.ndarray) -> float:
    """> 0 when the pitch-class profile fits a major key better than any minor key."""
    return _best_key_correlation(chroma_mean, MAJOR_PROFILE) - _best_key_correlation(
        chroma_mean, MINOR_PROFILE
    )


FEATURES = ("onset_rate", "tempo", "onset_mean", "rms_mean", "rms_std", "centroid", "mode")


def _simple_features(y: np.ndarray) -> list[float]:
    onset = librosa.onset.onset_strength(y=y, sr=SR)
    rms = librosa.feature.rms(y=y)[0]
    chroma = librosa.feature.chroma_stft(y=y, sr=SR)
    return [
        librosa.onset.onset_detect(onset_envelope=onset, sr=SR).size / (y.size / SR),
        float(librosa.feature.tempo(onset_envelope=onset, sr=SR)[0]),
        float(onset.mean()),
        float(rms.mean()),
        float(rms.std()),
        float(librosa.feature.spectral_centroid(y=y, sr=SR)[0].mean()),
        _mode_score(chroma.mean(axis=1)),
    ]


@pytest.fixture(scope="module")
def small_set() -> tuple[np.ndarray, np.ndarray]:
    """Simple features of 20 ten-second clips per quadrant (about 10 s to build)."""
    dataset = load_synthetic(n_per_quadrant=20, seed=7, duration=10.0)
    features = np.array([_simple_features(song.source.load(SR)) for song in dataset.songs])
    return features, dataset.labels


# ------------------------------------------------------------------------------------------
# Clips


@pytest.mark.parametrize("quadrant", QUADRANTS)
def test_clip_is_float32_mono_at_the_requested_length_and_peak(quadrant: str) -> None:
    y = generate_clip(quadrant, np.random.default_rng(0), sr=SR, duration=3.0)
    assert y.dtype == np.float32
    assert y.shape == (3 * SR,)
    assert np.isfinite(y).all()
    assert np.max(np.abs(y)) == pytest.approx(PEAK, abs=1e-6)
    # music, not a lone click: the signal is busy well below the peak
    assert float(np.sqrt(np.mean(y**2))) > 0.02


@pytest.mark.parametrize(("sr", "duration", "n"), [(8000, 1.0, 8000), (22050, 2.5, 55125)])
def test_clip_length_follows_sample_rate_and_duration(sr: int, duration: float, n: int) -> None:
    y = generate_clip("Q3", np.random.default_rng(1), sr=sr, duration=duration)
    assert y.shape == (n,)
    assert np.max(np.abs(y)) == pytest.approx(PEAK, abs=1e-6)


def test_same_seed_gives_identical_audio_and_other_seeds_differ() -> None:
    first = SyntheticSource(seed=3, index=5, quadrant="Q2", duration=4.0).load(SR)
    again = SyntheticSource(seed=3, index=5, quadrant="Q2", duration=4.0).load(SR)
    other_seed = SyntheticSource(seed=4, index=5, quadrant="Q2", duration=4.0).load(SR)
    other_index = SyntheticSource(seed=3, index=6, quadrant="Q2", duration=4.0).load(SR)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other_seed, atol=1e-3)
    assert not np.allclose(first, other_index, atol=1e-3)


def test_a_song_keeps_its_notes_at_another_sample_rate() -> None:
    # Notes are drawn before any sample-rate dependent noise, so the pitch content matches.
    def chroma(source: SyntheticSource, sr: int) -> np.ndarray:
        return librosa.feature.chroma_stft(y=source.load(sr), sr=sr).mean(axis=1)

    songs = [SyntheticSource(3, i, QUADRANTS[i % 4], 10.0) for i in range(4)]
    at_16k = [chroma(s, 16000) for s in songs]
    at_22k = [chroma(s, 22050) for s in songs]
    same = [np.corrcoef(a, b)[0, 1] for a, b in zip(at_16k, at_22k, strict=True)]
    different = [
        np.corrcoef(at_16k[i], at_22k[j])[0, 1] for i in range(4) for j in range(4) if i != j
    ]
    assert min(same) > 0.7
    assert min(same) > max(different)


def test_a_thirty_second_clip_generates_fast() -> None:
    # CPU time of this process (the generator is single-threaded), so a busy machine cannot fail it
    generate_clip("Q1", np.random.default_rng(0), sr=SR, duration=30.0)  # warm-up
    times = []
    for seed in range(3):
        start = time.process_time()
        generate_clip(QUADRANTS[seed], np.random.default_rng(seed), sr=SR, duration=30.0)
        times.append(time.process_time() - start)
    assert min(times) < 0.2


@pytest.mark.parametrize(
    ("quadrant", "sr", "duration"), [("Q5", SR, 1.0), ("Q1", 0, 1.0), ("Q1", SR, 0.0)]
)
def test_bad_clip_arguments_raise_config_error(quadrant: str, sr: int, duration: float) -> None:
    with pytest.raises(ConfigError):
        generate_clip(quadrant, np.random.default_rng(0), sr=sr, duration=duration)


# ------------------------------------------------------------------------------------------
# Sources and the dataset


def test_source_implements_audio_source_with_a_versioned_content_key() -> None:
    source = SyntheticSource(seed=2, index=17, quadrant="Q4", duration=30)
    assert isinstance(source, AudioSource)
    assert source.key == f"synthetic:{GENERATOR_VERSION}:2:17:Q4:30.0"
    assert source.key == SyntheticSource(2, 17, "Q4", 30.0).key  # 30 and 30.0 are one song
    assert "Q4" in source.description and "17" in source.description
    with pytest.raises(ConfigError, match="quadrant"):
        SyntheticSource(seed=0, index=0, quadrant="happy")


def test_dataset_is_balanced_sorted_and_reproducible() -> None:
    dataset = load_synthetic("/ignored/root", n_per_quadrant=3, seed=5, duration=2.0)
    assert dataset.name == "synthetic"
    assert len(dataset) == 12
    assert dataset.counts() == {"Q1": 3, "Q2": 3, "Q3": 3, "Q4": 3}
    assert dataset.song_ids == [f"SYN05-{i:04d}" for i in range(12)]
    assert dataset.groups is None
    keys = [song.source.key for song in dataset.songs]
    assert len(set(keys)) == 12
    for song in dataset.songs:
        assert song.source.quadrant == song.quadrant
        assert song.source.duration == 2.0
    again = load_synthetic(n_per_quadrant=3, seed=5, duration=2.0)
    assert [s.source for s in again.songs] == [s.source for s in dataset.songs]
    assert np.array_equal(again.songs[4].source.load(SR), dataset.songs[4].source.load(SR))


def test_registry_reaches_the_loader() -> None:
    dataset = load_dataset("synthetic", n_per_quadrant=2, seed=1)
    assert dataset.song_ids[0] == "SYN01-0000"
    assert dataset.songs[0].source.duration == 30.0


@pytest.mark.parametrize(
    "options",
    [
        {"n_per_quadrant": 1},
        {"n_per_quadrant": 2.5},
        {"n_per_quadrant": True},
        {"duration": 0.5},
        {"seed": -1},
    ],
)
def test_bad_dataset_arguments_raise_config_error(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        load_synthetic(**options)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# The cues carry the emotion


def test_arousal_and_valence_cues_point_the_right_way(
    small_set: tuple[np.ndarray, np.ndarray],
) -> None:
    features, labels = small_set
    high_arousal = np.isin(labels, [0, 1])
    positive = np.isin(labels, [0, 3])
    rate = features[:, FEATURES.index("onset_rate")]
    centroid = features[:, FEATURES.index("centroid")]
    mode = features[:, FEATURES.index("mode")]
    # energetic songs are busier and brighter ...
    assert rate[high_arousal].mean() > 2 * rate[~high_arousal].mean()
    assert centroid[high_arousal].mean() > 1.3 * centroid[~high_arousal].mean()
    # ... happy and calm songs lean major, angry and sad songs minor
    assert mode[positive].mean() > 0 > mode[~positive].mean()
    # overlap: some low-arousal songs are busier than some high-arousal ones
    assert rate[~high_arousal].max() > rate[high_arousal].min()


def test_quadrants_are_learnable_but_not_trivial(small_set: tuple[np.ndarray, np.ndarray]) -> None:
    features, labels = small_set
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    accuracy = cross_val_score(model, features, labels, cv=folds).mean()
    # chance is 0.25; seven coarse features reach about 0.70 here
    assert accuracy > 0.5
    assert accuracy < 0.95
