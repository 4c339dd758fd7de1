"""SpecAugment-style masking of log-mel batches: a fit-time augmentation (per-batch callback).

Registered as ``specaugment`` in :mod:`merkit.augmentation`; it wraps a torch estimator by adding
a :class:`~merkit.training.callbacks.BatchTransform`, so each batch is masked afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from merkit.errors import ConfigError, DataError


@dataclass
class SpecAugmentMask:
    """Mask random time and frequency bands of a ``(B, T, F)`` log-mel batch (SpecAugment).

    Each example gets ``time_masks`` time bands of width uniform in ``[0, max_time]`` frames
    and ``freq_masks`` mel bands of width uniform in ``[0, max_freq]`` bins, set to that
    example's minimum (silence on a dB log-mel, whatever its floor).
    """

    time_masks: int = 2
    max_time: int = 40
    freq_masks: int = 2
    max_freq: int = 16

    def __post_init__(self) -> None:
        for name in ("time_masks", "max_time", "freq_masks", "max_freq"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"specaugment: {name} must be an integer >= 0, not {value!r}")

    def __call__(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if batch.ndim != 3:
            shape = tuple(batch.shape)
            raise DataError(f"specaugment needs (batch, time, mel) inputs, got {shape}")
        out = batch.clone()
        n, frames, bins = out.shape
        floor = out.amin(dim=(1, 2))
        for axis, count, widest, size in (
            (1, self.time_masks, self.max_time, frames),
            (2, self.freq_masks, self.max_freq, bins),
        ):
            for _ in range(count):
                width = torch.randint(0, min(widest, size) + 1, (n,), generator=generator)
                start = (torch.rand(n, generator=generator) * (size - width + 1)).long()
                index = torch.arange(size)
                mask = (index[None] >= start[:, None]) & (index[None] < (start + width)[:, None])
                mask = mask.to(out.device)
                if axis == 1:
                    out = torch.where(mask[:, :, None], floor[:, None, None], out)
                else:
                    out = torch.where(mask[:, None, :], floor[:, None, None], out)
        return out


def add_specaugment(estimator: Any, **options: Any) -> Any:
    """Add a :class:`SpecAugmentMask` batch callback to a TorchClassifier (fit-time kind)."""
    from merkit.training.callbacks import BatchTransform

    if not hasattr(estimator, "callbacks"):
        raise ConfigError(
            f"specaugment needs a torch estimator with callbacks, not {type(estimator).__name__}"
        )
    mask = SpecAugmentMask(**options)
    estimator.set_params(
        callbacks=[*(estimator.callbacks or []), BatchTransform(mask, seed_offset=7_919)]
    )
    return estimator


__all__ = ["SpecAugmentMask", "add_specaugment"]
