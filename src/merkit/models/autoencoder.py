"""Convolutional autoencoder of the DeepSMOTE method (paper §3.6), also the embedder of §3.5."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor, nn

from merkit.core.errors import ConfigError
from merkit.models.cnn import N_FRAMES, N_MELS
from merkit.models.layers import check_input, flatten_channels_last, keras_init_

AE_CHANNELS: tuple[int, ...] = (16, 32, 64, 128)


def _conv_output(size: int, n_layers: int) -> int:
    # 'same' conv with stride 2: ceil(size / 2) per layer
    for _ in range(n_layers):
        size = -(-size // 2)
    return size


def scale_per_sample(logmel: Tensor, eps: float = 1e-12) -> tuple[Tensor, Tensor, Tensor]:
    """Scale each sample to [−1, 1]: ``(x − (min+max)/2) / ((max−min)/2)`` (DeepSMOTE code).

    Parameters
    ----------
    logmel : Tensor
        ``(B, ...)``; min and max are taken per sample over all other axes.
    eps : float
        A constant sample (max = min) is mapped to 0 instead of dividing by zero.

    Returns
    -------
    scaled, center, half_range : Tensor
        ``scaled`` has ``logmel``'s shape; ``center`` and ``half_range`` have shape ``(B,)``
        (half-range 1 for constant samples), so ``scaled * half_range + center`` inverts it.
    """
    flat = logmel.reshape(logmel.shape[0], -1)
    low, high = flat.amin(dim=1), flat.amax(dim=1)
    center = (high + low) / 2
    half_range = (high - low) / 2
    half_range = torch.where(half_range > eps, half_range, torch.ones_like(half_range))
    view = (-1,) + (1,) * (logmel.dim() - 1)
    return (logmel - center.reshape(view)) / half_range.reshape(view), center, half_range


class ConvAutoencoder(nn.Module):
    """Plain convolutional AE: 942 × 128 mel (scaled to [−1, 1]) → 60 416-d latent → 942 × 128.

    Encoder: 4 × [Conv 5×5 'same', stride 2 → LeakyReLU 0.2] with 16/32/64/128 filters
    (942 × 128 → 59 × 8 × 128) → flatten (Keras order: time, mel, channel) = 60 416 values;
    269 440 parameters. Decoder: reshape → 4 × [ConvTranspose 5×5, stride 2 → LeakyReLU 0.2]
    with 128/64/32/16 filters (→ 944 × 128) → Conv 1 5×5 'same' → tanh → keep the first 942
    rows; 679 041 parameters. Keras ``glorot_uniform`` init. Stride-2 'same' convs pad
    symmetrically (TF pads the extra row after; the output sizes are the same).

    Parameters
    ----------
    n_frames, n_mels : int
        Input size (default 942 × 128).

    Notes
    -----
    Inputs are ``(B, T, F)`` already scaled to [−1, 1] (see :func:`scale_per_sample`);
    ``forward`` returns the reconstruction ``(B, T, F)``, not logits.
    """

    input_names: ClassVar[tuple[str, ...]] = ("logmel",)
    model_name: ClassVar[str] = "autoencoder"

    def __init__(self, n_frames: int = N_FRAMES, n_mels: int = N_MELS) -> None:
        super().__init__()
        if min(n_frames, n_mels) < 1:
            raise ConfigError(f"autoencoder: bad input size {n_frames} × {n_mels}")
        self.n_frames, self.n_mels = n_frames, n_mels
        depth = len(AE_CHANNELS)
        self.latent_shape = (
            AE_CHANNELS[-1],
            _conv_output(n_frames, depth),
            _conv_output(n_mels, depth),
        )
        encoder: list[nn.Module] = []
        in_channels = 1
        for channels in AE_CHANNELS:
            encoder += [nn.Conv2d(in_channels, channels, 5, stride=2, padding=2), nn.LeakyReLU(0.2)]
            in_channels = channels
        self.encoder = nn.Sequential(*encoder)
        decoder: list[nn.Module] = []
        for channels in reversed(AE_CHANNELS):
            decoder += [
                nn.ConvTranspose2d(in_channels, channels, 5, stride=2, padding=2, output_padding=1),
                nn.LeakyReLU(0.2),
            ]
            in_channels = channels
        decoder += [nn.Conv2d(in_channels, 1, 5, padding=2), nn.Tanh()]
        self.decoder = nn.Sequential(*decoder)
        keras_init_(self)

    @property
    def latent_size(self) -> int:
        """Length of the flattened latent: 60 416 for 942 × 128."""
        channels, height, width = self.latent_shape
        return channels * height * width

    def encode(self, logmel: Tensor) -> Tensor:
        """Encode ``(B, T, F)`` mels in [−1, 1] to flat latents ``(B, 60416)``."""
        check_input(logmel, (None, self.n_frames, self.n_mels), self.model_name, "logmel")
        return flatten_channels_last(self.encoder(logmel.unsqueeze(1)))

    def decode(self, latent: Tensor) -> Tensor:
        """Decode flat latents ``(B, 60416)`` to mels ``(B, T, F)`` in [−1, 1]."""
        check_input(latent, (None, self.latent_size), self.model_name, "latent")
        channels, height, width = self.latent_shape
        maps = latent.reshape(-1, height, width, channels).permute(0, 3, 1, 2)
        image = self.decoder(maps)
        return image[:, 0, : self.n_frames, : self.n_mels]

    def forward(self, logmel: Tensor) -> Tensor:
        return self.decode(self.encode(logmel))
