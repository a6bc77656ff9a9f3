"""Peak memory of ``lstmtext pretrain`` on a corpus 10x the IMDB texts, tokenization included.

Builds (once) a one-document-per-line ``.txt`` file holding every review of the aclImdb archive (train,
test and unsup: 100,000 reviews) ten times over, then runs ``lstmtext pretrain`` on it in a child process
(tokenizing the whole file into shards, then ``--max-tokens`` of training) while sampling the child's
resident set size; prints the peak (``ru_maxrss`` of the child) and the peak of each phase.

    nice -n 19 .venv/bin/python bench/bench_lm_memory.py --archive /path/aclImdb_v1.tar.gz --work /tmp/lm10x
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

from lstmtext.lm.documents import iter_documents


def build_corpus_file(archive: str, path: Path, repeat: int) -> tuple[int, int]:
    """Write every review of ``archive`` ``repeat`` times, one per line; returns (documents, bytes)."""
    if path.is_file():
        with open(path, "rb") as f:
            docs = sum(1 for _ in f)
        return docs, path.stat().st_size
    texts = [t.replace("\n", " ").replace("\r", " ") for t in iter_documents(archive, include_test=True)]
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for _ in range(repeat):
            for t in texts:
                f.write(t + "\n")
    os.replace(tmp, path)
    return len(texts) * repeat, path.stat().st_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", required=True)
    ap.add_argument("--work", required=True, help="folder for the corpus file, shards, checkpoint (not in the repo)")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--preset", default="imdb-cpu")
    ap.add_argument("--steps", type=int, default=200, help="training steps after the tokenization")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--bptt", type=int, default=70)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    docs, size = build_corpus_file(args.archive, work / f"imdb-x{args.repeat}.txt", args.repeat)
    print(f"corpus file: {docs:,} documents, {size / 1e9:.2f} GB ({time.perf_counter() - t0:.0f} s)", flush=True)
    cmd = [sys.executable, "-m", "lstmtext", "pretrain", "--data", str(work / f"imdb-x{args.repeat}.txt"),
           "--out", str(work / "lm"), "--corpus-dir", str(work / "corpus"), "--preset", args.preset, "--overwrite",
           "--verbose", "1", "--batch-size", str(args.batch_size), "--bptt", str(args.bptt),
           "--max-tokens", str(args.steps * args.batch_size * args.bptt), "--checkpoint-every", "0"]
    for stale in (work / "corpus",):  # tokenize again: the measurement must include it
        if (stale / "corpus.json").exists():
            (stale / "corpus.json").unlink()
    samples: list[tuple[float, int, str]] = []
    phase = ["start"]
    t_start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def sample() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                rss = next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmRSS"))
            except (OSError, StopIteration, ValueError):
                break
            samples.append((time.perf_counter() - t_start, rss * 1024, phase[0]))
            time.sleep(0.25)

    threading.Thread(target=sample, daemon=True).start()
    assert proc.stdout is not None
    for line in proc.stdout:
        print(line, end="", flush=True)
        if line.startswith("corpus: tokenizing"):
            phase[0] = "tokenization"
        elif line.startswith("model:"):
            phase[0] = "training"
    code = proc.wait()
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    by_phase: dict[str, int] = {}
    for _, rss, ph in samples:
        by_phase[ph] = max(by_phase.get(ph, 0), rss)
    seconds = time.perf_counter() - t_start
    print(f"exit {code}; peak RSS of the pretrain process: {peak / 2**30:.2f} GiB ({peak / 1e9:.2f} GB); by phase: "
          + ", ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in by_phase.items()) + f"; {seconds:.0f} s in all")
    (work / "memory.json").write_text(json.dumps({"peak_rss_bytes": peak, "by_phase": by_phase, "seconds": seconds,
                                                  "documents": docs, "bytes": size, "command": cmd, "exit": code}))
    sys.exit(code)


if __name__ == "__main__":
    main()
