"""Batch norm followed by dropout in two passes each way, with a one-byte-per-element mask.

The conv blocks of the DL baseline CNN end in ``dropout(batch_norm(x))`` (training mode,
batch statistics). PyTorch runs that as a statistics pass, a normalising pass, a pass that
turns a boolean mask into a noise tensor of ``x``'s dtype, and a product; autograd keeps both
``x`` and the noise tensor, and the backward pass is a product, then batch norm's reduction and
element-wise passes. On the first block's 150 × 16 × 469 × 62 activation those passes cost
about as much as a convolution. Here, on CPU channels-last tensors (float32 or bfloat16):

* forward: one pass for the per-channel sums, one pass that normalises, applies the mask and
  writes the output and the mask (one byte per element, a quarter of a float32 noise tensor);
* backward: one pass for the two per-channel sums of batch norm's gradient, one that writes the
  input gradient;
* the dropout mask is a counter-based hash (SplitMix64) of one seed drawn from torch's global
  generator and of each element's position in memory, computed on all threads;
  :func:`merkit.models.layers.keep_mask` draws the same mask for a tensor on its own
  (``layers.Dropout``). The backward passes read the stored bytes: hashing every element again
  in both of them cost more (the backward kernels of the first two blocks: 152 ms per step
  hashing, 113 ms reading the bytes, one thread).

The arithmetic is torch's: ``y = (x − mean) · invstd · γ + β`` with the biased batch variance,
rounded to ``x``'s dtype, then ``y · noise`` with ``noise`` = 0 or ``1 / (1 − p)`` rounded to
``x``'s dtype (torch's CPU dropout), rounded again; the running statistics are updated as
``nn.BatchNorm2d`` does (unbiased variance, ``momentum``, ``num_batches_tracked``). The sums are
accumulated in float64 per channel (torch accumulates in float32 or float64 depending on the
kernel), so results agree with ``bn`` then ``Dropout`` to float rounding, not bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor, nn

from merkit.core.errors import ConfigError
from merkit.core.numba_cache import lock_numba_cache_io

# One kernel launch at a time per process, shared with the pooling kernels (numba's workqueue
# layer is not reentrant), on as many threads as torch uses.
from merkit.models.maxpool import _LAUNCH, _threads, _use_workqueue

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_CHUNKS_PER_THREAD = 8


@njit(inline="always")
def _keep(seed, index, threshold):  # pragma: no cover
    """Whether element ``index`` is kept: the top 32 bits of SplitMix64's ``index``-th output
    for ``seed`` are ≥ ``threshold`` (= round(p · 2³²))."""
    z = seed + (np.uint64(index) + np.uint64(1)) * _GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(32)) >= threshold


@njit(inline="always")
def _round_bf16(bits):  # pragma: no cover
    """float32 bit patterns (uint32) rounded to the nearest bfloat16, ties to even."""
    return (
        (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    ) << np.uint32(16)


@njit(inline="always")
def _load(src, row, buf, bits, bf16):  # pragma: no cover
    """Row ``row`` of ``src`` (float32, or bfloat16 as uint16) into the float32 ``buf``."""
    if bf16:
        for k in range(buf.size):
            bits[k] = np.uint32(src[row, k]) << np.uint32(16)
    else:
        for k in range(buf.size):
            buf[k] = src[row, k]


@njit(inline="always")
def _store(dst, row, buf, bits, bf16):  # pragma: no cover
    """The float32 ``buf`` into row ``row`` of ``dst`` (rounded to bfloat16 when ``bf16``)."""
    if bf16:
        for k in range(buf.size):
            dst[row, k] = _round_bf16(bits[k]) >> np.uint32(16)
    else:
        for k in range(buf.size):
            dst[row, k] = buf[k]


@njit(parallel=True, cache=True, nogil=True)
def _mask_kernel(out, seed, threshold, n_chunks):  # pragma: no cover
    n = out.size
    step = -(-n // n_chunks)
    for chunk in prange(n_chunks):
        for k in range(chunk * step, min(n, (chunk + 1) * step)):
            out[k] = _keep(seed, k, threshold)


@njit(parallel=True, cache=True, nogil=True)
def _stats_kernel(x, shift, bf16, n_chunks):  # pragma: no cover
    """Per-chunk float64 sums of ``x − shift`` and ``(x − shift)²`` per position in a row.

    ``shift`` is a row of per-channel values (no cancellation when |mean| ≫ std); the flat
    loops over whole rows vectorise, the caller folds positions into channels.
    """
    rows, length = x.shape
    sums = np.zeros((n_chunks, 2, length), np.float64)
    step = -(-rows // n_chunks)
    for chunk in prange(n_chunks):
        buf = np.empty(length, np.float32)
        bits = buf.view(np.uint32)
        acc1 = np.zeros(length, np.float64)
        acc2 = np.zeros(length, np.float64)
        for row in range(chunk * step, min(rows, (chunk + 1) * step)):
            _load(x, row, buf, bits, bf16)
            for k in range(length):
                v = np.float64(buf[k] - shift[k])
                acc1[k] += v
                acc2[k] += v * v
        sums[chunk, 0] = acc1
        sums[chunk, 1] = acc2
    return sums


@njit(inline="always")
def _apply_kept(buf, bits, kept, keep_value, bf16):  # pragma: no cover
    """``buf · noise`` for a stored row of the keep mask, rounded to bfloat16 when ``bf16``."""
    for k in range(buf.size):
        buf[k] *= keep_value if kept[k] else np.float32(0.0)
    if bf16:
        for k in range(buf.size):
            bits[k] = _round_bf16(bits[k])


@njit(parallel=True, cache=True, nogil=True)
def _forward_kernel(
    x, out, kept, mean, scale, beta, seed, threshold, keep_value, dropout, bf16, n_chunks
):  # pragma: no cover
    """``out = noise · ((x − mean) · scale + beta)``; parameters given per position in a row.

    With ``dropout``, the keep mask is also written to ``kept`` (one byte per element: the
    backward pass reads it instead of hashing every element twice more)."""
    rows, length = x.shape
    step = -(-rows // n_chunks)
    for chunk in prange(n_chunks):
        buf = np.empty(length, np.float32)
        bits = buf.view(np.uint32)
        for row in range(chunk * step, min(rows, (chunk + 1) * step)):
            _load(x, row, buf, bits, bf16)
            for k in range(length):
                buf[k] = (buf[k] - mean[k]) * scale[k] + beta[k]
            if dropout:
                if bf16:  # batch norm's output is rounded before the dropout product
                    for k in range(length):
                        bits[k] = _round_bf16(bits[k])
                keep_row = kept[row]
                base = row * length
                for k in range(length):
                    keep_row[k] = _keep(seed, base + k, threshold)
                _apply_kept(buf, bits, keep_row, keep_value, bf16)
            _store(out, row, buf, bits, bf16)


@njit(parallel=True, cache=True, nogil=True)
def _backward_sums_kernel(
    grad, x, kept, mean, keep_value, dropout, bf16, n_chunks
):  # pragma: no cover
    """Per-chunk float64 ``Σ dy`` and ``Σ dy · (x − mean)`` per position in a row, where
    ``dy = grad · noise`` is the gradient reaching batch norm's output."""
    rows, length = x.shape
    sums = np.zeros((n_chunks, 2, length), np.float64)
    step = -(-rows // n_chunks)
    for chunk in prange(n_chunks):
        gbuf = np.empty(length, np.float32)
        gbits = gbuf.view(np.uint32)
        xbuf = np.empty(length, np.float32)
        xbits = xbuf.view(np.uint32)
        acc1 = np.zeros(length, np.float64)
        acc2 = np.zeros(length, np.float64)
        for row in range(chunk * step, min(rows, (chunk + 1) * step)):
            _load(grad, row, gbuf, gbits, bf16)
            if dropout:
                _apply_kept(gbuf, gbits, kept[row], keep_value, bf16)
            _load(x, row, xbuf, xbits, bf16)
            for k in range(length):
                g = np.float64(gbuf[k])
                acc1[k] += g
                acc2[k] += g * np.float64(xbuf[k] - mean[k])
        sums[chunk, 0] = acc1
        sums[chunk, 1] = acc2
    return sums


@njit(parallel=True, cache=True, nogil=True)
def _backward_kernel(
    grad,
    x,
    grad_in,
    kept,
    mean,
    mean_dy,
    slope,
    gain,
    keep_value,
    dropout,
    bf16,
    n_chunks,
):  # pragma: no cover
    """``dx = (dy − mean(dy) − (x − mean) · slope) · gain``, parameters per position."""
    rows, length = x.shape
    step = -(-rows // n_chunks)
    for chunk in prange(n_chunks):
        gbuf = np.empty(length, np.float32)
        gbits = gbuf.view(np.uint32)
        xbuf = np.empty(length, np.float32)
        xbits = xbuf.view(np.uint32)
        for row in range(chunk * step, min(rows, (chunk + 1) * step)):
            _load(grad, row, gbuf, gbits, bf16)
            if dropout:
                _apply_kept(gbuf, gbits, kept[row], keep_value, bf16)
            _load(x, row, xbuf, xbits, bf16)
            for k in range(length):
                gbuf[k] = (gbuf[k] - mean_dy[k] - (xbuf[k] - mean[k]) * slope[k]) * gain[k]
            _store(grad_in, row, gbuf, gbits, bf16)


def _rows(x: Tensor) -> np.ndarray:
    """A channels-last ``(B, C, H, W)`` tensor as a ``(B·H, W·C)`` numpy view (bf16 as uint16)."""
    batch, channels, height, width = x.shape
    flat = x.detach().permute(0, 2, 3, 1).reshape(batch * height, width * channels)
    if flat.dtype == torch.bfloat16:
        flat = flat.view(torch.int16)
    array = flat.numpy()
    return array.view(np.uint16) if array.dtype == np.int16 else array


def _n_chunks() -> int:
    return max(1, torch.get_num_threads()) * _CHUNKS_PER_THREAD


def _threshold(p: float) -> int:
    return min(round(p * 2**32), 2**32 - 1)


def draw_seed() -> int:
    """One draw from torch's global generator (``torch.manual_seed`` fixes the masks)."""
    return int(torch.randint(0, 2**62, (), dtype=torch.int64))


def hash_keep_mask(shape: tuple[int, ...], p: float, seed: int) -> np.ndarray:
    """The keep mask of ``seed`` for ``prod(shape)`` elements in memory order (bool numpy).

    Element ``k`` is kept when the top 32 bits of SplitMix64's ``k``-th output for ``seed`` are
    at least ``round(p · 2³²)``: drop probability ``p`` to within 2⁻³³.
    """
    out = np.empty(int(np.prod(shape)), np.bool_)
    if out.size:
        lock_numba_cache_io()
        _use_workqueue()
        with _LAUNCH:
            _threads()
            _mask_kernel(out, np.uint64(seed), np.uint64(_threshold(p)), _n_chunks())
    if p >= 1.0:
        out[:] = False
    return out.reshape(shape)


def _per_position(values: np.ndarray | float, channels: int, length: int) -> np.ndarray:
    """Per-channel values repeated along a channels-last row of ``length`` (float32)."""
    row = np.broadcast_to(np.asarray(values, np.float64), (channels,)).astype(np.float32)
    return np.tile(row, length // channels)


def _per_channel(sums: np.ndarray, channels: int) -> np.ndarray:
    """``(..., length)`` per-position sums folded into ``(..., channels)``."""
    return sums.reshape(*sums.shape[:-1], -1, channels).sum(axis=-2)


def _batch_stats(x: Tensor) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-channel mean and biased variance (float64) of a channels-last ``x``, and the count."""
    batch, channels, height, width = x.shape
    rows = _rows(x)
    bf16 = rows.dtype == np.uint16
    first = rows[0, :channels].astype(np.uint32) << np.uint32(16) if bf16 else rows[0, :channels]
    shift = np.ascontiguousarray(first).view(np.float32) if bf16 else first.astype(np.float32)
    with _LAUNCH:
        _threads()
        sums = _stats_kernel(rows, _per_position(shift, channels, rows.shape[1]), bf16, _n_chunks())
    sums = _per_channel(sums.sum(axis=0), channels)
    count = batch * height * width
    mean_shifted = sums[0] / count
    var = np.maximum(sums[1] / count - mean_shifted**2, 0.0)
    return mean_shifted + shift, var, count


class _BatchNormDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, mean, invstd, p, seed):  # type: ignore[no-untyped-def]
        channels = x.shape[1]
        bf16 = x.dtype == torch.bfloat16
        dropout = p > 0.0
        # torch's CPU dropout multiplies by 1 / (1 − p) rounded to x's dtype.
        keep_value = torch.ones((), dtype=x.dtype).div_(1.0 - p).item() if dropout else 1.0
        gamma = weight.detach().double().numpy() if weight is not None else 1.0
        beta = bias.detach().double().numpy() if bias is not None else 0.0
        rows = _rows(x)
        out = torch.empty_like(x, memory_format=torch.channels_last)
        mask = (np.uint64(seed), np.uint64(_threshold(p)), np.float32(keep_value), dropout)
        kept = np.empty(rows.shape if dropout else (1, 1), np.bool_)
        length = rows.shape[1]
        with _LAUNCH:
            _threads()
            _forward_kernel(
                rows,
                _rows(out),
                kept,
                _per_position(mean, channels, length),
                _per_position(invstd * gamma, channels, length),
                _per_position(beta, channels, length),
                *mask,
                bf16,
                _n_chunks(),
            )
        ctx.save_for_backward(x, weight)
        ctx.stats = (mean, invstd)
        ctx.mask = (kept, np.float32(keep_value), dropout)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        x, weight = ctx.saved_tensors
        mean, invstd = ctx.stats
        kept, keep_value, dropout = ctx.mask
        channels = x.shape[1]
        bf16 = x.dtype == torch.bfloat16
        grad = grad.to(x.dtype).contiguous(memory_format=torch.channels_last)
        rows, grad_rows = _rows(x), _rows(grad)
        length = rows.shape[1]
        count = rows.size // channels
        mean_row = _per_position(mean, channels, length)
        with _LAUNCH:
            _threads()
            sums = _backward_sums_kernel(
                grad_rows, rows, kept, mean_row, keep_value, dropout, bf16, _n_chunks()
            )
        sums = _per_channel(sums.sum(axis=0), channels)
        grad_in = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            gamma = weight.detach().double().numpy() if weight is not None else 1.0
            grad_in = torch.empty_like(x, memory_format=torch.channels_last)
            with _LAUNCH:
                _threads()
                _backward_kernel(
                    grad_rows,
                    rows,
                    _rows(grad_in),
                    kept,
                    mean_row,
                    _per_position(sums[0] / count, channels, length),
                    _per_position(sums[1] / count * invstd**2, channels, length),
                    _per_position(invstd * gamma, channels, length),
                    keep_value,
                    dropout,
                    bf16,
                    _n_chunks(),
                )
        if weight is not None and ctx.needs_input_grad[1]:
            grad_weight = torch.from_numpy(sums[1] * invstd).to(weight.dtype)
        if weight is not None and ctx.needs_input_grad[2]:
            grad_bias = torch.from_numpy(sums[0]).to(weight.dtype)
        return grad_in, grad_weight, grad_bias, None, None, None, None


def fast_path(x: Tensor, bn: nn.Module) -> bool:
    """Whether :func:`batch_norm_dropout` runs the numba kernels (else ``bn`` then dropout)."""
    return (
        isinstance(bn, nn.BatchNorm2d)
        and bn.training
        and bn.track_running_stats
        and bn.running_mean is not None
        and bn.running_var is not None
        and bn.num_batches_tracked is not None
        and (bn.weight is None) == (bn.bias is None)
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.bfloat16)
        and x.dim() == 4
        and x.permute(0, 2, 3, 1).is_contiguous()
        and x.shape[0] * x.shape[2] * x.shape[3] > 1
        and not torch.jit.is_scripting()
    )


def batch_norm_dropout(x: Tensor, bn: nn.BatchNorm2d, p: float, seed: int | None = None) -> Tensor:
    """``dropout(bn(x), p)`` in training mode for a tensor on the fast path (:func:`fast_path`).

    Parameters
    ----------
    x : Tensor
        ``(B, C, H, W)`` channels-last, float32 or bfloat16 (e.g. under autocast).
    bn : nn.BatchNorm2d
        In training mode; its running statistics are updated as its own forward would.
    p : float
        Drop probability in [0, 1); 0 means batch norm alone.
    seed : int, optional
        The mask's seed; by default one draw from torch's global generator
        (:func:`draw_seed`), the draw :func:`merkit.models.layers.keep_mask` makes.

    Returns
    -------
    Tensor
        Like ``x`` (dtype, channels-last).
    """
    if not 0.0 <= p < 1.0:
        raise ConfigError(f"batch_norm_dropout: dropout rate must be in [0, 1), got {p}")
    if seed is None:
        seed = draw_seed() if p > 0.0 else 0
    lock_numba_cache_io()
    _use_workqueue()
    mean, var, count = _batch_stats(x)
    with torch.no_grad():  # nn.BatchNorm2d's update: unbiased variance, momentum
        bn.num_batches_tracked.add_(1)
        factor = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
        unbiased = torch.from_numpy(var * count / (count - 1))
        bn.running_mean.mul_(1 - factor).add_(torch.from_numpy(mean).to(bn.running_mean) * factor)
        bn.running_var.mul_(1 - factor).add_(unbiased.to(bn.running_var) * factor)
    invstd = 1.0 / np.sqrt(var + bn.eps)
    return _BatchNormDropout.apply(x, bn.weight, bn.bias, mean, invstd, float(p), int(seed))
