"""Baseline CNN + DeepSMOTE (the paper's §3.6): synthetic log-mels made per fold, in ``fit``.

``cnn+deepsmote`` is the baseline CNN trained with SGD lr 0.01, batch 200, at most 150 epochs and
the 90 % training-accuracy stop (the published DeepSMOTE script's settings) on the fold's training
log-mels plus ``n_per_class`` synthetic ones per class from
:class:`~merkit.estimators.deepsmote.DeepSMOTE`.
Settings are flat: the DeepSMOTE ones (``n_per_class``, ``fit_on``, ``ae_epochs``,
``ae_batch_size``, ``ae_lr``, ``k_neighbors``, ``m_neighbors``, ``db_reference``,
``renormalise``) go to the oversampler, ``device`` and ``train_options`` to both, the rest to the
CNN (:class:`~merkit.training.classifier.TorchClassifier`), e.g.
``cnn+deepsmote: {epochs: 30, ae_epochs: 5, ae_batch_size: 16, train_options: {num_threads: 1}}``.
``fit_on: all`` reproduces the published leak (autoencoder and SMOTE fitted on every song).
"""

from __future__ import annotations

from typing import Any

from merkit.estimators.deepsmote import DeepSMOTE
from merkit.estimators.oversampling import OversampledClassifier
from merkit.methods.base import MethodSpec
from merkit.methods.registry import register_method
from merkit.training.classifier import TorchClassifier

SMOTE_SETTINGS = (
    "n_per_class",
    "fit_on",
    "ae_epochs",
    "ae_batch_size",
    "ae_lr",
    "k_neighbors",
    "m_neighbors",
    "db_reference",
    "renormalise",
)
SHARED_SETTINGS = ("device", "train_options")
CNN_RECIPE = {"model": "cnn", "epochs": 150, "batch_size": 200, "optimizer": "sgd", "lr": 0.01}


def build_cnn_deepsmote(**settings: Any) -> OversampledClassifier:
    """The baseline CNN (published DeepSMOTE recipe) on training data oversampled by DeepSMOTE."""
    from merkit.core.versions import require_extra

    require_extra("imblearn", needed_by="cnn+deepsmote")  # before any work, in one line
    smote = {k: settings.pop(k) for k in SMOTE_SETTINGS if k in settings}
    shared = {k: settings[k] for k in SHARED_SETTINGS if k in settings}
    cnn = TorchClassifier(**{**CNN_RECIPE, **settings})
    return OversampledClassifier(sampler=DeepSMOTE(**smote, **shared), estimator=cnn)


CNN_DEEPSMOTE = register_method(
    MethodSpec(
        name="cnn+deepsmote",
        summary="Baseline CNN + per-fold DeepSMOTE (AE latent Borderline-SMOTE-2, dB-mapped)",
        inputs=("logmel",),
        build=build_cnn_deepsmote,
        paper_row="Baseline + DeepSMOTE",
        paper_f1=0.6070,
        quick={"epochs": 2, "ae_epochs": 1, "ae_batch_size": 16},
        extras=("research",),  # imbalanced-learn's Borderline-SMOTE
    )
)
