"""Fixtures of the service tests: a tiny real model and server subprocesses on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")

from svc_helpers import ServerProcess


@pytest.fixture(scope="session")
def _svc_cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("svc-lstmtext-cache")


@pytest.fixture(autouse=True)
def _shared_kernel_cache(_svc_cache_dir, monkeypatch):
    """One cache folder for this directory's whole session: the compiled LSTM kernel is built once and
    reused by the server subprocesses (a fresh folder per test would rebuild it in each of them)."""
    monkeypatch.setenv("LSTMTEXT_CACHE_DIR", str(_svc_cache_dir))


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
