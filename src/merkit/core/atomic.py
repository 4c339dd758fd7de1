"""Replace a directory by another one so that a kill at any instant leaves one of them complete.

``replace_dir(staging, target)`` moves a fully written ``staging`` directory to ``target``:

- ``target`` absent (or an empty folder): one ``rename(2)``, atomic on POSIX.
- ``target`` present, Linux: ``renameat2(RENAME_EXCHANGE)`` swaps the two names in one atomic
  step (glibc ≥ 2.28, Linux ≥ 3.15; local filesystems such as ext4, xfs, btrfs, tmpfs), then the
  old directory, now under the staging name, is removed.
- elsewhere, or where the filesystem refuses the exchange: ``target`` is renamed to a hidden
  backup, ``staging`` to ``target``, the backup is removed. A kill between the two renames leaves
  no ``target`` but a complete backup, which :func:`recover_dir` moves back.

Hidden helper folders are named ``.<target name>.merkit-<kind>-<pid>-<random>``; those of dead
processes are removed by :func:`clean_leftovers`, which the next save calls.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import re
import secrets
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

RENAME_EXCHANGE = 2  # from <linux/fs.h>
AT_FDCWD = -100

_after_step: Callable[[str], None] | None = None
"""Test hook: called with the name of each step just completed (fault injection)."""


def step(name: str) -> None:
    """Mark the end of a step of a save (lets tests inject a crash after any of them)."""
    if _after_step is not None:
        _after_step(name)


def _pattern(target: Path) -> re.Pattern[str]:
    return re.compile(rf"^\.{re.escape(target.name)}\.merkit-(tmp|old)-(\d+)-")


def staging_dir(target: Path) -> Path:
    """A new, empty hidden folder beside ``target`` (mode 0755) to assemble its replacement in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    path = Path(
        tempfile.mkdtemp(prefix=f".{target.name}.merkit-tmp-{os.getpid()}-", dir=target.parent)
    )
    path.chmod(0o755)  # mkdtemp makes it private; what it becomes is meant to be shared
    return path


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(target: Path) -> list[tuple[str, int, Path]]:
    if not target.parent.is_dir():
        return []
    pattern = _pattern(target)
    found = []
    for entry in target.parent.iterdir():
        match = pattern.match(entry.name)
        if match and entry.is_dir() and not entry.is_symlink():
            found.append((match.group(1), int(match.group(2)), entry))
    return found


def recover_dir(target: Path, is_complete: Callable[[Path], bool]) -> bool:
    """Put back the newest complete backup when ``target`` is missing after a killed swap.

    Returns True when something was put back.
    """
    if target.exists() or target.is_symlink():
        return False
    backups = [path for kind, pid, path in _leftovers(target) if kind == "old" and not _alive(pid)]
    for backup in sorted(backups, key=lambda p: p.stat().st_mtime, reverse=True):
        if is_complete(backup):
            with contextlib.suppress(OSError):
                os.rename(backup, target)
                return True
    return False


def clean_leftovers(target: Path) -> None:
    """Remove hidden helper folders of ``target`` left by processes that no longer run."""
    for _, pid, path in _leftovers(target):
        if not _alive(pid):
            shutil.rmtree(path, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_tree(path: Path) -> None:
    """Flush every file of ``path`` and the folder itself to disk (best effort)."""
    for item in path.iterdir():
        if item.is_file():
            with contextlib.suppress(OSError), open(item, "rb") as handle:
                os.fsync(handle.fileno())
    _fsync_dir(path)


_renameat2: Callable[..., int] | bool | None = False  # False: not looked up yet


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` atomically; False when the system cannot."""
    global _renameat2
    if not sys.platform.startswith("linux"):
        return False
    if _renameat2 is False:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            func = libc.renameat2
            func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
            func.argtypes += [ctypes.c_uint]
            func.restype = ctypes.c_int
            _renameat2 = func
        except (OSError, AttributeError):  # no glibc or a glibc older than 2.28
            _renameat2 = None
    if _renameat2 is None:
        return False
    assert callable(_renameat2)
    result = _renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False  # the filesystem or kernel cannot exchange: use the fallback
    raise OSError(code, os.strerror(code), str(b))


def replace_dir(staging: Path, target: Path) -> None:
    """Move the complete folder ``staging`` to ``target``, replacing what is there atomically.

    Raises
    ------
    OSError
        A rename failed; ``target`` is then unchanged (or, in the fallback, restored).
    """
    parent = target.parent
    if not target.exists():
        os.rename(staging, target)
        step("renamed")
    elif target.is_dir() and not any(target.iterdir()):
        os.rename(staging, target)  # rename(2) replaces an empty directory atomically
        step("renamed")
    elif _exchange(staging, target):
        step("exchanged")
        _fsync_dir(parent)
        step("synced")
        shutil.rmtree(staging, ignore_errors=True)  # now the old directory
        step("removed-old")
        return
    else:
        backup = parent / f".{target.name}.merkit-old-{os.getpid()}-{secrets.token_hex(4)}"
        os.rename(target, backup)
        step("backed-up")
        try:
            os.rename(staging, target)
        except OSError:
            os.rename(backup, target)
            raise
        step("renamed")
        _fsync_dir(parent)
        shutil.rmtree(backup, ignore_errors=True)
        step("removed-old")
        return
    _fsync_dir(parent)


__all__ = ["clean_leftovers", "fsync_tree", "recover_dir", "replace_dir", "staging_dir"]
