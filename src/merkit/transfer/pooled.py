"""Pooled CRNN embeddings as a representation of audio: one vector per song, cached per song.

``crnn-conv3`` concatenates the last conv block's 128 channels, pooled over time by mean and
standard deviation, of Won et al.'s MTAT, MSD and MTG-Jamendo CRNN taggers (3 × 256 = 768 values).
Measured on 4QAED (issue 16), these pooled conv blocks carry the emotion signal far better than the
taggers' 32-d GRU state, and the three checkpoints together beat any one. ``crnn-tags3`` reads the
same three forward passes' 50 tag probabilities each, as log-odds (150 values): weak alone, but
beside merkit's own features in one SVM the best audio-only input measured here.

Being a representation (computed from a song's audio and cached under the song's audio key), it is
read as a small ``(songs, 768)`` array by any method, instead of every fold hashing and embedding
the 1813 × 96 log-mels again. The checkpoints are pinned by SHA-256 (part of the cache key) and
found by file name in the folder named by ``$MERKIT_PRETRAINED`` (default
``~/.cache/merkit/pretrained``), where ``merkit models download`` puts them
(:mod:`merkit.transfer.weights`); merkit ships no third-party weights.

The log-mel is rounded to float16 before the network, exactly as the cached ``won-logmel`` input
that the other CRNN methods read, so both paths give the same embedding of a song.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from merkit.core.errors import ConfigError

PRETRAINED_ENV = "MERKIT_PRETRAINED"
"""Environment variable naming the folder of pre-trained checkpoints."""

WON_CHECKPOINTS: tuple[tuple[str, str], ...] = (
    ("crnn_mtat.pth", "cd22fc70cafd06f8f2bfc7dd795abccb1f4b50d5b09094c39ad100baf87475a3"),
    ("crnn_msd.pth", "ebb99855ed0c83f38845db9cfb383dd6fc70938bc58701dcb66e18af9ee7fbea"),
    ("crnn_jamendo.pth", "0a558989c0793f488cb677d188464c91f47c007f7c70473230e55537ca598215"),
)
"""Won et al.'s published CRNN taggers (MIT licence): file name and SHA-256 of each."""


def tags3_names() -> tuple[str, ...]:
    """The 150 column names of ``crnn-tags3`` / ``crnn-tags3-canon``: ``mtat:<tag>``,
    ``msd:<tag>``, ``jamendo:<tag>``, in :data:`WON_CHECKPOINTS`' order."""
    from merkit.transfer.won_crnn import JAMENDO_TAGS, MSD_TAGS, MTAT_TAGS

    return tuple(
        f"{prefix}:{tag}"
        for prefix, tags in (("mtat", MTAT_TAGS), ("msd", MSD_TAGS), ("jamendo", JAMENDO_TAGS))
        for tag in tags
    )


CRNN_SOURCE = (
    "https://github.com/minzwon/sota-music-tagging-models (models/<dataset>/crnn/best_model.pth)"
)
"""Where Won's CRNN checkpoints come from (MIT licence); ``merkit models download`` fetches them."""

DOWNLOAD_HINT = (
    "run 'merkit models download' (offline: 'merkit models download --from DIR', DIR holding "
    f"the files), or set ${PRETRAINED_ENV} to the folder that holds them"
)
"""How to get the CRNN checkpoints, for messages."""

LOG_ODDS_CLIP = 1e-4
"""Tag probabilities are clipped to [1e-4, 1 - 1e-4] before log-odds (±9.21)."""
LOG_ODDS_LIMIT = float(np.log((1 - LOG_ODDS_CLIP) / LOG_ODDS_CLIP))


def pretrained_dir() -> Path:
    """``$MERKIT_PRETRAINED``, else ``~/.cache/merkit/pretrained`` (the user's own folder)."""
    env = os.environ.get(PRETRAINED_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "merkit" / "pretrained"


def pretrained_path(file_name: str) -> Path:
    """The checkpoint ``file_name`` in :func:`pretrained_dir`; ConfigError saying where it was
    looked for, where it comes from and how to point merkit at it."""
    path = pretrained_dir() / file_name
    if not path.is_file():
        raise ConfigError(
            f"pre-trained checkpoint {file_name} not found in {path.parent}: {DOWNLOAD_HINT}"
        )
    return path


def missing_checkpoints(checkpoints: Sequence[Sequence[str]]) -> list[str]:
    """The file names of ``checkpoints`` ((name, sha256) pairs) absent from the folder."""
    return [str(c[0]) for c in checkpoints if not (pretrained_dir() / str(c[0])).is_file()]


def crnn_conv_representation(
    y: np.ndarray,
    sr: int,
    *,
    seed: int = 0,
    checkpoints: Sequence[Sequence[str]] = WON_CHECKPOINTS,
    output: str = "conv",
    log_odds: bool = False,
    precision: str = "float32",
) -> np.ndarray:
    """Pooled embeddings of each checkpoint in ``checkpoints`` ((file name, sha256) pairs),
    concatenated in that order (``seed`` unused; ``sr`` must be 16 kHz).

    ``output="tags"`` gives each tagger's 50 tag probabilities; ``log_odds=True`` turns them into
    log-odds, clipped to ±:data:`LOG_ODDS_LIMIT`, so that a standardised RBF SVM sees tags near
    0 or 1 spread out rather than squashed. ``precision="bf16"`` runs the networks under bfloat16
    autocast instead of the frozen float32 pass (:class:`~merkit.transfer.embedders.CRNNEmbedding`).
    """
    return crnn_conv_batch(
        [y], sr, checkpoints=checkpoints, output=output, log_odds=log_odds, precision=precision
    )[0]


def crnn_conv_batch(
    ys: Sequence[np.ndarray],
    sr: int,
    *,
    seeds: Sequence[int] | None = None,
    checkpoints: Sequence[Sequence[str]] = WON_CHECKPOINTS,
    output: str = "conv",
    log_odds: bool = False,
    precision: str = "float32",
) -> list[np.ndarray]:
    """:func:`crnn_conv_representation` of several songs, each network run once on all of them
    (the representation's ``batch_fn``; ``seeds`` unused).

    Every song gets the fixed-length front end (:data:`~merkit.transfer.won_crnn.CROP_SAMPLES`),
    so the log-mels stack; a batch of one is exactly :func:`crnn_conv_representation`, a larger
    one equal to it up to float rounding (the convolutions' order of summation may change with
    the batch). Memory grows with ``len(ys)``: the caller chunks.
    """
    from merkit.transfer.won_crnn import won_logmel_representation

    logmels = np.stack(
        [won_logmel_representation(y, sr).astype(np.float16).astype(np.float32) for y in ys]
    )
    return list(
        crnn_outputs(
            logmels, checkpoints=checkpoints, output=output, log_odds=log_odds, precision=precision
        )
    )


def crnn_outputs(
    logmels: np.ndarray,
    *,
    checkpoints: Sequence[Sequence[str]] = WON_CHECKPOINTS,
    output: str = "conv",
    log_odds: bool = False,
    precision: str = "float32",
) -> np.ndarray:
    """``(n, width)`` float32 outputs of the checkpoints, concatenated, for ``(n, frames, 96)``
    float16-rounded dB mels (the step after the front end of :func:`crnn_conv_batch`)."""
    from merkit.transfer.embedders import CRNNEmbedding

    parts = []
    for file_name, sha256 in checkpoints:
        # No per-row disk cache: the song-level representation is what gets cached.
        embedder = CRNNEmbedding(
            str(pretrained_path(file_name)),
            sha256=sha256,
            output=output,  # type: ignore[arg-type]
            cache=False,
            precision=precision,
            batch_size=max(1, len(logmels)),
        )
        parts.append(embedder.transform(logmels))
    value = np.concatenate(parts, axis=1).astype(np.float64)
    if log_odds:
        p = np.clip(value, LOG_ODDS_CLIP, 1.0 - LOG_ODDS_CLIP)
        value = np.log(p) - np.log1p(-p)
    return value.astype(np.float32)


POOLS = (2, 3, 4, 4)
"""Time pooling of each of the CRNN's conv blocks (96 frames per output step in all)."""

SPAN_SPLIT = 2
"""Conv blocks run once over a span of windows (the first two: ~80 % of the conv FLOPs); the
others, and the GRU, run per window on the span's slice (aligned to 2 * 3 = 6 frames)."""


def _stages(model: Any, precision: str) -> Any:
    """The network's conv blocks as ``run(x, first, last)``: oneDNN fused (as
    :func:`~merkit.transfer.won_crnn.inference_conv_blocks`) where available, else eager;
    ``precision="winograd"``: :func:`~merkit.transfer.won_crnn.winograd_conv_steps`."""
    import torch

    from merkit.training.runtime import cpu_has_native_bf16
    from merkit.transfer.embedders import _FUSED

    if precision == "bf16" and not cpu_has_native_bf16():
        precision = "float32"
    layers = (model.layer1, model.layer2, model.layer3, model.layer4)  # type: ignore[attr-defined]
    built = _FUSED.setdefault(model, {})  # type: ignore[arg-type]
    key = f"stages-{precision}"
    if key not in built and precision == "winograd":
        from merkit.transfer.won_crnn import winograd_conv_steps

        steps = winograd_conv_steps(layers)  # type: ignore[arg-type]
        if steps is not None:
            built[key] = (steps, "steps")
        else:  # no NNPACK here: the float32 blocks
            return _stages(model, "float32")
    if key not in built:
        if torch.backends.mkldnn.is_available():
            import copy
            import warnings

            from torch.nn.utils.fusion import fuse_conv_bn_eval

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                from torch.utils.mkldnn import to_mkldnn
            dtype = torch.bfloat16 if precision == "bf16" else torch.float32
            fused = []
            for b in layers:
                conv = fuse_conv_bn_eval(copy.deepcopy(b.conv), b.bn)
                fused.append((to_mkldnn(conv, dtype), b.pool.kernel_size))
            built[key] = (fused, dtype)
        else:
            built[key] = (None, None)
    fused, dtype = built[key]

    def run(x: torch.Tensor, first: int, last: int) -> torch.Tensor:
        if dtype == "steps":  # winograd: dense tensors between the steps
            for step in fused[first:last]:
                x = step(x)
            return x
        if fused is None:
            for block in layers[first:last]:  # type: ignore[index]
                x = block(x)
            return x
        h = x.contiguous().to_mkldnn(dtype)
        for conv, pool in fused[first:last]:
            h = torch.relu(torch.nn.functional.max_pool2d(conv(h), pool))
        return h.to_dense(torch.float32)

    return run  # type: ignore[return-value]


def crnn_span_outputs(
    logmel: np.ndarray,
    starts: Sequence[float],
    *,
    checkpoints: Sequence[Sequence[str]] = WON_CHECKPOINTS,
    output: str = "conv",
    log_odds: bool = False,
    precision: str = "float32",
    frames: int | None = None,
    split: int = SPAN_SPLIT,
) -> np.ndarray:
    """``(len(starts), width)`` outputs of the checkpoints for windows read from one span's
    log-mel: the first ``split`` conv blocks run once over the whole ``(frames, 96)``
    float16-rounded dB mel ``logmel``, each window's remaining blocks, GRU and head on the slice
    of their output that starts nearest to its first frame ``starts[i]`` (a span frame index,
    possibly fractional) and is as long as a ``frames``-frame window's
    (:data:`~merkit.transfer.won_crnn.N_FRAMES` by default).

    Not equal to :func:`crnn_outputs` of each window's own log-mel: a window inside the span
    sees its neighbours through the convolutions instead of zero padding at its ends, and its
    slice starts up to half a pooling step (``prod(POOLS[:split]) / 2`` frames) off its own.
    """
    import torch

    from merkit.transfer.embedders import CRNNEmbedding
    from merkit.transfer.won_crnn import N_FRAMES

    frames = N_FRAMES if frames is None else int(frames)
    step = int(np.prod(POOLS[:split]))
    length = frames
    for pool in POOLS[:split]:
        length //= pool
    x_all = torch.from_numpy(np.ascontiguousarray(logmel, dtype=np.float32))[None]
    parts = []
    for file_name, sha256 in checkpoints:
        embedder = CRNNEmbedding(
            str(pretrained_path(file_name)), sha256=sha256, cache=False, precision=precision
        )
        model, _ = embedder._model()
        run = _stages(model, precision)
        with torch.inference_mode():
            x = model.spec_bn(x_all.transpose(1, 2).unsqueeze(1))
            h = run(x, 0, split)  # (1, C, H, T / step)
            total = h.shape[-1]
            slices = []
            for start in starts:
                j = min(max(0, round(float(start) / step)), max(0, total - length))
                slices.append(h[0, :, :, j : j + length])
            maps = run(torch.stack(slices), split, len(POOLS)).squeeze(2)
            if output == "conv":
                value = torch.cat([maps.mean(dim=2), maps.std(dim=2, unbiased=False)], dim=1)
            else:
                state = model.gru_state(maps)
                value = state if output == "gru" else torch.sigmoid(model.dense(state))
        parts.append(value.float().numpy())
    value = np.concatenate(parts, axis=1).astype(np.float64)
    if log_odds:
        p = np.clip(value, LOG_ODDS_CLIP, 1.0 - LOG_ODDS_CLIP)
        value = np.log(p) - np.log1p(-p)
    return value.astype(np.float32)


__all__ = [
    "CRNN_SOURCE",
    "DOWNLOAD_HINT",
    "LOG_ODDS_CLIP",
    "LOG_ODDS_LIMIT",
    "PRETRAINED_ENV",
    "WON_CHECKPOINTS",
    "crnn_conv_batch",
    "crnn_conv_representation",
    "crnn_outputs",
    "crnn_span_outputs",
    "missing_checkpoints",
    "pretrained_dir",
    "pretrained_path",
    "tags3_names",
]
