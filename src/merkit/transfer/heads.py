"""The new classification head trained on top of a frozen pre-trained network."""

from __future__ import annotations

import torch
from torch import nn


class LinearHead(nn.Module):
    """Dropout → linear layer: the replaced output layer of a transferred network.

    Trained on cached embeddings of a frozen network (:mod:`merkit.transfer.embedders`), it is
    the same computation as training that layer behind the frozen network.

    Parameters
    ----------
    n_features : int
        Embedding width (32 for the CRNN's GRU state, 256 for the artist encoder).
    n_classes : int
        Output classes.
    dropout : float
        Dropout before the layer (Won's CRNN: 0.5; the artist model's head: none).
    """

    input_names = ("features",)

    def __init__(self, n_features: int, n_classes: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(n_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.dropout(x.float()))


__all__ = ["LinearHead"]
