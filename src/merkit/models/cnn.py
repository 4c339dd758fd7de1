"""The DL baseline CNN (paper §3.1) and its Hybrid variant CNN-H (§3.2, the Hybrid's stage B1)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from merkit.core.errors import ConfigError
from merkit.models.layers import (
    BaselineConvBlock,
    Dropout,
    check_input,
    flatten_channels_last,
    init_layer_,
    keras_init_,
)

N_FRAMES: int = 942
"""Time frames of the standard 942 × 128 log-mel (30 s at 16 kHz, hop 512; paper §4.1)."""

N_MELS: int = 128
"""Mel bands of the standard log-mel."""

TRUNK_CHANNELS: int = 16
TRUNK_POOLS: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (3, 2), (3, 2))
"""Pool sizes (time, mel) of the four baseline blocks."""


class BaselineTrunk(nn.Module):
    """The four conv blocks of the DL baseline: 942 × 128 × 1 → 25 × 5 × 16.

    Each block is Conv 5×5 valid → ReLU → MaxPool 'same' → BN → Dropout 0.1, except that the
    fourth has neither BN nor dropout in the baseline (3 BN layers: 96 non-trainable statistics).
    CNN-H adds a BN after the fourth pool (``bn_after_last=True``). Convolutions use Keras'
    ``he_normal`` (truncated normal).

    Parameters
    ----------
    n_frames, n_mels : int
        Input size; the trunk's output size is computed from it.
    bn_after_last : bool
        Add BN after the fourth pool (CNN-H).
    dropout : float
        Dropout rate after blocks 1–3.

    Raises
    ------
    ConfigError
        If the input is too small for four valid 5×5 convolutions.
    """

    def __init__(
        self,
        n_frames: int = N_FRAMES,
        n_mels: int = N_MELS,
        *,
        bn_after_last: bool = False,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        last = len(TRUNK_POOLS) - 1
        self.blocks = nn.ModuleList(
            BaselineConvBlock(
                1 if i == 0 else TRUNK_CHANNELS,
                TRUNK_CHANNELS,
                pool,
                batch_norm=i < last or bn_after_last,
                dropout=dropout if i < last else 0.0,
            )
            for i, pool in enumerate(TRUNK_POOLS)
        )
        self.block_sizes = self._sizes(n_frames, n_mels)
        keras_init_(self, conv="he_normal")

    def _sizes(self, n_frames: int, n_mels: int) -> tuple[tuple[int, int], ...]:
        sizes = []
        height, width = n_frames, n_mels
        for index, block in enumerate(self.blocks, start=1):
            if min(height, width) < block.kernel_size:  # type: ignore[operator]
                raise ConfigError(
                    f"a {n_frames} × {n_mels} log-mel is too small for the baseline CNN: "
                    f"conv block {index} would get {height} × {width}, less than its 5 × 5 kernel"
                )
            height, width = block.output_size(height, width)  # type: ignore[operator]
            sizes.append((height, width))
        return tuple(sizes)

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """``(C, T, F)`` of the trunk's output, e.g. ``(16, 25, 5)`` for 942 × 128."""
        return (TRUNK_CHANNELS, *self.block_sizes[-1])

    @property
    def flat_size(self) -> int:
        """Length of the flattened output: 2000 for 942 × 128."""
        channels, height, width = self.output_shape
        return channels * height * width

    def forward(self, image: Tensor) -> Tensor:
        for block in self.blocks:
            image = block(image)
        return image


class BaselineCNN(nn.Module):
    """DL baseline CNN (paper §3.1): 621 264 trainable parameters for 942 × 128 and 4 classes.

    Trunk → Flatten (2000) → Dropout 0.4 → Dense 300 ReLU → Dense ``n_classes`` (logits).

    Parameters
    ----------
    n_classes : int
        Output classes.
    n_frames, n_mels : int
        Input size (default 942 × 128); shorter inputs (e.g. 116 × 128 chunks) change the
        flattened size.
    flatten_dropout : float
        Dropout after the flatten (0.4 baseline, 0.3 CNN-H).
    bn_after_last : bool
        BN after the fourth pool (CNN-H).

    Notes
    -----
    Input: ``(B, T, F)`` log-mel as cached by merkit; the channel axis is added here. Output:
    logits ``(B, n_classes)``.
    """

    input_names: ClassVar[tuple[str, ...]] = ("logmel",)
    model_name: ClassVar[str] = "cnn"

    def __init__(
        self,
        n_classes: int = 4,
        n_frames: int = N_FRAMES,
        n_mels: int = N_MELS,
        *,
        flatten_dropout: float = 0.4,
        bn_after_last: bool = False,
        hidden: int = 300,
    ) -> None:
        super().__init__()
        self.n_frames, self.n_mels = n_frames, n_mels
        self.trunk = BaselineTrunk(n_frames, n_mels, bn_after_last=bn_after_last)
        self.dropout = Dropout(flatten_dropout)
        self.dense = init_layer_(nn.Linear(self.trunk.flat_size, hidden))
        self.classifier = init_layer_(nn.Linear(hidden, n_classes))

    def features(self, logmel: Tensor) -> Tensor:
        """Trunk output flattened in Keras order, before the flatten dropout: ``(B, 2000)``."""
        check_input(logmel, (None, self.n_frames, self.n_mels), self.model_name, "logmel")
        return flatten_channels_last(self.trunk(logmel.unsqueeze(1)))

    def embed(self, logmel: Tensor) -> Tensor:
        """The Dense-300 ReLU activation (the Hybrid's CNN branch output): ``(B, 300)``."""
        return torch.relu(self.dense(self.dropout(self.features(logmel))))

    def forward(self, logmel: Tensor) -> Tensor:
        return self.classifier(self.embed(logmel))


class CNNH(BaselineCNN):
    """CNN-H, the Hybrid's CNN (paper §3.2): the baseline plus BN after pool 4, dropout 0.3.

    621 296 trainable parameters for 942 × 128 (the baseline's 621 264 plus the extra BN's 32).
    """

    model_name: ClassVar[str] = "cnn-h"

    def __init__(
        self,
        n_classes: int = 4,
        n_frames: int = N_FRAMES,
        n_mels: int = N_MELS,
        *,
        flatten_dropout: float = 0.3,
        hidden: int = 300,
    ) -> None:
        super().__init__(
            n_classes,
            n_frames,
            n_mels,
            flatten_dropout=flatten_dropout,
            bn_after_last=True,
            hidden=hidden,
        )
