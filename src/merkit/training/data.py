"""Inputs as batches: row-aligned numpy arrays in, one float32 batch tensor at a time out.

Also the stratified inner-validation holdout and a CPU copy of a model's weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from merkit.core.errors import DataError, ModelError

Inputs = tuple[np.ndarray, ...]
"""Row-aligned model inputs, in the order of the model's ``input_names``."""


def check_inputs(model: nn.Module, inputs: Sequence[np.ndarray], n_rows: int | None) -> Inputs:
    """The inputs as a tuple, checked against the model's ``input_names`` and ``n_rows``."""
    arrays = tuple(inputs)
    if not arrays:
        raise DataError("no model inputs given")
    names = getattr(model, "input_names", None)
    if names is not None and len(names) != len(arrays):
        raise DataError(
            f"{type(model).__name__} takes {len(names)} inputs {tuple(names)}, got {len(arrays)}"
        )
    lengths = {len(array) for array in arrays}
    if n_rows is not None:
        lengths.add(n_rows)
    if len(lengths) != 1:
        shapes = ", ".join(str(array.shape) for array in arrays)
        raise DataError(f"inputs and labels differ in length: inputs {shapes}, labels {n_rows}")
    return arrays


def batch_tensor(
    array: np.ndarray, index: np.ndarray, device: torch.device, channels_last: bool
) -> torch.Tensor:
    """Rows ``index`` of ``array`` as a float32 tensor on ``device``."""
    # Fancy indexing copies only the batch's rows (also from a memmap); float32 per batch only.
    tensor = torch.from_numpy(np.ascontiguousarray(array[index], dtype=np.float32))
    if channels_last and tensor.ndim == 4:
        tensor = tensor.contiguous(memory_format=torch.channels_last)
    return tensor.to(device, non_blocking=True)


def batch_bounds(n_rows: int, batch_size: int, *, no_single: bool = False) -> list[slice]:
    """Consecutive batches of ``batch_size`` rows; the last one may be smaller.

    With ``no_single`` a last batch of one row joins the batch before it: a BatchNorm in
    training mode cannot normalise a single row (torch raises), where Keras would train on it.

    Examples
    --------
    >>> [(b.start, b.stop) for b in batch_bounds(7, 3, no_single=True)]
    [(0, 3), (3, 7)]
    """
    starts = list(range(0, n_rows, batch_size))
    if no_single and len(starts) > 1 and n_rows - starts[-1] == 1:
        starts.pop()
    return [slice(a, b) for a, b in zip(starts, [*starts[1:], n_rows], strict=True)]


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` has a BatchNorm layer."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def check_output(output: torch.Tensor, target: torch.Tensor, loss: str, max_label: int) -> None:
    """Fail clearly when the first batch's output cannot match the targets."""
    if loss == "mse":
        if output.shape != target.shape:
            raise ModelError(
                f"model output shape {tuple(output.shape)} differs from the target shape "
                f"{tuple(target.shape)}"
            )
    elif output.ndim != 2 or output.shape[1] <= max_label:
        raise ModelError(
            f"model output of shape {tuple(output.shape)} does not cover class index "
            f"{max_label}: build the model with enough classes"
        )


def stratified_holdout(
    y: np.ndarray, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into (train, validation), stratified by class.

    Each class contributes ``round(fraction * count)`` rows to validation, at least one when it
    has two or more rows, so both parts keep every class that has at least two rows.

    Parameters
    ----------
    y : ndarray
        Labels (any hashable values); for non-class targets pass zeros.
    fraction : float
        Validation share in (0, 1).
    rng : numpy Generator
        Source of the shuffle.

    Returns
    -------
    train, validation : ndarray of int
        Sorted, disjoint row indices.

    Raises
    ------
    DataError
        If the split would leave no training or no validation rows.
    """
    held: list[np.ndarray] = []
    for value in np.unique(y):
        rows = np.flatnonzero(y == value)
        take = round(fraction * len(rows))
        take = min(max(take, 1 if len(rows) >= 2 else 0), len(rows) - 1)
        held.append(rng.permutation(rows)[:take])
    validation = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
    train = np.setdiff1d(np.arange(len(y)), validation)
    if len(validation) == 0 or len(train) == 0:
        raise DataError(
            f"validation_fraction={fraction} leaves no validation or training rows "
            f"for {len(y)} training rows"
        )
    return train, validation


def clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of ``model``'s state dict (contiguous tensors, safe for ``torch.save``)."""
    return {
        key: value.detach().to("cpu", copy=True).contiguous()
        for key, value in model.state_dict().items()
    }


__all__ = [
    "Inputs",
    "batch_tensor",
    "check_inputs",
    "check_output",
    "clone_state",
    "stratified_holdout",
]
