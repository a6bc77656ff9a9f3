"""What the HTTP stack alone costs per request: plain ASGI vs FastAPI vs the lstmtext service, no model work.

    PATH=$PWD/.venv/bin:$PATH PYTHONPATH=src python bench/bench_http_stack.py --checkpoint out/ckpt-tutorial

Each server runs under uvicorn (httptools + uvloop, no access log unless said) on a free loopback port and gets
``wrk -t1 -c64`` for ``--seconds`` after a 2 s warm-up; ``--rounds`` alternations. Servers:

- ``asgi``: a plain ASGI function answering ``{"status": "alive"}``;
- ``fastapi``: a bare FastAPI app with the same ``GET /livez`` route;
- ``service /livez``: ``lstmtext serve`` (a route that goes through FastAPI, behind the service's middlewares);
- ``service empty predict``: ``lstmtext serve``, ``POST /v1/predict`` with ``{"texts": []}`` (the fast route:
  middlewares, body limit, validation, JSON answer; no model call).

This is the measurement behind ``lstmtext.service.app.ServiceApp`` (why ``/v1/predict`` skips FastAPI's stack).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_service import WRK_DONE, free_port, machine, run_wrk

REPO = Path(__file__).resolve().parents[1]

APPS = '''
from fastapi import FastAPI

async def asgi(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"18")]})
    await send({"type": "http.response.body", "body": b'{"status":"alive"}'})

fastapi_app = FastAPI()

@fastapi_app.get("/livez")
async def livez():
    return {"status": "alive"}
'''


def start(cmd: list[str], url: str, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise TimeoutError(f"{cmd} not ready")


def wrk(url: str, seconds: int, script: Path) -> dict:
    w = run_wrk(url, 64, seconds, script)
    return {"req_per_s": round(w["requests"] / (w["duration_us"] / 1e6), 1), "p99_ms": w["p99_us"] / 1000,
            "non_2xx": w["status"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder for `lstmtext serve`")
    p.add_argument("--seconds", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="http-stack-"))
    (work / "stack_apps.py").write_text(APPS)
    get, post = work / "get.lua", work / "empty.lua"
    get.write_text(WRK_DONE)
    post.write_text("wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\n"
                    "wrk.body = '{\"texts\": []}'\n" + WRK_DONE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(work), str(REPO / "src")])}
    uv = [sys.executable, "-m", "uvicorn", "--log-level", "warning", "--no-access-log", "--host", "127.0.0.1"]
    serve = [sys.executable, "-m", "lstmtext", "serve", a.checkpoint, "--log-level", "warning", "--no-access-log"]
    servers = [
        ("asgi", lambda port: uv + ["stack_apps:asgi", "--port", str(port)], "/livez", get),
        ("fastapi", lambda port: uv + ["stack_apps:fastapi_app", "--port", str(port)], "/livez", get),
        ("service /livez", lambda port: serve + ["--port", str(port)], "/livez", get),
        ("service empty predict", lambda port: serve + ["--port", str(port)], "/v1/predict", post),
    ]
    results = []
    print(json.dumps({"machine": machine(), "date": time.strftime("%Y-%m-%d")}), flush=True)
    for r in range(a.rounds):
        for name, cmd, path, script in servers:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            proc = start(cmd(port), base + ("/readyz" if name.startswith("service") else "/livez"), env)
            try:
                wrk(base + path, 2, script)
                res = {"round": r + 1, "server": name, **wrk(base + path, a.seconds, script)}
            finally:
                proc.terminate()
                proc.wait(timeout=60)
            results.append(res)
            print(json.dumps(res), flush=True)
    if a.out:
        Path(a.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
