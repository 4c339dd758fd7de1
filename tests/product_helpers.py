"""Cheap test-only representations, methods and estimators for the train/export/predict tests.

Importable by name (``product_helpers:band_features``) because pytest puts ``tests/`` on
``sys.path``; registered on demand with :func:`register_test_methods`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from merkit.datasets.base import Dataset, FileSource, Song
from merkit.methods import METHODS, MethodSpec, register_method
from merkit.representations.registry import REPRESENTATIONS, Representation, register_representation

BANDS = "test-bands"
BANDS_8K = "test-bands-8k"
LOGREG = "test-logreg"
TWO_RATES = "test-two-rates"
TORCHLIKE = "test-torchlike"
TORCH_DNN = "test-torch-dnn"


def band_features(y: np.ndarray, sr: int, *, seed: int = 0, n_bands: int = 8) -> np.ndarray:
    """Mean and std of log energy in ``n_bands`` equal-width bands over 2048-sample frames, + RMS.

    Shape ``(2 * n_bands + 1,)``; a clip shorter than one frame is zero-padded.
    """
    frame = 2048
    if y.size < frame:
        y = np.concatenate([y, np.zeros(frame - y.size, np.float32)])
    frames = np.lib.stride_tricks.sliding_window_view(y, frame)[::1024]
    power = np.abs(np.fft.rfft(frames * np.hanning(frame), axis=1)) ** 2
    bands = np.array_split(power, n_bands, axis=1)
    energy = np.log10(np.stack([b.sum(axis=1) for b in bands], axis=1) + 1e-10)
    rms = np.sqrt(np.mean(np.square(y, dtype=np.float64)))
    return np.concatenate([energy.mean(axis=0), energy.std(axis=0), [rms]]).astype(np.float32)


class ConcatInputs(BaseEstimator, TransformerMixin):
    """Join a dict of per-song feature arrays column-wise (sorted by name)."""

    def fit(self, X: Any, y: Any = None) -> ConcatInputs:
        return self

    def transform(self, X: Any) -> np.ndarray:
        return np.hstack([np.asarray(X[k]).reshape(len(X[k]), -1) for k in sorted(X)])


class TorchLike(BaseEstimator, ClassifierMixin):
    """A nearest-class-mean classifier that saves itself with its own ``save``/``load`` (.npz),
    standing in for merkit's torch estimators."""

    def __init__(self, temperature: float = 1.0, random_state: int | None = None) -> None:
        self.temperature = temperature
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> TorchLike:
        X = np.asarray(X, dtype=np.float64)
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0) + 1e-9
        Z = (X - self.mean_) / self.scale_
        self.classes_ = np.unique(y)
        self.centroids_ = np.stack([Z[y == c].mean(axis=0) for c in self.classes_])
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        Z = (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_
        d = -((Z[:, None, :] - self.centroids_[None]) ** 2).sum(axis=2) / self.temperature
        e = np.exp(d - d.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def save(self, path: Path) -> None:
        with open(path, "wb") as handle:  # np.savez would append ".npz" to a bare path
            np.savez(
                handle,
                temperature=self.temperature,
                mean=self.mean_,
                scale=self.scale_,
                classes=self.classes_,
                centroids=self.centroids_,
            )

    @classmethod
    def load(cls, path: Path) -> TorchLike:
        data = np.load(path)
        model = cls(temperature=float(data["temperature"]))
        model.mean_, model.scale_ = data["mean"], data["scale"]
        model.classes_, model.centroids_ = data["classes"], data["centroids"]
        return model


def _logreg(C: float = 1.0, random_state: int | None = None) -> Pipeline:
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("clf", LogisticRegression(C=C, max_iter=1000, random_state=random_state)),
        ]
    )


def _two_rates(C: float = 1.0) -> Pipeline:
    return Pipeline([("join", ConcatInputs()), ("model", _logreg(C))])


def _torch_dnn(epochs: int = 1, random_state: int | None = None) -> Any:
    """merkit's real TorchClassifier with the paper's feature DNN on the 17 band features."""
    from merkit.training.classifier import TorchClassifier

    return TorchClassifier(
        model="dnn",
        model_params={"n_features": 17},
        epochs=epochs,
        batch_size=6,
        device="cpu",
        stop_train_accuracy=None,
        random_state=random_state,
    )


def register_test_methods() -> None:
    """Register the test representations, methods and self-saving estimator once per process."""
    from merkit.product.registered import register_estimator_class

    register_estimator_class(TorchLike)  # manifests may name only registered estimator classes
    for rep in (
        Representation(name=BANDS, fn=band_features, params={"n_bands": 8}, dtype="float16"),
        Representation(name=BANDS_8K, fn=band_features, sr=8000, params={"n_bands": 4}),
    ):
        if rep.name not in REPRESENTATIONS:
            register_representation(rep)
    for spec in (
        MethodSpec(LOGREG, "test: logistic regression on band energies", (BANDS,), _logreg),
        MethodSpec(TWO_RATES, "test: two inputs at 16 and 8 kHz", (BANDS, BANDS_8K), _two_rates),
        MethodSpec(TORCHLIKE, "test: self-saving estimator", (BANDS,), TorchLike),
        MethodSpec(TORCH_DNN, "test: TorchClassifier feature DNN", (BANDS,), _torch_dnn),
    ):
        if spec.name not in METHODS:
            register_method(spec)


def write_wav(path: Path, y: np.ndarray, sr: int, subtype: str = "FLOAT") -> Path:
    """Write audio exactly (32-bit float by default) so decoding returns the same samples."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, sr, subtype=subtype)
    return path


def synthetic_files(folder: Path, n_per_quadrant: int = 3, duration: float = 3.0) -> Dataset:
    """The synthetic dataset written to 16 kHz float WAVs, as a dataset of FileSource songs."""
    from merkit.datasets.synthetic import load_synthetic

    songs = []
    for song in load_synthetic(n_per_quadrant=n_per_quadrant, duration=duration).songs:
        assert song.source is not None
        path = write_wav(folder / f"{song.song_id}.wav", song.source.load(16_000), 16_000)
        songs.append(Song(song.song_id, FileSource(path), song.quadrant))
    return Dataset("synthetic-files", songs, root=folder)


def tone(seconds: float, sr: int = 16_000, freq: float = 440.0, level: float = 0.3) -> np.ndarray:
    """A sine tone with a little noise, float32."""
    t = np.arange(round(seconds * sr)) / sr
    rng = np.random.default_rng(int(freq))
    y = level * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)
    return y.astype(np.float32)


def music(seconds: float, sr: int = 16_000, quadrant: str = "Q1", index: int = 0) -> np.ndarray:
    """A generated piece of music (:mod:`merkit.datasets.synthetic`), float32: audio that is
    neither silent, constant nor a steady tone, so its answer can be reliable."""
    from merkit.datasets.synthetic import SyntheticSource

    return SyntheticSource(seed=7, index=index, quadrant=quadrant, duration=seconds).load(sr)


def svm_model_with_companions(tmp_path_factory: Any) -> Path:
    """An ``svm-own`` model on :data:`BANDS` of 24 synthetic songs, saved with its axis models
    and familiarity measure (what ``merkit adapt``'s SVM kinds need)."""
    from merkit.product.companions import add_companions
    from merkit.product.export import save_model, train_final
    from merkit.representations.cache import NullCache

    songs = synthetic_files(tmp_path_factory.mktemp("synthetic"), n_per_quadrant=6)
    model = train_final(
        "svm-own", songs, params={"inputs": [BANDS]}, cache=NullCache(), progress=False
    )
    path = save_model(model, tmp_path_factory.mktemp("models") / "svm")
    add_companions(path, songs, cache=NullCache(), progress=False)
    return path


def logreg_model_dir(tmp_path_factory: Any) -> Path:
    """The cheap test model (band energies, logistic regression, 3 s windows every 1.5 s)
    trained on :func:`synthetic_files` and saved to a fresh folder."""
    from merkit.product.export import save_model, train_final
    from merkit.representations.cache import NullCache

    songs = synthetic_files(tmp_path_factory.mktemp("synthetic"))
    model = train_final(LOGREG, songs, cache=NullCache(), progress=False)
    return save_model(model, tmp_path_factory.mktemp("models") / "logreg")
