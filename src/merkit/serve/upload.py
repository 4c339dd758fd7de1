"""An uploaded song on its way to the predictor: named safely, checked, and always cleaned up.

The upload is copied into a private temporary folder under the client's file name (its
extension tells the decoders the format), checked there with
:func:`merkit.audio.files.unreadable_reason` and :func:`merkit.audio.decode.audio_info`, and the
folder
is removed when the request ends, whatever happened. Messages name the client's file, never the
temporary path.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from merkit.audio.decode import audio_info
from merkit.audio.files import unreadable_reason
from merkit.core.errors import AudioError

ACCEPTED_TYPES = ("audio/", "video/", "application/octet-stream", "application/ogg")
"""Part content types taken as possibly audio (containers such as mp4 or webm are often sent as
``video/*``; clients that do not know send ``application/octet-stream``)."""

_UNSAFE = re.compile(r"[^\w.\- ()\[\]+,&']+")


class UploadError(Exception):
    """A request the service refuses: an HTTP status and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def client_name(filename: str | None) -> str:
    """The client's file name reduced to a safe base name (no folders, no control characters).

    Examples
    --------
    >>> client_name("../../etc/passwd")
    'passwd'
    >>> client_name(None)
    'upload'
    """
    base = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip(" .")[:200]
    return base or "upload"


_PARSER_ERRORS = ("MultipartParseError", "FormParserError", "QuerystringParseError")


def multipart_reason(error: BaseException) -> str | None:
    """Why a request body could not be parsed as multipart/form-data, for the client, or None
    when ``error`` was not caused by the parser (Starlette answers only "Invalid multipart
    data.")."""
    seen: BaseException | None = error
    while seen is not None:
        if type(seen).__name__ in (
            "MultipartParseError",
            "FormParserError",
            "QuerystringParseError",
        ):
            break
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return None
    if "header size" in str(seen).lower():
        return (
            "the upload could not be read: a part header is longer than the 4 KB allowed, "
            "usually because the file name is thousands of characters long; send the file "
            "under a shorter name"
        )
    return (
        f"the upload is not valid multipart/form-data ({seen}); send the audio in the form "
        "field 'file' (curl -F file=@song.mp3)"
    )


def check_part_type(content_type: str | None, name: str) -> None:
    """Refuse a file part whose declared type cannot be audio (e.g. ``text/plain``).

    Raises
    ------
    UploadError
        415, naming the file and its type.
    """
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    if declared and not declared.startswith(ACCEPTED_TYPES):
        raise UploadError(
            415,
            f"'{name}' is not an audio file ({_plain_kind(declared)}); choose a song file "
            "such as MP3, WAV, FLAC, OGG or M4A",
        )


def _plain_kind(declared: str) -> str:
    """A declared content type in words: "it looks like text", "it looks like an image"."""
    kind = declared.split("/", 1)[0]
    words = {"text": "text", "image": "an image", "application": "a document or program"}
    return f"it looks like {words.get(kind, 'something else')}"


def rename(message: str, path: Path, name: str) -> str:
    """``message`` with the temporary ``path`` replaced by the client's file ``name``."""
    return message.replace(str(path), name)


@contextmanager
def saved_upload(source: BinaryIO, name: str) -> Iterator[Path]:
    """Copy an upload to a private temporary file; the file and its folder are removed on exit.

    Parameters
    ----------
    source : binary file object
        The uploaded bytes (read from the start).
    name : str
        The client's file name (:func:`client_name`).

    Yields
    ------
    Path
        The temporary copy, named ``name``.

    Raises
    ------
    UploadError
        400 when the upload is empty, 415 when it is a text file.
    """
    folder = Path(tempfile.mkdtemp(prefix="merkit-serve-"))
    try:
        path = folder / name
        with path.open("wb") as out:
            shutil.copyfileobj(source, out, length=1 << 20)
        reason = unreadable_reason(path)
        if reason is not None:
            status = 415 if "text file" in reason else 400
            raise UploadError(status, f"the uploaded file '{name}' {reason}")
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_duration(path: Path, name: str, max_s: float) -> None:
    """Refuse audio whose header says it is longer than ``max_s`` seconds (413).

    Formats whose header cannot be read without decoding (e.g. m4a) pass here; their length is
    checked once decoded.
    """
    try:
        duration = audio_info(path).duration
    except AudioError:
        return  # the predictor decodes it and reports the real problem, if any
    if duration > max_s:
        raise UploadError(413, too_long(name, duration, max_s))


def too_long(name: str, duration: float, max_s: float) -> str:
    return (
        f"'{name}' is {duration:.1f} s long; this service accepts at most {max_s:g} s of audio "
        "(merkit serve --max-duration)"
    )


__all__ = [
    "ACCEPTED_TYPES",
    "UploadError",
    "check_duration",
    "check_part_type",
    "client_name",
    "multipart_reason",
    "rename",
    "saved_upload",
    "too_long",
]
