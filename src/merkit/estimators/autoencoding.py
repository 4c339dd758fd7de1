"""Autoencoder embeddings + random forest (the paper's §3.5), and the autoencoder training it uses.

:func:`fit_autoencoder` trains the convolutional autoencoder of
:class:`~merkit.models.autoencoder.ConvAutoencoder` to reconstruct 942 x 128 log-mels scaled to
[-1, 1] per song (MSE, Adam lr 2e-4, batch 150, 150 epochs, as in the published code);
:func:`encode` maps log-mels to its flattened 60 416-value latent.

:class:`AutoencoderForest` is the classifier: the autoencoder is trained inside ``fit`` on the
training songs only, their latents train a scikit-learn random forest (default parameters, the
estimator's seed). The published code trains the autoencoder once on every song, test songs
included, which leaks the test songs' audio into the features; ``fit_on="all"`` reproduces that
by training the autoencoder on the training songs plus the songs it is asked to predict.
"""

from __future__ import annotations

import hashlib
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from torch import nn

from merkit.core.errors import DataError
from merkit.core.protocols import PredictsDetails, ReportsTraining
from merkit.models.autoencoder import ConvAutoencoder, scale_per_sample
from merkit.training.config import TrainConfig
from merkit.training.history import TrainHistory
from merkit.training.loop import Trainer
from merkit.training.runtime import seed_everything

__all__ = ["AutoencoderForest", "decode", "encode", "fit_autoencoder", "scale_logmels"]


def scale_logmels(logmels: np.ndarray, batch: int = 64) -> np.ndarray:
    """Each log-mel scaled to [-1, 1] by its own min and max (float32, same shape).

    Parameters
    ----------
    logmels : np.ndarray, shape (n, n_frames, n_mels)
    batch : int
        Songs scaled at a time (bounds the float32 temporaries).
    """
    logmels = np.asarray(logmels)
    if logmels.ndim != 3 or len(logmels) == 0:
        raise DataError(f"expected log-mels of shape (n_songs, frames, mels), got {logmels.shape}")
    out = np.empty(logmels.shape, dtype=np.float32)
    for start in range(0, len(logmels), batch):
        part = torch.from_numpy(np.asarray(logmels[start : start + batch], dtype=np.float32))
        out[start : start + batch] = scale_per_sample(part)[0].numpy()
    return out


def _config(**settings: Any) -> TrainConfig:
    """A reconstruction-training config: MSE, no accuracy stop, no BatchNorm pass."""
    return TrainConfig.create(
        loss="mse", stop_train_accuracy=None, recalibrate_batchnorm=False, **settings
    )


def fit_autoencoder(
    scaled: np.ndarray,
    *,
    epochs: int = 150,
    batch_size: int = 150,
    lr: float = 2e-4,
    seed: int = 0,
    device: str = "auto",
    train_options: dict[str, Any] | None = None,
) -> tuple[ConvAutoencoder, TrainHistory]:
    """Train a fresh :class:`ConvAutoencoder` to reconstruct ``scaled``.

    Parameters
    ----------
    scaled : np.ndarray, shape (n, n_frames, n_mels)
        Log-mels scaled to [-1, 1] (:func:`scale_logmels`); the only data the model sees.
    epochs, batch_size, lr : int, int, float
        Adam (Keras epsilon) on the MSE; every epoch runs (no stop rule).
    seed : int
        Seeds the weights and the batch order.
    device : {"auto", "cpu", "cuda"}
    train_options : dict, optional
        Other :class:`~merkit.training.TrainConfig` fields (``num_threads``, ...).

    Returns
    -------
    model : ConvAutoencoder
        Trained, in eval mode.
    history : TrainHistory
        Per-epoch reconstruction loss.
    """
    config = _config(
        epochs=epochs,
        batch_size=batch_size,
        optimizer="adam",
        lr=lr,
        seed=seed,
        device=device,
        **(train_options or {}),
    )
    seed_everything(seed)
    model = ConvAutoencoder(n_frames=scaled.shape[1], n_mels=scaled.shape[2])
    history = Trainer(config).fit(model, [scaled], scaled)
    return model.eval(), history


class _Encoder(nn.Module):
    """The autoencoder's encoder as a model of its own (the trainer's prediction applies it)."""

    input_names: ClassVar[tuple[str, ...]] = ("logmel",)

    def __init__(self, autoencoder: ConvAutoencoder) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.encode(logmel)


def encode(
    autoencoder: ConvAutoencoder,
    scaled: np.ndarray,
    *,
    batch_size: int = 32,
    train_options: dict[str, Any] | None = None,
) -> np.ndarray:
    """Flattened latents ``(n, latent_size)`` (60 416 for 942 x 128) of scaled log-mels."""
    device = str(next(autoencoder.parameters()).device.type)
    trainer = Trainer(_config(batch_size=batch_size, device=device, **(train_options or {})))
    return trainer.predict_outputs(_Encoder(autoencoder), [scaled])


class _Decoder(nn.Module):
    """The autoencoder's decoder as a model of its own (latents in, scaled log-mels out)."""

    input_names: ClassVar[tuple[str, ...]] = ("latent",)

    def __init__(self, autoencoder: ConvAutoencoder) -> None:
        super().__init__()
        self.autoencoder = autoencoder

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.autoencoder.decode(latent)


def decode(
    autoencoder: ConvAutoencoder,
    latents: np.ndarray,
    *,
    batch_size: int = 32,
    train_options: dict[str, Any] | None = None,
) -> np.ndarray:
    """Log-mels ``(n, n_frames, n_mels)`` in [-1, 1] (the tanh output) decoded from latents."""
    device = str(next(autoencoder.parameters()).device.type)
    trainer = Trainer(_config(batch_size=batch_size, device=device, **(train_options or {})))
    latents = np.ascontiguousarray(latents, dtype=np.float32)
    return trainer.predict_outputs(_Decoder(autoencoder), [latents])


def _fingerprint(array: np.ndarray) -> str:
    data = np.ascontiguousarray(array)
    return hashlib.sha256(repr(data.shape).encode() + data.view(np.uint8).data).hexdigest()


class AutoencoderForest(ClassifierMixin, BaseEstimator, PredictsDetails, ReportsTraining):
    """Random forest on the latents of a convolutional autoencoder of the log-mels (paper §3.5).

    Parameters
    ----------
    epochs, batch_size, lr : int, int, float
        Autoencoder training (Adam on the MSE); defaults as published: 150, 150, 2e-4.
    fit_on : {"train", "all"}
        ``"train"`` (default): the autoencoder is trained in ``fit`` on the training songs only.
        ``"all"``: as the published code, it is trained on the training songs **and** the songs
        passed to ``predict``/``predict_proba`` (so a cross-validation fold's test songs shape
        the features: this leaks and is kept only to reproduce the paper's number). Training
        then happens at the first prediction and is reused while the same songs are predicted.
    forest_params : dict, optional
        :class:`~sklearn.ensemble.RandomForestClassifier` parameters; default none (the
        library's defaults, as the paper).
    device : {"auto", "cpu", "cuda"}
        Where the autoencoder trains.
    train_options : dict, optional
        Other training settings of the autoencoder (e.g. ``num_threads``).
    random_state : int or None
        Seeds the autoencoder and the forest.

    Attributes
    ----------
    autoencoder_ : ConvAutoencoder
        The trained autoencoder (after ``fit``; with ``fit_on="all"`` after the first prediction).
    forest_ : RandomForestClassifier
    history_ : TrainHistory
        The autoencoder's training history.
    classes_ : np.ndarray
    n_autoencoder_songs_ : int
        Songs the autoencoder was trained on.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "fit_on": [StrOptions({"train", "all"})],
        "forest_params": [dict, None],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "train_options": [dict, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        epochs: int = 150,
        batch_size: int = 150,
        lr: float = 2e-4,
        fit_on: str = "train",
        forest_params: dict[str, Any] | None = None,
        device: str = "auto",
        train_options: dict[str, Any] | None = None,
        random_state: int | None = None,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.fit_on = fit_on
        self.forest_params = forest_params
        self.device = device
        self.train_options = train_options
        self.random_state = random_state

    def _seed(self) -> int:
        return 0 if self.random_state is None else int(self.random_state)

    def _train(self, scaled: np.ndarray) -> None:
        self.autoencoder_, self.history_ = fit_autoencoder(
            scaled,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            seed=self._seed(),
            device=self.device,
            train_options=self.train_options,
        )
        self.n_autoencoder_songs_ = len(scaled)

    def _fit_forest(self) -> None:
        latents = encode(self.autoencoder_, self._train_scaled, train_options=self.train_options)
        forest = RandomForestClassifier(random_state=self.random_state)
        if self.forest_params:
            forest.set_params(**self.forest_params)
        self.forest_ = forest.fit(latents, self._train_labels)

    def fit(self, X: Any, y: Any) -> AutoencoderForest:
        """Train the autoencoder (``fit_on="train"``) and the forest on ``X``'s log-mels.

        Parameters
        ----------
        X : array-like, shape (n_songs, n_frames, n_mels)
            Log-mels (942 x 128 in the paper).
        y : array-like, shape (n_songs,)
        """
        self._validate_params()
        labels = np.asarray(y)
        scaled = scale_logmels(X)
        if len(labels) != len(scaled):
            raise DataError(f"X has {len(scaled)} songs but y has {len(labels)} labels")
        self.classes_ = np.unique(labels)
        self._train_scaled, self._train_labels = scaled, labels
        self._predict_key: str | None = None
        if self.fit_on == "train":
            self._train(scaled)
            self._fit_forest()
        return self

    def _ready_for(self, scaled: np.ndarray) -> None:
        """With ``fit_on="all"``: train on the training songs plus ``scaled`` (once per set)."""
        if self.fit_on != "all":
            return
        key = _fingerprint(scaled)
        if key != self._predict_key:
            self._train(np.concatenate([self._train_scaled, scaled]))
            self._fit_forest()
            self._predict_key = key

    def transform(self, X: Any) -> np.ndarray:
        """The autoencoder latents ``(n_songs, latent_size)`` of ``X``'s log-mels."""
        check_is_fitted(self, "classes_")
        scaled = scale_logmels(X)
        self._ready_for(scaled)
        return encode(self.autoencoder_, scaled, train_options=self.train_options)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Forest class probabilities ``(n_songs, n_classes)``."""
        latents = self.transform(X)  # first: with fit_on="all" it trains the forest
        return self.forest_.predict_proba(latents)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class per song."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def training_history(self) -> Any:
        """The fitted training history (:class:`~merkit.core.protocols.ReportsTraining`)."""
        return getattr(self, "history_", None)

    def predict_details(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Probabilities, labels and what the autoencoder was trained on (for fold records)."""
        proba = self.predict_proba(X)
        extras = {
            "autoencoder_fit_on": self.fit_on,
            "autoencoder_songs": int(self.n_autoencoder_songs_),
            "reconstruction_mse": (self.history_.loss or [None])[-1],
        }
        return proba, self.classes_[np.argmax(proba, axis=1)], extras
