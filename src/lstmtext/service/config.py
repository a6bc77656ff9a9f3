"""ServiceConfig: the limits, batching and shutdown settings of the HTTP service, one validated dataclass."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from lstmtext.errors import ConfigError


@dataclass
class ServiceConfig:
    """Settings of the prediction service (each field is also a ``lstmtext serve`` option)."""

    max_body_bytes: int = 1 << 20
    """Largest request body accepted, in bytes; larger bodies get 413 before any JSON parsing."""
    max_texts: int = 64
    """Most texts in one ``/v1/predict`` request (422 past it)."""
    max_text_chars: int = 10_000
    """Most characters (code points) in one text (422 past it)."""
    max_batch_size: int = 64
    """Most texts the batcher puts into one model call."""
    batch_window_ms: float = 2.0
    """How long the batcher waits after a text arrives for others to join its batch."""
    max_queue_texts: int = 1024
    """Most texts waiting for the model; past it requests get 503 with ``Retry-After`` at once."""
    request_timeout_s: float = 10.0
    """A request still unanswered after this long gets 503 (and its texts are dropped if not yet run)."""
    retry_after_s: int = 1
    """The ``Retry-After`` header sent with 503 answers, in seconds."""
    torch_threads: int = 1
    """Intra-op threads of the inference worker (1 suits small LSTMs: the batch is the parallelism)."""
    warmup: bool = True
    """Run a few predictions at start (and after a reload) before ``/readyz`` turns 200."""
    admin_token: str | None = None
    """Bearer token for ``POST /admin/reload``; without one the admin endpoint is off (404)."""
    watch_interval_s: float | None = None
    """Poll the checkpoint's manifest this often and reload when it changes (``None``: no watching)."""
    shutdown_delay_s: float = 0.0
    """On SIGTERM: answer ``/readyz`` with 503 and keep serving this long before closing the listener."""
    access_log: bool = True
    """Write one JSON line per request to the ``lstmtext.access`` logger."""
    max_connections: int = 2048
    """Most open connections per server process; a new one past it closes the connection idle (or reading
    a request) the longest, or gets 503 with ``Retry-After`` when every connection is being answered."""
    idle_timeout_s: float = 5.0
    """A connection that has not started a request this long after connecting or after its last answer is
    closed."""
    request_read_timeout_s: float = 10.0
    """A request (line, headers and body) must arrive completely within this many seconds of its first byte;
    past it the connection gets 408 and is closed, and the bytes received are freed."""
    max_header_bytes: int = 16_384
    """Largest request line + headers, in bytes; past it the request gets 431 and the connection is closed."""
    max_url_bytes: int = 8_192
    """Longest request target (path and query), in bytes; past it the request gets 414."""
    max_pending_body_bytes: int = 128 << 20
    """Most bytes of unfinished request bodies held at once by a server process; past it, bodies over 64 KiB
    are no longer read and get 503 with ``Retry-After`` at their read deadline (stalled uploads cannot grow
    memory; small requests are still read)."""
    max_model_info_bytes: int = 65_536
    """Largest ``GET /v1/model`` answer; larger parts (a huge config) are left out of it, saying so."""

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_texts", "max_text_chars", "max_batch_size", "max_queue_texts",
                     "torch_threads", "retry_after_s", "max_connections", "max_header_bytes", "max_url_bytes",
                     "max_pending_body_bytes", "max_model_info_bytes"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"ServiceConfig.{name}: expected a positive integer, got {v!r}")
        for name in ("batch_window_ms", "shutdown_delay_s"):
            v = getattr(self, name)
            if not isinstance(v, int | float) or isinstance(v, bool) or v < 0:
                raise ConfigError(f"ServiceConfig.{name}: expected a number >= 0, got {v!r}")
        for name in ("request_timeout_s", "watch_interval_s", "idle_timeout_s", "request_read_timeout_s"):
            v = getattr(self, name)
            if v is None and name == "watch_interval_s":
                continue
            if not isinstance(v, int | float) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"ServiceConfig.{name}: expected a number > 0, got {v!r}")
        if self.max_url_bytes > self.max_header_bytes:
            raise ConfigError(f"ServiceConfig.max_url_bytes ({self.max_url_bytes}) must not exceed max_header_bytes "
                              f"({self.max_header_bytes}): the request line is part of the headers")
        if self.admin_token is not None and (not isinstance(self.admin_token, str) or len(self.admin_token) < 8):
            raise ConfigError("ServiceConfig.admin_token: expected a string of at least 8 characters")

    def to_dict(self) -> dict[str, Any]:
        """Fields as a JSON-ready dict (the admin token is never included)."""
        out = asdict(self)
        out["admin_token"] = "set" if self.admin_token else None
        return out

    @classmethod
    def field_help(cls) -> dict[str, str]:
        """Field name -> its docstring (the CLI's ``--help`` text)."""
        import inspect
        import re

        src = inspect.getsource(cls)
        docs = dict(re.findall(r"\n    (\w+): [^\n]*\n    \"\"\"(.*?)\"\"\"", src, flags=re.S))
        return {f.name: " ".join(docs.get(f.name, "").split()) for f in fields(cls)}
