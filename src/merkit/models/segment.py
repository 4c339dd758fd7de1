"""Segment-level (many-to-one) models: ShortChunk CNN and SampleCNN (paper §3.4).

Both classify one 59 049-sample chunk (3.69 s at 16 kHz); song-level aggregation over a song's
chunks is the trainer's job.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from merkit.core.errors import ConfigError
from merkit.models.layers import (
    Conv1dBlock,
    Dropout,
    Res2d,
    batch_norm_1d,
    batch_norm_2d,
    check_input,
    keras_init_,
)

CHUNK_SAMPLES: int = 59049
"""Samples per chunk, 3^10."""

CHUNK_FRAMES: int = 116
"""Log-mel frames of one chunk: 1 + 59049 // 512."""

SHORTCHUNK_CHANNELS: tuple[int, ...] = (128, 128, 256, 256, 256, 256, 512)


class ShortChunkCNN(nn.Module):
    """ShortChunk CNN Res (Won's ``ShortChunkCNN_Res`` as ported to Keras, paper §3.4).

    Input BN → 7 × :class:`~merkit.models.layers.Res2d` with stride 2 (128, 128, 256, 256, 256,
    256, 512 channels; 116 × 128 → 1 × 1 × 512) → global max pool → Dense 512 → ReLU → BN →
    Dropout 0.5 → Dense ``n_classes`` (logits). The head order (ReLU before BN) is the Keras
    port's, not Won's. 12 080 646 trainable parameters (Keras layout, BN γ/β included), Keras
    ``glorot_uniform`` init.

    Parameters
    ----------
    n_classes : int
        Output classes.
    n_frames, n_mels : int
        Chunk log-mel size (default 116 × 128).
    """

    input_names: ClassVar[tuple[str, ...]] = ("logmel_chunks",)
    model_name: ClassVar[str] = "shortchunk"

    def __init__(
        self,
        n_classes: int = 4,
        n_frames: int = CHUNK_FRAMES,
        n_mels: int = 128,
    ) -> None:
        super().__init__()
        self.n_frames, self.n_mels = n_frames, n_mels
        self.input_bn = batch_norm_2d(1)
        in_channels = (1, *SHORTCHUNK_CHANNELS[:-1])
        self.blocks = nn.Sequential(
            *(
                Res2d(c_in, c_out, stride=2)
                for c_in, c_out in zip(in_channels, SHORTCHUNK_CHANNELS, strict=True)
            )
        )
        width = SHORTCHUNK_CHANNELS[-1]
        self.dense = nn.Linear(width, width)
        self.bn = batch_norm_1d(width)
        self.dropout = Dropout(0.5)
        self.classifier = nn.Linear(width, n_classes)
        keras_init_(self)

    def feature_map(self, logmel: Tensor) -> Tensor:
        """The last residual block's output ``(B, 512, 1, 1)`` for 116 × 128 chunks."""
        check_input(logmel, (None, self.n_frames, self.n_mels), self.model_name, "logmel_chunks")
        return self.blocks(self.input_bn(logmel.unsqueeze(1)))

    def embed(self, logmel: Tensor) -> Tensor:
        """Global max over the final map: ``(B, 512)``."""
        return self.feature_map(logmel).amax(dim=(2, 3))

    def forward(self, logmel: Tensor) -> Tensor:
        hidden = self.bn(torch.relu(self.dense(self.embed(logmel))))
        return self.classifier(self.dropout(hidden))


# (filters, kernel, stride, pool) per block (Lee et al. 2017's 3^9 model)
SAMPLECNN_PLAN: tuple[tuple[int, int, int, int], ...] = (
    (128, 3, 3, 1),
    (128, 3, 1, 3),
    (128, 3, 1, 3),
    (256, 3, 1, 3),
    (256, 3, 1, 3),
    (256, 3, 1, 3),
    (256, 3, 1, 3),
    (256, 3, 1, 3),
    (256, 3, 1, 3),
    (512, 3, 1, 3),
    (512, 1, 1, 1),
)


class SampleCNN(nn.Module):
    """SampleCNN (Lee et al. 2017 via Won; paper §3.4) on raw 59 049-sample waveform chunks.

    11 blocks of Conv1D 'same' → BN → ReLU → MaxPool1D (see :data:`SAMPLECNN_PLAN`;
    59 049 → 19 683 → … → 1 sample × 512 channels) → Dropout 0.5 → Dense ``n_classes`` (logits).
    No residual connections despite the reference's "Residual1D" name. 1 846 276 trainable
    parameters, Keras ``glorot_uniform`` init.

    Parameters
    ----------
    n_classes : int
        Output classes.
    n_samples : int
        Chunk length; it must pool down to exactly one step (59 049 = 3^10 does).

    Raises
    ------
    ConfigError
        If ``n_samples`` does not reduce to a single step.
    """

    input_names: ClassVar[tuple[str, ...]] = ("waveform_chunks",)
    model_name: ClassVar[str] = "samplecnn"

    def __init__(self, n_classes: int = 4, n_samples: int = CHUNK_SAMPLES) -> None:
        super().__init__()
        self.n_samples = n_samples
        blocks = []
        channels, length = 1, n_samples
        for filters, kernel, stride, pool in SAMPLECNN_PLAN:
            block = Conv1dBlock(channels, filters, kernel, stride, pool)
            length = block.output_size(length)
            blocks.append(block)
            channels = filters
        if length != 1:
            raise ConfigError(
                f"samplecnn: {n_samples}-sample chunks end at length {length}, not 1; "
                f"use chunks of {CHUNK_SAMPLES} samples"
            )
        self.blocks = nn.Sequential(*blocks)
        self.dropout = Dropout(0.5)
        self.classifier = nn.Linear(channels, n_classes)
        keras_init_(self)

    def embed(self, waveform: Tensor) -> Tensor:
        """The final block's output ``(B, 512)`` (a 1 × 512 map per chunk)."""
        check_input(waveform, (None, self.n_samples), self.model_name, "waveform_chunks")
        return self.blocks(waveform.unsqueeze(1)).flatten(1)

    def forward(self, waveform: Tensor) -> Tensor:
        return self.classifier(self.dropout(self.embed(waveform)))
