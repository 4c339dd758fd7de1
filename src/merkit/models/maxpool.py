"""Max-pool followed by ReLU over non-overlapping windows, without int64 index tensors.

``relu(max_pool2d(x))`` for a stride equal to the window, as the baseline CNN's and the CRNN's
blocks use it, computed on CPU channels-last tensors by two small numba kernels:

* forward: one pass over ``x`` writes the pooled, rectified output and a ``uint8`` code per
  output element (the winning position inside its window, or 255 where the ReLU zeroes it);
  ``x`` itself is not kept for the backward pass;
* backward: one pass writes every element of the input gradient (the output gradient at the
  winning position, 0 elsewhere), so no zero-filled buffer and no scatter.

PyTorch's ``max_pool2d`` instead keeps its input and an ``int64`` index per output element (as
large as a bf16 input 2 × 2 window apart), and its backward zero-fills the input-sized
gradient before scattering into it. For the DL baseline CNN's first block
(150 × 16 × 938 × 124) that is 0.56 GB of indices and 0.56 GB of fill per step.

The result is exactly PyTorch's. Only a positive value can survive the ReLU, and positive
floats (+inf and positive NaNs included) order like the signed integers of their bit patterns,
so the kernels compare those integers against a running maximum that starts at +0: the first
maximum in row-major window order wins (a tie is not a win) as in PyTorch's CPU kernel, and a
window whose maximum is ≤ 0 gives 0 with no gradient (``relu``'s gradient at 0 is 0, so which
zero won does not matter). Windows follow TF ``padding='same'`` (``pads`` before, the rest
after, padded cells never win) or valid floor pooling (rows and columns past the last window
get gradient 0). Positive NaNs win their window like PyTorch's; a NaN with the sign bit set
never wins, where PyTorch would return it — a training step that meets a NaN is lost either
way. The 2 × 2 windows of the baseline CNN's first two blocks have kernels of their own, with
the window unrolled (about 3× and 2× the general kernels' speed on the first block).
Other devices, dtypes and layouts fall back to ``relu_(max_pool2d(...))``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numba
import numpy as np
import torch
import torch.nn.functional as F
from numba import njit, prange
from torch import Tensor

from merkit.core.numba_cache import lock_numba_cache_io

_BITS = {torch.bfloat16: torch.int16, torch.float32: torch.int32}
"""Float dtype → the integer dtype its bits are compared as."""

_LAUNCH = threading.Lock()
"""One kernel launch at a time in this process (numba's workqueue layer is not reentrant)."""

_DROPPED = 255
"""Code of an output element that the ReLU zeroes (no gradient flows to its window)."""


@njit(parallel=True, cache=True, nogil=True)
def _pool_relu_forward(x, kh, kw, top, left, out, code, n_chunks):  # pragma: no cover
    """Any window: per output row, the window positions in row-major order over rows of
    ``(out_w, C)`` running maxima (the loop over channels vectorises)."""
    batch, height, width, channels = x.shape
    _, out_h, out_w, _ = out.shape
    rows = batch * out_h
    step = -(-rows // n_chunks)
    # Scratch rows allocated once per chunk of output rows, not per row: numba allocates
    # through Python's raw allocator (a malloc, and a GIL round trip while tracemalloc runs).
    for chunk in prange(n_chunks):
        best = np.empty((out_w, channels), x.dtype)
        arg = np.empty((out_w, channels), np.uint8)
        for row_index in range(chunk * step, min(rows, (chunk + 1) * step)):
            b, i = row_index // out_h, row_index % out_h
            best[:] = 0  # +0: only positive values win (the ReLU)
            arg[:] = _DROPPED
            for di in range(kh):
                r = i * kh - top + di
                if r < 0 or r >= height:
                    continue
                src = x[b, r]
                for j in range(out_w):
                    for dj in range(kw):
                        col = j * kw + dj - left
                        if col < 0 or col >= width:
                            continue
                        position = np.uint8(di * kw + dj)
                        for c in range(channels):
                            v = src[col, c]
                            wins = v > best[j, c]  # strictly: the first maximum wins
                            best[j, c] = v if wins else best[j, c]
                            arg[j, c] = position if wins else arg[j, c]
            out[b, i] = best
            code[b, i] = arg


@njit(parallel=True, cache=True, nogil=True)
def _pool_relu_forward_2x2(x, out, code, zero, n_chunks):  # pragma: no cover
    """2 × 2 windows from (0, 0) (TF 'same' and floor pooling alike): the four candidates
    compared in registers. A window cut by the last row or column repeats its first row or
    column, which never wins (a tie is not a win)."""
    batch, height, width, channels = x.shape
    _, out_h, out_w, _ = out.shape
    rows = batch * out_h
    step = -(-rows // n_chunks)
    for chunk in prange(n_chunks):
        for row_index in range(chunk * step, min(rows, (chunk + 1) * step)):
            b, i = row_index // out_h, row_index % out_h
            upper = x[b, 2 * i]
            lower = x[b, min(2 * i + 1, height - 1)]
            values, codes = out[b, i], code[b, i]
            for j in range(out_w):
                first = 2 * j
                second = min(first + 1, width - 1)
                for c in range(channels):
                    v = upper[first, c]
                    best = v if v > zero else zero
                    arg = np.uint8(0) if v > zero else np.uint8(_DROPPED)
                    v = upper[second, c]
                    arg = np.uint8(1) if v > best else arg
                    best = v if v > best else best
                    v = lower[first, c]
                    arg = np.uint8(2) if v > best else arg
                    best = v if v > best else best
                    v = lower[second, c]
                    arg = np.uint8(3) if v > best else arg
                    best = v if v > best else best
                    values[j, c] = best
                    codes[j, c] = arg


@njit(parallel=True, cache=True, nogil=True)
def _pool_relu_backward(grad, code, kh, kw, top, left, grad_in):  # pragma: no cover
    batch, height, width, channels = grad_in.shape
    _, out_h, out_w, _ = grad.shape
    for row_index in prange(batch * height):
        b, r = row_index // height, row_index % height
        dst = grad_in[b, r]
        i = (r + top) // kh
        if i >= out_h:  # past the last window of a floor pooling
            dst[:, :] = 0
            continue
        di = r + top - i * kh
        src, codes = grad[b, i], code[b, i]
        for j in range(out_w):
            for dj in range(kw):
                col = j * kw + dj - left
                if col < 0 or col >= width:
                    continue
                position = np.uint8(di * kw + dj)
                for c in range(channels):
                    dst[col, c] = src[j, c] if codes[j, c] == position else 0
        for col in range(max(out_w * kw - left, 0), width):  # past the last window
            for c in range(channels):
                dst[col, c] = 0


@njit(parallel=True, cache=True, nogil=True)
def _pool_relu_backward_2x2(grad, code, grad_in):  # pragma: no cover
    """2 × 2 windows from (0, 0): the constant window unrolls (twice the general speed)."""
    batch, height, width, channels = grad_in.shape
    _, out_h, out_w, _ = grad.shape
    for row_index in prange(batch * out_h):
        b, i = row_index // out_h, row_index % out_h
        src, codes = grad[b, i], code[b, i]
        for di in range(2):
            r = 2 * i + di
            if r >= height:
                break
            dst = grad_in[b, r]
            for j in range(out_w):
                for dj in range(2):
                    col = 2 * j + dj
                    if col >= width:
                        break
                    position = np.uint8(2 * di + dj)
                    for c in range(channels):
                        dst[col, c] = src[j, c] if codes[j, c] == position else 0
        if i == out_h - 1:  # floor pooling: the row past the last window
            for r in range(2 * out_h, height):
                grad_in[b, r] = 0
        if 2 * out_w < width:  # floor pooling: the column past the last window
            for di in range(2):
                if 2 * i + di < height:
                    grad_in[b, 2 * i + di, 2 * out_w :] = 0


def _nhwc(x: Tensor) -> Tensor:
    """``x`` as its (B, H, W, C) channels-last view."""
    return x.permute(0, 2, 3, 1)


class _PoolReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, kernel, pads, out_size):  # type: ignore[no-untyped-def]
        (kh, kw), (top, left), (out_h, out_w) = kernel, pads, out_size
        batch, channels, height, width = x.shape
        bits = _BITS[x.dtype]
        out = torch.empty((batch, out_h, out_w, channels), dtype=x.dtype)
        code = torch.empty((batch, out_h, out_w, channels), dtype=torch.uint8)
        with _LAUNCH:
            _threads()
            x_bits, out_bits = _nhwc(x).view(bits).numpy(), out.view(bits).numpy()
            n_chunks = max(1, torch.get_num_threads()) * 8
            if (kh, kw, top, left) == (2, 2, 0, 0):
                zero = out_bits.dtype.type(0)
                _pool_relu_forward_2x2(x_bits, out_bits, code.numpy(), zero, n_chunks)
            else:
                _pool_relu_forward(x_bits, kh, kw, top, left, out_bits, code.numpy(), n_chunks)
        ctx.save_for_backward(code)
        ctx.geometry = (kh, kw, top, left, height, width)
        return out.permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        (code,) = ctx.saved_tensors
        kh, kw, top, left, height, width = ctx.geometry
        grad = _nhwc(grad).contiguous()
        bits = _BITS[grad.dtype]
        with _LAUNCH:
            grad_in = torch.empty((grad.shape[0], height, width, grad.shape[3]), dtype=grad.dtype)
            _threads()
            grad_bits, grad_in_bits = grad.view(bits).numpy(), grad_in.view(bits).numpy()
            if (kh, kw, top, left) == (2, 2, 0, 0):
                _pool_relu_backward_2x2(grad_bits, code.numpy(), grad_in_bits)
            else:
                _pool_relu_backward(grad_bits, code.numpy(), kh, kw, top, left, grad_in_bits)
        return grad_in.permute(0, 3, 1, 2), None, None, None


def _threads() -> None:
    """Run numba's loops on as many threads as torch uses (``Trainer(num_threads=)``)."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


def _use_workqueue() -> None:
    """Prefer numba's own thread pool to its OpenMP one unless the user chose a layer.

    numba's OpenMP pool and torch's are separate; measured on a loaded 2-core machine, a small
    pooling call took 80 ms (wall) with the OpenMP layer, the threads of one pool waiting on
    those of the other, and 0.3 ms with numba's ``workqueue`` layer. ``workqueue`` allows one
    parallel launch at a time per process, hence :data:`_LAUNCH`.
    """
    if "NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default":
        numba.config.THREADING_LAYER = "workqueue"


def fast_path(x: Tensor, kernel: Sequence[int]) -> bool:
    """Whether :func:`pool_relu` runs the numba kernels for ``x`` (else ``max_pool2d``)."""
    return (
        x.device.type == "cpu"
        and x.dtype in _BITS
        and x.dim() == 4
        and _nhwc(x).is_contiguous()
        and kernel[0] * kernel[1] < _DROPPED
        and x.numel() > 0
        and not torch.jit.is_scripting()
    )


def pool_relu(
    x: Tensor,
    kernel: Sequence[int],
    pads: Sequence[int] = (0, 0),
    out_size: Sequence[int] | None = None,
) -> Tensor:
    """``relu(max_pool2d(x))`` with stride = window, exactly as PyTorch computes it.

    Parameters
    ----------
    x : Tensor
        ``(B, C, H, W)``; the numba kernels run for CPU bf16/float32 channels-last tensors.
    kernel : (int, int)
        Window (= stride) along H and W.
    pads : (int, int)
        Cells before the first window along H and W (TF 'same': ``tf_same_pads(...)[0]``);
        padded cells never win.
    out_size : (int, int), optional
        Output (H, W): ``ceil(size / kernel)`` for TF 'same'; by default ``size // kernel``
        (valid, floor, as ``nn.MaxPool2d``).

    Returns
    -------
    Tensor
        ``(B, C, H_out, W_out)``, channels-last when the kernels ran.
    """
    kh, kw = int(kernel[0]), int(kernel[1])
    top, left = int(pads[0]), int(pads[1])
    if out_size is None:
        out_size = (x.shape[-2] // kh, x.shape[-1] // kw)
    out_h, out_w = int(out_size[0]), int(out_size[1])
    if not fast_path(x, (kh, kw)):
        return torch.relu_(_reference_pool(x, (kh, kw), (top, left), (out_h, out_w)))
    lock_numba_cache_io()
    _use_workqueue()
    return _PoolReLU.apply(x, (kh, kw), (top, left), (out_h, out_w))


def _reference_pool(
    x: Tensor, kernel: tuple[int, int], pads: tuple[int, int], out_size: tuple[int, int]
) -> Tensor:
    """``max_pool2d`` over the same windows (−inf padding before and after as needed)."""
    (kh, kw), (top, left), (out_h, out_w) = kernel, pads, out_size
    height, width = x.shape[-2:]
    bottom = max(out_h * kh - top - height, 0)
    right = max(out_w * kw - left - width, 0)
    x = x[..., : out_h * kh - top, : out_w * kw - left]  # floor pooling drops the tail
    if top or left or bottom or right:
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
    return F.max_pool2d(x, kernel, kernel)
