"""Where and how training runs: device, seeds, threads, autocast and glibc malloc tuning.

Measured CPU choices (``benchmarks/train_speed.py``, results in ``benchmarks/results``): bf16
autocast on CPUs that compute bf16 in hardware (AMX / AVX512-BF16: 1.4x faster for the CNN,
2.3x for the CRNN; float32 elsewhere), and glibc malloc tunables, which must be set *before*
the interpreter starts: :func:`malloc_reexec_environment` gives the environment the CLI
re-executes itself with. Flush-denormal did not speed up CPU training, nor did
``torch.compile`` (Inductor, torch 2.13: the compiled baseline CNN step took 1.7× the eager
step's CPU time, after 2 minutes of compiling); deterministic algorithms cost nothing measurable
but are not needed for reproducible CPU runs.

torch is imported inside the functions that need it, so the CLI can decide on its re-exec
before paying for the torch import.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

import numpy as np

from merkit.core.errors import ConfigError

if TYPE_CHECKING:
    import torch

NO_REEXEC_VARIABLE: str = "MERKIT_NO_REEXEC"
"""Set in the re-executed process (and by users) to skip the malloc re-exec."""

MALLOC_TUNABLE: str = "glibc.malloc.hugetlb=1"
"""glibc tunable that makes malloc back large blocks with transparent huge pages.

A training step allocates and frees large activation buffers (the baseline CNN's first conv
output alone is 150 × 16 × 938 × 124 float32 = 1.1 GB at batch 150); glibc maps each one afresh,
so with 4 KiB pages every step pays for hundreds of thousands of page faults. glibc reads
``GLIBC_TUNABLES`` only at process start (glibc ≥ 2.35).
"""

HEAP_REUSE_TUNABLES: str = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
"""Extra tunables (the CLI's default): serve large blocks from the heap, never give it back.

Activations are then re-used across steps instead of being mapped, faulted in and zeroed again;
the price is heap fragmentation, which raises the peak RSS (see
``benchmarks/results/train_speed.md``).
"""


# ---- malloc --------------------------------------------------------------------------------


def _merge_tunables(current: str, wanted: str) -> str:
    """Add ``wanted``'s ``name=value`` entries to ``current`` unless a name is already set."""
    parts = [part for part in current.split(":") if part]
    names = {part.split("=", 1)[0] for part in parts}
    extra = [part for part in wanted.split(":") if part.split("=", 1)[0] not in names]
    return ":".join([*parts, *extra])


def malloc_tuning_supported() -> bool:
    """True on Linux with glibc ≥ 2.35 and transparent huge pages not disabled."""
    if platform.system() != "Linux":
        return False
    libc, version = platform.libc_ver()
    if libc != "glibc":
        return False
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    if (major, minor) < (2, 35):
        return False
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as handle:
            return "[never]" not in handle.read()
    except OSError:
        return False


def malloc_tuning_active(
    environ: Mapping[str, str] | None = None, *, reuse_heap: bool = False
) -> bool:
    """Whether this process was started with huge-page malloc (see :data:`MALLOC_TUNABLE`).

    glibc reads ``GLIBC_TUNABLES`` once at start-up, so the variable in this process's
    environment tells what is in effect (setting it later changes nothing).

    Parameters
    ----------
    environ : mapping, optional
        Environment to inspect; defaults to ``os.environ``.
    reuse_heap : bool
        Also require :data:`HEAP_REUSE_TUNABLES`.
    """
    env = os.environ if environ is None else environ
    parts = set(env.get("GLIBC_TUNABLES", "").split(":"))
    huge = bool(parts & {"glibc.malloc.hugetlb=1", "glibc.malloc.hugetlb=2"})
    heap = set(HEAP_REUSE_TUNABLES.split(":")) <= parts
    return malloc_tuning_supported() and huge and (heap or not reuse_heap)


def ensure_malloc_tuning(
    environ: Mapping[str, str] | None = None, *, reuse_heap: bool = False
) -> dict[str, str]:
    """Environment for a child process (or an ``os.execve`` re-exec) with huge-page malloc.

    Existing ``GLIBC_TUNABLES`` entries are kept and win over ours, so an explicit
    ``glibc.malloc.hugetlb=0`` opts out. Where the tunable is unsupported the environment is
    returned unchanged.

    Parameters
    ----------
    environ : mapping, optional
        Base environment; defaults to ``os.environ``.
    reuse_heap : bool
        Also add :data:`HEAP_REUSE_TUNABLES` (faster still, but a higher peak RSS; see there).

    Returns
    -------
    dict of str to str
        A new environment dict.
    """
    env = dict(os.environ if environ is None else environ)
    if malloc_tuning_supported():
        wanted = MALLOC_TUNABLE + (":" + HEAP_REUSE_TUNABLES if reuse_heap else "")
        env["GLIBC_TUNABLES"] = _merge_tunables(env.get("GLIBC_TUNABLES", ""), wanted)
    return env


def cpu_env_hint() -> str | None:
    """A one-line hint when CPU training would run faster with huge-page malloc, else None."""
    if not malloc_tuning_supported() or malloc_tuning_active():
        return None
    return (
        f"CPU training of the conv models can run faster with GLIBC_TUNABLES={MALLOC_TUNABLE} "
        "set before Python starts (the merkit CLI does this itself; see "
        "benchmarks/results/train_speed.md)"
    )


def malloc_reexec_environment(
    environ: Mapping[str, str] | None = None, *, reuse_heap: bool = True
) -> dict[str, str] | None:
    """The environment to re-execute a command with for huge-page malloc, or None.

    None when tuning is unsupported here, already requested (any ``glibc.malloc.hugetlb``
    setting of the user's, even ``=0``, is respected) or :data:`NO_REEXEC_VARIABLE` is set.
    Each training step allocates and frees ~0.5 GB of activations; huge pages sped up CPU
    training of the CRNN and the hybrid by 17-180 %, and heap reuse (on by default) cut the
    baseline CNN's step by a further ~25 % for a higher peak RSS
    (``benchmarks/results/train_speed.md``). Users opt out of heap reuse by setting
    ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` themselves (then nothing else is added).

    Parameters
    ----------
    environ : mapping, optional
        The current environment; defaults to ``os.environ``.
    reuse_heap : bool
        Add :data:`HEAP_REUSE_TUNABLES` as well.

    Returns
    -------
    dict of str to str or None
        A new environment (with :data:`NO_REEXEC_VARIABLE` set so the child does not re-exec).
    """
    env = os.environ if environ is None else environ
    if env.get(NO_REEXEC_VARIABLE) or "glibc.malloc.hugetlb" in env.get("GLIBC_TUNABLES", ""):
        return None
    if not malloc_tuning_supported():
        return None
    tuned = ensure_malloc_tuning(env, reuse_heap=reuse_heap)
    tuned[NO_REEXEC_VARIABLE] = "1"
    return tuned


# ---- torch -----------------------------------------------------------------------------------


def resolve_device(device: str = "auto") -> torch.device:
    """Turn ``"auto"``/``"cpu"``/``"cuda"`` (or ``"cuda:1"``) into a :class:`torch.device`.

    Parameters
    ----------
    device : str
        ``"auto"`` picks CUDA when available, else the CPU; anything else is forced.

    Returns
    -------
    torch.device

    Raises
    ------
    ConfigError
        If CUDA is requested but not available, or the name is not a device.
    """
    import torch

    name = device.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use cpu or auto")
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {device!r}; use auto, cpu or cuda")
    return resolved


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python's, numpy's and torch's global generators (CUDA included).

    On the CPU this alone gives bit-identical runs for the same seed and thread count (tested).

    Parameters
    ----------
    seed : int
        Any integer; reduced modulo 2**32 for numpy.
    deterministic : bool
        Also call ``torch.use_deterministic_algorithms(True, warn_only=True)`` (process-wide).
        It cost nothing measurable on the CPU
        (``benchmarks/results/train_speed_models.md``); on CUDA it needs
        ``CUBLAS_WORKSPACE_CONFIG`` and slows some kernels.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, restoring the old count afterwards.

    ``None`` leaves the count alone. Fewer threads help when the CPU is shared: OpenMP workers
    that wait for a busy core slow small models down by an order of magnitude.
    """
    if n is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX tiles or AVX512-BF16).

    Only then is bf16 autocast faster than float32 on CPU (with AMX: 1.4× for the CNN, 2.3× for
    the CRNN, ``benchmarks/results/train_speed_models.md``); elsewhere oneDNN would emulate it.
    """
    import torch

    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, probe, lambda: False)()) for probe in probes)


def autocast_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """The autocast dtype for ``device``: bf16 where native, fp16 on old GPUs, else None."""
    import torch

    if not enabled:
        return None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_has_native_bf16() else None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype``, or a no-op context for None."""
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


__all__ = [
    "HEAP_REUSE_TUNABLES",
    "MALLOC_TUNABLE",
    "NO_REEXEC_VARIABLE",
    "autocast",
    "autocast_dtype",
    "cpu_env_hint",
    "cpu_has_native_bf16",
    "ensure_malloc_tuning",
    "malloc_reexec_environment",
    "malloc_tuning_active",
    "malloc_tuning_supported",
    "resolve_device",
    "seed_everything",
    "torch_threads",
]
