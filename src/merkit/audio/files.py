"""What can be told about an audio file before decoding it: is it a regular, readable file whose
first bytes look like a container merkit's decoders read?

A FIFO would block the open forever, a folder or device is not audio, and a text file named
``.mp3`` would otherwise surface as a decoder's cryptic message; these checks name the reason.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from merkit.core.errors import AudioError

_MAGIC: tuple[tuple[int, bytes], ...] = (
    (0, b"RIFF"),  # wav
    (0, b"RIFX"),
    (0, b"RF64"),
    (0, b"riff"),  # Sony Wave64
    (0, b"fLaC"),
    (0, b"OggS"),  # vorbis, opus, flac in ogg
    (0, b"ID3"),  # mp3 with an ID3v2 tag
    (0, b"FORM"),  # aiff / aifc
    (0, b".snd"),  # au
    (0, b"caff"),
    (0, b"wvpk"),
    (0, b"MAC "),
    (0, b"\x30\x26\xb2\x75"),  # asf / wma
    (4, b"ftyp"),  # mp4 / m4a
)
"""Offsets and magic bytes of the containers merkit's decoders read."""


def _looks_like_audio(head: bytes) -> bool:
    """Whether ``head`` (a file's first bytes) starts like an audio container or MPEG stream."""
    if any(head[at : at + len(magic)] == magic for at, magic in _MAGIC):
        return True
    # Raw MPEG audio / ADTS AAC: an 11-bit frame sync, possibly after a few padding bytes.
    start = head[:512].lstrip(b"\x00")
    return len(start) >= 2 and start[0] == 0xFF and start[1] & 0xE0 == 0xE0


def _looks_like_text(head: bytes) -> bool:
    """Whether ``head`` is printable text (UTF-8, no control bytes other than whitespace)."""
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 4:  # a split multi-byte character at the end is fine
            return False
        text = head[: error.start].decode("utf-8")
    return all(c.isprintable() or c in "\t\n\r\f\v" for c in text)


def unreadable_reason(path: str | Path, *, content: bool = True) -> str | None:
    """Why ``path`` cannot be an audio file, as a phrase to put after its name; None if it can.

    Checks, without a decoder and without ever blocking: the path exists and is readable, is a
    regular file (opening a FIFO blocks a reader forever; devices, sockets and folders are
    refused too), and, with ``content``, is not empty and not a text file (its first 2 KB are
    read). ``content=False`` opens nothing.

    Examples
    --------
    >>> unreadable_reason("/dev/null")
    'is a character device, not a regular file'
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        if error.errno == errno.ENOENT and os.path.islink(path):
            return "is a broken symbolic link (its target does not exist)"
        return _os_reason(error)
    if not stat.S_ISREG(mode):
        return f"is {_kind(mode)}, not a regular file"
    if not content:
        return None
    try:
        # Non-blocking, in case the path was swapped for a FIFO since the stat.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            head = os.read(fd, _SNIFF_BYTES)
        finally:
            os.close(fd)
    except OSError as error:
        return _os_reason(error)
    if not head:
        return "is empty (0 bytes)"
    if not _looks_like_audio(head) and _looks_like_text(head):
        return "is a text file, not a recognised audio format"
    return None


def check_audio_file(path: str | Path, *, content: bool = True) -> None:
    """Refuse, with the real reason, a path that cannot be an audio file; never blocks.

    Called by :func:`load_audio` and :func:`audio_info`; call it before opening a path with any
    other decoder. See :func:`unreadable_reason` for what is checked.

    Raises
    ------
    AudioError
        Naming the file and the reason (no such file, permission denied, a directory, a FIFO, a
        device, a socket, a symbolic-link loop, a broken link, empty, text rather than audio).
    """
    reason = unreadable_reason(path, content=content)
    if reason is not None:
        raise AudioError(f"audio file '{path}' {reason}")


_SNIFF_BYTES = 2048


def _os_reason(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "is a symbolic-link loop"
    if error.errno == errno.ENOENT:
        return "does not exist"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "cannot be read: permission denied"
    return f"cannot be read: {(error.strerror or type(error).__name__).lower()}"


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


__all__ = ["check_audio_file", "unreadable_reason"]
