"""The optimised layers compute what the straightforward ones do (outputs, gradients, learning).

The fast paths are exact rewrites: max-pool before ReLU (max commutes with ReLU), TF 'same'
pooling through max_pool2d's implicit −inf padding instead of a padded copy, in-place ReLU,
max-pool + ReLU in one pass with uint8 window codes instead of int64 indices
(:func:`merkit.models.maxpool.pool_relu`), and dropout with a cheaper mask. Each is checked
here against the textbook formulation written out with the same parameters and the same
dropout masks; the pooling bit for bit, with ties, in float32 and bf16.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from merkit.core.errors import ConfigError
from merkit.models import bn_dropout
from merkit.models.cnn import BaselineCNN
from merkit.models.layers import (
    Conv1dBlock,
    Conv2dRegular,
    Dropout,
    MaxPool2dSame,
    Res2d,
    keep_mask,
    tf_same_pads,
)
from merkit.models.maxpool import fast_path, pool_relu


def padded_pool(x: torch.Tensor, kernel: tuple[int, int]) -> torch.Tensor:
    """TF 'same' max-pool as the reference describes it: explicit −inf pad, then pool."""
    top, bottom = tf_same_pads(x.shape[-2], kernel[0], kernel[0])
    left, right = tf_same_pads(x.shape[-1], kernel[1], kernel[1])
    x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
    return F.max_pool2d(x, kernel, kernel)


def plain_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """torch's CPU dropout written out (``x · noise``, noise = mask / (1 − p) in x's dtype),
    drawing the same mask as :class:`Dropout`."""
    noise = keep_mask(x, p).to(x.dtype).div_(1 - p)
    return x * noise


def reference_cnn(model: BaselineCNN, logmel: torch.Tensor) -> torch.Tensor:
    """The baseline CNN in the paper's order: conv → ReLU → 'same' pool → BN → dropout."""
    x = logmel.unsqueeze(1)
    for block in model.trunk.blocks:
        x = padded_pool(torch.relu(block.conv(x)), block.pool.kernel_size)
        if isinstance(block.bn, torch.nn.BatchNorm2d):
            x = block.bn(x)
        if isinstance(block.dropout, Dropout) and model.training:
            x = plain_dropout(x, block.dropout.p)
    x = x.permute(0, 2, 3, 1).reshape(len(x), -1)
    if model.training:
        x = plain_dropout(x, model.dropout.p)
    x = torch.relu(model.dense(x))
    return model.classifier(x)


@pytest.mark.parametrize("kernel", [(2, 2), (3, 2), (2, 3), (3, 3)])
def test_pad_free_same_pool_equals_minus_inf_padding(kernel: tuple[int, int]) -> None:
    pool = MaxPool2dSame(kernel)
    for height in range(1, 12):
        for width in range(1, 9):
            # Small integers: many ties, so the gradient routing is checked too.
            x = torch.randint(-3, 4, (2, 3, height, width)).float().requires_grad_()
            ref = x.detach().clone().requires_grad_()
            out, want = pool(x), padded_pool(ref, kernel)
            size = (-(-height // kernel[0]), -(-width // kernel[1]))
            assert out.shape == want.shape == (2, 3, *size)
            assert torch.equal(out, want)
            grad = torch.randn_like(out)
            out.backward(grad)
            want.backward(grad)
            assert torch.equal(x.grad, ref.grad)


def _tied_input(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Small integers (ties in most windows), some −0, channels-last, requiring a gradient."""
    x = torch.randint(-3, 4, shape).to(dtype)
    x[0, 0].mul_(-1.0)  # the zeros of this plane are −0
    return x.contiguous(memory_format=torch.channels_last).requires_grad_()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("kernel", [(2, 2), (3, 2), (2, 3), (4, 4)])
def test_pool_relu_equals_torch_with_ties(dtype: torch.dtype, kernel: tuple[int, int]) -> None:
    torch.manual_seed(5)
    kh, kw = kernel
    for height in range(1, 8):  # up to a full 4-window plus a partial one
        for width in range(1, 8):
            x = _tied_input((2, 3, height, width), dtype)
            assert fast_path(x, kernel)
            # TF 'same' (padded cells never win) and valid floor pooling (tail rows dropped)
            pads = (tf_same_pads(height, kh, kh)[0], tf_same_pads(width, kw, kw)[0])
            same = (-(-height // kh), -(-width // kw))
            cases = [(pads, same, lambda r: padded_pool(r, kernel))]
            if height >= kh and width >= kw:
                cases.append(((0, 0), None, lambda r: F.max_pool2d(r, kernel)))
            for pad, size, torch_pool in cases:
                x.grad = None
                ref = x.detach().clone().requires_grad_()
                out = pool_relu(x, kernel, pad, size)
                want = torch.relu(torch_pool(ref))
                assert out.shape == want.shape and torch.equal(out, want)
                assert out.is_contiguous(memory_format=torch.channels_last)
                # integer-valued gradients: any misrouted or summed tie would show exactly
                grad = torch.randint(1, 9, want.shape).to(dtype)
                out.backward(grad)
                want.backward(grad)
                assert torch.equal(x.grad, ref.grad), (pad, height, width)


def test_pool_relu_first_maximum_wins_and_nonpositive_maxima_get_no_gradient() -> None:
    # one 2 × 2 window per plane, row-major positions 0 1 / 2 3
    x = torch.tensor(
        [[[[1.0, 2.0], [2.0, 0.0]]], [[[-1.0, -2.0], [-1.0, -3.0]]], [[[0.0, -0.0], [-1.0, 0.0]]]]
    ).to(torch.bfloat16)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    out = pool_relu(x, (2, 2))
    assert out.flatten().tolist() == [2.0, 0.0, 0.0]
    out.backward(torch.full_like(out, 5.0))
    want = torch.zeros(3, 1, 2, 2)
    want[0, 0, 0, 1] = 5.0  # the first of the two 2s; the negative and zero maxima get nothing
    assert torch.equal(x.grad.float(), want)


def test_pool_relu_falls_back_off_the_fast_path() -> None:
    x = _tied_input((2, 3, 7, 6), torch.float32).detach()
    nchw = x.contiguous().requires_grad_()
    assert not fast_path(nchw, (2, 2)) and fast_path(x, (2, 2))
    out = pool_relu(nchw, (2, 2), (0, 0), (4, 3))
    torch.testing.assert_close(out, pool_relu(x, (2, 2), (0, 0), (4, 3)), rtol=0, atol=0)
    assert torch.equal(out, torch.relu(padded_pool(nchw.detach(), (2, 2))))


def test_keep_mask_rate_layout_and_seed() -> None:
    like = torch.empty(50, 16, 40, 32).contiguous(memory_format=torch.channels_last)
    torch.manual_seed(3)
    mask = keep_mask(like, 0.1)
    assert mask.dtype == torch.bool and mask.shape == like.shape
    assert mask.stride() == like.stride()  # laid out like the activation: a contiguous product
    n = mask.numel()
    # Keep rate 0.9 within 5 standard deviations (sd = sqrt(0.09 / n) ≈ 0.00028).
    assert abs(mask.float().mean().item() - 0.9) < 5 * (0.09 / n) ** 0.5
    torch.manual_seed(3)
    assert torch.equal(keep_mask(like, 0.1), mask)
    assert not torch.equal(keep_mask(like, 0.1), mask)  # the next draw is a fresh mask
    assert keep_mask(like[:1, :1, :4, :4], 1.0).sum() == 0
    assert keep_mask(like[:1, :1, :4, :4], 0.0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_scales_like_torch_and_backpropagates_the_mask(dtype: torch.dtype) -> None:
    layer = Dropout(0.1)
    x = torch.randn(8, 4, 30, 20, dtype=dtype).requires_grad_()
    torch.manual_seed(0)
    out = layer(x)
    torch.manual_seed(0)
    kept = keep_mask(x, 0.1)
    # torch's CPU dropout multiplies by a noise tensor of x's dtype holding 1 / (1 - p).
    noise = kept.to(dtype) * torch.ones((), dtype=dtype).div_(0.9)
    assert torch.equal(out, x.detach() * noise)
    grad = torch.randn_like(out)
    out.backward(grad)
    assert torch.equal(x.grad, grad * noise)
    layer.eval()
    assert layer(x) is x


@pytest.mark.parametrize("channels_last", [False, True])
def test_baseline_cnn_matches_the_straightforward_order(channels_last: bool) -> None:
    torch.manual_seed(0)
    model = BaselineCNN(n_frames=120, n_mels=72)
    reference = copy.deepcopy(model)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model, reference = model.to(memory_format=fmt), reference.to(memory_format=fmt)
    x = torch.randn(6, 120, 72)
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    fast_opt = torch.optim.SGD(model.parameters(), lr=0.05)
    ref_opt = torch.optim.SGD(reference.parameters(), lr=0.05)
    for step in range(3):  # same learning: three SGD steps with the same dropout masks
        torch.manual_seed(100 + step)
        out = model(x)
        torch.manual_seed(100 + step)
        want = reference_cnn(reference, x)
        # float32; the rewrites are exact, the tolerance allows for summation order (batch
        # norm sums in float64 and normalises as (x - mean) * (invstd * gamma) + beta).
        torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-5)
        for opt, logits in ((fast_opt, out), (ref_opt, want)):
            opt.zero_grad()
            F.cross_entropy(logits, y).backward()
        for (name, a), b in zip(model.named_parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5, msg=name)
        fast_opt.step()
        ref_opt.step()
    for a, b in zip(model.state_dict().values(), reference.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    model.eval()
    reference.eval()
    torch.testing.assert_close(model(x), reference_cnn(reference, x), rtol=1e-4, atol=1e-5)


def _check_grads(fast: torch.nn.Module, plain, x: torch.Tensor) -> None:
    ref = copy.deepcopy(fast)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, want = fast(xa), plain(ref, xb)
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
    grad = torch.randn_like(out)
    out.backward(grad)
    want.backward(grad)
    torch.testing.assert_close(xa.grad, xb.grad, rtol=1e-5, atol=1e-6)
    for a, b in zip(fast.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5)


def test_crnn_shortchunk_samplecnn_blocks_match_the_straightforward_order() -> None:
    torch.manual_seed(1)
    _check_grads(
        Conv2dRegular(3, 8, (2, 3)),
        lambda m, x: m.pool(torch.relu(m.bn(m.conv(x)))),
        torch.randn(4, 3, 13, 17),
    )
    for c_in, c_out, stride in ((4, 8, 2), (8, 8, 1)):
        _check_grads(
            Res2d(c_in, c_out, stride),
            lambda m, x: torch.relu(
                m.bn_2(m.conv_2(torch.relu(m.bn_1(m.conv_1(x))))) + m.shortcut(x)
            ),
            torch.randn(3, c_in, 12, 10),
        )

    def conv1d_plain(m: Conv1dBlock, x: torch.Tensor) -> torch.Tensor:
        before, after = tf_same_pads(x.shape[-1], m.kernel_size, m.stride)
        return m.pool(torch.relu(m.bn(m.conv(F.pad(x, (before, after))))))

    for kernel, stride, pool in ((3, 3, 1), (3, 1, 3)):
        _check_grads(Conv1dBlock(2, 6, kernel, stride, pool), conv1d_plain, torch.randn(3, 2, 81))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("p", [0.0, 0.1])
def test_batch_norm_dropout_equals_bn_then_dropout(dtype: torch.dtype, p: float) -> None:
    torch.manual_seed(7)
    bn = torch.nn.BatchNorm2d(5, eps=1e-3, momentum=0.01)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-1, 1)
    ref = copy.deepcopy(bn)
    # mean far from 0 relative to the spread: the variance must not cancel
    x = (torch.randn(4, 5, 9, 7) * 0.5 + 30).to(dtype).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    xr = x.detach().clone().requires_grad_()
    assert bn_dropout.fast_path(x, bn)
    torch.manual_seed(11)
    out = bn_dropout.batch_norm_dropout(x, bn, p)
    torch.manual_seed(11)  # the fused op draws the mask Dropout/keep_mask would draw
    want = plain_dropout(ref(xr), p) if p else ref(xr)
    assert out.dtype == dtype and out.is_contiguous(memory_format=torch.channels_last)
    if p:
        assert torch.equal(out == 0, want == 0)
    # float32: a few ulps (sums in float64, another order); bf16: one bf16 rounding step
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == torch.float32 else {"rtol": 0.01, "atol": 0.02}
    torch.testing.assert_close(out, want, **tol)
    grad = torch.randn_like(out)
    out.backward(grad)
    want.backward(grad)
    torch.testing.assert_close(x.grad.float(), xr.grad.float(), **tol)
    for a, b in ((bn.weight.grad, ref.weight.grad), (bn.bias.grad, ref.bias.grad)):
        torch.testing.assert_close(a, b, rtol=1e-4 if dtype == torch.float32 else 0.02, atol=1e-4)
    for name, value in bn.state_dict().items():  # running mean/var (unbiased), batch count
        torch.testing.assert_close(value, ref.state_dict()[name], rtol=1e-5, atol=1e-6, msg=name)
    assert bn.num_batches_tracked.item() == 1


def test_batch_norm_dropout_falls_back_off_the_fast_path() -> None:
    bn = torch.nn.BatchNorm2d(3)
    x = torch.randn(2, 3, 4, 4)
    assert not bn_dropout.fast_path(x.contiguous(memory_format=torch.channels_last)[:, :2], bn)
    assert not bn_dropout.fast_path(x, bn)  # NCHW
    assert bn_dropout.fast_path(x.contiguous(memory_format=torch.channels_last), bn)
    assert not bn_dropout.fast_path(x.contiguous(memory_format=torch.channels_last), bn.eval())
    with pytest.raises(ConfigError, match="dropout rate"):
        bn_dropout.batch_norm_dropout(x.contiguous(memory_format=torch.channels_last), bn, 1.0)


def test_hash_keep_mask_is_a_function_of_seed_and_position() -> None:
    a = bn_dropout.hash_keep_mask((300, 1000), 0.25, seed=42)
    assert abs(a.mean() - 0.75) < 5 * (0.75 * 0.25 / a.size) ** 0.5
    assert np.array_equal(a, bn_dropout.hash_keep_mask((300, 1000), 0.25, seed=42))
    # element k depends on (seed, k) only: a shorter draw is a prefix of a longer one
    assert np.array_equal(a.ravel()[:777], bn_dropout.hash_keep_mask((777,), 0.25, seed=42))
    assert not np.array_equal(a, bn_dropout.hash_keep_mask((300, 1000), 0.25, seed=43))
    # neighbouring positions are uncorrelated
    flat = a.ravel().astype(float)
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.01
