"""The artist-label CNN encoder of Park et al. (ISMIR 2018), read from its Keras HDF5 weights.

The paper's "Artists CNN" (§3.7) transfers this encoder: five Conv1D blocks over time with the 128
mel bands as input channels, then global average pooling to a 256-d vector. The available weights
are the siamese variant trained on 10 000 artists (same encoder layers as the "basic" model).

Keras → PyTorch conversion: a Conv1D kernel is stored ``(k, in, out)`` and becomes ``(out, in, k)``;
Keras "same" padding with an even kernel pads one frame less before than after (k = 4: 1 before, 2
after; k = 2: 0 and 1); BatchNormalization maps gamma/beta/moving mean/moving variance to
weight/bias/running_mean/running_var with Keras' epsilon 1e-3 (torch's default is 1e-5).

Input pipeline (Park et al.'s): 22.05 kHz audio, STFT magnitude (n_fft 1024, hop 512), 128-band
Slaney mel filterbank, ``log10(1 + 10·M)``, the first 1291 frames (zero-padded), normalised with the
training set's mean 0.22620339 and std 0.25794547, split into 10 chunks of 129 frames (≈ 3 s) in
natural time order. (The paper's code reversed time and skipped the normalisation.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from merkit.core.errors import AudioError, ConfigError, ModelError
from merkit.core.versions import require_extra
from merkit.transfer.checkpoints import check_shapes, check_weights_file

SR = 22_050
N_FFT = 1024
HOP = 512
N_MELS = 128
N_FRAMES = 1291
CHUNK_FRAMES = 129
N_CHUNKS = 10
MEAN = 0.22620339
STD = 0.25794547
BN_EPS = 1e-3
"""Keras' BatchNormalization epsilon (the file's layers use the default)."""
KERNELS = (4, 4, 4, 2, 1)
CHANNELS = (128, 128, 128, 128, 256)
POOLS = (4, 4, 4, 2, 1)
EMBEDDING_SIZE = 256

WHAT = "artist-label CNN encoder (Park et al., Keras HDF5)"


def artist_logmel_chunks(y: np.ndarray) -> np.ndarray:
    """Park et al.'s normalised log-mel of one 22.05 kHz clip as ``(10, 129, 128)`` chunks.

    Parameters
    ----------
    y : np.ndarray
        Mono waveform at 22 050 Hz.

    Returns
    -------
    np.ndarray
        float32 ``(N_CHUNKS, CHUNK_FRAMES, N_MELS)``: frames 0..1289 of the first 1291 (a shorter
        clip is zero-padded in the log domain, i.e. silence), time running forward.
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise AudioError(f"expected a non-empty 1-D waveform, got shape {y.shape}")
    magnitude = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP, pad_mode="reflect"))
    basis = librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS)
    mel = np.log10(1.0 + 10.0 * (basis @ magnitude)).T[:N_FRAMES]
    if len(mel) < N_FRAMES:
        mel = np.concatenate([mel, np.zeros((N_FRAMES - len(mel), N_MELS), dtype=mel.dtype)])
    mel = (mel - MEAN) / STD
    chunks = mel[: N_CHUNKS * CHUNK_FRAMES].reshape(N_CHUNKS, CHUNK_FRAMES, N_MELS)
    return np.ascontiguousarray(chunks, dtype=np.float32)


def artist_chunks_representation(y: np.ndarray, sr: int, *, seed: int = 0) -> np.ndarray:
    """Registry adapter of :func:`artist_logmel_chunks` (seed unused; ``sr`` must be 22 050)."""
    if sr != SR:
        raise ConfigError(f"the artist CNN front end needs 22 050 Hz audio, got {sr} Hz")
    return artist_logmel_chunks(y)


def keras_same_padding(kernel: int) -> tuple[int, int]:
    """Frames Keras/TensorFlow pad before and after for a stride-1 "same" convolution."""
    total = kernel - 1
    return total // 2, total - total // 2


def conv1d_kernel_to_torch(kernel: np.ndarray) -> torch.Tensor:
    """Keras Conv1D kernel ``(k, in, out)`` → PyTorch ``Conv1d.weight`` ``(out, in, k)``."""
    kernel = np.asarray(kernel)
    if kernel.ndim != 3:
        raise ValueError(f"a Conv1D kernel has 3 axes (k, in, out), got shape {kernel.shape}")
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(2, 1, 0), dtype=np.float32))


class KerasConv1dBlock(nn.Module):
    """Conv1D ("same", Keras padding) → BN (eps 1e-3) → ReLU → max-pool."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, pool: int) -> None:
        super().__init__()
        self.padding = keras_same_padding(kernel)
        self.conv = nn.Conv1d(in_channels, out_channels, kernel)
        self.bn = nn.BatchNorm1d(out_channels, eps=BN_EPS)
        self.pool = pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(F.pad(x, self.padding))))
        return F.max_pool1d(x, self.pool) if self.pool > 1 else x


class ArtistEncoder(nn.Module):
    """The encoder: ``(B, 129, 128)`` chunks (time-major) → ``(B, 256)`` embeddings."""

    input_names = ("artist_chunks",)

    def __init__(self) -> None:
        super().__init__()
        blocks, channels = [], N_MELS
        for out, kernel, pool in zip(CHANNELS, KERNELS, POOLS, strict=True):
            blocks.append(KerasConv1dBlock(channels, out, kernel, pool))
            channels = out
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[-1] != N_MELS:
            raise ValueError(f"expected (batch, frames, {N_MELS}) chunks, got {tuple(x.shape)}")
        return self.blocks(x.transpose(1, 2)).mean(dim=2)


def keras_weights(path: Path) -> dict[str, np.ndarray]:
    """Every weight array of a Keras 2 HDF5 file as ``"layer/name"`` → array (h5py only)."""
    h5py = require_extra("h5py", needed_by="the artist CNN's Keras weights")
    try:
        with h5py.File(path, "r") as handle:
            group = handle.get("model_weights", handle)
            out: dict[str, np.ndarray] = {}
            for layer in group.attrs.get("layer_names", list(group.keys())):
                layer = layer.decode() if isinstance(layer, bytes) else str(layer)
                sub = group[layer]
                for name in sub.attrs.get("weight_names", []):
                    name = name.decode() if isinstance(name, bytes) else str(name)
                    out[f"{layer}/{name.split('/')[-1].split(':')[0]}"] = np.asarray(sub[name])
            return out
    except (OSError, KeyError, ValueError) as error:
        raise ModelError(
            f"cannot read {WHAT} file {path} (truncated or not a Keras HDF5 file?): {error}"
        ) from None


def keras_to_torch_state(weights: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map Keras layer weights (``conv1d_i``, ``batch_normalization_i``) to :class:`ArtistEncoder`
    state-dict keys, converting the kernel layout."""
    state: dict[str, torch.Tensor] = {}
    bn_names = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
                "moving_variance": "running_var"}  # fmt: skip
    for i in range(len(KERNELS)):
        prefix = f"blocks.{i}"
        state[f"{prefix}.conv.weight"] = conv1d_kernel_to_torch(weights[f"conv1d_{i + 1}/kernel"])
        state[f"{prefix}.conv.bias"] = torch.from_numpy(
            np.asarray(weights[f"conv1d_{i + 1}/bias"], dtype=np.float32)
        )
        for keras_name, torch_name in bn_names.items():
            value = np.asarray(weights[f"batch_normalization_{i + 1}/{keras_name}"], np.float32)
            state[f"{prefix}.bn.{torch_name}"] = torch.from_numpy(value)
        state[f"{prefix}.bn.num_batches_tracked"] = torch.tensor(0)
    return state


def expected_keras_shapes() -> dict[str, tuple[int, ...]]:
    """Layer/weight names and shapes the encoder needs from the HDF5 file."""
    shapes: dict[str, tuple[int, ...]] = {}
    channels = N_MELS
    for i, (out, kernel) in enumerate(zip(CHANNELS, KERNELS, strict=True), start=1):
        shapes[f"conv1d_{i}/kernel"] = (kernel, channels, out)
        shapes[f"conv1d_{i}/bias"] = (out,)
        for name in ("gamma", "beta", "moving_mean", "moving_variance"):
            shapes[f"batch_normalization_{i}/{name}"] = (out,)
        channels = out
    return shapes


def load_artist_encoder(path: str | Path | None, *, sha256: str | None = None) -> ArtistEncoder:
    """The encoder with the HDF5 file's weights, in eval mode.

    Raises
    ------
    ModelError
        Missing or unreadable file, checksum mismatch, or missing layers / other shapes (listed).
    """
    file = check_weights_file(path, sha256=sha256, what=WHAT)
    weights = keras_weights(file)
    expected = expected_keras_shapes()
    # Layers other than the encoder's (e.g. a classifier head) may be present; only ours must fit.
    found = {k: tuple(v.shape) for k, v in weights.items() if k in expected}
    check_shapes(found, expected, path=file, what=WHAT)
    model = ArtistEncoder()
    model.load_state_dict(keras_to_torch_state(weights), strict=True)
    return model.eval()


__all__ = [
    "EMBEDDING_SIZE",
    "ArtistEncoder",
    "artist_chunks_representation",
    "artist_logmel_chunks",
    "conv1d_kernel_to_torch",
    "keras_same_padding",
    "keras_to_torch_state",
    "keras_weights",
    "load_artist_encoder",
]
