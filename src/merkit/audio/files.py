"""What can be told about an audio file before decoding it: is it a regular, readable file whose
first bytes look like a container merkit's decoders read?

A FIFO would block the open forever, a folder or device is not audio, and a text file named
``.mp3`` would otherwise surface as a decoder's cryptic message; these checks name the reason.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from collections.abc import Iterator
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
    return _shortfall(head, os.stat(path).st_size)


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

MAX_SHORTFALL = 0.02
"""Fraction of the audio a header declares that may be missing before a file is truncated."""


_PCM_AIFC = (b"NONE", b"sowt", b"twos", b"fl32", b"FL32", b"fl64", b"FL64")
"""AIFC compression types that store plain samples (their byte rate follows from the header)."""


def _chunks(head: bytes, start: int, order: str) -> Iterator[tuple[bytes, int, int]]:
    """(id, data offset, declared size) of the RIFF/IFF chunks whose header is in ``head``."""
    at = start
    while at + 8 <= len(head):
        cid = head[at : at + 4]
        (size,) = struct.unpack(order + "I", head[at + 4 : at + 8])
        yield cid, at + 8, size
        at += 8 + size + (size & 1)  # chunks are padded to an even length


def _ieee_extended(raw: bytes) -> float:
    """AIFF's 80-bit big-endian float (the sample rate)."""
    exponent, mantissa = struct.unpack(">HQ", raw)
    sign = -1.0 if exponent & 0x8000 else 1.0
    exponent &= 0x7FFF
    return 0.0 if exponent == 0 else sign * mantissa * 2.0 ** (exponent - 16383 - 63)


def _shortfall(head: bytes, size: int) -> str | None:
    """A WAV or AIFF whose header declares more audio than the file holds (a cut download).

    libsndfile silently reads such a file as the shorter audio it holds, so the answer would be
    for a song the user does not have; MP3, FLAC and Ogg are checked while decoding
    (:func:`merkit.audio.windows.file_blocks`). A shortfall of up to :data:`MAX_SHORTFALL` of the
    declared length (or 0.5 s) is let through. Only the first :data:`_SNIFF_BYTES` are parsed: a
    file whose audio chunk starts later is not checked here.
    """
    rate = declared = present = None  # bytes per second, bytes of audio declared / present
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
        order = "<" if head[:4] == b"RIFF" else ">"
        for cid, at, length in _chunks(head, 12, order):
            if cid == b"fmt " and at + 16 <= len(head):
                (byte_rate,) = struct.unpack(order + "I", head[at + 8 : at + 12])
                rate = byte_rate or None
            elif cid == b"data":
                if length in (0, 0xFFFFFFFF):  # a streamed WAV: its length is unknown
                    return None
                declared, present = length, size - at
                break
    elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        for cid, at, length in _chunks(head, 12, ">"):
            if cid == b"COMM" and at + 18 <= len(head):
                channels, _frames, bits = struct.unpack(">HIH", head[at : at + 8])
                sr = _ieee_extended(head[at + 8 : at + 18])
                if head[8:12] == b"AIFC" and head[at + 18 : at + 22] not in _PCM_AIFC:
                    return None  # compressed: bytes per second unknown
                rate = channels * ((bits + 7) // 8) * sr or None
            elif cid == b"SSND":
                declared, present = length - 8, size - at - 8
                break
    if rate is None or declared is None or present is None:
        return None
    missing = declared - present
    if missing <= max(MAX_SHORTFALL * declared, 0.5 * rate):
        return None
    return (
        f"is truncated (its header says {declared / rate:.1f} s, the file holds only "
        f"{max(present, 0) / rate:.1f} s): a cut download or copy"
    )


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
