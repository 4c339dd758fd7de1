"""Recurrent models: the baseline with GRU (paper §3.3), a time-axis variant, and the CRNN (§3.3).

Time order: recurrences run over the rows as given. merkit's default log-mel runs forward in
time; the paper-code log-mel (``logmel-paper``) is time-reversed, so with it a
recurrence reads the clip backwards, as the paper's models did. :class:`CNNGRUTime`'s
``flip_time`` reverses the sequence, e.g. to read compat mels forwards.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from merkit.core.errors import ConfigError
from merkit.models.cnn import N_FRAMES, N_MELS, BaselineTrunk
from merkit.models.layers import (
    Conv2dRegular,
    Dropout,
    batch_norm_2d,
    check_input,
    flatten_channels_last,
    keras_init_,
)


def _dense_head(in_features: int, n_classes: int) -> nn.Sequential:
    """Dropout 0.5 → Dense 300 ReLU → Dense 75 ReLU → Dense ``n_classes`` (the GRU models' head)."""
    return nn.Sequential(
        Dropout(0.5),
        nn.Linear(in_features, 300),
        nn.ReLU(),
        nn.Linear(300, 75),
        nn.ReLU(),
        nn.Linear(75, n_classes),
    )


class CNNGRU(nn.Module):
    """Baseline with GRU, as published (paper §3.3): 48 666 939 trainable parameters.

    Baseline trunk → Flatten (2000) → Dropout 0.4 → reshape to a sequence of **length 1** →
    GRU 2000 (returning sequences) → GRU 2000 (last state) → Dropout 0.5 → Dense 300 ReLU →
    Dense 75 ReLU → Dense ``n_classes`` (logits).

    Because the sequence has a single step, the GRUs act as two gated dense layers and model no
    temporal structure, despite the paper's motivation; :class:`CNNGRUTime` runs the recurrence
    over time instead. Keras' GRU (``reset_after=True``) and ``nn.GRU`` share the same equations
    and the same parameter count per layer, 3·u·(in + u) + 2·3·u; with u = in = 2000 that is
    3·2000·4000 + 12 000 = 24 012 000, and the model totals 19 760 (trunk) + 2 · 24 012 000 +
    600 300 + 22 575 + 304 = 48 666 939, the count of the authors' Keras model.

    Parameters
    ----------
    n_classes : int
        Output classes.
    n_frames, n_mels : int
        Input size (default 942 × 128).
    units : int
        GRU width (2000 in the paper, equal to the flattened trunk size by coincidence).
    """

    input_names: ClassVar[tuple[str, ...]] = ("logmel",)
    model_name: ClassVar[str] = "cnn-gru"

    def __init__(
        self,
        n_classes: int = 4,
        n_frames: int = N_FRAMES,
        n_mels: int = N_MELS,
        *,
        units: int = 2000,
    ) -> None:
        super().__init__()
        self.n_frames, self.n_mels = n_frames, n_mels
        self.trunk = BaselineTrunk(n_frames, n_mels)  # he_normal convs, set by the trunk
        self.dropout = Dropout(0.4)
        # Two single-layer GRUs (not num_layers=2) mirror the two Keras layers, name for name.
        self.gru_1 = nn.GRU(self.trunk.flat_size, units, batch_first=True)
        self.gru_2 = nn.GRU(units, units, batch_first=True)
        self.head = _dense_head(units, n_classes)
        for module in (self.gru_1, self.gru_2, self.head):
            keras_init_(module)

    def forward(self, logmel: Tensor) -> Tensor:
        check_input(logmel, (None, self.n_frames, self.n_mels), self.model_name, "logmel")
        flat = self.dropout(flatten_channels_last(self.trunk(logmel.unsqueeze(1))))
        sequence, _ = self.gru_1(flat.unsqueeze(1))  # (B, 1, 2000): one time step
        _, last = self.gru_2(sequence)
        return self.head(last[-1])


class CNNGRUTime(nn.Module):
    """Baseline trunk with a GRU over **time**, the design the paper's motivation implies.

    The trunk's output ``(16, T', F')`` (25 × 5 for 942 × 128) becomes a sequence of T' = 25
    steps of F'·16 = 80 features (Keras channels-last order), then Dropout 0.4 (the baseline's
    flatten dropout, element-wise the same) → 2-layer GRU (``hidden`` units) → last state →
    Dropout 0.5 → Dense 300 ReLU → Dense 75 ReLU → Dense ``n_classes``. Each step summarises
    about 38 frames (1.2 s) with a receptive field of ~3.3 s. Not in the paper: a merkit
    variant.

    Parameters
    ----------
    n_classes : int
        Output classes.
    n_frames, n_mels : int
        Input size (default 942 × 128).
    hidden : int
        GRU units per layer.
    num_layers : int
        Stacked GRU layers.
    flip_time : bool
        Reverse the sequence before the GRU. The default reads rows in stored order (forward in
        time for merkit's default log-mel); with the time-reversed ``logmel-paper`` input,
        ``True`` makes the GRU read the clip forwards.
    """

    input_names: ClassVar[tuple[str, ...]] = ("logmel",)
    model_name: ClassVar[str] = "cnn-gru-time"

    def __init__(
        self,
        n_classes: int = 4,
        n_frames: int = N_FRAMES,
        n_mels: int = N_MELS,
        *,
        hidden: int = 128,
        num_layers: int = 2,
        flip_time: bool = False,
    ) -> None:
        super().__init__()
        self.n_frames, self.n_mels = n_frames, n_mels
        self.flip_time = flip_time
        self.trunk = BaselineTrunk(n_frames, n_mels)
        channels, _, width = self.trunk.output_shape
        self.dropout = Dropout(0.4)
        self.gru = nn.GRU(channels * width, hidden, num_layers=num_layers, batch_first=True)
        self.head = _dense_head(hidden, n_classes)
        for module in (self.gru, self.head):
            keras_init_(module)

    def sequence(self, logmel: Tensor) -> Tensor:
        """The GRU's input sequence ``(B, T', F'·16)``, e.g. ``(B, 25, 80)``."""
        check_input(logmel, (None, self.n_frames, self.n_mels), self.model_name, "logmel")
        maps = self.trunk(logmel.unsqueeze(1))  # (B, C, T', F')
        steps = maps.permute(0, 2, 3, 1).flatten(2)  # (B, T', F'·C), Keras order
        return steps.flip(1) if self.flip_time else steps

    def forward(self, logmel: Tensor) -> Tensor:
        _, last = self.gru(self.dropout(self.sequence(logmel)))
        return self.head(last[-1])


CRNN_CHANNELS: tuple[int, ...] = (64, 128, 128, 128)
CRNN_POOLS: tuple[int, ...] = (2, 3, 4, 4)


class CRNN(nn.Module):
    """CRNN, Keras port of Won's / Choi et al. 2017 (paper §3.3): 392 582 trainable parameters.

    Input BN (one channel) → 4 × Conv2dRegular (64/128/128/128 channels, pools 2, 3, 4, 4,
    valid floor): 942 × 128 → 9 × 1 × 128 → sequence of 9 steps × 128 over time (stored order,
    i.e. reversed for compat mels) → GRU 32 (sequences) → GRU 32 (last state) → Dropout 0.5 →
    Dense ``n_classes`` (logits). Keras' default ``glorot_uniform`` everywhere; the GRU counts
    3·32·(128 + 32) + 6·32 = 15 552 and 3·32·(32 + 32) + 6·32 = 6 336 parameters as in Keras
    (``reset_after=True``).

    Parameters
    ----------
    n_classes : int
        Output classes.
    n_frames, n_mels : int
        Input size (default 942 × 128); if the mel axis does not pool down to 1, each step holds
        F'·128 features.
    units : int
        GRU width.
    """

    input_names: ClassVar[tuple[str, ...]] = ("logmel",)
    model_name: ClassVar[str] = "crnn"

    def __init__(
        self, n_classes: int = 4, n_frames: int = N_FRAMES, n_mels: int = N_MELS, *, units: int = 32
    ) -> None:
        super().__init__()
        self.n_frames, self.n_mels = n_frames, n_mels
        self.input_bn = batch_norm_2d(1)
        in_channels = (1, *CRNN_CHANNELS[:-1])
        self.blocks = nn.Sequential(
            *(
                Conv2dRegular(c_in, c_out, pool)
                for c_in, c_out, pool in zip(in_channels, CRNN_CHANNELS, CRNN_POOLS, strict=True)
            )
        )
        height, width = n_frames, n_mels
        for block in self.blocks:
            height, width = block.output_size(height, width)  # type: ignore[operator]
        if min(height, width) < 1:
            raise ConfigError(
                f"a {n_frames} × {n_mels} log-mel is too small for the CRNN's "
                "four pools (2, 3, 4, 4)"
            )
        self.sequence_shape = (height, width * CRNN_CHANNELS[-1])
        self.gru_1 = nn.GRU(self.sequence_shape[1], units, batch_first=True)
        self.gru_2 = nn.GRU(units, units, batch_first=True)
        self.dropout = Dropout(0.5)
        self.classifier = nn.Linear(units, n_classes)
        keras_init_(self)

    def sequence(self, logmel: Tensor) -> Tensor:
        """The GRU's input ``(B, 9, 128)``: conv maps ``(B, 128, 9, 1)`` as steps over time."""
        check_input(logmel, (None, self.n_frames, self.n_mels), self.model_name, "logmel")
        maps = self.blocks(self.input_bn(logmel.unsqueeze(1)))
        return maps.permute(0, 2, 3, 1).flatten(2)  # Keras Reshape of (T', F', C) -> (T', F'·C)

    def forward(self, logmel: Tensor) -> Tensor:
        sequence, _ = self.gru_1(self.sequence(logmel))
        _, last = self.gru_2(sequence)
        return self.classifier(self.dropout(last[-1]))
