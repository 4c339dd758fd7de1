"""Random time crops of training batches (Won et al. train their taggers on random crops)."""

from __future__ import annotations

import torch


class RandomTimeCrop:
    """Crop a ``(B, T, F)`` batch to ``frames`` consecutive frames at one random offset.

    For :class:`~merkit.training.callbacks.BatchTransform` (training batches only; prediction
    sees whole inputs). One offset per batch keeps the batch a single tensor. A batch no longer
    than ``frames`` passes unchanged.

    Parameters
    ----------
    frames : int
        Crop length in frames (625 = 10 s at 16 kHz with hop 256).
    """

    def __init__(self, frames: int) -> None:
        if frames < 1:
            raise ValueError(f"crop length must be positive, got {frames}")
        self.frames = int(frames)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        total = batch.shape[1]
        if total <= self.frames:
            return batch
        start = int(torch.randint(0, total - self.frames + 1, (1,), generator=generator))
        return batch[:, start : start + self.frames]

    def __repr__(self) -> str:
        return f"RandomTimeCrop({self.frames})"


__all__ = ["RandomTimeCrop"]
