"""The Hybrid's DNN on handcrafted features (paper §3.2, the Hybrid's stage B2)."""

from __future__ import annotations

from itertools import pairwise
from typing import ClassVar

import torch
from torch import Tensor, nn

from merkit.core.errors import ConfigError
from merkit.models.layers import batch_norm_1d, check_input, keras_init_

N_FEATURES: int = 1704
"""Handcrafted features left on New-4QAED after dropping the NaN columns (1714 on the original)."""


class FeatureDNN(nn.Module):
    """BN → Dropout 0.2 → Dense 500 ReLU → Dense 300 ReLU → Dense 100 ReLU → Dense ``n_classes``.

    1 036 712 trainable parameters for 1704 inputs and 4 classes (including the input BN's
    γ and β). Keras' ``glorot_uniform`` weights, zero biases.

    Parameters
    ----------
    n_features : int
        Number of input features.
    n_classes : int
        Output classes.
    dropout : float
        Dropout after the input BN.

    Notes
    -----
    Input: ``(B, n_features)``; output: logits ``(B, n_classes)``. :meth:`embed` gives the
    Dense-100 activation that the Hybrid fuses.
    """

    input_names: ClassVar[tuple[str, ...]] = ("features",)
    model_name: ClassVar[str] = "dnn"

    def __init__(
        self,
        n_features: int = N_FEATURES,
        n_classes: int = 4,
        *,
        dropout: float = 0.2,
        hidden_sizes: tuple[int, ...] = (500, 300, 100),
    ) -> None:
        super().__init__()
        if n_features < 1:
            raise ConfigError(f"dnn: n_features must be positive, got {n_features}")
        self.n_features = n_features
        self.input_bn = batch_norm_1d(n_features)
        self.dropout = nn.Dropout(dropout)
        widths = (n_features, *hidden_sizes)
        self.hidden = nn.ModuleList(nn.Linear(w_in, w_out) for w_in, w_out in pairwise(widths))
        self.classifier = nn.Linear(widths[-1], n_classes)
        keras_init_(self)

    @property
    def embedding_size(self) -> int:
        """Width of :meth:`embed`'s output (100)."""
        return self.classifier.in_features

    def embed(self, features: Tensor) -> Tensor:
        """The last hidden (Dense-100 ReLU) activation: ``(B, 100)``."""
        check_input(features, (None, self.n_features), self.model_name, "features")
        hidden = self.dropout(self.input_bn(features))
        for layer in self.hidden:
            hidden = torch.relu(layer(hidden))
        return hidden

    def forward(self, features: Tensor) -> Tensor:
        return self.classifier(self.embed(features))
