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

The result is exactly PyTorch's: values are compared as sign-magnitude integers of their bit
patterns (the order of the floats, except that −0 sorts below +0 and NaN is a number, see
below), the first maximum in row-major window order wins as in PyTorch's CPU kernel, and a
maximum ≤ 0 gives 0 with no gradient (``relu``'s gradient at 0 is 0, so which zero won does
not matter). Windows follow TF ``padding='same'`` (``pads`` before, the rest after, padded
cells never win) or valid floor pooling (rows and columns past the last window get gradient 0).
Positive NaNs win their window like PyTorch's; a NaN with the sign bit set loses to the other
values, where PyTorch would return it — a training step that meets a NaN is lost either way.
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

from merkit.numba_cache import lock_numba_cache_io

_BITS = {torch.bfloat16: torch.int16, torch.float32: torch.int32}
"""Float dtype → the integer dtype its bits are compared as."""

_LAUNCH = threading.Lock()
"""One kernel launch at a time in this process (numba's workqueue layer is not reentrant)."""

_DROPPED = 255
"""Code of an output element that the ReLU zeroes (no gradient flows to its window)."""


@njit(parallel=True, cache=True, nogil=True)
def _pool_relu_forward(
    x, kh, kw, top, left, out, code, sign_shift, magnitude, n_chunks
):  # pragma: no cover
    batch, height, width, channels = x.shape
    _, out_h, out_w, _ = out.shape
    rows = batch * out_h
    step = -(-rows // n_chunks)
    # Scratch rows allocated once per chunk of output rows, not per row: numba allocates
    # through Python's raw allocator (a malloc, and a GIL round trip while tracemalloc runs).
    for chunk in prange(n_chunks):
        best = np.empty((out_w, channels), np.int64)
        bits = np.empty((out_w, channels), x.dtype)
        arg = np.empty((out_w, channels), np.uint8)
        for row_index in range(chunk * step, min(rows, (chunk + 1) * step)):
            b, i = row_index // out_h, row_index % out_h
            for j in range(out_w):
                for c in range(channels):
                    best[j, c] = -(2**62)
            for di in range(kh):
                r = i * kh - top + di
                if r < 0 or r >= height:
                    continue
                for col in range(width):
                    j = (col + left) // kw
                    if j >= out_w:
                        break
                    position = di * kw + col + left - j * kw
                    for c in range(channels):
                        v = x[b, r, col, c]
                        key = np.int64(v) ^ ((np.int64(v) >> sign_shift) & magnitude)
                        if key > best[j, c]:  # strictly greater: the first maximum wins
                            best[j, c] = key
                            bits[j, c] = v
                            arg[j, c] = position
            for j in range(out_w):
                for c in range(channels):
                    if best[j, c] > 0:  # key 0 is +0; −0 and negatives are below
                        out[b, i, j, c] = bits[j, c]
                        code[b, i, j, c] = arg[j, c]
                    else:
                        out[b, i, j, c] = 0
                        code[b, i, j, c] = _DROPPED


@njit(parallel=True, cache=True, nogil=True)
def _pool_relu_backward(grad, code, kh, kw, top, left, grad_in):  # pragma: no cover
    batch, height, width, channels = grad_in.shape
    _, out_h, out_w, _ = grad.shape
    for row_index in prange(batch * height):
        b, r = row_index // height, row_index % height
        i = (r + top) // kh
        di = r + top - i * kh
        for col in range(width):
            j = (col + left) // kw
            if i >= out_h or j >= out_w:  # past the last window of a floor pooling
                for c in range(channels):
                    grad_in[b, r, col, c] = 0
                continue
            position = di * kw + col + left - j * kw
            for c in range(channels):
                grad_in[b, r, col, c] = grad[b, i, j, c] if code[b, i, j, c] == position else 0


def _nhwc(x: Tensor) -> Tensor:
    """``x`` as its (B, H, W, C) channels-last view."""
    return x.permute(0, 2, 3, 1)


def _sign_args(dtype: torch.dtype) -> tuple[int, int]:
    nbits = torch.finfo(dtype).bits
    return nbits - 1, 2 ** (nbits - 1) - 1


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
            _pool_relu_forward(
                _nhwc(x).view(bits).numpy(),
                kh,
                kw,
                top,
                left,
                out.view(bits).numpy(),
                code.numpy(),
                *_sign_args(x.dtype),
                max(1, torch.get_num_threads()) * 8,
            )
        ctx.save_for_backward(code)
        ctx.geometry = (kh, kw, top, left, height, width)
        return out.permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def]
        (code,) = ctx.saved_tensors
        kh, kw, top, left, height, width = ctx.geometry
        grad = _nhwc(grad).contiguous()
        grad_in = torch.empty((grad.shape[0], height, width, grad.shape[3]), dtype=grad.dtype)
        bits = _BITS[grad.dtype]
        with _LAUNCH:
            _threads()
            _pool_relu_backward(
                grad.view(bits).numpy(), code.numpy(), kh, kw, top, left, grad_in.view(bits).numpy()
            )
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
