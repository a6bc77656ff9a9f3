"""The service in-process: predictions, health, limits (at and one past each), bad input, metrics, logs, schema."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time

import pytest
from fastapi.testclient import TestClient
from svc_helpers import running, wait_ready
from svc_tiny import tiny_predictor

from lstmtext.service import ServiceConfig, create_app


@pytest.fixture(scope="module")
def client():
    app = create_app(tiny_predictor())
    with TestClient(app) as c:
        wait_ready(c)
        yield c


def _body_of_size(n: int) -> bytes:
    """A valid request of exactly ``n`` bytes (JSON whitespace pads it)."""
    base = b'{"texts": ["a good film"]'
    return base + b" " * (n - len(base) - 1) + b"}"


def test_predict_equals_predictor(client):
    texts = ["a wonderful film", "", "🎬🍿 awful acting", "x" * 10_000, "The plot... was DULL!"]
    r = client.post("/v1/predict", json={"texts": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_version"] == "tiny-0"
    assert body["predictions"] == [p.to_dict() for p in tiny_predictor().predict(texts)]
    assert r.headers["x-request-id"]


def test_fast_route_and_fastapi_route_answer_alike(client):
    # POST /v1/predict skips FastAPI's stack (ServiceApp.fast_routes); the route FastAPI declares for the schema
    # must give the same answers when it is reached (here: the app's FastAPI stack called directly).
    app = client.app
    assert ("POST", "/v1/predict") in app.fast_routes
    direct = TestClient(app.build_middleware_stack())
    for body in ({"texts": ["a wonderful film", "awful"]}, {"texts": ["x"] * 65}, {"texts": "not a list"}):
        fast, slow = client.post("/v1/predict", json=body), direct.post("/v1/predict", json=body)
        assert (fast.status_code, fast.json()) == (slow.status_code, slow.json())
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]


def test_a_failing_model_answers_500_and_the_service_goes_on():
    calls = []
    predictor = tiny_predictor()
    run = predictor._run

    def flaky(ids):
        calls.append(len(ids))
        if len(calls) == 1:
            raise RuntimeError("simulated kernel failure")
        return run(ids)

    predictor._run = flaky
    with TestClient(create_app(predictor, ServiceConfig(warmup=False))) as c:
        wait_ready(c)
        r = c.post("/v1/predict", json={"texts": ["a good film"]})
        assert r.status_code == 500 and "internal error" in r.json()["detail"] and r.headers["x-request-id"]
        assert c.post("/v1/predict", json={"texts": ["a good film"]}).status_code == 200
        assert 'status="500"' in c.get("/metrics").text


def test_empty_list_and_form_content_type(client):
    assert client.post("/v1/predict", json={"texts": []}).json()["predictions"] == []
    r = client.post("/v1/predict", content=b'{"texts": ["fun"]}',
                    headers={"content-type": "application/x-www-form-urlencoded"})  # what `curl -d` sends
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1


def test_health_endpoints(client):
    assert client.get("/livez").json() == {"status": "alive"}
    assert client.get("/readyz").json() == {"status": "ready", "model_version": "tiny-0"}
    assert client.get("/healthz").status_code == 200


def test_model_info(client):
    info = client.get("/v1/model").json()
    assert info["version"] == "tiny-0" and info["vocab_size"] == 32 and info["maxlen"] == 20
    assert info["config"] == {"name": "tiny"}
    assert info["service"]["max_texts"] == 64 and info["service"]["admin_token"] is None
    assert {"torch", "python", "numpy"} <= set(info["versions"])


@pytest.mark.parametrize(("field", "limit", "status"), [("max_texts", 64, 422), ("max_text_chars", 10_000, 422)])
def test_count_and_length_limits_at_and_past(client, field, limit, status):
    at = {"texts": ["a"] * limit} if field == "max_texts" else {"texts": ["a" * limit]}
    past = {"texts": ["a"] * (limit + 1)} if field == "max_texts" else {"texts": ["a" * (limit + 1)]}
    assert client.post("/v1/predict", json=at).status_code == 200
    r = client.post("/v1/predict", json=past)
    assert r.status_code == status
    assert f"{field}={limit}" in r.json()["message"]


def test_body_limit_at_and_past_default(client):
    limit = 1 << 20
    r = client.post("/v1/predict", content=_body_of_size(limit), headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    r = client.post("/v1/predict", content=_body_of_size(limit + 1), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert "limit is 1048576 bytes (max_body_bytes)" in r.json()["detail"]


def test_body_limit_chunked_without_length_and_configurable():
    app = create_app(tiny_predictor(), ServiceConfig(max_body_bytes=1000, max_texts=3, max_text_chars=50))
    with TestClient(app) as c:
        wait_ready(c)

        def chunks(body: bytes, size: int = 100):
            for i in range(0, len(body), size):
                yield body[i:i + size]

        for n, want in ((1000, 200), (1001, 413)):
            body = _body_of_size(n)
            r = c.post("/v1/predict", content=chunks(body), headers={"content-type": "application/json"})
            assert r.request.headers.get("transfer-encoding") == "chunked"
            assert "content-length" not in r.request.headers
            assert r.status_code == want, r.text
        assert "1000 bytes (max_body_bytes)" in r.json()["detail"]
        assert c.post("/v1/predict", json={"texts": ["a"] * 4}).status_code == 422
        assert "max_text_chars=50" in c.post("/v1/predict", json={"texts": ["a" * 51]}).json()["message"]


@pytest.mark.parametrize(("body", "expect"), [
    (b'{"texts": ["unterminated', "not valid JSON"),
    (b"", "not valid JSON"),
    (b'{"texts": "one string"}', "texts: Input should be a valid array"),
    (b'{"texts": [1, 2]}', "texts.0: Input should be a valid string"),
    (b'{"texts": [null]}', "texts.0: Input should be a valid string"),
    (b'{"text": ["typo"]}', "texts: Field required"),
    (b'{"texts": ["a"], "extra": 1}', "body: unknown or repeated field"),
    (b'["a"]', "body: Input should be an object"),
    (b'{"texts": ["\xff\xfe bad utf-8"]}', "not valid JSON"),
    (b'\xff\xfe\x00\x00', "not valid JSON"),
])
def test_bad_bodies_get_4xx_with_message(client, body, expect):
    r = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert expect in r.json()["message"]
    assert all("input" not in e for e in r.json()["detail"])  # inputs are not echoed back


def test_ten_megabyte_body_gets_413(client):
    r = client.post("/v1/predict", content=b'{"texts": ["' + b"a" * (10 << 20) + b'"]}')
    assert r.status_code == 413 and "max_body_bytes" in r.json()["detail"]
    r = client.post("/v1/predict", content=b"x" * (10 << 20), headers={"content-length": str(100 << 20)})
    assert r.status_code in (400, 413)  # a lying Content-Length is refused without reading 100 MB


def test_metrics_exposition(client):
    client.post("/v1/predict", json={"texts": ["good"]})
    client.post("/v1/predict", content=b"{bad")
    text = client.get("/metrics").text
    for needle in ('lstmtext_http_requests_total{method="POST",path="/v1/predict",status="200"}',
                   'lstmtext_http_requests_total{method="POST",path="/v1/predict",status="422"}',
                   "lstmtext_http_request_duration_seconds_bucket{le=\"0.005\",path=\"/v1/predict\"}",
                   "lstmtext_batch_size_texts_bucket", "lstmtext_queue_depth_texts 0.0",
                   'lstmtext_model_info{version="tiny-0"} 1.0', "lstmtext_ready 1.0"):
        assert needle in text, needle
    unknown = client.get("/no/such/path")
    assert unknown.status_code == 404
    assert 'path="other",status="404"' in client.get("/metrics").text  # no per-path label explosion


def test_access_log_is_json_lines(client, caplog):
    with caplog.at_level(logging.INFO, logger="lstmtext.access"):
        client.post("/v1/predict", json={"texts": ["fun"]}, headers={"x-request-id": "req-42"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "lstmtext.access"]
    (line,) = [x for x in lines if x["request_id"] == "req-42"]
    assert line["method"] == "POST" and line["path"] == "/v1/predict" and line["status"] == 200
    assert line["duration_ms"] > 0 and line["bytes_out"] > 0


def test_openapi_schema_carries_limits(client):
    schema = client.get("/openapi.json").json()
    req = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert req["properties"]["texts"]["maxItems"] == 64
    assert req["properties"]["texts"]["items"]["maxLength"] == 10_000
    assert {"200", "413", "422", "503"} <= set(schema["paths"]["/v1/predict"]["post"]["responses"])
    assert "/admin/reload" not in schema["paths"]  # no admin token: no admin endpoint


def test_readiness_is_503_until_loaded_and_warmed():
    gate = threading.Event()

    def slow_load(path):
        gate.wait(10)
        return tiny_predictor(version=f"from-{path}")

    app = create_app("ckpt-a", load=slow_load)
    with TestClient(app) as c:
        r = c.get("/readyz")
        assert r.status_code == 503 and r.json()["status"] == "loading" and r.headers["retry-after"] == "1"
        assert c.get("/livez").status_code == 200
        p = c.post("/v1/predict", json={"texts": ["x"]})
        assert p.status_code == 503 and "retry-after" in p.headers
        assert "lstmtext_ready 0.0" in c.get("/metrics").text
        gate.set()
        wait_ready(c)
        assert c.post("/v1/predict", json={"texts": ["x"]}).json()["model_version"] == "from-ckpt-a"


def test_failed_first_load_keeps_503_with_reason():
    def broken(path):
        raise OSError(f"{path}: no such checkpoint")

    with TestClient(create_app("missing-dir", load=broken)) as c:
        for _ in range(200):
            r = c.get("/readyz")
            if r.json()["status"] == "failed":
                break
            time.sleep(0.01)
        assert r.status_code == 503 and "missing-dir: no such checkpoint" in r.json()["detail"]


def test_backpressure_503_with_retry_after_and_timeout():
    cfg = ServiceConfig(max_batch_size=1, batch_window_ms=0, max_queue_texts=2, request_timeout_s=5)
    app = create_app(tiny_predictor(delay_s=0.2), cfg)

    async def main():
        async with running(app) as c:
            tasks = [asyncio.create_task(c.post("/v1/predict", json={"texts": [f"t{i}"]})) for i in range(8)]
            done = await asyncio.gather(*tasks)
            metrics = (await c.get("/metrics")).text
            return done, metrics

    done, metrics = asyncio.run(main())
    codes = sorted(r.status_code for r in done)
    assert codes.count(200) >= 2 and codes.count(503) >= 1 and set(codes) <= {200, 503}
    refused = [r for r in done if r.status_code == 503]
    assert all(r.headers["retry-after"] == "1" and "max_queue_texts=2" in r.json()["detail"] for r in refused)
    assert 'lstmtext_rejected_requests_total{reason="queue_full"}' in metrics

    app = create_app(tiny_predictor(delay_s=0.5), ServiceConfig(request_timeout_s=0.1, warmup=False))

    async def slow():
        async with running(app) as c:
            return await c.post("/v1/predict", json={"texts": ["slow"]})

    r = asyncio.run(slow())
    assert r.status_code == 503 and "request timeout of 0.1 s" in r.json()["detail"]
