"""The crnn-conv representations: pinned checkpoints found in $MERKIT_PRETRAINED, same values
as the CRNN embedder on the cached won-logmel input."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import PRETRAINED
from merkit.core.errors import ConfigError
from merkit.representations.registry import get_representation
from merkit.transfer.pooled import (
    WON_CHECKPOINTS,
    crnn_conv_representation,
    pretrained_path,
)

needs_crnn = pytest.mark.skipif(
    not all((PRETRAINED / name).is_file() for name, _ in WON_CHECKPOINTS),
    reason=f"Won's CRNN checkpoints are not in {PRETRAINED}",
)


def test_missing_checkpoint_names_the_folder_the_source_and_the_variable(
    tmp_path, monkeypatch
) -> None:
    from merkit.transfer.pooled import missing_checkpoints

    monkeypatch.setenv("MERKIT_PRETRAINED", str(tmp_path))
    message = r"crnn_msd.pth not found in .*merkit models download.*MERKIT_PRETRAINED"
    with pytest.raises(ConfigError, match=message):
        pretrained_path("crnn_msd.pth")
    assert missing_checkpoints(WON_CHECKPOINTS) == [
        "crnn_mtat.pth",
        "crnn_msd.pth",
        "crnn_jamendo.pth",
    ]
    (tmp_path / "crnn_msd.pth").write_bytes(b"a user's copy")  # the SHA-256 pin checks it later
    assert pretrained_path("crnn_msd.pth") == tmp_path / "crnn_msd.pth"
    assert missing_checkpoints(WON_CHECKPOINTS) == ["crnn_mtat.pth", "crnn_jamendo.pth"]


def test_registered_shapes() -> None:
    assert get_representation("crnn-conv3").shape(
        16_000, get_representation("crnn-conv3").params
    ) == (768,)
    mtat = get_representation("crnn-conv-mtat")
    assert mtat.params["checkpoints"] == [list(WON_CHECKPOINTS[0])]
    assert mtat.shape(16_000, mtat.params) == (256,)


@needs_crnn
def test_conv3_is_the_three_embeddings_of_the_cached_input(tmp_path, monkeypatch) -> None:
    from merkit.transfer.embedders import CRNNEmbedding
    from merkit.transfer.won_crnn import won_logmel

    monkeypatch.setenv("MERKIT_PRETRAINED", str(PRETRAINED))
    monkeypatch.setenv("MERKIT_CACHE", str(tmp_path))
    y = np.random.default_rng(0).standard_normal(16_000 * 4).astype(np.float32) * 0.1
    value = crnn_conv_representation(y, 16_000)
    assert value.shape == (768,) and value.dtype == np.float32
    # What the won-logmel input path feeds the network: float16-stored dB mels.
    logmel = won_logmel(y).astype(np.float16).astype(np.float32)[None]
    for i, (name, sha) in enumerate(WON_CHECKPOINTS):
        expected = CRNNEmbedding(str(PRETRAINED / name), sha256=sha, cache=False).transform(logmel)
        np.testing.assert_allclose(
            value[256 * i : 256 * (i + 1)], expected[0], rtol=1e-5, atol=1e-6
        )
    # The checkpoints differ, so the three parts do too.
    assert not np.allclose(value[:256], value[256:512])


def test_tags3_is_registered_with_150_values() -> None:
    rep = get_representation("crnn-tags3")
    assert rep.params["output"] == "tags" and rep.params["log_odds"] is True
    assert rep.shape(16_000, rep.params) == (150,)


@needs_crnn
def test_unknown_precision_is_a_config_error() -> None:
    from merkit.transfer.embedders import CRNNEmbedding

    with pytest.raises(ConfigError, match="'precision' must be one of float32, bf16, winograd"):
        CRNNEmbedding(str(PRETRAINED / "crnn_msd.pth"), precision="fp16").fit(None)


@needs_crnn
def test_tags3_are_the_clipped_log_odds_of_the_tag_probabilities(tmp_path, monkeypatch) -> None:
    from merkit.transfer.embedders import CRNNEmbedding
    from merkit.transfer.pooled import LOG_ODDS_CLIP, LOG_ODDS_LIMIT
    from merkit.transfer.won_crnn import won_logmel

    monkeypatch.setenv("MERKIT_CACHE", str(tmp_path))
    y = np.random.default_rng(1).standard_normal(16_000 * 4).astype(np.float32) * 0.1
    params = get_representation("crnn-tags3").params
    value = crnn_conv_representation(y, 16_000, **params)
    assert value.shape == (150,) and np.all(np.abs(value) <= LOG_ODDS_LIMIT + 1e-4)
    logmel = won_logmel(y).astype(np.float16).astype(np.float32)[None]
    for i, (name, sha) in enumerate(WON_CHECKPOINTS):
        path = str(PRETRAINED / name)
        bf16 = CRNNEmbedding(path, sha, output="tags", precision="bf16", cache=False)
        tags = bf16.transform(logmel)[0]
        p = np.clip(tags.astype(np.float64), LOG_ODDS_CLIP, 1 - LOG_ODDS_CLIP)
        np.testing.assert_allclose(value[50 * i : 50 * (i + 1)], np.log(p / (1 - p)), atol=1e-4)
        # bfloat16 conv blocks change the tag probabilities only slightly.
        fp32 = CRNNEmbedding(path, sha, output="tags", cache=False).transform(logmel)[0]
        assert np.abs(tags - fp32).max() < 1.5e-2


@needs_crnn
@pytest.mark.parametrize("shape", [(1, 1813, 96), (3, 400, 96)])
def test_fused_blocks_compute_what_the_eager_network_does(shape: tuple[int, ...]) -> None:
    import torch

    from merkit.transfer.embedders import _fused_blocks, _network

    name, sha = WON_CHECKPOINTS[1]
    model = _network("crnn", str(PRETRAINED / name), sha)
    blocks = _fused_blocks(model)
    if blocks is None:
        pytest.skip("this torch has no oneDNN: the eager blocks are used")
    assert _fused_blocks(model) is blocks  # built once per network
    x = torch.from_numpy(np.random.default_rng(2).normal(-20, 15, shape).astype(np.float32))
    with torch.inference_mode():
        fused = model.conv_maps(x, blocks)
        eager = model.conv_maps(x)
    assert fused.shape == eager.shape == (shape[0], 128, shape[1] // 96)
    np.testing.assert_allclose(fused.numpy(), eager.numpy(), rtol=1e-4, atol=1e-5)
    # bfloat16 blocks (float32 where the CPU has no native bfloat16): close, not equal
    with torch.inference_mode():
        half = model.conv_maps(x, _fused_blocks(model, "bf16"))
    assert np.abs(half.numpy() - eager.numpy()).max() < 0.03 * np.abs(eager.numpy()).max()
