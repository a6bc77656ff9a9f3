"""The service as a real server subprocess on a free loopback port: answers, backpressure and SIGTERM draining."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import time

import httpx
import pytest
from svc_tiny import WORDS, tiny_predictor

SERVER = "tests/service/run_tiny_server.py"


def _gauge(metrics: str, name: str) -> float:
    m = re.search(rf"^{name} ([0-9.e+-]+)$", metrics, flags=re.M)
    return float(m.group(1)) if m else float("nan")


def test_server_predictions_equal_predictor(server_process):
    sp = server_process([SERVER, "{port}"])
    sp.wait_ready()
    texts = ["a wonderful film", "", "🎬 the worst plot", "long " * 1999]
    with httpx.Client(base_url=sp.url, timeout=10) as c:
        r = c.post("/v1/predict", json={"texts": texts})
        assert r.status_code == 200
        assert r.json()["predictions"] == [p.to_dict() for p in tiny_predictor().predict(texts)]
        assert c.get("/livez").status_code == 200
    rc, out, err = sp.stop()
    assert rc in (0, -signal.SIGTERM), err
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert any(x["path"] == "/v1/predict" and x["status"] == 200 for x in lines)  # JSON access log on stdout


def test_full_queue_answers_503_within_10ms(server_process):
    sp = server_process([SERVER, "{port}", "0.5", "0", "4"])  # each model call takes 0.5 s; 4 texts may wait
    sp.wait_ready()

    async def main():
        async with httpx.AsyncClient(base_url=sp.url, timeout=30, limits=httpx.Limits(max_connections=50)) as c:
            busy = [asyncio.create_task(c.post("/v1/predict", json={"texts": ["first"]}))]
            await asyncio.sleep(0.2)  # the worker is busy with it for 0.5 s
            busy += [asyncio.create_task(c.post("/v1/predict", json={"texts": [f"b{i}"]})) for i in range(4)]
            await asyncio.sleep(0.1)  # 4 more wait: the queue is full
            refused, took = [], []
            for i in range(5):
                t0 = time.perf_counter()
                refused.append(await c.post("/v1/predict", json={"texts": [f"c{i}"]}))
                took.append(time.perf_counter() - t0)
            return await asyncio.gather(*busy), refused, took

    accepted, refused, took = asyncio.run(main())
    assert [r.status_code for r in accepted] == [200] * 5  # accepted requests are still answered
    assert all(r.status_code == 503 and r.headers["retry-after"] == "1" for r in refused)
    assert min(took) < 0.010, took
    _, out, _ = sp.stop()
    server_ms = [x["duration_ms"] for x in map(json.loads, out.splitlines())
                 if x["status"] == 503 and x["path"] == "/v1/predict"]
    assert len(server_ms) == 5 and max(server_ms) < 10.0, server_ms


def test_sigterm_drains_100_in_flight_requests(server_process):
    # Model calls take 0.5 s, so 100 requests (two batches of at most 64) are still in flight when
    # uvicorn starts closing 0.2 s after SIGTERM.
    sp = server_process([SERVER, "{port}", "0.5", "0.2"])
    sp.wait_ready()

    async def main():
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=sp.url, timeout=60, limits=limits) as c, \
                httpx.AsyncClient(base_url=sp.url, timeout=5) as probe:
            texts = [f"{WORDS[i % len(WORDS)]} {WORDS[i * 7 % len(WORDS)]}" for i in range(100)]
            tasks = [asyncio.create_task(c.post("/v1/predict", json={"texts": [t]})) for t in texts]
            for _ in range(1000):
                # 100 predictions + this /metrics request itself
                if _gauge((await probe.get("/metrics")).text, "lstmtext_http_requests_in_flight") >= 101:
                    break
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the 100 requests never were in flight together")
            os.kill(sp.proc.pid, signal.SIGTERM)
            ready = await probe.get("/readyz")
            results = await asyncio.gather(*tasks, return_exceptions=True)
            return ready, results

    ready, results = asyncio.run(main())
    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    failures = [r for r in results if not isinstance(r, httpx.Response) or r.status_code != 200]
    assert failures == []
    assert len({r.json()["predictions"][0]["probability"] for r in results}) > 1  # real, per-text answers
    rc, out, err = sp.stop()
    assert rc in (0, -signal.SIGTERM), err
    assert "Shutting down" in err
