"""Hostile clients against `lstmtext serve` on loopback while normal traffic runs (issue 18, classes 1-3).

    PATH=$PWD/.venv/bin:$PATH PYTHONPATH=src python bench/bench_attacks.py \
        --archive /path/to/aclImdb_v1.tar.gz --seconds 10 --out out/attacks.json

One `lstmtext serve` process with the default limits (the real command line) and the tutorial model's shape
(``--model random``: Embedding(5000, 15) -> LSTM(10) -> Dense(1), random weights, the same cost per request as
the trained one; ``--checkpoint DIR`` serves a folder). Normal traffic is ``wrk -t1 -c64`` posting one raw IMDB
test review per request (``bench/bench_service.py``'s script and runner). Each run lasts ``--seconds``:

- ``quiet``: normal traffic alone, right before each attack (the reference of its ratios: the machine is
  shared and its speed drifts) and once more at the end;
- each attack: an attacker process (asyncio on uvloop, raw sockets) runs for the whole wrk run, started 1 s
  before it; its own CPU time is reported (it shares the 2 cores with the server and wrk).

For every run: normal traffic's requests/s and p99 and their ratios to the first quiet run, non-2xx answers of
normal requests (from the server's /metrics), the server's peak RSS (sampled every 0.25 s), and the attacker's
own figures: answers by status, the time from its first byte (or, for stalled bodies, its last byte) to the
server's answer, and connections the server closed.

Attacks (class numbers of issue 18), each in more than one size:

1. ``unknown-keys``: bodies of N unknown keys under the 1 MiB limit, posted in a closed loop by C clients, to
   ``/v1/predict`` and (without a token) ``/admin/reload``;
2. ``idle-sockets``: S sockets that connect and send nothing, reopened as soon as the server closes one;
   ``stalled-bodies``: B connections each sending a body one byte short of its Content-Length, then nothing;
   ``slow-headers``: S connections sending one header line per second, forever;
3. ``big-headers``: C clients each sending one header of H bytes; ``long-urls``: a request target of U bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_service import REPO, Server, load_run, machine, make_checkpoint, read_reviews, rss_mib, wrk_script

# name -> (attack kind, parameters); the figures and sizes around them
ATTACKS = {
    "unknown-keys 1 client x 95,000 keys": ("unknown_keys", {"clients": 1, "keys": 95_000}),
    "unknown-keys 4 clients x 95,000 keys": ("unknown_keys", {"clients": 4, "keys": 95_000}),
    "unknown-keys 4 clients x 10,000 keys": ("unknown_keys", {"clients": 4, "keys": 10_000}),
    "unknown-keys 4 clients x 95,000 keys to /admin/reload, no token": (
        "unknown_keys", {"clients": 4, "keys": 95_000, "path": "/admin/reload"}),
    "idle-sockets 1,024": ("idle_sockets", {"sockets": 1024}),
    "idle-sockets 4,000 (past max_connections 2,048)": ("idle_sockets", {"sockets": 4000}),
    "stalled-bodies 100 x (1 MiB - 1)": ("stalled_bodies", {"connections": 100, "body": (1 << 20) - 1}),
    "stalled-bodies 900 x (1 MiB - 1)": ("stalled_bodies", {"connections": 900, "body": (1 << 20) - 1}),
    "stalled-bodies 900 x 64 KiB": ("stalled_bodies", {"connections": 900, "body": 64 << 10}),
    "slow-headers 500": ("slow_headers", {"connections": 500}),
    "big-headers 4 clients x 1 MiB": ("big_headers", {"clients": 4, "size": 1 << 20}),
    "big-headers 2 clients x 128 MiB": ("big_headers", {"clients": 2, "size": 128 << 20}),
    "big-headers 4 clients x 20,000 headers of 10 bytes": ("many_headers", {"clients": 4, "count": 20_000}),
    "long-urls 4 clients x 1 MiB": ("long_urls", {"clients": 4, "size": 1 << 20}),
}


# -- the attacker process -----------------------------------------------------------------------------------------

class Tally:
    def __init__(self) -> None:
        self.status: dict[str, int] = {}
        self.seconds: list[float] = []
        self.answer_bytes = 0
        self.closed_by_server = 0
        self.connect_errors = 0
        self.sent_before_answer = 0

    def answer(self, status: str, seconds: float, size: int = 0) -> None:
        self.status[status] = self.status.get(status, 0) + 1
        self.seconds.append(seconds)
        self.answer_bytes = max(self.answer_bytes, size)

    def summary(self) -> dict:
        s = sorted(self.seconds)
        return {"answers": self.status, "closed_by_server": self.closed_by_server,
                "connect_errors": self.connect_errors, "largest_answer_bytes": self.answer_bytes,
                "most_bytes_sent_before_the_answer": self.sent_before_answer,
                "time_to_answer_s": {"median": round(statistics.median(s), 4), "max": round(s[-1], 4)} if s else None}


async def _read_answer(reader: asyncio.StreamReader) -> tuple[str, int]:
    """Status and size of one HTTP answer ('closed' when the server closed without one)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        return "closed", 0
    status = head.split(b" ", 2)[1].decode()
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    try:
        await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    return status, len(head) + length


async def _connect(port: int, tally: Tally):
    while True:
        try:
            return await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        except OSError:
            tally.connect_errors += 1
            await asyncio.sleep(0.05)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass


async def _send_and_read(port: int, data: bytes, tally: Tally, end: float) -> None:
    """Closed loop: connect, send ``data``, read the answer, time it; again until ``end``."""
    while time.monotonic() < end:
        reader, writer = await _connect(port, tally)
        t0 = time.perf_counter()
        writer.write(data)
        try:
            status, size = await asyncio.wait_for(_read_answer(reader), max(end - time.monotonic(), 0.1) + 30)
        except TimeoutError:
            status, size = "no answer", 0
        tally.answer(status, time.perf_counter() - t0, size)
        writer.transport.abort()


async def attack(kind: str, port: int, seconds: float, p: dict) -> dict:
    tally = Tally()
    end = time.monotonic() + seconds
    if kind == "unknown_keys":
        body = ("{" + "".join(f'"k{i}":1,' for i in range(p["keys"])) + '"texts":["a fine film"]}').encode()
        assert len(body) <= 1 << 20, len(body)
        data = (f"POST {p.get('path', '/v1/predict')} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\n\r\n").encode() + body
        await asyncio.gather(*[_send_and_read(port, data, tally, end) for _ in range(p["clients"])])
    elif kind == "many_headers":
        data = b"GET /livez HTTP/1.1\r\n" + b"".join(b"x%07d: v\r\n" % i for i in range(p["count"])) + b"\r\n"
        await asyncio.gather(*[_send_and_read(port, data, tally, end) for _ in range(p["clients"])])
    elif kind in ("big_headers", "long_urls"):
        # streamed in 64 KiB writes until the server answers (as a client uploading it would), never built whole
        head, tail = ((b"GET /livez HTTP/1.1\r\nhost: x\r\nx-big: ", b"\r\n\r\n") if kind == "big_headers"
                      else (b"GET /", b" HTTP/1.1\r\nhost: x\r\n\r\n"))
        chunk = b"a" * (64 << 10)

        async def stream() -> None:
            while time.monotonic() < end:
                reader, writer = await _connect(port, tally)
                t0 = time.perf_counter()
                answer = asyncio.ensure_future(_read_answer(reader))
                sent = 0
                try:
                    writer.write(head)
                    while sent < p["size"] and not answer.done():
                        writer.write(chunk)
                        sent += len(chunk)
                        await writer.drain()
                    writer.write(tail)
                except ConnectionError:
                    pass
                status, size = await answer
                tally.answer(status, time.perf_counter() - t0, size)
                tally.sent_before_answer = max(tally.sent_before_answer, sent)
                writer.transport.abort()
        await asyncio.gather(*[stream() for _ in range(p["clients"])])
    elif kind == "idle_sockets":
        async def hold() -> None:
            while True:  # until cancelled at the end
                reader, writer = await _connect(port, tally)
                t0 = time.perf_counter()
                try:
                    await reader.read(1)  # b"" when the server closes it
                except ConnectionError:
                    pass
                tally.closed_by_server += 1
                tally.answer("closed", time.perf_counter() - t0)
                writer.transport.abort()
        try:
            await asyncio.wait_for(asyncio.gather(*[hold() for _ in range(p["sockets"])]), seconds)
        except TimeoutError:
            pass
    elif kind == "stalled_bodies":
        head = (f"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                f"content-length: {p['body'] + 1}\r\n\r\n").encode()
        data = head + b"x" * p["body"]

        async def stall() -> None:
            while time.monotonic() < end:
                reader, writer = await _connect(port, tally)
                writer.write(data)
                try:
                    await writer.drain()
                except ConnectionError:
                    pass
                t0 = time.perf_counter()  # from the last byte: the read deadline counts from the first
                try:
                    status, _ = await asyncio.wait_for(_read_answer(reader), max(end - time.monotonic(), 0.01))
                    tally.answer(status, time.perf_counter() - t0)
                except TimeoutError:
                    pass
                writer.transport.abort()
        await asyncio.gather(*[stall() for _ in range(p["connections"])])
    elif kind == "slow_headers":
        async def trickle() -> None:
            while time.monotonic() < end:
                reader, writer = await _connect(port, tally)
                t0 = time.perf_counter()
                writer.write(b"GET /livez HTTP/1.1\r\n")
                answer = asyncio.ensure_future(_read_answer(reader))
                i = 0
                while not answer.done() and time.monotonic() < end:
                    writer.write(b"x-slow-%d: 1\r\n" % i)
                    i += 1
                    await asyncio.wait([answer], timeout=1.0)
                if answer.done():
                    tally.answer(answer.result()[0], time.perf_counter() - t0)
                else:
                    answer.cancel()
                writer.transport.abort()
        await asyncio.gather(*[trickle() for _ in range(p["connections"])])
    else:
        raise ValueError(kind)
    return tally.summary()


def attacker_main(args: argparse.Namespace) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop  # the service's own event loop: the attacker takes less of the shared CPU

    out = uvloop.run(attack(args.attack_kind, args.port, args.attack_seconds, json.loads(args.attack_params)))
    print("ATTACK_JSON " + json.dumps(out), flush=True)


# -- the driver ---------------------------------------------------------------------------------------------------

def server_peak(server: Server, stop: threading.Event, out: list[float]) -> None:
    while not stop.wait(0.25):
        out.append(rss_mib(server.proc.pid))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_attack(server: Server, script: Path, name: str, kind: str, params: dict, seconds: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen([sys.executable, __file__, "--attack-kind", kind, "--port", str(server.port),
                             "--attack-seconds", str(seconds + 2), "--attack-params", json.dumps(params)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=str(Path(__file__).parent))
    time.sleep(1.0)  # the attack is under way before normal traffic starts
    cpu0 = cpu_seconds(server.proc.pid)
    rss: list[float] = []
    stop = threading.Event()
    sampler = threading.Thread(target=server_peak, args=(server, stop, rss), daemon=True)
    sampler.start()
    try:
        normal = load_run(server, script, 64, seconds, name)
    finally:
        stop.set()
        sampler.join()
    normal["server_cpu_s"] = round(cpu_seconds(server.proc.pid) - cpu0, 2)
    try:
        normal["attacker_cpu_s"] = round(cpu_seconds(proc.pid), 2)  # its whole life: ~1 s more than the load run
    except (OSError, IndexError):
        normal["attacker_cpu_s"] = None
    out, err = proc.communicate(timeout=120)
    line = next((x for x in out.splitlines() if x.startswith("ATTACK_JSON ")), None)
    normal["attacker"] = json.loads(line.split(" ", 1)[1]) if line else {"error": err[-2000:]}
    normal["server_rss_mib"]["peak"] = round(max([normal["server_rss_mib"]["peak"], *rss]), 1)
    return normal


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archive", default=str(REPO.parent / "shared" / "datasets" / "aclImdb_v1.tar.gz"))
    p.add_argument("--checkpoint", default=None, help="serve this checkpoint folder (default: a random-weights one)")
    p.add_argument("--seconds", type=int, default=10, help="length of each load run")
    p.add_argument("--only", action="append", default=[], help="run only attacks whose name contains this")
    p.add_argument("--serve-arg", action="append", default=[], help="extra `lstmtext serve` argument")
    p.add_argument("--out", default=None)
    # the attacker process
    p.add_argument("--attack-kind", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--attack-seconds", type=float, help=argparse.SUPPRESS)
    p.add_argument("--attack-params", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.attack_kind:
        attacker_main(args)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-attacks-"))
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d"), "serve_args": args.serve_arg,
                     "load_average_start": os.getloadavg()}
    if args.checkpoint:
        ckpt = Path(args.checkpoint)
    else:
        ckpt = work / "ckpt"
        make_checkpoint("random", args.archive, ckpt, 0)
    script = wrk_script(read_reviews(args.archive, "test", 2000), work / "bodies.lua")
    os.environ["LSTMTEXT_ADMIN_TOKEN"] = os.urandom(16).hex()  # /admin/reload exists; the attacker lacks the token
    server = Server(ckpt, work / "server.log", *args.serve_arg)
    runs = []
    try:
        load_run(server, script, 8, 3, "warm-up")
        for name, (kind, params) in ATTACKS.items():
            if args.only and not any(o in name for o in args.only):
                continue
            # a quiet run right before each attack: the machine is shared, its speed drifts within a session
            cpu0 = cpu_seconds(server.proc.pid)
            quiet = load_run(server, script, 64, args.seconds, f"quiet, before: {name}")
            quiet["server_cpu_s"] = round(cpu_seconds(server.proc.pid) - cpu0, 2)
            r = run_attack(server, script, name, kind, params, args.seconds)
            r["quiet"] = {k: quiet[k] for k in ("req_per_s", "p99_ms", "server_cpu_s", "server_rss_mib")}
            r["throughput_ratio"] = round(r["req_per_s"] / quiet["req_per_s"], 3)
            r["p99_ratio"] = round(r["p99_ms"] / quiet["p99_ms"], 3)
            print(json.dumps({"run": name, "ratios": [r["throughput_ratio"], r["p99_ratio"]],
                              "attacker_cpu_s": r["attacker_cpu_s"], "attacker": r["attacker"]}), flush=True)
            runs.append(r)
            time.sleep(2.0)  # let the server close what the attacker left
        runs.append(load_run(server, script, 64, args.seconds, "quiet, after the attacks"))
    finally:
        results["server_exit"] = server.stop()
    # stdout holds the JSON access log (one line per answered request); the rest is the server's own log
    log = [x for x in (work / "server.log").read_text(errors="replace").splitlines() if not x.startswith("{")]
    results["server_log_lines"] = len(log)
    results["server_log_tail"] = log[-10:]
    results["runs"] = runs
    results["load_average_end"] = os.getloadavg()
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
