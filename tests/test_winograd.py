"""Winograd convolutions for the CRNN taggers (issue 30: per-file CPU).

``precision="winograd"`` runs the CRNN's conv blocks 2-4 through NNPACK's Winograd float32
convolutions: not bit-identical to the oneDNN blocks, so the tests bound the difference, check
the pooling shortcut is exact, and check the predictor only uses it when asked.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from conftest import PRETRAINED
from merkit.core.errors import ConfigError
from merkit.transfer import won_crnn
from merkit.transfer.embedders import CRNNEmbedding
from merkit.transfer.pooled import _stages

needs_nnpack = pytest.mark.skipif(
    not won_crnn.nnpack_available(), reason="this torch has no NNPACK"
)


def _network(seed: int = 0) -> won_crnn.WonCRNN:
    """A CRNN with random weights and non-trivial batch-norm statistics, in eval mode."""
    torch.manual_seed(seed)
    model = won_crnn.WonCRNN()
    for block in (model.layer1, model.layer2, model.layer3, model.layer4):
        c = block.bn.num_features
        block.bn.running_mean.copy_(torch.randn(c) * 0.1)
        block.bn.running_var.copy_(torch.rand(c) + 0.5)
        with torch.no_grad():
            block.bn.weight.copy_(torch.rand(c) + 0.5)
            block.bn.bias.copy_(torch.randn(c) * 0.1)
    return model.eval()


@pytest.mark.parametrize("k", [2, 3, 4])
def test_reshape_pooling_equals_max_pool2d_bit_for_bit(k: int) -> None:
    y = torch.randn(2, 5, 4 * k + 1, 7 * k + 2)  # sizes not multiples of k: floor mode
    assert torch.equal(won_crnn._pool_max(y, k), nn.functional.max_pool2d(y, k))


@pytest.mark.parametrize("width", [5, 63, 64, 129, 1813])
def test_one_channel_conv_by_chunked_products_equals_conv_pool_relu(width: int) -> None:
    torch.manual_seed(width)
    conv = nn.Conv2d(1, 8, 3, padding=1)
    x = torch.randn(12, width)
    with torch.no_grad():
        expected = torch.relu(nn.functional.max_pool2d(conv(x[None, None]), 2))
        got = won_crnn._one_channel_conv_pool(x, conv.weight.reshape(8, 9), conv.bias[:, None], 2)
    assert got.shape == expected.shape == (1, 8, 6, width // 2)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@needs_nnpack
def test_winograd_blocks_agree_with_the_eager_network_within_float_rounding() -> None:
    model = _network()
    x = torch.randn(2, 1, 96, 1000) * 3
    layers = (model.layer1, model.layer2, model.layer3, model.layer4)
    with torch.inference_mode():
        eager = model.layer4(model.layer3(model.layer2(model.layer1(x))))
        wino = won_crnn.winograd_conv_blocks(layers)(x)  # type: ignore[misc]
        direct = won_crnn.inference_conv_blocks(layers)(x)  # type: ignore[misc]
    assert wino.shape == eager.shape == (2, 128, 1, 10)
    scale = float(eager.abs().max())
    assert scale > 0.1  # a network whose maps are not all zero after the ReLUs
    np.testing.assert_allclose(wino, eager, rtol=0, atol=1e-4 * scale)
    # a different algorithm: not the same bits as oneDNN (else the switch would be pointless)
    assert not torch.equal(wino, direct)


@needs_nnpack
def test_winograd_stages_compose_to_the_whole_blocks() -> None:
    model = _network(1)
    x = torch.randn(1, 1, 96, 600)
    run = _stages(model, "winograd")
    with torch.inference_mode():
        whole = run(x, 0, 4)
        split = run(run(x, 0, 2), 2, 4)
        blocks = won_crnn.winograd_conv_blocks(
            (model.layer1, model.layer2, model.layer3, model.layer4)
        )(x)  # type: ignore[misc]
    assert torch.equal(whole, split)
    assert torch.equal(whole, blocks)


def test_a_network_that_is_not_3x3_stride_1_gets_no_winograd_steps() -> None:
    model = _network()
    model.layer2.conv = nn.Conv2d(64, 128, 3, padding=1, stride=2).eval()
    assert won_crnn.winograd_conv_steps((model.layer1, model.layer2)) is None


def test_cli_refuses_an_unknown_crnn_precision_in_one_line(tmp_path) -> None:
    from typer.testing import CliRunner

    from merkit.cli import app

    (tmp_path / "a.wav").write_bytes(b"")
    result = CliRunner().invoke(
        app, ["predict", str(tmp_path / "a.wav"), "--crnn-precision", "fp8"]
    )
    assert result.exit_code != 0
    assert "--crnn-precision must be one of float32, bf16, winograd" in result.output
    assert "Traceback" not in result.output


def test_precision_setting_is_checked_and_keys_the_cache() -> None:
    with pytest.raises(ConfigError, match="winograd"):
        CRNNEmbedding(precision="fp8").validate_settings()
    assert CRNNEmbedding(precision="winograd")._settings() == {
        "output": "conv",
        "precision": "winograd",
    }
    assert CRNNEmbedding(precision="float32")._settings() == {"output": "conv"}


@pytest.mark.skipif(not (PRETRAINED / "crnn_mtat.pth").exists(), reason="CRNN checkpoints absent")
def test_predictor_uses_winograd_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERKIT_PRETRAINED", str(PRETRAINED))
    from merkit.product.predict import load_model

    stored = load_model("default")
    asked = load_model("default", crnn_precision="winograd")
    crnn = {s.name: s.params.get("precision") for s in stored.manifest.inputs}
    assert crnn["crnn-tags3-canon"] == "bf16"  # what the shipped model stored
    assert {s.name: s.params.get("precision") for s in stored._computed_inputs()} == crnn
    computed = {s.name: s.params.get("precision") for s in asked._computed_inputs()}
    assert computed == {"own-features-canon": None, "crnn-tags3-canon": "winograd"}
    with pytest.raises(ConfigError, match="crnn_precision"):
        load_model("default", crnn_precision="fp8")
    if not won_crnn.nnpack_available():
        pytest.skip("this torch has no NNPACK")
    rng = np.random.default_rng(0)
    t = np.arange(16_000 * 30) / 16_000
    y = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sign(np.sin(2 * np.pi * 2 * t))) / 2).astype(
        np.float32
    ) + 0.01 * rng.standard_normal(t.size).astype(np.float32)
    a, b = stored.predict(y, sr=16_000), asked.predict(y, sr=16_000)
    pa = np.array(list(a.probabilities.values()))
    pb = np.array(list(b.probabilities.values()))
    np.testing.assert_allclose(pb, pa, rtol=0, atol=1e-4)
    assert a.quadrant == b.quadrant
