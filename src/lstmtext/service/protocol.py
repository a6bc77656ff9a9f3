"""Connection limits enforced where uvicorn reads requests: deadlines, header and URL caps, a connection cap.

uvicorn's httptools protocol starts the ASGI app only once a request's headers are complete, and until then
nothing bounds the request: a connection that sends nothing is never timed out (its keep-alive timer starts
after a first answer), header values and the URL are grown by ``bytes +=`` for every packet (quadratic in their
size, on the event loop), and ``limit_concurrency`` counts idle connections, so a thousand silent sockets turn
every request into a 503. None of that can be fixed inside the app, so :class:`GuardedHttpToolsProtocol`
subclasses the protocol (passed to uvicorn as ``http=``) and adds, per server process:

- ``idle_timeout_s``: a connection with no request under way (just connected, or after an answer) is closed;
- ``request_read_timeout_s``: a request's line, headers and body must all arrive within this time of its first
  byte, else 408 and the connection is closed (the app sees a disconnect and drops the partial body);
- ``max_header_bytes`` / ``max_url_bytes``: counted before the bytes reach the parser; past them 431 / 414 at
  once, so the parser never accumulates more than the cap;
- ``max_pending_body_bytes``: the bytes of unfinished bodies held by the process; past it, connections whose
  unfinished body is over ``_SMALL_BODY`` stop being read (the kernel's socket buffers hold what they send,
  not this process) and get 503 + ``Retry-After`` at their read deadline; small bodies, such as every normal
  request's, are still read. (Closing a big body at once instead would let its client send it again at
  once, and the process would spend its time reading megabytes only to drop them.)
- ``max_connections``: past it a new connection closes the one idle or reading the longest (a slow or silent
  client, never one being answered); only when every connection is being answered is the new one refused (503).

Idle and reading connections sit in two insertion-ordered dicts (oldest first), so each state change, eviction
and timeout is O(1); one timer per process sweeps the expired ones every ``_SWEEP_S``. Refusals are counted
(``lstmtext_connections_refused_total{reason}``) and logged as one summary line per ``_LOG_EVERY_S``, never one
line per connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import httptools
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lstmtext.service.config import ServiceConfig

logger = logging.getLogger("lstmtext.service")

_SWEEP_S = 0.25
_SWEEP_BATCH = 64
_LINGER_S = 1.0
_SMALL_BODY = 64 << 10  # a body this small is read even past max_pending_body_bytes
_LOG_EVERY_S = 10.0
#: app_state key under which the app's lifespan publishes its ServiceMetrics to the protocol.
METRICS_STATE_KEY = "lstmtext_metrics"

_REASONS = {  # reason -> (status sent or None for a silent close, message)
    "idle_timeout": (None, ""),
    "read_timeout": (408, "request not received within request_read_timeout_s={limit} s"),
    "header_too_large": (431, "request line and headers larger than max_header_bytes={limit}"),
    "url_too_long": (414, "request target longer than max_url_bytes={limit}"),
    "bad_request": (400, "malformed HTTP request"),
    "body_memory": (503, "request body not read: unfinished request bodies held by the server passed "
                         "max_pending_body_bytes={limit}; retry later"),
    "evicted": (None, ""),
    "over_capacity": (503, "all {limit} connections (max_connections) are being answered; retry later"),
}


@dataclass(frozen=True)
class ConnectionLimits:
    """The limits of :class:`GuardedHttpToolsProtocol` (the fields of the same names in ``ServiceConfig``)."""

    max_connections: int
    idle_timeout_s: float
    request_read_timeout_s: float
    max_header_bytes: int
    max_url_bytes: int
    max_pending_body_bytes: int
    retry_after_s: int

    @classmethod
    def from_config(cls, config: ServiceConfig) -> ConnectionLimits:
        return cls(config.max_connections, config.idle_timeout_s, config.request_read_timeout_s,
                   config.max_header_bytes, config.max_url_bytes, config.max_pending_body_bytes, config.retry_after_s)

    def limit_of(self, reason: str) -> Any:
        return {"read_timeout": self.request_read_timeout_s, "header_too_large": self.max_header_bytes,
                "url_too_long": self.max_url_bytes, "body_memory": self.max_pending_body_bytes,
                "over_capacity": self.max_connections}.get(reason)


class ConnectionGuard:
    """Per-process bookkeeping of every guarded connection: who is idle or reading since when, body bytes held."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open = 0
        self.idle: dict[GuardedHttpToolsProtocol, float] = {}  # oldest first (insertion order)
        self.reading: dict[GuardedHttpToolsProtocol, float] = {}
        self.lingering: dict[GuardedHttpToolsProtocol, float] = {}  # answered refusals, closed after _LINGER_S
        self.pending_body_bytes = 0
        self.refused: dict[str, int] = {}
        self._last_log = time.monotonic()
        self._sweeper: asyncio.Handle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._metrics: Any = None

    def ensure_sweeping(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._sweeper is None or self._loop is not loop:
            self._loop = loop
            self._sweeper = loop.call_later(_SWEEP_S, self.sweep)

    def sweep(self) -> None:
        """Close connections past their idle or read deadline; log the refusals of the last period.

        At most ``_SWEEP_BATCH`` per call, the rest on the next turn of the loop: a thousand sockets opened
        together expire together, and closing them all at once would hold up every request for tens of ms.
        """
        now = time.monotonic()
        idle_before, read_before = now - self.limits.idle_timeout_s, now - self.limits.request_read_timeout_s
        budget = _SWEEP_BATCH
        while self.idle and budget:
            conn, since = next(iter(self.idle.items()))
            if since > idle_before:
                break
            del self.idle[conn]
            conn.refuse("idle_timeout")
            budget -= 1
        while self.reading and budget:
            conn, since = next(iter(self.reading.items()))
            if since > read_before:
                break
            del self.reading[conn]
            conn.refuse("body_memory" if conn.flow.held else "read_timeout")
            budget -= 1
        linger_before = now - _LINGER_S
        while self.lingering:
            conn, since = next(iter(self.lingering.items()))
            if since > linger_before:
                break
            conn.end_linger()
        if now - self._last_log >= _LOG_EVERY_S:
            if self.refused:
                counts = ", ".join(f"{k}={v}" for k, v in sorted(self.refused.items()))
                logger.warning("connections refused or closed by the service's limits in the last %.0f s: %s",
                               now - self._last_log, counts)
                self.refused.clear()
            self._last_log = now
        if self._loop is not None:
            self._sweeper = (self._loop.call_soon(self.sweep) if not budget
                             else self._loop.call_later(_SWEEP_S, self.sweep))

    def bind_metrics(self, app_state: dict[str, Any]) -> None:
        """Report open connections and pending body bytes in the app's metrics (once they exist)."""
        metrics = app_state.get(METRICS_STATE_KEY)
        if metrics is not None and metrics is not self._metrics:
            self._metrics = metrics
            metrics.open_connections.set_function(lambda: self.open)
            metrics.pending_body_bytes.set_function(lambda: self.pending_body_bytes)

    def count(self, reason: str) -> None:
        if reason != "idle_timeout":  # an idle keep-alive connection timing out is normal, not a refusal
            self.refused[reason] = self.refused.get(reason, 0) + 1
        if self._metrics is not None:
            self._metrics.connections_closed.labels(reason).inc()

    def make_room(self) -> bool:
        """Before accepting a connection at the cap: close the one idle, then reading, the longest."""
        if self.open < self.limits.max_connections:
            return True
        if self.lingering:
            next(iter(self.lingering)).end_linger()
            return True
        for group in (self.idle, self.reading):
            if group:
                next(iter(group)).refuse("evicted")
                return True
        return False


class _HoldableFlow(FlowControl):
    """uvicorn's read flow control, plus a hold: once held, the app's ``receive()`` no longer resumes reading."""

    held = False

    def hold(self) -> None:
        self.held = True
        self.pause_reading()

    def resume_reading(self) -> None:
        if not self.held:
            super().resume_reading()


def _response(status: int, detail: str, retry_after: int | None) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    phrase = {400: "Bad Request", 408: "Request Timeout", 414: "URI Too Long",
              431: "Request Header Fields Too Large", 503: "Service Unavailable"}[status]
    head = [f"HTTP/1.1 {status} {phrase}", "content-type: application/json", f"content-length: {len(body)}",
            "connection: close"]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the deadlines, caps and connection limit of :class:`ConnectionGuard`.

    Built by :class:`GuardedProtocolFactory` (uvicorn's ``http=`` setting), which supplies the guard.
    """

    def __init__(self, *args: Any, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = guard
        self._closed = False
        self._in_head = True  # reading a request line + headers (or waiting for one)
        self._head_bytes = 0
        self._url_bytes = 0
        self._body_bytes = 0  # bytes of the current unfinished body, counted in guard.pending_body_bytes
        self._refusing: str | None = None

    # -- states -------------------------------------------------------------------------------------------
    def _set_idle(self) -> None:
        if self._closed:
            return
        g = self.guard
        g.reading.pop(self, None)
        g.idle.pop(self, None)
        g.idle[self] = time.monotonic()

    def _set_reading(self) -> None:
        if self._closed:  # a pipelined request parsed after a refusal in the same packet
            return
        g = self.guard
        g.idle.pop(self, None)
        g.reading.pop(self, None)
        g.reading[self] = time.monotonic()

    def _set_answering(self) -> None:
        self.guard.idle.pop(self, None)
        self.guard.reading.pop(self, None)

    def _release_body(self) -> None:
        if self._body_bytes:
            self.guard.pending_body_bytes -= self._body_bytes
            self._body_bytes = 0

    def _forget(self) -> None:
        if not self._closed:
            self._closed = True
            self.guard.open -= 1
        self._set_answering()
        self._release_body()

    def refuse(self, reason: str) -> None:
        """Close this connection for ``reason``, first answering with its status when one applies.

        After an answer the connection is half-closed (the answer, then end of stream) and no longer read,
        then closed ``_LINGER_S`` later: a client still uploading sees its writes stall rather than fail, so
        it can read the answer first (closing at once sends a reset that makes many clients drop the answer
        with the connection; reading and dropping the rest, as nginx's lingering close does, would make every
        refused upload cost the server its bytes). Lingering connections still count in ``max_connections``
        and are the first closed to make room.
        """
        if self._closed:
            return
        status, template = _REASONS[reason]
        cycle = self.cycle
        mid_answer = cycle is not None and cycle.response_started and not cycle.response_complete
        if cycle is not None and not cycle.response_complete:
            cycle.scope["lstmtext.refused"] = status or 499  # the access log and metrics say why it ended
            cycle.disconnected = True  # the app's receive() returns http.disconnect and its send() is dropped
            cycle.message_event.set()
        self.guard.count(reason)
        self._forget()
        transport = self.transport
        if transport.is_closing():
            return
        if status is None or mid_answer or not transport.can_write_eof():
            self._close_now()
            return
        retry = self.guard.limits.retry_after_s if status == 503 else None
        transport.write(_response(status, template.format(limit=self.guard.limits.limit_of(reason)), retry))
        transport.write_eof()
        self.flow.hold()
        self.guard.open += 1  # until end_linger
        self.guard.lingering[self] = time.monotonic()

    def end_linger(self) -> None:
        if self.guard.lingering.pop(self, None) is not None:
            self.guard.open -= 1
            self._close_now()

    def _close_now(self) -> None:
        if self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size():
            self.transport.abort()  # a client that does not read its answer: do not wait for it (close() would)
        else:
            self.transport.close()

    # -- asyncio.Protocol -----------------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        g = self.guard
        g.ensure_sweeping(self.loop)
        g.bind_metrics(self.app_state)
        room = g.make_room()
        g.open += 1
        super().connection_made(transport)
        self.flow = _HoldableFlow(transport)
        if not room:
            self.refuse("over_capacity")
            return
        self._set_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.guard.lingering.pop(self, None) is not None:
            self.guard.open -= 1
        self._forget()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._unset_keepalive_if_required()
        limit = self.guard.limits.max_header_bytes
        while data:
            if self._in_head:
                # Feed the parser up to the cap while the head is incomplete: it never holds more than that.
                room = limit - self._head_bytes
                if room <= 0:
                    self.refuse("header_too_large")
                    return
                part, data = (data[:room], data[room:]) if len(data) > room else (data, b"")
                self._head_bytes += len(part)
                if not self._feed(part):
                    return
            else:
                # A body (and whatever follows it in this packet) goes to the parser at once; a pipelined
                # request's head in the same packet is counted from the next packet on.
                self._feed(data)
                return

    def _feed(self, data: bytes) -> bool:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        except httptools.HttpParserError:
            self.refuse(self._refusing or "bad_request")
            return False
        return not self._closed

    # -- parser callbacks -----------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._url_bytes = 0
        self._set_reading()

    def on_url(self, url: bytes) -> None:
        self._url_bytes += len(url)
        if self._url_bytes > self.guard.limits.max_url_bytes:
            self._refusing = "url_too_long"
            raise ValueError("request target too long")  # stops the parser; _feed answers 414
        super().on_url(url)

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._closed:
            return
        g = self.guard
        self._body_bytes += len(body)
        g.pending_body_bytes += len(body)
        super().on_body(body)
        if g.pending_body_bytes > g.limits.max_pending_body_bytes and self._body_bytes > _SMALL_BODY:
            self.flow.hold()  # read no more of it; at the read deadline it gets 503 and its bytes are freed

    def on_message_complete(self) -> None:
        if self._closed:
            return
        self._release_body()
        self._in_head, self._head_bytes = True, 0
        self._set_answering()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        pipelined = bool(self.pipeline)  # then super() starts answering the next request at once
        super().on_response_complete()
        if not (pipelined or self._closed or self.transport.is_closing() or self in self.guard.reading):
            self._set_idle()


class GuardedProtocolFactory:
    """What ``uvicorn.Config(http=...)`` gets: builds a :class:`GuardedHttpToolsProtocol` per connection.

    One per server process (``--workers`` makes one in each, ``server.protocol_from_env``).
    """

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self._guard: ConnectionGuard | None = None

    @property
    def guard(self) -> ConnectionGuard:
        if self._guard is None:
            self._guard = ConnectionGuard(self.limits)
        return self._guard

    def __call__(self, *args: Any, **kwargs: Any) -> GuardedHttpToolsProtocol:
        return GuardedHttpToolsProtocol(*args, guard=self.guard, **kwargs)
