"""A cap on request bodies, enforced while they arrive (before anything is written to disk).

A declared ``Content-Length`` over the cap is refused before the body is read; a body sent
without one (chunked) is counted as it streams and refused as soon as it passes the cap.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class UploadTooLarge(HTTPException):
    """413: the request body is over the cap (an ``HTTPException``, so FastAPI's body parsing
    passes it on instead of turning it into a generic 400)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=(
                f"the upload is larger than this service's limit of {limit / 1e6:g} MB "
                "(merkit serve --max-upload-mb)"
            ),
        )


class BodySizeLimit:
    """ASGI middleware: refuse HTTP request bodies over ``limit`` bytes with 413.

    Parameters
    ----------
    app : ASGI app
        The wrapped application.
    limit : int
        Largest body accepted, in bytes.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = int(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await _send_413(send, UploadTooLarge(self.limit))
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise UploadTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_413(send: Send, error: UploadTooLarge) -> None:
    import json

    body = json.dumps({"error": error.detail}).encode()
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = ["BodySizeLimit", "UploadTooLarge"]
