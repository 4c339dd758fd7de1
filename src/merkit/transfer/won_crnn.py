"""Won et al.'s CRNN (after Choi et al. 2017) with its own front end, from their checkpoints.

Won, Ferraro, Bogdanov & Serra (SMC 2020) trained a CRNN for 50-tag auto-tagging on MTAT,
MTG-Jamendo and the MSD and published each ``best_model.pth`` (a bare ``state_dict``, legacy torch
serialisation). The paper's "CRNN Pre-trained MTAT" (§3.7) starts from the MTAT one.

Front end, as in Won's code: 16 kHz audio, centred STFT (periodic Hann, n_fft 512, hop 256, reflect
padding), power spectrum, 96-band HTK mel filterbank without normalisation from 0 to 8 kHz,
``10·log10(max(power, 1e-10))`` (no top-dB floor), then the network's own BatchNorm2d(1).
:func:`won_logmel` computes everything up to the batch norm in numpy (a cached representation);
:class:`WonCRNN` starts at the batch norm. Its filterbank and window equal the checkpoints' stored
``spec.mel_scale.fb`` and ``spec.spectrogram.window`` (checked by the tests).

Body: four 3×3 conv blocks (conv → BN → ReLU → max-pool (2,2), (3,3), (4,4), (4,4); 64/128/128/128
channels) collapse the 96 mel bands to 1; a 2-layer GRU (hidden 32) reads the time steps and its
last step goes through dropout 0.5 and a linear layer (50 tags, sigmoid at inference).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.fft
import torch
from torch import nn

from merkit.core.errors import AudioError, ConfigError
from merkit.transfer.checkpoints import (
    check_shapes,
    check_weights_file,
    flush_denormals,
    load_torch_state,
)

SR = 16_000
N_FFT = 512
HOP = 256
N_MELS = 96
F_MAX = 8_000.0
CROP_SAMPLES = 464_000
"""Won's training input: 29 s at 16 kHz, 1 + 464000 // 256 = 1813 frames."""
N_FRAMES = 1 + CROP_SAMPLES // HOP

FRONT_END_KEYS = ("spec.spectrogram.window", "spec.mel_scale.fb")
"""Checkpoint entries of torchaudio's front end: computed by :func:`won_logmel` instead."""
HEAD_KEYS = ("dense.weight", "dense.bias")
"""The 50-tag output layer, replaced by a new head for transfer."""

MTAT_TAGS: tuple[str, ...] = (
    "guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast",
    "piano", "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male",
    "singing", "vocals", "no vocals", "harpsichord", "loud", "quiet", "flute", "woman",
    "male vocal", "no vocal", "pop", "soft", "sitar", "solo", "man", "classic", "choir", "voice",
    "new age", "dance", "male voice", "female vocal", "beats", "harp", "cello", "no voice",
    "weird", "country", "metal", "female voice", "choral",
)  # fmt: skip
"""Won's 50 MTAT tags in the order of the MTAT checkpoint's outputs (``split/mtat/tags.npy``)."""

MSD_TAGS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s",
    "alternative rock", "jazz", "beautiful", "metal", "chillout", "male vocalists",
    "classic rock", "soul", "indie rock", "Mellow", "electronica", "80s", "folk", "90s", "chill",
    "instrumental", "punk", "oldies", "blues", "hard rock", "ambient", "acoustic",
    "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
    "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock",
    "60s", "rnb", "indie pop", "sad", "House", "happy",
)  # fmt: skip
"""Won's 50 MSD tags in the order of the MSD checkpoint's outputs (``split/msd/50tagList.txt``).
Checked on 4QAED's 900 songs: the MTAT checkpoint's ``metal`` correlates best with ``hard rock``
and ``metal`` here, ``techno`` with ``electro`` and ``electronic``."""

JAMENDO_TAGS: tuple[str, ...] = tuple(
    sorted(
        (
            "genre---downtempo", "genre---ambient", "genre---rock", "instrument---synthesizer",
            "genre---atmospheric", "genre---indie", "instrument---electricpiano", "genre---newage",
            "instrument---strings", "instrument---drums", "instrument---drummachine",
            "genre---techno", "instrument---guitar", "genre---alternative",
            "genre---easylistening", "genre---instrumentalpop", "genre---chillout",
            "genre---metal", "mood/theme---happy", "genre---lounge", "genre---reggae",
            "genre---popfolk", "genre---orchestral", "instrument---acousticguitar",
            "genre---poprock", "instrument---piano", "genre---trance", "genre---dance",
            "instrument---electricguitar", "genre---soundtrack", "genre---house", "genre---hiphop",
            "genre---classical", "mood/theme---energetic", "genre---electronic", "genre---world",
            "genre---experimental", "instrument---violin", "genre---folk",
            "mood/theme---emotional", "instrument---voice", "instrument---keyboard", "genre---pop",
            "instrument---bass", "instrument---computer", "mood/theme---film", "genre---triphop",
            "genre---jazz", "genre---funk", "mood/theme---relaxing",
        )
    )
)  # fmt: skip
"""Won's 50 MTG-Jamendo tags in the order of the Jamendo checkpoint's outputs: sorted, since his
loader binarises its tag list with scikit-learn's ``LabelBinarizer``, which sorts the classes.
Checked on 4QAED's 900 songs: the MTAT checkpoint's ``piano`` correlates 0.72 with
``instrument---piano`` in this order (-0.43 in the list's own order), ``metal`` 0.74 with
``genre---metal``."""


def hann_periodic(n: int) -> np.ndarray:
    """Periodic Hann window (``torch.hann_window`` default)."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


@lru_cache(maxsize=4)
def htk_filterbank(
    sr: int = SR, n_fft: int = N_FFT, n_mels: int = N_MELS, f_max: float = F_MAX
) -> np.ndarray:
    """Triangular HTK-scale mel filterbank without normalisation, shape ``(1 + n_fft//2, n_mels)``.

    Frequencies of the FFT bins are ``linspace(0, sr/2, 1 + n_fft//2)``; band edges are equally
    spaced on ``2595·log10(1 + f/700)`` from 0 Hz to ``f_max`` (torchaudio's ``melscale_fbanks``
    with ``mel_scale="htk"``, ``norm=None``).
    """
    freqs = np.linspace(0.0, sr / 2, 1 + n_fft // 2)
    mel_max = 2595.0 * np.log10(1.0 + f_max / 700.0)
    edges = 700.0 * (10.0 ** (np.linspace(0.0, mel_max, n_mels + 2) / 2595.0) - 1.0)
    widths = np.diff(edges)
    slopes = edges[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    bank = np.maximum(0.0, np.minimum(down, up)).astype(np.float32)
    bank.setflags(write=False)
    return bank


def won_logmel(y: np.ndarray, crop_samples: int | None = CROP_SAMPLES) -> np.ndarray:
    """Won's front end up to the dB step, shape ``(frames, 96)`` float32 (column 0 lowest band).

    Parameters
    ----------
    y : np.ndarray
        Mono waveform at 16 kHz.
    crop_samples : int or None
        Fixed input length: the centre ``crop_samples`` of a longer clip, a shorter one zero-padded
        at the end (digital silence), giving ``1 + crop_samples // 256`` frames (1813 for Won's
        29 s). ``None`` keeps the whole clip.

    Returns
    -------
    np.ndarray
        ``10·log10(max(mel power, 1e-10))``.
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise AudioError(f"expected a non-empty 1-D waveform, got shape {y.shape}")
    if crop_samples is not None:
        if len(y) > crop_samples:
            start = (len(y) - crop_samples) // 2
            y = y[start : start + crop_samples]
        elif len(y) < crop_samples:
            y = np.concatenate([y, np.zeros(crop_samples - len(y), dtype=np.float32)])
    if len(y) <= N_FFT // 2:
        raise AudioError(f"waveform of {len(y)} samples is too short for the CRNN front end")
    padded = np.pad(y, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    spectrum = scipy.fft.rfft(frames * hann_periodic(N_FFT), axis=1)
    # In place where a new array would follow: the same float32 operations, fewer temporaries.
    power = np.square(spectrum.real)
    power += np.square(spectrum.imag)
    mel = power @ htk_filterbank()
    np.maximum(mel, np.float32(1e-10), out=mel)
    np.log10(mel, out=mel)
    mel *= np.float32(10.0)
    return mel


def won_logmel_representation(
    y: np.ndarray, sr: int, *, seed: int = 0, crop_samples: int | None = CROP_SAMPLES
) -> np.ndarray:
    """Registry adapter of :func:`won_logmel` (seed unused; ``sr`` must be 16 kHz)."""
    if sr != SR:
        raise ConfigError(f"the CRNN front end needs 16 kHz audio, got {sr} Hz")
    return won_logmel(y, crop_samples)


class ConvBlock(nn.Module):
    """3×3 conv (padding 1) → BN → ReLU → max-pool; key names as in Won's ``Conv_2d``."""

    def __init__(self, in_channels: int, out_channels: int, pool: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.pool = nn.MaxPool2d(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(torch.relu(self.bn(self.conv(x))))


Output = Literal["logits", "conv", "gru", "tags"]


def inference_conv_blocks(
    blocks: Sequence[ConvBlock], dtype: torch.dtype = torch.float32
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The conv blocks as one eval-mode function on oneDNN (MKL-DNN) tensors, or ``None``
    where this torch has no oneDNN.

    Each batch norm is folded into its convolution, the weights are converted once, and each
    block pools before its ReLU (the same function: max commutes with a monotone map), so no
    int64 pooling indices are made. Measured here on one core: 0.12 instead of 0.26 s of CPU per
    29 s clip (1813 frames), outputs within 1e-6 of the eager blocks; with ``dtype=torch.bfloat16``
    (weights and activations in bfloat16, on a CPU with native bfloat16) 0.05 s, outputs within
    about 1e-2.
    """
    if not torch.backends.mkldnn.is_available():
        return None
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    with warnings.catch_warnings():
        # torch.utils.mkldnn's module wrappers use torch.jit.script_method, deprecated in 2.13.
        warnings.simplefilter("ignore", DeprecationWarning)
        from torch.utils.mkldnn import to_mkldnn

    fused = [
        (to_mkldnn(fuse_conv_bn_eval(copy.deepcopy(b.conv), b.bn), dtype), b.pool.kernel_size)
        for b in blocks
    ]

    def run(x: torch.Tensor) -> torch.Tensor:
        h = x.contiguous().to_mkldnn(dtype)
        for conv, pool in fused:
            # in place on the pooled map (its own tensor): no extra map per block
            h = torch.relu_(nn.functional.max_pool2d(conv(h), pool))
        return h.to_dense(torch.float32)

    return run


def _pool_max(y: torch.Tensor, k: int) -> torch.Tensor:
    """``max_pool2d(y, k)`` (stride ``k``, floor mode): the same maxima, by an elementwise
    maximum over each window's ``k`` rows, then the maximum over each ``k`` contiguous columns.
    On a dense tensor ``max_pool2d`` costs ~4x more CPU here (1 x 128 x 48 x 906, k = 3: 0.028
    against 0.0066 s on one core of this AMD EPYC; checked equal)."""
    b, c, h, w = y.shape
    ho, wo = h // k, w // k
    rows = y[:, :, : ho * k, : wo * k].reshape(b, c, ho, k, wo * k)
    top = rows[:, :, :, 0]
    for i in range(1, k):
        top = torch.maximum(top, rows[:, :, :, i])
    return top.reshape(b, c, ho, wo, k).amax(dim=-1)


CONV1_CHUNK = 64
"""Frames per matrix product of :func:`_one_channel_conv_pool` (even: whole pooling steps)."""


def _one_channel_conv_pool(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, pool: int
) -> torch.Tensor:
    """ReLU(max-pool(3x3 conv, padding 1)) of one ``(H, W)`` one-channel map: ``(1, C, H/p, W/p)``.

    The convolution is one matrix product per chunk of :data:`CONV1_CHUNK` frames (the chunk's
    nine shifted copies of the padded map against the ``(C, 9)`` weights), pooled at once, so
    the ``C``-channel map never leaves the cache. oneDNN's direct convolution of one input
    channel streams it through memory: measured on one core of this AMD EPYC, 1 x 96 x 1813
    frames to 64 channels and a 2x2 pool, 0.028 instead of 0.061 s of CPU (outputs within 5e-7).
    """
    h, w = x.shape
    padded = nn.functional.pad(x, (1, 1, 1, 1))
    parts = []
    for start in range(0, w, CONV1_CHUNK):
        stop = min(w, start + CONV1_CHUNK)
        shifted = [padded[i : i + h, start + j : stop + j] for i in range(3) for j in range(3)]
        y = torch.addmm(bias, weight, torch.stack(shifted).reshape(9, -1))
        parts.append(torch.relu(_pool_max(y.reshape(1, -1, h, stop - start), pool)))
    return torch.cat(parts, dim=-1)


def nnpack_available() -> bool:
    """Whether this torch has NNPACK (and it initialises; the call is also what initialises it:
    ``torch._nnpack_spatial_convolution`` fails before it)."""
    try:
        return bool(torch._nnpack_available())
    except (AttributeError, RuntimeError):  # a torch built without it
        return False


def winograd_conv_steps(
    blocks: Sequence[ConvBlock],
) -> list[Callable[[torch.Tensor], torch.Tensor]] | None:
    """The conv blocks as eval-mode steps, dense tensor in and out, with Winograd convolutions;
    ``None`` where this torch lacks NNPACK (or the blocks are not Won's 3x3 ones).

    Each batch norm is folded into its convolution (as :func:`inference_conv_blocks`). The first
    block (one input channel, where Winograd saves nothing) is a matrix product per chunk of
    frames (:func:`_one_channel_conv_pool`); the others run through NNPACK's Winograd
    F(6x6, 3x3) float32 convolutions, which multiply ~5x less than a direct convolution (the
    64 -> 128 block: 0.033 instead of 0.070 s of CPU per 29 s clip on one core of this AMD EPYC,
    AVX2, no native bfloat16; whole predictions: ``benchmarks/results/
    predict_winograd_agreement.md``).
    Outputs are within float rounding of :func:`inference_conv_blocks` (4e-6 on maps up to ~2.3),
    not bit-identical, so it is opt-in (``precision="winograd"``).
    """
    if not nnpack_available():
        return None
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    fused = [fuse_conv_bn_eval(copy.deepcopy(b.conv), b.bn) for b in blocks]
    pools = [_square(b.pool.kernel_size) for b in blocks]
    for conv in fused:
        shape = (_square(conv.kernel_size), _square(conv.stride), _square(conv.dilation))
        if shape != (3, 1, 1):
            return None  # NNPACK's call here assumes Won's 3x3, stride-1 blocks
    w0 = fused[0].weight.detach().reshape(fused[0].out_channels, -1).contiguous()
    b0 = fused[0].bias.detach()[:, None].contiguous()  # type: ignore[union-attr]
    if fused[0].in_channels != 1 or _square(fused[0].padding) != 1 or CONV1_CHUNK % pools[0]:
        return None

    def step0(x: torch.Tensor) -> torch.Tensor:
        maps = [_one_channel_conv_pool(x[i, 0], w0, b0, pools[0]) for i in range(len(x))]
        return maps[0] if len(maps) == 1 else torch.cat(maps)

    def step(conv: nn.Conv2d, pool: int) -> Callable[[torch.Tensor], torch.Tensor]:
        weight = conv.weight.detach().contiguous()
        bias = conv.bias.detach().contiguous()  # type: ignore[union-attr]
        padding = [_square(conv.padding)] * 2  # type: ignore[arg-type]

        def run(x: torch.Tensor) -> torch.Tensor:
            # One song at a time: NNPACK's batched algorithm costs 1.7x more CPU per song here.
            ys = [
                torch._nnpack_spatial_convolution(x[i : i + 1].contiguous(), weight, bias, padding)
                for i in range(x.shape[0])
            ]
            y = ys[0] if len(ys) == 1 else torch.cat(ys)
            return torch.relu(_pool_max(y, pool))  # pool before ReLU, as inference_conv_blocks

        return run

    return [step0, *(step(c, p) for c, p in zip(fused[1:], pools[1:], strict=True))]


def _square(value: int | tuple[int, ...] | str) -> int:
    """The one size of a square kernel, stride, dilation or padding setting (-1 if not square)."""
    if isinstance(value, int):
        return value
    if isinstance(value, tuple) and len(set(value)) == 1:
        return int(value[0])
    return -1


def winograd_conv_blocks(
    blocks: Sequence[ConvBlock],
) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """:func:`winograd_conv_steps` as one function (``None`` as there)."""
    steps = winograd_conv_steps(blocks)
    if steps is None:
        return None

    def run(x: torch.Tensor) -> torch.Tensor:
        for s in steps:
            x = s(x)
        return x

    return run


class WonCRNN(nn.Module):
    """Won's CRNN from the input batch norm on; state-dict keys match the checkpoints.

    Parameters
    ----------
    n_classes : int
        Outputs of the last linear layer (50 tags in the checkpoints; 4 quadrants for transfer).

    Notes
    -----
    ``forward`` takes dB mel spectrograms ``(B, T, 96)`` (merkit's time-major layout) and returns
    logits; :meth:`features` returns the intermediate outputs used as embeddings. ``T`` must be at
    least 96 frames (the pools shrink time 96-fold).
    """

    input_names = ("won_logmel",)

    def __init__(self, n_classes: int = 50) -> None:
        super().__init__()
        self.spec_bn = nn.BatchNorm2d(1)
        self.layer1 = ConvBlock(1, 64, 2)
        self.layer2 = ConvBlock(64, 128, 3)
        self.layer3 = ConvBlock(128, 128, 4)
        self.layer4 = ConvBlock(128, 128, 4)
        self.layer5 = nn.GRU(128, 32, num_layers=2, batch_first=True)
        self.dropout = nn.Dropout(0.5)
        self.dense = nn.Linear(32, n_classes)

    def conv_maps(
        self, x: torch.Tensor, blocks: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Output of the last conv block, ``(B, 128, T')`` with ``T' = T // 96`` (about).

        ``blocks`` replaces the four conv blocks, e.g. by :func:`inference_conv_blocks` of a
        frozen network.
        """
        if x.ndim != 3 or x.shape[-1] != N_MELS:
            raise ValueError(f"expected (batch, frames, {N_MELS}) dB mels, got {tuple(x.shape)}")
        x = self.spec_bn(x.transpose(1, 2).unsqueeze(1))  # (B, 1, mels, T): mels on the H axis
        if blocks is not None:
            return blocks(x).squeeze(2)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.squeeze(2)

    def gru_state(self, maps: torch.Tensor) -> torch.Tensor:
        """The GRU's last time step, ``(B, 32)``, from :meth:`conv_maps`' output."""
        out, _ = self.layer5(maps.transpose(1, 2))
        return out[:, -1, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.dropout(self.gru_state(self.conv_maps(x))))

    @torch.no_grad()
    def features(self, x: torch.Tensor, output: Output) -> torch.Tensor:
        """Per-clip embedding in eval mode: ``conv`` (mean ‖ std over time of the last conv block,
        256-d), ``gru`` (last GRU step, 32-d), ``tags`` (sigmoid outputs) or ``logits``."""
        maps = self.conv_maps(x)
        if output == "conv":
            return torch.cat([maps.mean(dim=2), maps.std(dim=2, unbiased=False)], dim=1)
        state = self.gru_state(maps)
        if output == "gru":
            return state
        logits = self.dense(state)
        if output == "tags":
            return torch.sigmoid(logits)
        if output == "logits":
            return logits
        raise ConfigError(f"unknown CRNN output {output!r} (conv, gru, tags, logits)")


WHAT = "CRNN checkpoint of Won et al. (50-tag state_dict)"


def expected_shapes(n_classes: int = 50) -> dict[str, tuple[int, ...]]:
    """Keys and shapes of one of Won's CRNN checkpoints (front end entries included)."""
    shapes = {k: tuple(v.shape) for k, v in WonCRNN(n_classes).state_dict().items()}
    shapes.update({FRONT_END_KEYS[0]: (N_FFT,), FRONT_END_KEYS[1]: (1 + N_FFT // 2, N_MELS)})
    return shapes


def read_checkpoint(
    path: str | Path | None, *, sha256: str | None = None
) -> dict[str, torch.Tensor]:
    """Read and check a CRNN checkpoint: every key and shape of Won's 50-tag model.

    Flushes denormals (the MSD and Jamendo checkpoints hold ~1e-42 weights, which slow the CPU
    forward pass on CPUs that handle denormals in microcode; see
    :func:`~merkit.transfer.checkpoints.flush_denormals`).

    Raises
    ------
    ModelError
        Missing file, checksum mismatch, unreadable file, or other keys/shapes (all listed).
    """
    file = check_weights_file(path, sha256=sha256, what=WHAT)
    state = load_torch_state(file, what=WHAT)
    found = {k: tuple(v.shape) for k, v in state.items()}
    check_shapes(found, expected_shapes(), path=file, what=WHAT)
    flush_denormals()
    return state


def load_won_crnn(
    path: str | Path | None,
    *,
    sha256: str | None = None,
    n_classes: int = 50,
) -> WonCRNN:
    """A :class:`WonCRNN` with a checkpoint's weights, in eval mode.

    With ``n_classes != 50`` the 50-tag head is replaced by a freshly initialised one (torch's
    global RNG); everything else is loaded strictly, so no key is missing or left over apart from
    the head and the front end entries (which :func:`won_logmel` replaces).
    """
    state = read_checkpoint(path, sha256=sha256)
    for key in FRONT_END_KEYS:
        state.pop(key)
    model = WonCRNN(n_classes)
    if n_classes != 50:
        for key in HEAD_KEYS:
            state.pop(key)
        state.update({k: v for k, v in model.state_dict().items() if k.startswith("dense.")})
    model.load_state_dict(state, strict=True)
    return model.eval()


def transfer_crnn(
    n_classes: int = 4,
    weights: str | None = None,
    sha256: str | None = None,
) -> WonCRNN:
    """Model factory for :class:`~merkit.training.classifier.TorchClassifier`: Won's CRNN from
    ``weights``
    with a new ``n_classes`` head (fine-tuning; freeze parts with the estimator's ``freeze``)."""
    return load_won_crnn(weights, sha256=sha256, n_classes=n_classes)


transfer_crnn.input_names = WonCRNN.input_names  # type: ignore[attr-defined]


def state_with_head(
    model_params: Mapping[str, object], n_classes: int, head: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """State dict of :func:`transfer_crnn` (``model_params``) whose head is ``head``'s
    ``weight``/``bias`` (e.g. a head trained on the frozen network's GRU state)."""
    model = transfer_crnn(n_classes, **model_params)  # type: ignore[arg-type]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["dense.weight"] = head["weight"].detach().clone()
    state["dense.bias"] = head["bias"].detach().clone()
    return state


def state_shapes(state: Mapping[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    """Key → shape of a state dict."""
    return {k: tuple(v.shape) for k, v in state.items()}


__all__ = [
    "CROP_SAMPLES",
    "JAMENDO_TAGS",
    "MSD_TAGS",
    "MTAT_TAGS",
    "N_FRAMES",
    "WonCRNN",
    "expected_shapes",
    "htk_filterbank",
    "load_won_crnn",
    "nnpack_available",
    "read_checkpoint",
    "transfer_crnn",
    "winograd_conv_blocks",
    "winograd_conv_steps",
    "won_logmel",
    "won_logmel_representation",
]
