"""Helpers of the service tests: readiness polling, in-process async clients, server subprocesses on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


def wait_ready(client, timeout: float = 30.0) -> None:
    """Poll /readyz (sync client) until 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise TimeoutError("service not ready in time")


@contextlib.asynccontextmanager
async def running(app) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and yield an async client bound to it in-process (ASGI transport)."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as client:
            for _ in range(1500):
                if (await client.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.02)
            yield client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A service subprocess on 127.0.0.1 (stopped by its pid at the end of the test)."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
                    **(env or {})}
        # Files, not pipes: a pipe nobody reads fills up (64 KiB of access log) and blocks the server.
        self.out, self.err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, *[a.replace("{port}", str(self.port)) for a in args]],
                                     env=full_env, stdout=self.out, stderr=self.err)

    def wait_ready(self, timeout: float = 60.0) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as c:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}: {self._read(self.err)}")
                try:
                    if c.get("/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        raise TimeoutError("server not ready in time")

    def stop(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self.proc.returncode, self._read(self.out), self._read(self.err)

    @staticmethod
    def _read(f) -> str:
        f.seek(0)
        return f.read().decode(errors="replace")
