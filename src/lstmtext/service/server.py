"""Run the service under uvicorn: one process, or ``workers`` processes sharing the listening socket.

Logging: JSON access lines go to stdout (one per request), everything else to stderr. SIGTERM turns
``/readyz`` to 503 at once, keeps serving for ``shutdown_delay_s``, then stops accepting connections and
finishes every request in flight before the process exits.

Connections are read by :class:`~lstmtext.service.protocol.GuardedHttpToolsProtocol` (uvicorn's ``http=``):
deadlines for idle connections and for each request's arrival, header and URL caps, a cap on unfinished body
bytes and a connection cap that closes the slowest connection rather than refusing new ones. uvicorn's own
``limit_concurrency`` is not used: it counts idle connections, so silent sockets could lock everyone out.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
from dataclasses import asdict
from typing import Any

import uvicorn

from lstmtext.errors import ConfigError
from lstmtext.predictor import Predictor
from lstmtext.service.app import create_app
from lstmtext.service.config import ServiceConfig
from lstmtext.service.protocol import ConnectionLimits, GuardedProtocolFactory
from lstmtext.service.reload import Loader
from lstmtext.utils.runtime import tune_cpu_runtime

logger = logging.getLogger("lstmtext.service")

_SPEC_ENV = "LSTMTEXT_SERVE_SPEC"


def log_config(level: str = "info") -> dict[str, Any]:
    """``logging.config`` dict: uvicorn's messages on stderr, JSON access lines on stdout."""
    lvl = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(message)s"},
            "default": {"()": "uvicorn.logging.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s",
                        "use_colors": False},
        },
        "handlers": {
            "stdout": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stdout"},
            "stderr": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": lvl, "propagate": False},
            "lstmtext.service": {"handlers": ["stderr"], "level": lvl, "propagate": False},
            "lstmtext.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        },
    }


def _raise_open_files_limit(max_connections: int) -> None:
    """Let the process hold ``max_connections`` sockets plus its own files (soft limit up to the hard one).

    Past the open-files limit ``accept()`` fails and asyncio logs an error per attempt; the connection cap must
    be reached first.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max_connections + 256
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    if soft != resource.RLIM_INFINITY and soft < want:
        logger.warning("max_connections=%d needs about %d open files; this process may open %d (ulimit -n): "
                       "past that, connections are refused by the kernel, not answered", max_connections, want, soft)


def app_from_env() -> Any:
    """App factory of each worker process when ``workers > 1`` (settings come through the environment)."""
    spec = json.loads(os.environ[_SPEC_ENV])
    return create_app(spec["source"], ServiceConfig(**spec["config"]), handle_sigterm=True, freeze_gc=True)


_env_protocols: GuardedProtocolFactory | None = None


def protocol_from_env(*args: Any, **kwargs: Any) -> asyncio.Protocol:
    """uvicorn's ``http=`` in each worker process when ``workers > 1``: the guarded protocol, limits from the
    environment.

    Named by an import string, not passed as an object: uvicorn pickles its config to each worker and pings it
    within 5 s, and unpickling an object of this package would import torch before the worker can answer.
    """
    global _env_protocols
    if _env_protocols is None:
        config = ServiceConfig(**json.loads(os.environ[_SPEC_ENV])["config"])
        _env_protocols = GuardedProtocolFactory(ConnectionLimits.from_config(config))
    return _env_protocols(*args, **kwargs)


def serve(
    model: Predictor | str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    config: ServiceConfig | None = None,
    load: Loader | None = None,
    log_level: str = "info",
    source: str | os.PathLike[str] | None = None,
) -> None:
    """Serve ``model`` over HTTP until SIGINT/SIGTERM.

    Args:
        model: a Predictor, or a checkpoint folder (required when ``workers > 1``: each worker loads it).
        host: address to listen on (default loopback only).
        port: TCP port (0: any free port).
        workers: server processes; each holds its own model copy.
        config: service settings.
        load: checkpoint loader (default ``Predictor.from_checkpoint``; single-process only).
        log_level: uvicorn's log level.
        source: the folder an in-memory ``model`` came from (for reloads and watching).
    """
    tune_cpu_runtime()  # a serving process (the `lstmtext serve` command has done it already)
    config = config or ServiceConfig()
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(f"serve: workers must be a positive integer, got {workers!r}")
    _raise_open_files_limit(config.max_connections)
    common = dict(host=host, port=port, access_log=False, log_config=log_config(log_level), log_level=log_level,
                  timeout_keep_alive=config.idle_timeout_s,
                  timeout_graceful_shutdown=int(config.request_timeout_s) + 5, lifespan="on")
    if workers == 1:
        app = create_app(model, config, load=load, source=source, handle_sigterm=True, freeze_gc=True)
        protocols = GuardedProtocolFactory(ConnectionLimits.from_config(config))
        uvicorn.Server(uvicorn.Config(app, http=protocols, **common)).run()
        return
    if isinstance(model, Predictor) and source is not None:
        model = source  # each worker process loads its own copy
    if isinstance(model, Predictor) or load is not None:
        raise ConfigError("serve: workers > 1 needs a checkpoint folder (each worker process loads its own copy), "
                          "not an in-memory Predictor or a custom loader")
    os.environ[_SPEC_ENV] = json.dumps({"source": os.fspath(model), "config": asdict(config)})
    uvicorn.run("lstmtext.service.server:app_from_env", factory=True, workers=workers,
                http="lstmtext.service.server:protocol_from_env", **common)
