"""Building blocks shared by the paper's models, with the Keras behaviour the paper relied on.

The reference implementation is Keras (TF2); these layers reproduce Keras' defaults where PyTorch's
differ (weight initialisers, BatchNorm momentum/epsilon, 'same' padding).
This module pins those differences in one place:

* BatchNorm with Keras' momentum 0.99 and eps 1e-3 (PyTorch's ``momentum`` is ``1 - 0.99``);
* Keras initialisers (:mod:`merkit.models.layers`, re-exported here: ``glorot_uniform``
  by default, ``he_normal`` as a truncated normal, zero biases, GRU recurrent kernels orthogonal);
* max-pooling with TF ``padding='same'`` (extra padding *after*, padding ignored in the max);
* flattening in Keras' channels-last order, so Dense kernels of a Keras checkpoint map 1:1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from merkit.core.errors import ConfigError, DataError
from merkit.models import bn_dropout
from merkit.models.maxpool import pool_relu

BN_MOMENTUM: float = 0.01
"""PyTorch ``momentum`` equal to Keras' ``momentum=0.99``: running = 0.99·running + 0.01·batch."""

BN_EPS: float = 1e-3
"""Keras' BatchNormalization epsilon."""


# --------------------------------------------------------------------------- batch norm


def batch_norm_1d(num_features: int) -> nn.BatchNorm1d:
    """``BatchNorm1d`` with Keras' defaults (momentum 0.99, eps 1e-3, γ = 1, β = 0)."""
    return nn.BatchNorm1d(num_features, eps=BN_EPS, momentum=BN_MOMENTUM)


def batch_norm_2d(num_features: int) -> nn.BatchNorm2d:
    """``BatchNorm2d`` with Keras' defaults (momentum 0.99, eps 1e-3, γ = 1, β = 0)."""
    return nn.BatchNorm2d(num_features, eps=BN_EPS, momentum=BN_MOMENTUM)


# --------------------------------------------------------------------------- dropout


def keep_mask(like: Tensor, p: float) -> Tensor:
    """A Bernoulli(1 − ``p``) keep mask shaped and laid out like ``like`` (bool, on its device).

    Element ``k`` in memory order is kept when a counter-based hash (SplitMix64) of ``k`` and of
    one seed drawn from torch's global generator is at least ``round(p · 2³²)``
    (:func:`merkit.models.bn_dropout.hash_keep_mask`): ``torch.manual_seed`` makes the masks
    reproducible, the drop probability is ``p`` to within 2⁻³³ (torch's float32 draw is exact to
    2⁻²⁴), it runs on all threads, and the fused batch norm + dropout of the conv blocks
    (:func:`merkit.models.bn_dropout.batch_norm_dropout`) draws the same mask for the same
    seed. Several times cheaper than torch's CPU ``bernoulli_``, which dominated the baseline
    CNN's step.

    Parameters
    ----------
    like : Tensor
        Gives shape, memory layout (e.g. channels-last) and device.
    p : float
        Drop probability in [0, 1].

    Returns
    -------
    Tensor
        bool, True where the element is kept, with ``like``'s strides.
    """
    seed = bn_dropout.draw_seed()
    # Lay the flat draws out in ``like``'s memory order, so the product runs contiguously.
    order = sorted(range(like.dim()), key=lambda d: (-like.stride(d), -d))
    shape = tuple(like.shape[d] for d in order)
    keep = torch.from_numpy(bn_dropout.hash_keep_mask(shape, p, seed))
    mask = keep.permute([order.index(d) for d in range(like.dim())])
    return mask.to(like.device, non_blocking=True)


class Dropout(nn.Dropout):
    """``nn.Dropout`` (inverted dropout, rate ``p``) with a cheaper mask on the CPU.

    Same function as ``nn.Dropout``: in training, each element is zeroed with probability
    ``p`` and the rest are multiplied by ``1 / (1 − p)`` rounded to the input's dtype, exactly
    as torch's CPU dropout computes it; in eval mode the identity. The mask comes from
    :func:`keep_mask` (a different random stream from ``bernoulli_``).
    On CUDA, torch's fused kernel is used. No parameters or buffers, so state dicts are those
    of ``nn.Dropout``.
    """

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return super().forward(x)
        if self.p >= 1.0:
            return x * 0.0
        # As torch's CPU dropout: x times a noise tensor of x's dtype holding 0 or 1 / (1 − p)
        # (autograd keeps only the noise for the backward pass).
        scale = torch.ones((), dtype=x.dtype).div_(1.0 - self.p)
        noise = torch.where(keep_mask(x, self.p), scale, scale.new_zeros(()))
        return x.mul_(noise) if self.inplace else x * noise


# --------------------------------------------------------------------------- shapes and pooling


def tf_same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Padding (before, after) that TF ``padding='same'`` adds along one axis.

    The output length is ``ceil(size / stride)``; the total padding is split with the extra
    element *after*. E.g. ``tf_same_pads(465, 2, 2) == (0, 1)`` and ``tf_same_pads(229, 3, 3)
    == (1, 1)`` (the baseline CNN's last block).

    Parameters
    ----------
    size : int
        Input length along the axis.
    kernel, stride : int
        Window length and stride.

    Returns
    -------
    tuple of int
        ``(before, after)``.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    first, second = value
    return int(first), int(second)


def _implicit_pad_matches(size: int, kernel: int, stride: int, before: int, after: int) -> bool:
    """Whether ``max_pool2d(padding=before, ceil_mode=True)`` has TF 'same''s windows.

    Both start window ``j`` at ``j·stride − before``; they agree when torch's ceil-mode output
    length equals TF's ``ceil(size / stride)`` (torch allows ``before ≤ kernel // 2`` only).
    """
    if before > kernel // 2 or after < before:
        return False
    out = -(-(size + 2 * before - kernel) // stride) + 1
    if (out - 1) * stride >= size + before:  # torch drops a window starting in the right pad
        out -= 1
    return out == -(-size // stride)


class MaxPool2dSame(nn.Module):
    """Max-pooling with TF ``padding='same'``: explicit −inf padding (extra after), then a max.

    ``ceil_mode=True`` gives the same output sizes but aligns the windows differently;
    −inf padding keeps padded cells out of every max, as TF does.

    Parameters
    ----------
    kernel_size : int or (int, int)
        Window (H, W), i.e. (time, mel) for merkit's images.
    stride : int or (int, int), optional
        Defaults to ``kernel_size`` (the Keras default).
    """

    def __init__(
        self, kernel_size: int | Sequence[int], stride: int | Sequence[int] | None = None
    ) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride) if stride is not None else self.kernel_size

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output (H, W) for an input of ``height`` × ``width``: ``ceil(size / stride)``."""
        return -(-height // self.stride[0]), -(-width // self.stride[1])

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2:]
        top, bottom = tf_same_pads(height, self.kernel_size[0], self.stride[0])
        left, right = tf_same_pads(width, self.kernel_size[1], self.stride[1])
        if _implicit_pad_matches(height, self.kernel_size[0], self.stride[0], top, bottom) and (
            _implicit_pad_matches(width, self.kernel_size[1], self.stride[1], left, right)
        ):
            # Same windows as the −inf pad, without materialising a padded copy: max_pool2d's
            # implicit padding is −inf and ceil_mode adds the partial last window.
            return F.max_pool2d(
                x, self.kernel_size, self.stride, padding=(top, left), ceil_mode=True
            )
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding='same'"


def flatten_channels_last(x: Tensor) -> Tensor:
    """Flatten ``(B, C, *spatial)`` in Keras' order ``(*spatial, C)``.

    Keeping Keras' order lets Dense kernels of a Keras checkpoint be used without permutation; on
    a ``channels_last`` tensor the permute is free (the reshape is then a view).
    """
    dims = (0, *range(2, x.dim()), 1)
    return x.permute(dims).reshape(x.shape[0], -1)


def check_input(x: Tensor, shape: Sequence[int | None], model: str, input_name: str) -> None:
    """Raise :class:`~merkit.core.errors.DataError` unless ``x`` has ``shape`` (``None`` = any
    size).

    Parameters
    ----------
    x : Tensor
        The input tensor, batch axis first.
    shape : sequence of int or None
        Expected shape including the batch axis.
    model, input_name : str
        Used in the message.
    """
    ok = x.dim() == len(shape) and all(
        want is None or want == got for want, got in zip(shape, x.shape, strict=False)
    )
    if not ok:
        expected = (
            "("
            + ", ".join(
                "B" if i == 0 else str(s) if s is not None else "*" for i, s in enumerate(shape)
            )
            + ")"
        )
        raise DataError(
            f"model {model!r}: input {input_name!r} must have shape {expected}, "
            f"got {tuple(x.shape)}"
        )


# --------------------------------------------------------------------------- blocks


class BaselineConvBlock(nn.Module):
    """Baseline block (paper §3.1): Conv 5×5 valid → ReLU → MaxPool 'same' → [BN] → [Dropout].

    Parameters
    ----------
    in_channels, out_channels : int
        Channels.
    pool : int or (int, int)
        Pool size (= stride) over (time, mel).
    batch_norm : bool
        Whether a BN follows the pool (BN comes *after* pooling in the reference).
    dropout : float
        Dropout rate after the BN; 0 disables it.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        pool: int | Sequence[int],
        *,
        batch_norm: bool = True,
        dropout: float = 0.1,
        kernel_size: int = 5,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size)
        self.pool = MaxPool2dSame(pool)
        self.bn = batch_norm_2d(out_channels) if batch_norm else nn.Identity()
        # In place after a BN (whose backward needs its input, not its output).
        self.dropout = Dropout(dropout, inplace=batch_norm) if dropout > 0 else nn.Identity()

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output (H, W) for an input of ``height`` × ``width``."""
        shrink = self.kernel_size - 1
        return self.pool.output_size(height - shrink, width - shrink)

    def _convolve(self, x: Tensor) -> Tensor:
        conv, k = self.conv, self.kernel_size
        # A 1-channel weight converted to channels-last has stride 1 on its channel axis.
        channels_last = conv.weight.stride(1) == 1
        if conv.in_channels != 1 or k == 1 or x.shape[-2] < k or not channels_last:
            return conv(x)
        # One input channel: stack the k row shifts as channels and convolve 1 × k. The same
        # sums (Σ_ij w_ij · x[t+i, f+j]) in another order; oneDNN runs this 2× faster
        # (forward + weight gradient) than a 1-channel k × k convolution in channels-last.
        device = x.device.type
        if torch.is_autocast_enabled(device):
            x = x.to(torch.get_autocast_dtype(device))  # the cast autocast would make
        shifts = x[:, 0].unfold(1, k, 1).contiguous().permute(0, 3, 1, 2)  # channels-last
        weight = conv.weight.reshape(conv.out_channels, k, 1, k)
        return F.conv2d(shifts, weight, conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        # max-pool commutes with ReLU (both monotone), so pooling first applies the ReLU to a
        # 4-6× smaller tensor: the same outputs and gradients as ReLU → pool. pool_relu does
        # both in one pass without int64 indices (merkit.models.maxpool).
        x = self._convolve(x)
        pool = self.pool
        if pool.stride != pool.kernel_size:
            return self.dropout(self.bn(torch.relu_(pool(x))))
        (kh, kw), (height, width) = pool.kernel_size, x.shape[-2:]
        pads = (tf_same_pads(height, kh, kh)[0], tf_same_pads(width, kw, kw)[0])
        x = pool_relu(x, pool.kernel_size, pads, pool.output_size(height, width))
        dropout = self.dropout
        p = dropout.p if isinstance(dropout, Dropout) and dropout.training else 0.0
        if p < 1.0 and bn_dropout.fast_path(x, self.bn):
            # BN and dropout in two passes each way, the mask Dropout would draw.
            return bn_dropout.batch_norm_dropout(x, self.bn, p)  # type: ignore[arg-type]
        return self.dropout(self.bn(x))


class Conv2dRegular(nn.Module):
    """CRNN block (paper §3.3): Conv 3×3 'same' → BN → ReLU → MaxPool (valid, floor)."""

    def __init__(self, in_channels: int, out_channels: int, pool: int | Sequence[int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.bn = batch_norm_2d(out_channels)
        self.pool = nn.MaxPool2d(_pair(pool))

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Output (H, W) for an input of ``height`` × ``width``."""
        ph, pw = self.pool.kernel_size  # type: ignore[misc]
        return height // ph, width // pw

    def forward(self, x: Tensor) -> Tensor:
        # pool → ReLU equals ReLU → pool (max commutes with ReLU); pool_relu does both in one
        # pass without int64 indices (merkit.models.maxpool).
        return pool_relu(self.bn(self.conv(x)), self.pool.kernel_size)  # type: ignore[arg-type]


class Res2d(nn.Module):
    """Won's ``Res_2d`` (ShortChunk, paper §3.4), as ported to Keras.

    Main path Conv 3×3 (stride s) → BN → ReLU → Conv 3×3 → BN; shortcut Conv 3×3 (stride s) → BN
    when ``s != 1`` or the channels change (identity otherwise); add → ReLU. Stride-2 'same'
    convolutions pad symmetrically here (TF pads the extra row after): same sizes, windows shifted
    by one pixel; the output sizes are the same.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__()
        self.conv_1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1)
        self.bn_1 = batch_norm_2d(out_channels)
        self.conv_2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn_2 = batch_norm_2d(out_channels)
        self.shortcut: nn.Module
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
                batch_norm_2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        # In place on BN outputs: BN's backward needs its input, not its output.
        out = self.bn_2(self.conv_2(torch.relu_(self.bn_1(self.conv_1(x)))))
        return torch.relu_(out.add_(self.shortcut(x)))


class Conv1dBlock(nn.Module):
    """SampleCNN block (paper §3.4): Conv1D 'same' → BN → ReLU → MaxPool1D (``pool`` 1 = none).

    'same' padding is computed TF-style at run time, so the stride-3 first layer also matches.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        pool: int = 3,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride)
        self.bn = batch_norm_1d(out_channels)
        self.pool = nn.MaxPool1d(pool) if pool > 1 else nn.Identity()
        self.pool_size = pool

    def output_size(self, length: int) -> int:
        """Output length for an input of ``length`` samples."""
        return -(-length // self.stride) // self.pool_size

    def forward(self, x: Tensor) -> Tensor:
        before, after = tf_same_pads(x.shape[-1], self.kernel_size, self.stride)
        if before or after:
            x = F.pad(x, (before, after))
        return torch.relu_(self.pool(self.bn(self.conv(x))))  # pool first: see Conv2dRegular


# ---- Keras' weight initialisers in PyTorch, so the ported models start where the paper's did.
# ``glorot_uniform`` by default, ``he_normal`` as TF2's truncated normal, zero biases, GRU recurrent
# kernels orthogonal; :func:`keras_init_` applies them to a whole model.


TRUNC_NORMAL_STD_CORRECTION: float = 0.87962566103423978
"""Std of a unit normal truncated at ±2; TF2 divides by it so the draws keep the target std."""

Init = Literal["glorot_uniform", "he_normal", "he_uniform"]


def _fan_in(weight: Tensor) -> int:
    # Conv/Linear weights are (out, in, *k); ConvTranspose weights are (in, out, *k), whose
    # dim 1 (out) is what Keras calls fan_in for Conv2DTranspose, so one formula serves both.
    return weight.shape[1] * math.prod(weight.shape[2:])


def glorot_uniform_(weight: Tensor) -> Tensor:
    """Keras ``glorot_uniform``: U(±sqrt(6 / (fan_in + fan_out))), in place.

    Parameters
    ----------
    weight : Tensor
        A Linear, Conv or ConvTranspose weight (at least 2-D).

    Returns
    -------
    Tensor
        ``weight``, filled.
    """
    return nn.init.xavier_uniform_(weight)


def he_normal_(weight: Tensor) -> Tensor:
    """Keras (TF2) ``he_normal``: truncated normal at ±2σ with σ = sqrt(2 / fan_in) / 0.8796.

    Parameters
    ----------
    weight : Tensor
        A Linear, Conv or ConvTranspose weight (at least 2-D).

    Returns
    -------
    Tensor
        ``weight``, filled.
    """
    std = math.sqrt(2.0 / _fan_in(weight)) / TRUNC_NORMAL_STD_CORRECTION
    return nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std)


def he_uniform_(weight: Tensor) -> Tensor:
    """Keras ``he_uniform``: U(±sqrt(6 / fan_in)), in place."""
    limit = math.sqrt(6.0 / _fan_in(weight))
    return nn.init.uniform_(weight, -limit, limit)


def orthogonal_(weight: Tensor) -> Tensor:
    """Orthogonal init, the same matrix as ``nn.init.orthogonal_`` for the same RNG state.

    Same Gaussian draw and sign convention (R with a positive diagonal), but the QR factor comes
    from Cholesky QR (Q = G·R⁻¹ with RᵀR = GᵀG), about 4x faster on CPU than Householder QR:
    the 6000 × 2000 recurrent kernels of ``cnn-gru`` take ~2 s instead of ~8 s each. GRU
    recurrent kernels are 3:1 (condition number of the Gaussian ≈ 3.7), so the squared condition
    number costs no accuracy; Householder QR is the fallback if the Cholesky fails.

    Parameters
    ----------
    weight : Tensor
        At least 2-D; rows are dim 0, columns all other dims.

    Returns
    -------
    Tensor
        ``weight``, filled.
    """
    rows = weight.shape[0]
    cols = weight.numel() // rows
    with torch.no_grad():
        flat = weight.new_empty((rows, cols)).normal_(0, 1)
        if rows < cols:
            flat = flat.t()
        upper, info = torch.linalg.cholesky_ex(flat.t() @ flat, upper=True)
        if int(info) == 0:
            q = torch.linalg.solve_triangular(upper, flat, upper=True, left=False)
        else:
            q, r = torch.linalg.qr(flat)
            q = q * torch.diagonal(r).sign()
        if rows < cols:
            q = q.t()
        weight.view_as(q).copy_(q)
    return weight


_INITS = {"glorot_uniform": glorot_uniform_, "he_normal": he_normal_, "he_uniform": he_uniform_}

_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)


def init_layer_(layer: nn.Module, scheme: Init = "glorot_uniform") -> nn.Module:
    """Initialise one Linear/Conv/ConvTranspose layer as Keras would: ``scheme`` weights, zero bias.

    Parameters
    ----------
    layer : nn.Module
        The layer to initialise in place.
    scheme : {"glorot_uniform", "he_normal", "he_uniform"}
        The Keras kernel initialiser.

    Returns
    -------
    nn.Module
        ``layer``, for chaining.

    Raises
    ------
    ConfigError
        If ``scheme`` is unknown or the layer has no kernel.
    """
    if scheme not in _INITS:
        raise ConfigError(f"unknown initialiser {scheme!r}; known: {', '.join(_INITS)}")
    if not isinstance(layer, _WEIGHTED):
        raise ConfigError(f"cannot apply {scheme} to a {type(layer).__name__}")
    with torch.no_grad():
        _INITS[scheme](layer.weight)
        if layer.bias is not None:
            layer.bias.zero_()
    return layer


def init_gru_(gru: nn.GRU) -> nn.GRU:
    """Initialise an ``nn.GRU`` like Keras: glorot input kernel, orthogonal recurrent, zero bias.

    Keras draws each kernel as one ``(in, 3·units)`` matrix; PyTorch stores its transpose
    ``(3·units, in)``, which has the same fans, so drawing over the whole stacked matrix matches.
    """
    with torch.no_grad():
        for name, param in gru.named_parameters():
            if name.startswith("weight_ih"):
                nn.init.xavier_uniform_(param)
            elif name.startswith("weight_hh"):
                orthogonal_(param)
            else:
                param.zero_()
    return gru


def keras_init_(
    module: nn.Module, *, conv: Init = "glorot_uniform", linear: Init = "glorot_uniform"
) -> nn.Module:
    """Initialise every layer under ``module`` with Keras defaults, in place.

    Conv/ConvTranspose layers get ``conv``, Linear layers ``linear``, GRUs :func:`init_gru_`,
    BatchNorms γ = 1, β = 0 and fresh running statistics.

    Parameters
    ----------
    module : nn.Module
        The root module.
    conv, linear : {"glorot_uniform", "he_normal", "he_uniform"}
        Kernel initialisers for convolutional and dense layers.

    Returns
    -------
    nn.Module
        ``module``, for chaining.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            init_layer_(layer, linear)
        elif isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            init_layer_(layer, conv)
        elif isinstance(layer, nn.GRU):
            init_gru_(layer)
        elif isinstance(layer, nn.modules.batchnorm._BatchNorm):
            layer.reset_parameters()
    return module
