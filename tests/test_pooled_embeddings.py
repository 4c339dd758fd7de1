"""The crnn-conv representations: pinned checkpoints found in $MERKIT_PRETRAINED, same values
as the CRNN embedder on the cached won-logmel input."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import PRETRAINED
from merkit.errors import ConfigError
from merkit.representations import get_representation
from merkit.transfer.pooled import WON_CHECKPOINTS, crnn_conv_representation, pretrained_path

needs_crnn = pytest.mark.skipif(
    not all((PRETRAINED / name).is_file() for name, _ in WON_CHECKPOINTS),
    reason=f"Won's CRNN checkpoints are not in {PRETRAINED}",
)


def test_missing_checkpoint_names_the_folder_and_the_variable(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MERKIT_PRETRAINED", str(tmp_path))
    with pytest.raises(ConfigError, match=r"crnn_mtat.pth not found in .*MERKIT_PRETRAINED"):
        pretrained_path("crnn_mtat.pth")


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
