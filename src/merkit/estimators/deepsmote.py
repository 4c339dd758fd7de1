"""DeepSMOTE (paper §3.6): synthetic log-mels from Borderline-SMOTE in an autoencoder latent space.

:class:`DeepSMOTE` is a fit-time oversampler with the imbalanced-learn interface
(``fit_resample(X, y) -> (X_resampled, y_resampled)``, the real rows first, then the synthetic
ones). On each call it:

1. scales every log-mel to [-1, 1] by its own min and max and trains a fresh convolutional
   autoencoder (:func:`merkit.estimators.autoencoding.fit_autoencoder`, the model of §3.5) on the
   songs it
   is given, the fold's training songs only by default;
2. encodes them to their flattened latents;
3. runs imbalanced-learn's ``BorderlineSMOTE(kind="borderline-2")`` on the latents, asking for
   exactly ``n_per_class`` new rows in every class (25 in the paper);
4. decodes the new latents to log-mels in [-1, 1];
5. maps them back to the dB scale of the real log-mels: ``x * half_range + centre`` with the mean
   per-song centre ``(max+min)/2`` and half-range ``(max-min)/2`` of the real songs of the same
   class (``db_reference="class"``) or of all of them (``"all"``). The published code skips this
   step and trains the CNN on dB mels mixed with [-1, 1] ones. A briefly trained autoencoder
   decodes to a narrower range than [-1, 1] (on 4QAED after 2 epochs, about 11 dB of half-range
   instead of the real 40); ``renormalise=True`` first stretches each decoded mel to span
   [-1, 1] exactly, as every scaled real mel does, so the synthetic mels get the real dB range
   (default False: the plain inverse).

How the paper's code asks for ``n`` samples per class: for each class ``c`` it duplicates rows of
the other classes until ``c`` is the unique minority by ``n`` rows, oversamples every class "one
against the rest" to the majority count and keeps the last ``n`` rows generated for ``c``. Here a
single ``BorderlineSMOTE`` call with ``sampling_strategy={c: count(c) + n}`` asks for the same
``n`` rows per class from the real latents directly, without duplicated points distorting the
neighbourhoods. A class with no "danger" (borderline) sample gets no Borderline-SMOTE rows; its
``n`` rows then come from plain SMOTE within the class (listed in ``fallback_classes_``).

Borderline-SMOTE kind 2 (Han et al. 2005), as imbalanced-learn implements it: a sample of class
``c`` is "in danger" when at least half, but not all, of its ``m_neighbors`` nearest neighbours
(any class) belong to other classes. Each new row is ``s + u * (t - s)`` for a danger sample ``s``
and one of its ``k_neighbors`` nearest neighbours ``t`` in the whole set, with ``u`` uniform in
[0, 1) when ``t`` is of class ``c`` and in [0, 0.5) otherwise.

``fit_on="all"`` reproduces the published code, which trains the autoencoder and runs SMOTE once
on every song, the test songs included, so synthetic training samples interpolate test songs: it
leaks and is kept only to reproduce the paper's number. The songs come from ``fit_resample``'s
``all_songs`` argument (merkit's protocol passes them to methods whose ``needs_all_songs`` is
True); the fold details then say so.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from merkit.core.errors import DataError
from merkit.core.protocols import NeedsAllSongs
from merkit.core.versions import require_extra
from merkit.estimators import autoencoding

__all__ = ["DeepSMOTE", "oversample_latents", "scale_stats", "to_db_scale"]


def scale_stats(logmels: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Per-song centre ``(max+min)/2`` and half-range ``(max-min)/2`` (1 for a constant song).

    The inverse of the [-1, 1] scaling of :func:`merkit.models.autoencoder.scale_per_sample`:
    ``scaled * half_range + centre`` gives the song back.
    """
    logmels = np.asarray(logmels)
    centre = np.empty(len(logmels), dtype=np.float64)
    half = np.empty(len(logmels), dtype=np.float64)
    for start in range(0, len(logmels), batch):
        flat = np.asarray(logmels[start : start + batch], dtype=np.float32).reshape(
            min(batch, len(logmels) - start), -1
        )
        low, high = flat.min(axis=1).astype(np.float64), flat.max(axis=1).astype(np.float64)
        centre[start : start + batch] = (high + low) / 2
        half[start : start + batch] = (high - low) / 2
    half[half <= 1e-12] = 1.0  # as scale_per_sample: a constant song is not divided by zero
    return centre, half


def to_db_scale(
    scaled: np.ndarray,
    labels: np.ndarray,
    centre: np.ndarray,
    half_range: np.ndarray,
    reference_labels: np.ndarray,
    *,
    by: str = "class",
) -> np.ndarray:
    """Map [-1, 1] log-mels to dB with the mean centre and half-range of real songs.

    Parameters
    ----------
    scaled : np.ndarray, shape (n, n_frames, n_mels)
        Decoded log-mels in [-1, 1].
    labels : np.ndarray, shape (n,)
        Class of each decoded log-mel.
    centre, half_range : np.ndarray, shape (n_real,)
        Of the real songs (:func:`scale_stats`).
    reference_labels : np.ndarray, shape (n_real,)
        Class of each real song.
    by : {"class", "all"}
        Average over the real songs of the same class, or over all of them.

    Returns
    -------
    np.ndarray
        float32, ``scaled * mean(half_range) + mean(centre)``.
    """
    scaled = np.asarray(scaled, dtype=np.float32)
    labels, reference_labels = np.asarray(labels), np.asarray(reference_labels)
    out = np.empty_like(scaled)
    for cls in np.unique(labels):
        rows = labels == cls
        ref = reference_labels == cls if by == "class" else np.ones(len(reference_labels), bool)
        if not ref.any():
            raise DataError(f"no real song of class {cls!r} to take the dB scale from")
        out[rows] = scaled[rows] * np.float32(half_range[ref].mean()) + np.float32(
            centre[ref].mean()
        )
    return out


def oversample_latents(
    latents: np.ndarray,
    labels: np.ndarray,
    n_per_class: int,
    *,
    k_neighbors: int = 5,
    m_neighbors: int = 5,
    random_state: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """``n_per_class`` Borderline-SMOTE-2 rows per class from real ``latents``.

    Returns
    -------
    new_latents : np.ndarray, shape (n_per_class * n_classes, n_features)
    new_labels : np.ndarray
    fallback : list
        Classes with no borderline sample, whose rows came from plain SMOTE within the class.
    """
    latents, labels = np.asarray(latents), np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise DataError(f"DeepSMOTE needs at least two classes, got {classes.tolist()}")
    small = classes[counts < 2]
    if len(small):
        raise DataError(f"DeepSMOTE needs at least 2 songs per class; {small.tolist()} have one")
    over_sampling = require_extra("imblearn.over_sampling", needed_by="DeepSMOTE (cnn+deepsmote)")
    SMOTE, BorderlineSMOTE = over_sampling.SMOTE, over_sampling.BorderlineSMOTE
    n = len(latents)
    target = {cls: int(count) + n_per_class for cls, count in zip(classes, counts, strict=True)}
    borderline = BorderlineSMOTE(
        sampling_strategy=target,
        kind="borderline-2",
        k_neighbors=min(k_neighbors, n - 1),
        m_neighbors=min(m_neighbors, n - 1),
        random_state=random_state,
    )
    resampled, resampled_labels = borderline.fit_resample(latents, labels)
    new, new_labels = [resampled[n:]], [resampled_labels[n:]]
    fallback = []
    for cls, count in zip(classes, counts, strict=True):
        missing = n_per_class - int(np.sum(resampled_labels[n:] == cls))
        if missing <= 0:
            continue
        # No sample of this class is borderline: imbalanced-learn generates none for it.
        plain = SMOTE(
            sampling_strategy={cls: int(count) + missing},
            k_neighbors=min(k_neighbors, int(count) - 1),
            random_state=random_state,
        )
        extra, extra_labels = plain.fit_resample(latents, labels)
        new.append(extra[n:])
        new_labels.append(extra_labels[n:])
        fallback.append(cls.item() if hasattr(cls, "item") else cls)
    out, out_labels = np.concatenate(new), np.concatenate(new_labels)
    order = np.argsort(out_labels, kind="stable")  # grouped by class, generation order within
    return out[order].astype(np.float32), out_labels[order], fallback


class DeepSMOTE(BaseEstimator, NeedsAllSongs):
    """Oversample log-mels with synthetic ones decoded from Borderline-SMOTE-2 latents.

    Parameters
    ----------
    n_per_class : int
        Synthetic log-mels per class (paper: 25).
    fit_on : {"train", "all"}
        ``"train"`` (default): the autoencoder and SMOTE see only the songs passed to
        :meth:`fit_resample`. ``"all"``: the published code's leak, they see ``all_songs``
        (the test songs included).
    ae_epochs, ae_batch_size, ae_lr : int, int, float
        Autoencoder training (Adam on the MSE); published: 150, 150, 2e-4.
    k_neighbors : int
        Neighbours to interpolate toward (any class, kind 2).
    m_neighbors : int
        Neighbours that decide whether a sample is borderline ("in danger"); the published
        ``smote_variants`` default was 5.
    db_reference : {"class", "all"}
        Which real songs' mean centre and half-range map the decoded [-1, 1] mels to dB.
    renormalise : bool
        Stretch each decoded mel to span [-1, 1] before that mapping (nearly a no-op for a
        well-trained autoencoder; advised for a briefly trained one). Default False: the plain
        inverse of the scaling.
    device : {"auto", "cpu", "cuda"}
    train_options : dict, optional
        Other autoencoder training settings (e.g. ``num_threads``).
    random_state : int or None
        Seeds the autoencoder and SMOTE.

    Attributes
    ----------
    n_synthetic_ : dict
        Synthetic rows per class.
    n_autoencoder_songs_ : int
        Songs the autoencoder (and SMOTE) saw.
    reconstruction_mse_ : float or None
        The autoencoder's training MSE in its last epoch (on [-1, 1] mels).
    fallback_classes_ : list
        Classes whose rows came from plain SMOTE (no borderline sample).
    db_stats_ : dict
        Mean per-song centre and half-range (dB) of the real songs the autoencoder saw and of
        the synthetic mels.
    leaked_songs_ : int
        Songs the autoencoder and SMOTE saw beyond the ones being resampled (0 unless
        ``fit_on="all"``).
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_per_class": [Interval(Integral, 1, None, closed="left")],
        "fit_on": [StrOptions({"train", "all"})],
        "ae_epochs": [Interval(Integral, 0, None, closed="left")],
        "ae_batch_size": [Interval(Integral, 1, None, closed="left")],
        "ae_lr": [Interval(Real, 0, None, closed="neither")],
        "k_neighbors": [Interval(Integral, 1, None, closed="left")],
        "m_neighbors": [Interval(Integral, 1, None, closed="left")],
        "db_reference": [StrOptions({"class", "all"})],
        "renormalise": ["boolean"],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "train_options": [dict, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_per_class: int = 25,
        fit_on: str = "train",
        ae_epochs: int = 150,
        ae_batch_size: int = 150,
        ae_lr: float = 2e-4,
        k_neighbors: int = 5,
        m_neighbors: int = 5,
        db_reference: str = "class",
        renormalise: bool = False,
        device: str = "auto",
        train_options: dict[str, Any] | None = None,
        random_state: int | None = None,
    ) -> None:
        self.n_per_class = n_per_class
        self.fit_on = fit_on
        self.ae_epochs = ae_epochs
        self.ae_batch_size = ae_batch_size
        self.ae_lr = ae_lr
        self.k_neighbors = k_neighbors
        self.m_neighbors = m_neighbors
        self.db_reference = db_reference
        self.renormalise = renormalise
        self.device = device
        self.train_options = train_options
        self.random_state = random_state

    @property
    def needs_all_songs(self) -> bool:
        """True with ``fit_on="all"``: the caller should pass every song as ``all_songs``."""
        return self.fit_on == "all"

    def _seed(self) -> int:
        if isinstance(self.random_state, Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(2**31 - 1))

    def fit(self, X: Any, y: Any) -> DeepSMOTE:
        """Check the parameters only (as imbalanced-learn's samplers): see :meth:`fit_resample`."""
        self._validate_params()
        return self

    def fit_resample(
        self, X: Any, y: Any, *, all_songs: tuple[Any, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The real log-mels followed by ``n_per_class`` synthetic ones per class.

        Parameters
        ----------
        X : array-like, shape (n_songs, n_frames, n_mels)
            Log-mels in dB (the training songs).
        y : array-like, shape (n_songs,)
        all_songs : (X_all, y_all), optional
            With ``fit_on="all"``: every song, test songs included, that the autoencoder and
            SMOTE see instead of ``X``. Ignored otherwise. Without it, ``"all"`` uses ``X``.

        Returns
        -------
        X_resampled : np.ndarray, shape (n_songs + n_synthetic, n_frames, n_mels)
            ``X`` first, in order, then the synthetic log-mels grouped by class.
        y_resampled : np.ndarray
        """
        self._validate_params()
        X, y = np.asarray(X), np.asarray(y)
        if X.ndim != 3 or len(X) == 0:
            raise DataError(f"DeepSMOTE expects log-mels of shape (n, frames, mels), got {X.shape}")
        if len(y) != len(X):
            raise DataError(f"X has {len(X)} songs but y has {len(y)} labels")
        source_x, source_y = X, y
        if self.fit_on == "all" and all_songs is not None:
            source_x, source_y = np.asarray(all_songs[0]), np.asarray(all_songs[1])
            if source_x.shape[1:] != X.shape[1:] or len(source_y) != len(source_x):
                raise DataError(
                    f"all_songs must be log-mels like X {X.shape[1:]} with one label each, got "
                    f"{source_x.shape} and {len(source_y)} labels"
                )
        seed = self._seed()
        scaled = autoencoding.scale_logmels(source_x)
        centre, half = scale_stats(source_x)
        autoencoder, history = autoencoding.fit_autoencoder(
            scaled,
            epochs=self.ae_epochs,
            batch_size=self.ae_batch_size,
            lr=self.ae_lr,
            seed=seed,
            device=self.device,
            train_options=self.train_options,
        )
        latents = autoencoding.encode(autoencoder, scaled, train_options=self.train_options)
        del scaled
        new_latents, new_labels, fallback = oversample_latents(
            latents,
            source_y,
            self.n_per_class,
            k_neighbors=self.k_neighbors,
            m_neighbors=self.m_neighbors,
            random_state=seed,
        )
        del latents
        decoded = autoencoding.decode(autoencoder, new_latents, train_options=self.train_options)
        if self.renormalise:
            decoded = autoencoding.scale_logmels(decoded)
        synthetic = to_db_scale(decoded, new_labels, centre, half, source_y, by=self.db_reference)
        classes, counts = np.unique(new_labels, return_counts=True)
        self.n_synthetic_ = {_plain(c): int(k) for c, k in zip(classes, counts, strict=True)}
        self.n_autoencoder_songs_ = len(source_x)
        self.leaked_songs_ = len(source_x) - len(X) if source_x is not X else 0
        self.reconstruction_mse_ = (history.loss or [None])[-1]
        self.fallback_classes_ = fallback
        synthetic_centre, synthetic_half = scale_stats(synthetic)
        self.db_stats_ = {
            "real_centre_db": float(centre.mean()),
            "real_half_range_db": float(half.mean()),
            "synthetic_centre_db": float(synthetic_centre.mean()),
            "synthetic_half_range_db": float(synthetic_half.mean()),
        }
        return (
            np.concatenate([X, synthetic.astype(X.dtype, copy=False)]),
            np.concatenate([y, new_labels.astype(y.dtype, copy=False)]),
        )

    def details(self) -> dict[str, Any]:
        """What the last :meth:`fit_resample` did, for fold records."""
        out: dict[str, Any] = {
            "deepsmote_fit_on": self.fit_on,
            "autoencoder_songs": int(self.n_autoencoder_songs_),
            "reconstruction_mse": self.reconstruction_mse_,
            "synthetic_total": int(sum(self.n_synthetic_.values())),
            "synthetic_per_class": {str(k): v for k, v in self.n_synthetic_.items()},
            **self.db_stats_,
        }
        if self.fallback_classes_:
            out["smote_fallback_classes"] = [str(c) for c in self.fallback_classes_]
        if self.leaked_songs_:
            out["leak"] = (
                f"LEAKY (fit_on=all, published-code compat): the autoencoder and SMOTE saw "
                f"{self.leaked_songs_} songs outside the training set, this fold's test songs "
                "included"
            )
        return out


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
