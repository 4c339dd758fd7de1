"""Pre-trained weight files: found by path, checked by SHA-256, compared key by key.

Checkpoints are never shipped, and never downloaded here: the user points at a file (``weights:``
in a method's settings, ``--weights`` on the command line; Won's CRNN taggers can be fetched once
with ``merkit models download``, :mod:`merkit.transfer.weights`). Everything that can go wrong
with such a file (absent, truncated, another network's weights, a different checksum) is reported
as one :class:`~merkit.core.errors.ModelError` naming the file and what was expected.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import torch

from merkit.core.errors import ModelError

Shapes = Mapping[str, tuple[int, ...]]


@lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file (memoised per path, size and modification time)."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def check_weights_file(
    path: str | os.PathLike[str] | None, *, sha256: str | None = None, what: str = "weights"
) -> Path:
    """The weights file at ``path``, after checking that it exists and, if given, its SHA-256.

    Parameters
    ----------
    path : path-like or None
        The file the user named.
    sha256 : str, optional
        Expected hex digest (case-insensitive).
    what : str
        What the file should hold, for messages (e.g. ``"CRNN (Won et al.) checkpoint"``).

    Raises
    ------
    ModelError
        No path given, no such file, or a checksum mismatch; the message names the file.
    """
    if path is None or str(path) == "":
        raise ModelError(
            f"no {what} given: set 'weights: PATH' in the method's settings or pass --weights "
            "(Won's CRNN checkpoints: merkit models download puts them in $MERKIT_PRETRAINED)"
        )
    file = Path(path).expanduser()
    if not file.is_file():
        raise ModelError(f"{what} file not found: {file}")
    if sha256 is not None:
        actual = file_sha256(file)
        if actual.lower() != str(sha256).strip().lower():
            raise ModelError(
                f"{what} file {file} has SHA-256 {actual}, expected {sha256}: "
                "a different or damaged file"
            )
    return file


def load_torch_state(path: Path, *, what: str) -> dict[str, torch.Tensor]:
    """A bare state dict from a torch file, read with ``weights_only=True`` (no code runs).

    Raises
    ------
    ModelError
        The file cannot be unpickled (truncated, not a torch file) or holds no state dict.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling errors come in many types
        raise ModelError(
            f"cannot read {what} file {path} (truncated or not a PyTorch file?): "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise ModelError(f"{what} file {path} does not hold a state dict of tensors")
    return dict(state)


def check_shapes(found: Shapes, expected: Shapes, *, path: Path, what: str) -> None:
    """Raise one message listing missing keys, unexpected keys and mismatched shapes.

    Raises
    ------
    ModelError
        When ``found`` and ``expected`` differ in keys or shapes.
    """
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    shapes = [
        f"{key}: {tuple(found[key])} (expected {tuple(expected[key])})"
        for key in sorted(set(found) & set(expected))
        if tuple(found[key]) != tuple(expected[key])
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected[:8]}{' ...' if len(unexpected) > 8 else ''}")
    if shapes:
        problems.append(f"wrong shapes {shapes[:8]}")
    if problems:
        raise ModelError(f"{path} is not a {what}: " + "; ".join(problems))


def flush_denormals() -> bool:
    """Flush denormal floats to zero in torch's CPU kernels (process-wide); True if supported.

    Won et al.'s MSD and Jamendo CRNN checkpoints hold denormal weights (~1e-42; 242 230 of the
    MSD checkpoint's floats). CPUs that handle denormal arithmetic in microcode run such a
    forward pass an order of magnitude slower; outputs are identical with flushing (max
    difference 0.0 measured on the MSD model). On the 2-core AMD EPYC used here the difference
    was within noise (1.15 vs 1.05 s per 29 s clip, 1 thread).
    """
    return bool(torch.set_flush_denormal(True))


__all__ = [
    "check_shapes",
    "check_weights_file",
    "file_sha256",
    "flush_denormals",
    "load_torch_state",
]
