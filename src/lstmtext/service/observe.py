"""Prometheus metrics and JSON-lines access logs of the service.

Each app owns its own :class:`prometheus_client.CollectorRegistry` (several apps in one process, as in
tests, do not share counters). :class:`ObserveMiddleware` is the outermost ASGI layer, so requests refused
by the body limit are counted and logged too.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from lstmtext.service.limits import ASGIApp, Message, Receive, Scope, Send

access_logger = logging.getLogger("lstmtext.access")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,64}$")


class ServiceMetrics:
    """The service's Prometheus metrics (all named ``lstmtext_*``)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("lstmtext_http_requests_total", "HTTP requests answered, by method, route and status",
                                ["method", "path", "status"], registry=r)
        self.latency = Histogram("lstmtext_http_request_duration_seconds", "Time to answer an HTTP request, by route",
                                 ["path"], buckets=_LATENCY_BUCKETS, registry=r)
        self.in_flight = Gauge("lstmtext_http_requests_in_flight", "HTTP requests being answered", registry=r)
        self.batch_texts = Histogram("lstmtext_batch_size_texts", "Texts per model call", buckets=_BATCH_BUCKETS,
                                     registry=r)
        self.batch_requests = Histogram("lstmtext_batch_size_requests", "Requests per model call",
                                        buckets=_BATCH_BUCKETS, registry=r)
        self.batch_seconds = Histogram("lstmtext_batch_duration_seconds", "Time of one model call (tokenize, pad, run)",
                                       buckets=_LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("lstmtext_queue_depth_texts", "Texts waiting for a model call", registry=r)
        self.rejected = Counter("lstmtext_rejected_requests_total", "Prediction requests refused by backpressure",
                                ["reason"], registry=r)
        self.model_info = Gauge("lstmtext_model_info", "The model being served (value 1; its version as a label)",
                                ["version"], registry=r)
        self.reloads = Counter("lstmtext_model_reloads_total", "Model reload attempts, by result", ["result"],
                               registry=r)
        self.connections_closed = Counter(
            "lstmtext_connections_closed_total", "Connections closed or refused by the service's connection limits, "
            "by reason (idle_timeout, read_timeout, header_too_large, url_too_long, bad_request, body_memory, "
            "evicted, over_capacity)", ["reason"], registry=r)
        self.open_connections = Gauge("lstmtext_open_connections", "Open client connections of this process",
                                      registry=r)
        self.pending_body_bytes = Gauge("lstmtext_pending_body_bytes", "Bytes of unfinished request bodies held",
                                        registry=r)
        self.ready = Gauge("lstmtext_ready", "1 when the service is ready for traffic (/readyz answers 200)",
                           registry=r)

    def observe_batch(self, n_texts: int, n_requests: int, seconds: float) -> None:
        """Record one model call (called from the batcher's worker thread)."""
        self.batch_texts.observe(n_texts)
        self.batch_requests.observe(n_requests)
        self.batch_seconds.observe(seconds)

    def set_model_version(self, version: str) -> None:
        """Make ``version`` the only ``lstmtext_model_info`` series."""
        self.model_info.clear()
        self.model_info.labels(version=version).set(1)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class ObserveMiddleware:
    """Counts, times and logs (one JSON line each) every HTTP request; sets ``x-request-id``.

    Args:
        app: the ASGI app.
        metrics: where to count.
        routes: known route paths; any other path is labelled ``other`` (bounded metric cardinality).
        access_log: write the JSON access line.
    """

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, routes: Iterable[str], access_log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = frozenset(routes)
        self.access_log = access_log
        # Request ids: a random per-process prefix and a counter (unique across workers and restarts, and ~10x
        # cheaper per request than uuid4, which the service paid on every request).
        self._id_prefix = os.urandom(6).hex()
        self._ids = itertools.count()
        # labels() takes a lock and builds a key on every call; the few (method, route, status) children are kept.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._timers: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        request_id = None
        for k, v in scope.get("headers", ()):
            if k == b"x-request-id" and _REQUEST_ID.match(v):
                request_id = v.decode()
        request_id = request_id or f"{self._id_prefix}{next(self._ids):08x}"
        status = 0
        sent = 0

        async def observed_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, observed_send)
        except BaseException:
            status = status or 500  # uvicorn answers 500
            raise
        finally:
            self.metrics.in_flight.dec()
            # No answer: the connection was closed by a limit (its status in the scope) or by the client (499).
            status = status or scope.get("lstmtext.refused", 499)
            seconds = time.perf_counter() - t0
            path = scope["path"] if scope["path"] in self.routes else "other"
            key = (scope["method"], path, status)
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = self.metrics.requests.labels(key[0], path, str(status))
            counter.inc()
            timer = self._timers.get(path)
            if timer is None:
                timer = self._timers[path] = self.metrics.latency.labels(path)
            timer.observe(seconds)
            if self.access_log and access_logger.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access_logger.info(json.dumps({
                    "ts": round(time.time(), 6),
                    "request_id": request_id,
                    "client": f"{client[0]}:{client[1]}" if client else None,
                    "method": scope["method"],
                    "path": scope["path"][:200],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "bytes_out": sent,
                }))
