"""The pre-trained networks' inputs and outputs as registered representations.

Registered here, in the transfer package, beside the networks (the representation registry knows
no network): Won's CRNN log-mel (``won-logmel``), the pooled conv blocks and tag log-odds of his
three taggers (``crnn-conv-*``, ``crnn-conv3``, ``crnn-tags3``, ``crnn-tags3-canon``: the default
model's second input), the artist CNN's log-mel chunks and OpenL3 frames. Importing this module
registers them; :mod:`merkit.methods` and :mod:`merkit.product.model_dir` do, so every name a
method or a model manifest can hold is known there. Heavy modules (torch, h5py) are imported only
when a representation is computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from merkit.representations.registry import (
    Representation,
    register_canonical,
    register_representation,
)
from merkit.transfer.openl3_frames import openl3_frames
from merkit.transfer.pooled import WON_CHECKPOINTS, crnn_conv_batch, crnn_conv_representation


def won_logmel_representation(
    y: np.ndarray, sr: int, *, seed: int = 0, **params: Any
) -> np.ndarray:
    """Registry adapter: :func:`merkit.transfer.won_crnn.won_logmel_representation`."""
    from merkit.transfer import won_crnn

    return won_crnn.won_logmel_representation(y, sr, seed=seed, **params)


def artist_chunks_representation(y: np.ndarray, sr: int, *, seed: int = 0) -> np.ndarray:
    """Registry adapter: :func:`merkit.transfer.artist_cnn.artist_chunks_representation`."""
    from merkit.transfer import artist_cnn

    return artist_cnn.artist_chunks_representation(y, sr, seed=seed)


# Output shapes, ``shape(sr, params)``: module-level functions so that an entry pickles to workers.
def won_logmel_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    crop = params.get("crop_samples")
    return (None if crop is None else 1 + int(crop) // 256, 96)


def artist_chunks_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    return (10, 129, 128)


def openl3_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    return (None, int(params.get("embedding_size", 512)))


def crnn_conv_shape(sr: int, params: Mapping[str, Any]) -> tuple[int | None, ...]:
    # A module-level function (not a lambda), so the representation pickles to workers.
    width = {"conv": 256, "gru": 32, "tags": 50}[params["output"]]
    return (width * len(params["checkpoints"]),)


register_representation(
    Representation(
        name="won-logmel",
        fn=won_logmel_representation,
        params={"crop_samples": 464_000},
        # dB values: float16's resolution (< 0.06 dB above -100 dB) is far below model noise.
        dtype="float16",
        shape=won_logmel_shape,
        description="1813 x 96 dB mel of Won's CRNN (16 kHz, n_fft 512, hop 256, HTK, 8 kHz)",
    )
)


for _file, _sha in WON_CHECKPOINTS:
    _source = _file.removeprefix("crnn_").removesuffix(".pth")
    register_representation(
        Representation(
            name=f"crnn-conv-{_source}",
            fn=crnn_conv_representation,
            batch_fn=crnn_conv_batch,
            params={"checkpoints": [[_file, _sha]], "output": "conv"},
            shape=crnn_conv_shape,
            description=f"256 values: conv-block mean+std of Won's {_source.upper()} CRNN "
            "(checkpoint in $MERKIT_PRETRAINED)",
        )
    )
register_representation(
    Representation(
        name="crnn-conv3",
        fn=crnn_conv_representation,
        batch_fn=crnn_conv_batch,
        params={"checkpoints": [list(c) for c in WON_CHECKPOINTS], "output": "conv"},
        shape=crnn_conv_shape,
        description="768 values: conv-block mean+std of Won's MTAT, MSD, Jamendo CRNNs "
        "(checkpoints in $MERKIT_PRETRAINED)",
    )
)
register_representation(
    Representation(
        name="crnn-tags3",
        fn=crnn_conv_representation,
        batch_fn=crnn_conv_batch,
        params={
            "checkpoints": [list(c) for c in WON_CHECKPOINTS],
            "output": "tags",
            "log_odds": True,
            # bf16 conv blocks: 0.05 instead of 0.12 s of CPU per tagger and clip (native bf16).
            "precision": "bf16",
        },
        version="2",  # version 1: float32 conv blocks
        shape=crnn_conv_shape,
        description="150 values: log-odds of the 50 tags of Won's MTAT, MSD, Jamendo CRNNs "
        "(checkpoints in $MERKIT_PRETRAINED or shipped)",
    )
)

register_canonical("crnn-tags3")

register_representation(
    Representation(
        name="artist-chunks",
        fn=artist_chunks_representation,
        sr=22_050,
        dtype="float16",
        shape=artist_chunks_shape,
        description="10 x 129 x 128 normalised log-mel chunks of the artist CNN (22.05 kHz)",
    )
)

register_representation(
    Representation(
        name="openl3",
        fn=openl3_frames,
        params={"input_repr": "mel256", "content_type": "music", "embedding_size": 512,
                "hop_size": 0.1},
        dtype="float16",
        shape=openl3_shape,
        description="frames x 512 OpenL3 music embeddings (mel256, hop 0.1 s; optional openl3)",
    )
)  # fmt: skip
