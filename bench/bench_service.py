"""Load runs of the HTTP service on loopback, and `lstmtext predict` on the 25,000 raw IMDB test reviews.

    PATH=$PWD/.venv/bin:$PATH PYTHONPATH=src python bench/bench_service.py \
        --archive ../shared/datasets/aclImdb_v1.tar.gz --model tutorial --out bench/service_results.json

Steps (every run bounded in time; the server listens on 127.0.0.1 only):

1. A checkpoint: ``--model tutorial`` trains the tf.keras tutorial model (Embedding(5000, 15) -> LSTM(10) ->
   Dense(1, sigmoid), Adam, maxlen 300, batch 128, ``--epochs`` epochs) on the archive; ``--model random`` is
   the same shape with random weights (same latency, meaningless labels); ``--checkpoint DIR`` uses a folder.
2. ``lstmtext serve DIR`` as a subprocess (the real command line; JSON access log on, to a file).
3. ``wrk`` (Debian's package) with one raw test review per request, cycling over ``--reviews`` reviews:
   64 connections (1x), 640 connections (10x the concurrency that already saturates the server), and
   640 connections against a server with a small queue (``--max-queue-texts 128``), where the excess is
   refused with 503 + Retry-After. Throughput, p50/p90/p99, non-2xx (by status, from the server's
   /metrics) and the server's resident memory (sampled every 0.25 s) are recorded.
4. ``lstmtext predict DIR --input test_reviews.txt --format jsonl`` on all 25,000 test reviews (wall time of
   the whole command, and the tokenize+predict time it reports).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
_REVIEW = re.compile(r"^aclImdb/(train|test)/(pos|neg)/\d+_\d+\.txt$")

WRK_DONE = """
done = function(summary, latency, requests)
  io.write(string.format('WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d,'
    .. ' "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
"""


def read_reviews(archive: str, split: str, limit: int | None = None) -> list[str]:
    """Raw review texts of one split, in archive order."""
    out = []
    with tarfile.open(archive, "r:gz") as tf:
        for m in tf:
            mm = _REVIEW.match(m.name)
            if m.isfile() and mm and mm.group(1) == split:
                out.append(tf.extractfile(m).read().decode("utf-8"))
                if limit is not None and len(out) >= limit:
                    break
    return out


def make_checkpoint(kind: str, archive: str, out: Path, epochs: int) -> dict:
    """Train (or randomly initialise) the tutorial model and save it with its tokenizer as a checkpoint."""
    import numpy as np
    import torch

    from lstmtext.datasets import imdb
    from lstmtext.layers import LSTM, Dense, Embedding
    from lstmtext.models import Sequential
    from lstmtext.predictor import Predictor
    from lstmtext.preprocessing.sequence import pad_sequences

    torch.manual_seed(1)
    model = Sequential([Embedding(5000, 15), LSTM(10), Dense(1, activation="sigmoid")])
    info: dict = {"model": kind}
    if kind == "tutorial":
        (x_train, y_train), (x_test, y_test) = imdb.load_data(path=archive, num_words=5000)
        x_train, x_test = pad_sequences(x_train, maxlen=300), pad_sequences(x_test, maxlen=300)
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        t0 = time.perf_counter()
        model.fit(x_train, np.asarray(y_train), batch_size=128, epochs=epochs, validation_split=0.2, verbose=2)
        loss, acc = model.evaluate(x_test, np.asarray(y_test), batch_size=512, verbose=0)
        info.update(epochs=epochs, train_s=round(time.perf_counter() - t0, 1), test_accuracy=round(float(acc), 4))
    else:
        model(torch.zeros(1, 300, dtype=torch.long))
    tokenizer = imdb.get_tokenizer(path=archive, num_words=5000)
    Predictor(model, tokenizer, maxlen=300, labels=["negative", "positive"]).save(out)
    return info


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Server:
    """``lstmtext serve`` on a free loopback port, stopped by pid."""

    def __init__(self, checkpoint: Path, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        self.log = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "lstmtext", "serve", str(checkpoint), "--port",
                                      str(self.port), "--log-level", "warning", *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {log}")
            time.sleep(0.2)
        raise TimeoutError("server not ready in 300 s")

    def statuses(self) -> dict[str, float]:
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        out: dict[str, float] = {}
        for m in re.finditer(r'^lstmtext_http_requests_total\{method="POST",path="/v1/predict",status="(\d+)"\} (\S+)$',
                             text, flags=re.M):
            out[m.group(1)] = float(m.group(2))
        batches = re.search(r"^lstmtext_batch_size_texts_count (\S+)$", text, flags=re.M)
        texts = re.search(r"^lstmtext_batch_size_texts_sum (\S+)$", text, flags=re.M)
        out["_batches"] = float(batches.group(1)) if batches else 0.0
        out["_texts"] = float(texts.group(1)) if texts else 0.0
        return out

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.log.close()
        return rc


def wrk_script(reviews: list[str], path: Path) -> Path:
    bodies = ",".join("[==[" + json.dumps({"texts": [r]}) + "]==]" for r in reviews)
    path.write_text(f"local bodies = {{{bodies}}}\nlocal i = 0\nwrk.method = 'POST'\n"
                    "wrk.headers['Content-Type'] = 'application/json'\n"
                    "request = function()\n  i = i % #bodies + 1\n  return wrk.format(nil, nil, nil, bodies[i])\nend\n"
                    + WRK_DONE)
    return path


def run_wrk(url: str, connections: int, seconds: int, script: Path) -> dict:
    """One bounded ``wrk -t1`` run; ``script`` must end with `WRK_DONE` (its JSON summary is returned)."""
    r = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), url],
                       capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"^WRK_JSON (.*)$", r.stdout, flags=re.M)
    if not m:
        raise RuntimeError(f"wrk failed: {r.stdout}\n{r.stderr}")
    return json.loads(m.group(1))


def load_run(server: Server, script: Path, connections: int, seconds: int, label: str) -> dict:
    """One bounded wrk run; returns throughput, latency percentiles, non-2xx by status and server memory."""
    before = server.statuses()
    rss: list[float] = [rss_mib(server.proc.pid)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.25):
            rss.append(rss_mib(server.proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        w = run_wrk(f"{server.url}/v1/predict", connections, seconds, script)
    finally:
        stop.set()
        sampler.join()
    after = server.statuses()
    by_status = {k: int(after.get(k, 0) - before.get(k, 0)) for k in after if not k.startswith("_")}
    batches = after["_batches"] - before["_batches"]
    result = {
        "run": label,
        "connections": connections,
        "seconds": round(w["duration_us"] / 1e6, 2),
        "requests": w["requests"],
        "req_per_s": round(w["requests"] / (w["duration_us"] / 1e6), 1),
        "ok_per_s": round(by_status.get("200", 0) / (w["duration_us"] / 1e6), 1),
        "p50_ms": w["p50_us"] / 1000, "p90_ms": w["p90_us"] / 1000, "p99_ms": w["p99_us"] / 1000,
        "max_ms": w["max_us"] / 1000,
        "by_status": {k: v for k, v in by_status.items() if v},
        "wrk_non_2xx": w["status"],
        "socket_errors": {k: w[k] for k in ("connect", "read", "write", "timeout")},
        "mean_batch_texts": round((after["_texts"] - before["_texts"]) / batches, 1) if batches else None,
        "server_rss_mib": {"start": round(rss[0], 1), "peak": round(max(rss), 1), "end": round(rss[-1], 1)},
    }
    print(json.dumps(result), flush=True)
    return result


def predict_25k(checkpoint: Path, archive: str, work: Path) -> dict:
    """Time `lstmtext predict` on every raw test review (one per line; IMDB reviews hold no newline)."""
    reviews = read_reviews(archive, "test")
    if any("\n" in r for r in reviews):
        raise RuntimeError("a review contains a newline; the one-per-line file would split it")
    inp = work / "test_reviews.txt"
    inp.write_text("\n".join(reviews) + "\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "lstmtext", "predict", str(checkpoint), "--input", str(inp),
                        "--format", "jsonl"], capture_output=True, text=True, env=env, timeout=600)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    lines = r.stdout.splitlines()
    inner = re.search(r"in ([0-9.]+) s", r.stderr)
    labels = [json.loads(x)["label_id"] for x in lines]
    result = {"run": "lstmtext predict, 25,000 raw test reviews", "texts": len(lines), "command_wall_s": round(wall, 2),
              "tokenize_predict_s": float(inner.group(1)) if inner else None}
    if len(labels) == len(reviews):
        result["accuracy_vs_folder_labels"] = _accuracy(archive, labels)
    print(json.dumps(result), flush=True)
    return result


def _accuracy(archive: str, labels: list[int]) -> float:
    """Accuracy against the pos/neg folder of each test review (in the archive order read_reviews uses)."""
    truth = []
    with tarfile.open(archive, "r:gz") as tf:
        for m in tf:
            mm = _REVIEW.match(m.name)
            if m.isfile() and mm and mm.group(1) == "test":
                truth.append(1 if mm.group(2) == "pos" else 0)
    return round(sum(int(a == b) for a, b in zip(labels, truth)) / len(truth), 4)


def machine() -> str:
    """CPU model, core count and vector extensions of this machine (from /proc/cpuinfo where it exists)."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    vec = "AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "no AVX2")
    return f"{os.cpu_count()}-core {name} ({vec})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archive", default=str(REPO.parent / "shared" / "datasets" / "aclImdb_v1.tar.gz"))
    p.add_argument("--model", choices=("tutorial", "random"), default="tutorial")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--checkpoint", default=None, help="use this checkpoint folder instead of making one")
    p.add_argument("--seconds", type=int, default=15, help="length of each load run")
    p.add_argument("--reviews", type=int, default=2000, help="distinct test reviews cycled through by wrk")
    p.add_argument("--skip-load", action="store_true")
    p.add_argument("--skip-predict", action="store_true")
    p.add_argument("--serve-arg", action="append", default=[],
                   help="extra `lstmtext serve` argument for every server, repeatable (e.g. --serve-arg=--workers=2)")
    p.add_argument("--out", default=None, help="write all results as JSON here")
    args = p.parse_args()
    if shutil.which("wrk") is None and not args.skip_load:
        sys.exit("wrk is not installed (apt-get install wrk), or pass --skip-load")

    work = Path(tempfile.mkdtemp(prefix="bench-service-"))
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "serve_args": args.serve_arg,
                     "load_average_start": os.getloadavg()}
    if args.checkpoint:
        ckpt = Path(args.checkpoint)
        results["checkpoint"] = {"model": "given", "path": str(ckpt)}
    else:
        ckpt = work / "ckpt"
        results["checkpoint"] = make_checkpoint(args.model, args.archive, ckpt, args.epochs)
        print(json.dumps(results["checkpoint"]), flush=True)
    runs = []
    if not args.skip_load:
        script = wrk_script(read_reviews(args.archive, "test", args.reviews), work / "bodies.lua")
        server = Server(ckpt, work / "server.log", *args.serve_arg)
        try:
            load_run(server, script, 8, 3, "warm-up")
            runs.append(load_run(server, script, 64, args.seconds, "1x: 64 connections"))
            runs.append(load_run(server, script, 640, args.seconds, "10x: 640 connections"))
        finally:
            results["server_exit"] = server.stop()
        small = Server(ckpt, work / "server-small-queue.log", "--max-queue-texts", "128", *args.serve_arg)
        try:
            load_run(small, script, 8, 3, "warm-up")
            runs.append(load_run(small, script, 640, args.seconds, "10x: 640 connections, max_queue_texts=128"))
        finally:
            small.stop()
    results["load_runs"] = runs
    if not args.skip_predict:
        results["predict_25k"] = predict_25k(ckpt, args.archive, work)
    results["load_average_end"] = os.getloadavg()
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
