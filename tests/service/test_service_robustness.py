"""Issue-11 service guarantees the other service tests do not pin down: nested and gigantic JSON bodies,
readiness during warm-up, and memory and queue bounded under 10x overload."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import tracemalloc

import pytest
import torch
from fastapi.testclient import TestClient
from svc_helpers import running, wait_ready
from svc_tiny import TinyClassifier, encode, tiny_predictor

from lstmtext.predictor import Predictor
from lstmtext.service import ServiceConfig, create_app

LIMIT = 1 << 20  # the default max_body_bytes


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(tiny_predictor())) as c:
        wait_ready(c)
        yield c


def _fit(prefix: bytes, unit: bytes, suffix_unit: bytes, suffix: bytes) -> bytes:
    """``prefix + unit*k + suffix_unit*k + suffix`` with the largest ``k`` that stays within the body limit."""
    k = (LIMIT - len(prefix) - len(suffix)) // (len(unit) + len(suffix_unit))
    return prefix + unit * k + suffix_unit * k + suffix


@pytest.mark.parametrize(("body", "message"), [
    (_fit(b'{"texts": ', b"[", b"]", b"}"), "recursion limit exceeded"),
    (_fit(b"", b"[", b"]", b""), "recursion limit exceeded"),
    (_fit(b"", b'{"a": ', b"}", b""), "recursion limit exceeded"),
    (_fit(b'{"texts": [', b'"",', b"", b'""]}'), "max_texts=64"),
    (_fit(b'{"texts": [', b"0,", b"", b"0]}"), "max_texts=64"),
    (b'{"texts": ["' + b"\\ud800" * 1000 + b'"]}', "lone leading surrogate"),
])
def test_nested_or_gigantic_json_within_the_body_limit_gets_422_fast(client, body, message):
    assert len(body) <= LIMIT
    start = time.perf_counter()
    r = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    took = time.perf_counter() - start
    assert r.status_code == 422 and message in r.json()["message"], r.text[:300]
    assert took < 1.0, f"took {took:.2f} s"
    assert client.post("/v1/predict", json={"texts": ["still fine"]}).status_code == 200


def test_readyz_is_503_while_warming_up():
    gate = threading.Event()

    class GatedModel(TinyClassifier):
        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            gate.wait(10)  # the warm-up predictions block here until the test opens the gate
            return super().forward(ids)

    app = create_app(Predictor(GatedModel(), encode, maxlen=20, version="gated"))
    with TestClient(app) as c:
        time.sleep(0.1)  # the model is loaded; its warm-up is stuck on the gate
        r = c.get("/readyz")
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert c.post("/v1/predict", json={"texts": ["x"]}).status_code == 503
        assert "lstmtext_ready 0.0" in c.get("/metrics").text
        gate.set()
        wait_ready(c)
        assert c.post("/v1/predict", json={"texts": ["x"]}).json()["model_version"] == "gated"


def test_overload_at_10x_keeps_memory_and_queue_bounded():
    # Capacity: 8 texts in a model call + 16 waiting = 24 requests; 240 clients send one after another.
    cfg = ServiceConfig(max_batch_size=8, batch_window_ms=0, max_queue_texts=16, request_timeout_s=5, warmup=False)
    app = create_app(tiny_predictor(delay_s=0.1), cfg)  # ~80 texts/s: far below what the loop can take in
    clients = 240

    async def main():
        async with running(app) as c:
            batcher = app.state.batcher

            async def phase(requests_each: int) -> tuple[list, int, int]:
                statuses: list = []
                deepest, peak = 0, 0
                done = asyncio.Event()

                async def client(i: int) -> None:
                    for k in range(requests_each):
                        r = await c.post("/v1/predict", json={"texts": [f"the film {i} {k}"]})
                        statuses.append((r.status_code, r.headers.get("retry-after"), len(r.json().get("predictions",
                                                                                                          []))))

                async def monitor() -> None:
                    nonlocal deepest, peak
                    while not done.is_set():
                        deepest = max(deepest, batcher.queued_texts)
                        peak = max(peak, tracemalloc.get_traced_memory()[0])
                        await asyncio.sleep(0.005)

                mon = asyncio.create_task(monitor())
                await asyncio.gather(*(client(i) for i in range(clients)))
                done.set()
                await mon
                return statuses, deepest, peak

            gc.collect()
            tracemalloc.start()
            try:
                short = await phase(1)
                gc.collect()
                long = await phase(2)  # twice as many requests
            finally:
                tracemalloc.stop()
            return short, long

    (short, deep_short, peak_short), (long, deep_long, peak_long) = asyncio.run(main())
    for statuses in (short, long):
        assert {s for s, _, _ in statuses} <= {200, 503}
        assert all(n == 1 for s, _, n in statuses if s == 200)  # accepted requests are answered
        assert all(ra == "1" for s, ra, _ in statuses if s == 503)
        assert sum(s == 200 for s, _, _ in statuses) >= clients // 10
        assert sum(s == 503 for s, _, _ in statuses) >= len(statuses) // 10  # the excess is refused, not queued
    assert max(deep_short, deep_long) <= 16
    growth = peak_long - peak_short
    assert growth < 4 << 20, f"peak traced memory grew {growth / 2**20:.1f} MiB with 2x the requests"
