"""Quiet throughput of two versions of the service, alternating on one machine (`lstmtext serve`, wrk, 64 connections).

    git archive 52c5a8c src | tar -x -C /tmp/base      # the version to compare with
    PATH=$PWD/.venv/bin:$PATH python bench/bench_service_ab.py CHECKPOINT_DIR /path/to/aclImdb_v1.tar.gz \
        /tmp/base 8 4

Arguments: checkpoint folder, IMDB archive, the other version's root (holding ``src/``), seconds per run,
rounds. Each round starts the other version's server, then this checkout's, each with a 3 s warm-up then
``wrk -t1 -c64`` for the given seconds (bench/bench_service.py's helpers); requests/s, p50/p99 and the
server's CPU time per request (which other jobs on a shared machine change less than throughput).
"""

import json
import os
import sys
from pathlib import Path

import bench_service as bs


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ckpt, archive, base_root = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    seconds, rounds = int(sys.argv[4]), int(sys.argv[5])
    script = bs.wrk_script(bs.read_reviews(archive, "test", 2000), Path("/tmp/ab-bodies.lua"))
    here = bs.REPO
    out = []
    for r in range(rounds):
        for name, root in (("base", base_root), ("new", here)):
            bs.REPO = root  # Server runs `python -m lstmtext` with PYTHONPATH=REPO/src
            server = bs.Server(ckpt, Path(f"/tmp/ab-{name}.log"))
            try:
                bs.load_run(server, script, 8, 3, "warm-up")
                c0 = cpu_seconds(server.proc.pid)
                res = bs.load_run(server, script, 64, seconds, f"{name} round {r}")
                cpu_ms = (cpu_seconds(server.proc.pid) - c0) * 1000 / res["requests"]
                out.append({"code": name, "round": r, "req_per_s": res["req_per_s"], "p50_ms": res["p50_ms"],
                            "p99_ms": res["p99_ms"], "cpu_ms_per_request": round(cpu_ms, 3),
                            "non2xx": {k: v for k, v in res["by_status"].items() if k != "200"}})
            finally:
                server.stop()
    print("AB_JSON " + json.dumps(out))


if __name__ == "__main__":
    main()
