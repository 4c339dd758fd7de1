"""Keep librosa's on-disk numba cache sound: compile it once, serially, and repair it when broken.

librosa compiles its numba functions (beat tracking, peak picking, ...) on first use and stores
them as ``*.nbi`` (index) and ``*.nbc`` (code) files. Two processes that compile the same function
at once can leave an index that points at the other process's code file, and every process that
later loads the mixed pair crashes with a segmentation fault (numba issue #10128, librosa issue
#1998) — the crash cannot be caught in Python.

:func:`ensure_numba_cache` is the guard. It fingerprints librosa's cache files (path, size,
modification time) together with the Python, numba and librosa versions, and when no stamp records
that fingerprint as verified it runs :func:`warm_librosa` — the exact librosa functions merkit's
feature extraction and augmentation call, on a tiny signal — in a **short subprocess**, under an
inter-process file lock. A subprocess that dies of a signal means a corrupt cache: its files are
deleted, a one-line warning is logged (printed to stderr when
logging is not configured), and the warm-up runs again from an empty cache. Then a
stamp records the (new) fingerprint. Later calls only compare fingerprints (a few milliseconds).

Because the warm-up compiles every function before any worker starts, workers only read the
cache. :func:`lock_numba_cache_io` additionally serialises numba's cache reads and writes across
processes with a file lock, so even a function the warm-up missed cannot be written by two
processes at once.

Measured here (2 cores): stamp hit 2-20 ms; verification of a warm cache 3-4 s idle, 13 s under
load (a Python start plus loading the cached functions); first compile on an empty cache about
20 s, which the first extraction would otherwise spend anyway.

The cache lives where numba puts it: ``$NUMBA_CACHE_DIR/<dir>_<sha1 of the dir>`` when that
variable is set, else each librosa sub-package's ``__pycache__`` (or numba's per-user cache folder
when that is not writable).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from merkit.core.errors import MerkitError

SR = 16_000
_CACHE_SUFFIXES = (".nbi", ".nbc")
_checked = threading.Lock()
_verified_fingerprint: str | None = None
_log = logging.getLogger(__name__)


def warm_librosa() -> None:
    """Call every numba-compiled librosa function merkit uses, on a tiny signal.

    Own features (STFT, onset detection, beat tracking, tuning, ...) on a 3 s clip with clicks and
    a chord, and the phase vocoder and resampler of the classic augmentations on 1 s. The inputs
    have the dtypes of real extraction (float32 at 16 kHz), so the compiled signatures are the
    ones real songs need.
    """
    import librosa
    import numpy as np

    from merkit.features.own import extract_own_features

    t = np.arange(3 * SR, dtype=np.float32) / SR
    y = 0.3 * np.sin(2 * np.pi * 220.0 * t) + 0.2 * np.sin(2 * np.pi * 277.2 * t)
    clicks = (np.arange(t.size) % (SR // 2)) < 200  # 120 bpm
    y = (y + 0.5 * clicks * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    extract_own_features(y, SR)
    short = y[:SR]
    librosa.effects.time_stretch(short, rate=1.1)
    librosa.effects.pitch_shift(short, sr=SR, n_steps=2, bins_per_octave=12)


def _librosa_dirs() -> list[Path]:
    """Folders of librosa's Python files (package and sub-packages), without importing it."""
    spec = importlib.util.find_spec("librosa")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(os.path.abspath(next(iter(spec.submodule_search_locations))))
    return [root, *sorted(p for p in root.iterdir() if (p / "__init__.py").is_file())]


def _numba_subpath(folder: Path) -> str:
    # numba.core.caching._CacheLocator.get_suitable_cache_subpath: "<dir name>_<sha1 of dir>".
    text = str(folder)
    return f"{folder.name}_{hashlib.sha1(text.encode()).hexdigest()}"


def cache_dirs() -> list[Path]:
    """Every folder where numba may keep librosa's cache files (existing or not)."""
    custom = os.environ.get("NUMBA_CACHE_DIR")
    user_wide = Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "numba"
    )  # numba's fallback when __pycache__ is read-only
    dirs: list[Path] = []
    for folder in _librosa_dirs():
        if custom:
            dirs.append(Path(custom) / _numba_subpath(folder))
        else:
            dirs.append(folder / "__pycache__")
            dirs.append(user_wide / _numba_subpath(folder))
    return dirs


def cache_files() -> list[Path]:
    """librosa's ``*.nbi`` / ``*.nbc`` files, sorted."""
    found: list[Path] = []
    for folder in cache_dirs():
        with contextlib.suppress(OSError):
            found.extend(p for p in folder.iterdir() if p.suffix in _CACHE_SUFFIXES)
    return sorted(found)


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def fingerprint() -> str:
    """Hash of the interpreter, numba and librosa versions and every cache file's size and mtime."""
    digest = hashlib.sha1()
    digest.update(
        f"{sys.executable}|{sys.version}|{_version('numba')}|{_version('librosa')}".encode()
    )
    for path in cache_files():
        with contextlib.suppress(OSError):
            stat = path.stat()
            digest.update(f"|{path}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _stamp_dir() -> Path:
    from merkit.representations.cache import default_cache_root

    folder = default_cache_root() / "numba-verified"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".probe"
        probe.touch()
        probe.unlink()
    except OSError:
        user = getattr(os, "getuid", lambda: "user")()
        folder = Path(tempfile.gettempdir()) / f"merkit-numba-verified-{user}"
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def _run_warm_subprocess(timeout: float) -> subprocess.CompletedProcess[str]:
    code = "from merkit.core.numba_cache import warm_librosa; warm_librosa()"
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
    env["PYTHONSAFEPATH"] = "1"
    try:
        result = subprocess.run(
            [sys.executable, "-P", "-c", code],  # -P: never import from the current folder
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise MerkitError(
            f"compiling librosa's numba functions took more than {timeout:.0f} s; "
            "is the machine overloaded?"
        ) from None
    if result.returncode in (-signal.SIGINT, 130) or result.stderr.rstrip().endswith(
        "KeyboardInterrupt"
    ):
        raise KeyboardInterrupt  # Ctrl-C during the check: the cache is not to blame
    return result


def clear_cache() -> int:
    """Delete librosa's numba cache files; returns how many were removed."""
    removed = 0
    for path in cache_files():
        with contextlib.suppress(OSError):
            path.unlink()
            removed += 1
    return removed


def ensure_numba_cache(*, timeout: float = 900.0) -> None:
    """Make sure librosa's numba cache is complete and loads without crashing (see module doc).

    Cheap when the cache is unchanged since it was last verified; otherwise verifies (and fills)
    it in a subprocess, deleting and rebuilding it with a one-line logged warning if that
    subprocess crashes. Safe to call from several processes at once.

    Raises
    ------
    MerkitError
        If librosa still cannot run after the cache was rebuilt (the message has its stderr tail).
    """
    global _verified_fingerprint
    with _checked:
        current = fingerprint()
        if current == _verified_fingerprint:
            return
        stamps = _stamp_dir()
        if (stamps / current).is_file():
            _verified_fingerprint = current
            return
        from filelock import FileLock

        with FileLock(str(stamps / ".lock")):
            current = fingerprint()  # another process may have verified it meanwhile
            if not (stamps / current).is_file():
                current = _verify(timeout)
                (stamps / current).touch()
        _verified_fingerprint = current


def _verify(timeout: float) -> str:
    result = _run_warm_subprocess(timeout)
    if result.returncode != 0:
        removed = clear_cache()
        where = os.environ.get("NUMBA_CACHE_DIR") or "librosa's __pycache__ folders"
        reason = (
            f"crashed with signal {-result.returncode}"
            if result.returncode < 0
            else f"failed (exit code {result.returncode})"
        )
        _log.warning(
            "merkit: librosa's numba cache in %s was corrupt (loading it %s); deleted %d cache "
            "file(s) and rebuilt it",
            where,
            reason,
            removed,
        )
        result = _run_warm_subprocess(timeout)
        if result.returncode != 0:
            tail = "\n".join(result.stderr.strip().splitlines()[-5:])
            raise MerkitError(
                f"librosa's numba functions fail to run even with an empty cache "
                f"(exit code {result.returncode}):\n{tail}"
            )
    return fingerprint()


@functools.cache
def lock_numba_cache_io() -> bool:
    """Serialise numba's cache loads and saves across processes with a file lock per cache folder.

    Patches ``numba.core.caching.Cache.load_overload`` / ``save_overload`` in this process (a
    no-op if numba's internals have changed). Returns whether the patch is in place.
    """
    try:
        from filelock import FileLock
        from numba.core import caching
    except ImportError:
        return False
    cls = getattr(caching, "Cache", None)
    if cls is None or not hasattr(cls, "load_overload") or not hasattr(cls, "save_overload"):
        return False

    def locked(method):  # type: ignore[no-untyped-def]
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            folder = getattr(self, "_cache_path", None)
            if not folder:
                return method(self, *args, **kwargs)
            with contextlib.suppress(OSError):
                os.makedirs(folder, exist_ok=True)
            try:
                lock = FileLock(os.path.join(folder, ".merkit.lock"))
                with lock:
                    return method(self, *args, **kwargs)
            except OSError:  # read-only cache folder: numba copes (it just cannot save)
                return method(self, *args, **kwargs)

        return wrapper

    cls.load_overload = locked(cls.load_overload)
    cls.save_overload = locked(cls.save_overload)
    return True


@contextlib.contextmanager
def verified_numba_cache() -> Iterator[None]:
    """Context manager form of :func:`ensure_numba_cache` plus :func:`lock_numba_cache_io`."""
    ensure_numba_cache()
    lock_numba_cache_io()
    yield
