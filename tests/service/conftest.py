"""Fixtures of the service tests: a tiny real model and server subprocesses on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

from svc_helpers import ServerProcess


@pytest.fixture
def server_process() -> Iterator[Callable[..., ServerProcess]]:
    """Start service subprocesses (``{port}`` in the arguments becomes a free port); all are stopped at the end."""
    started: list[ServerProcess] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> ServerProcess:
        sp = ServerProcess(args, env)
        started.append(sp)
        return sp

    yield start
    for sp in started:
        sp.stop()
