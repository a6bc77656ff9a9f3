"""Request-body cap enforced before any JSON parsing (pure ASGI middleware).

The body is read chunk by chunk and counted, whether or not the client sent ``Content-Length`` (a
chunked upload is capped the same way). Past ``max_body_bytes`` the request is answered 413 without
ever being parsed. The rest of an oversized body is read and dropped, up to ``drain_bytes``, so a client
that keeps uploading still gets to read the 413 instead of a reset connection; what lies beyond that is
not read at all (the server then closes the connection).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_CLOSE = [(b"connection", b"close")]  # the rest of a refused body is not read: the connection cannot be reused


async def send_json(send: Send, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] = ()) -> None:
    """Send a complete JSON response through a raw ASGI ``send``."""
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": payload})


class BodyLimitMiddleware:
    """Answers 413 to any request whose body is larger than ``max_body_bytes``, before the app sees it.

    Args:
        app: the ASGI app to protect.
        max_body_bytes: largest body passed on.
        drain_bytes: how much of an oversized body is read and dropped before answering
            (default: 16 times the limit, at least 16 MiB).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int, drain_bytes: int | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.drain_bytes = drain_bytes if drain_bytes is not None else max(16 * max_body_bytes, 16 << 20)

    def _too_large(self, got: str) -> dict[str, str]:
        return {"detail": f"request body too large: {got}; the limit is {self.max_body_bytes} bytes "
                          f"(max_body_bytes)"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = None
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                try:
                    declared = int(v)
                except ValueError:
                    await send_json(send, 400, {"detail": "invalid Content-Length header"}, _CLOSE)
                    return
        if declared is not None and declared > self.drain_bytes:
            await send_json(send, 413, self._too_large(f"Content-Length is {declared} bytes"), _CLOSE)
            return

        chunks: list[bytes] = []
        total = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client went away: nothing to answer
            body = message.get("body", b"")
            total += len(body)
            more = message.get("more_body", False)
            if total > self.max_body_bytes:
                while more and total <= self.drain_bytes:  # drop the rest so the client can read our answer
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    total += len(message.get("body", b""))
                    more = message.get("more_body", False)
                got = f"{total} bytes" if not more else f"more than {total} bytes"
                await send_json(send, 413, self._too_large(got), _CLOSE)
                return
            chunks.append(body)

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
