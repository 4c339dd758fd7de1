"""Deep methods on whole clips (paper §3.1–3.3, Table 1): short recipes over shared parts.

Every recipe is a :class:`~merkit.training.classifier.TorchClassifier` (one trainer, the paper's 90
%
training-accuracy stop rule) with the model and training settings of the paper's Table 1. Any
setting can be overridden from YAML, e.g. ``crnn: {lr: 0.01, batch_size: 150}`` reproduces the
authors' code instead of the paper, and ``cnn: {inputs: [logmel-paper]}`` feeds the code's
quirky log-mel (22 050 Hz filterbank, time reversed, 0 dB padding).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sklearn.pipeline import Pipeline

from merkit.methods.base import MethodSpec, feature_preprocessing
from merkit.methods.registry import register_method
from merkit.training.classifier import TorchClassifier


def torch_recipe(model: str, *, epochs: int, batch_size: int, optimizer: str, lr: float):
    """A builder of a TorchClassifier with a paper recipe as defaults, overridable per run."""

    def build(**overrides: Any) -> TorchClassifier:
        settings: dict[str, Any] = {
            "model": model,
            "epochs": epochs,
            "batch_size": batch_size,
            "optimizer": optimizer,
            "lr": lr,
        }
        settings.update(overrides)
        return TorchClassifier(**settings)

    build.__doc__ = f"{model}: {epochs} epochs max, batch {batch_size}, {optimizer} lr {lr}."
    return build


def _feature_recipe(**defaults: Any):
    """Feature DNN: median imputation and standardisation fitted in-fold, then the DNN."""

    def build(**overrides: Any) -> Pipeline:
        settings = {"model": "dnn", **defaults, **overrides}
        return Pipeline(
            [
                *feature_preprocessing(),
                ("dnn", TorchClassifier(**settings)),
            ]
        )

    return build


BASELINE = {"epochs": 200, "batch_size": 150, "optimizer": "sgd", "lr": 0.01}

CNN = MethodSpec(
    name="cnn",
    summary="DL baseline CNN (Choi-style, 4 conv blocks) on the 942x128 log-mel",
    inputs=("logmel",),
    build=torch_recipe("cnn", **BASELINE),
    paper_row="DL Baseline",
    paper_f1=0.6062,
)

CNN_GRU = MethodSpec(
    name="cnn-gru",
    summary="Baseline CNN + 2 GRU(2000) as published: the GRU sees a sequence of length 1",
    inputs=("logmel",),
    build=torch_recipe("cnn-gru", **BASELINE),
    paper_row="Baseline with GRU",
    paper_f1=0.6007,
)

CNN_GRU_TIME = MethodSpec(
    name="cnn-gru-time",
    summary="Baseline CNN trunk + 2-layer GRU over the 25 time steps (the paper's intent)",
    inputs=("logmel",),
    build=torch_recipe("cnn-gru-time", **BASELINE),
)

CRNN = MethodSpec(
    name="crnn",
    summary="CRNN (Choi 2017 / Won): 4 conv blocks, GRU 32 x2 over 9 time steps",
    inputs=("logmel",),
    build=torch_recipe("crnn", epochs=200, batch_size=50, optimizer="sgd", lr=1e-3),
    paper_row="CRNN",
    paper_f1=0.6463,
)

DNN = MethodSpec(
    name="dnn",
    summary="Feature DNN (BN, dropout, 500-300-100) on the provided top-100 features",
    inputs=("table:top100",),
    build=_feature_recipe(epochs=100, batch_size=300, optimizer="sgd", lr=0.01),
)

DNN_OWN = MethodSpec(
    name="dnn-own",
    summary="Feature DNN on merkit's own librosa features (audio only)",
    inputs=("own-features",),
    build=_feature_recipe(epochs=100, batch_size=300, optimizer="sgd", lr=0.01),
)

QUICK = {"epochs": 2}
SPECS = tuple(
    register_method(dataclasses.replace(spec, quick=QUICK))
    for spec in (CNN, CNN_GRU, CNN_GRU_TIME, CRNN, DNN, DNN_OWN)
)
