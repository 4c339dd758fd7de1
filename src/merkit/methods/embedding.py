"""Embedding methods (the paper's §3.5): autoencoder latents of the log-mel into a random forest.

``ae-rf`` trains the convolutional autoencoder on each fold's training songs only (the published
code trains it once on every song, test songs included: ``fit_on: all`` reproduces that leak) and
feeds the flattened 60 416-value latent to a scikit-learn random forest with default parameters.
"""

from __future__ import annotations

from merkit.estimators.autoencoding import AutoencoderForest
from merkit.methods.base import MethodSpec
from merkit.methods.registry import register_method

AE_RF = register_method(
    MethodSpec(
        name="ae-rf",
        summary="Random forest on a per-fold convolutional autoencoder's latent of the log-mel",
        inputs=("logmel",),
        build=AutoencoderForest,
        paper_row="Autoencoder embeddings",
        paper_f1=0.5018,
        # Smoke runs: a barely trained autoencoder still gives the forest usable features.
        quick={"epochs": 1},
    )
)
