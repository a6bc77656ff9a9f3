"""CPU time per request of the service's connection guard: uvicorn's httptools protocol vs the guarded subclass.

    PYTHONPATH=src python bench/bench_guard_overhead.py

No network and no model: one keep-alive connection on an in-memory transport gets 20,000 POST requests (a
2 KB review body, as in bench/bench_service.py) answered by a minimal ASGI app, five alternations of the two
protocols; CPU time (``time.process_time``) per request, which other jobs on the machine change little.
"""

from __future__ import annotations

import asyncio
import json
import time

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from lstmtext.service.config import ServiceConfig
from lstmtext.service.protocol import ConnectionLimits, GuardedProtocolFactory

BODY = json.dumps({"texts": ["This movie was a delight, well acted: " * 50]}).encode()
REQUEST = (b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
           b"content-length: %d\r\n\r\n" % len(BODY)) + BODY


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})


class MemoryTransport(asyncio.Transport):
    """Swallows what is written; never closes on its own."""

    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_extra_info(self, name: str, default=None):
        return {"sockname": ("127.0.0.1", 1), "peername": ("127.0.0.1", 2)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass


async def cpu_us_per_request(make, n: int) -> float:
    proto = make(ServerState())
    proto.connection_made(MemoryTransport())
    for i in range(200 + n):
        if i == 200:
            t0 = time.process_time()
        proto.data_received(REQUEST)
        await asyncio.sleep(0)  # the request's task runs and answers
        await asyncio.sleep(0)
    return (time.process_time() - t0) / n * 1e6


async def main() -> None:
    config = uvicorn.Config(app, lifespan="off", log_level="warning")
    config.load()
    guarded = GuardedProtocolFactory(ConnectionLimits.from_config(ServiceConfig()))
    kinds = {
        "uvicorn HttpToolsProtocol": lambda st: HttpToolsProtocol(config=config, server_state=st, app_state={}),
        "GuardedHttpToolsProtocol": lambda st: guarded(config=config, server_state=st, app_state={}),
    }
    results: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(5):
        for name, make in kinds.items():
            results[name].append(await cpu_us_per_request(make, 20_000))
    for name, values in results.items():
        print(f"{name}: {min(values):.2f} us CPU per request (min of 5; all {[round(v, 2) for v in values]})")


if __name__ == "__main__":
    asyncio.run(main())
