"""PyTorch models of the paper, in a name-keyed registry.

Conventions shared with the trainer:

* every model's ``forward(*tensors)`` takes its inputs positionally, in the order of its class
  attribute ``input_names`` (e.g. ``("logmel",)``, ``("features",)``, ``("features", "logmel")``);
* log-mel inputs are ``(B, T, F)`` float tensors (942 × 128 by default; 116 × 128 chunks for
  ``shortchunk``), feature inputs ``(B, n_features)``, waveform chunks ``(B, 59049)``; models add
  the channel axis themselves;
* classifiers return logits ``(B, n_classes)`` (train with ``CrossEntropyLoss``, softmax at
  inference); the autoencoder returns the reconstruction;
* weights are initialised as in the Keras reference (see :mod:`merkit.models.layers`); seed
  torch before building for reproducible weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from merkit.core.errors import ConfigError
from merkit.models.autoencoder import ConvAutoencoder, scale_per_sample
from merkit.models.cnn import CNNH, BaselineCNN, BaselineTrunk
from merkit.models.dnn import FeatureDNN
from merkit.models.hybrid import HybridNet
from merkit.models.recurrent import CNNGRU, CRNN, CNNGRUTime
from merkit.models.segment import SampleCNN, ShortChunkCNN

MODELS: dict[str, Callable[..., nn.Module]] = {
    "cnn": BaselineCNN,
    "cnn-h": CNNH,
    "cnn-gru": CNNGRU,
    "cnn-gru-time": CNNGRUTime,
    "crnn": CRNN,
    "dnn": FeatureDNN,
    "hybrid": HybridNet,
    "shortchunk": ShortChunkCNN,
    "samplecnn": SampleCNN,
    "autoencoder": ConvAutoencoder,
}
"""Model name → factory (the class). Keyword arguments go to the constructor."""


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name`` with constructor keyword arguments ``kwargs``.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`, e.g. ``"cnn"`` or ``"hybrid"``.
    **kwargs
        Constructor arguments, e.g. ``n_classes=4``, ``n_features=1714``.

    Returns
    -------
    nn.Module
        A freshly initialised model (uses torch's global RNG).

    Raises
    ------
    ConfigError
        If the name is unknown or an argument is not accepted.
    """
    try:
        factory = MODELS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}"
        ) from None
    try:
        return factory(**kwargs)
    except TypeError as error:
        raise ConfigError(f"model {name!r}: bad arguments {sorted(kwargs)}: {error}") from error


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameter elements in ``model`` (only those with ``requires_grad`` by default).

    Parameters
    ----------
    model : nn.Module
        Any module.
    trainable_only : bool
        Count only parameters that require a gradient (Keras' "trainable params").

    Returns
    -------
    int
        Total elements; buffers such as BN running statistics are never counted.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


__all__ = [
    "CNNGRU",
    "CNNH",
    "CRNN",
    "MODELS",
    "BaselineCNN",
    "BaselineTrunk",
    "CNNGRUTime",
    "ConvAutoencoder",
    "FeatureDNN",
    "HybridNet",
    "SampleCNN",
    "ShortChunkCNN",
    "build_model",
    "count_parameters",
    "scale_per_sample",
]
