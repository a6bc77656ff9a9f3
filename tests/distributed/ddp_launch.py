"""Launch ``ddp_worker.py`` the way a user would: ``python -m torch.distributed.run`` (torchrun) on loopback.

Every launch is bounded: the whole process tree (torchrun and its workers) runs in its own session and
is killed on timeout, so a hung rank can never hang the test run.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

WORKER = Path(__file__).with_name("ddp_worker.py")
SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass
class Launch:
    returncode: int
    output: str
    seconds: float


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_command(target: list[str], nproc: int | None = None, timeout: float = 120, dist_timeout: float = 60,
                monitor_interval: float = 0.1) -> Launch:
    """Run ``python TARGET...`` (a script or ``-m module`` and its arguments) in ``nproc`` processes under
    torchrun on 127.0.0.1 and a free port, or plainly when ``nproc`` is None."""
    cmd = [sys.executable]
    if nproc is not None:
        cmd += ["-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", str(nproc),
                "--master-addr", "127.0.0.1", "--master-port", str(free_port()), "--max-restarts", "0",
                "--monitor-interval", str(monitor_interval)]
    cmd += target
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "LSTMTEXT_DIST_TIMEOUT": str(dist_timeout), "OMP_NUM_THREADS": "1"}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        raise AssertionError(f"{' '.join(cmd)} did not finish within {timeout} s; output:\n{output[-4000:]}") from None
    return Launch(proc.returncode, output, time.monotonic() - t0)


def launch(out: Path, *args: str, **kwargs: Any) -> Launch:
    """Run ``ddp_worker.py OUT ARGS...`` (see :func:`run_command` for ``nproc`` and the limits)."""
    return run_command([str(WORKER), str(out), *args], **kwargs)


def read_run(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """``(final weights, history.json)`` of one variant's output folder."""
    return load_file(str(folder / "final.safetensors")), json.loads((folder / "history.json").read_text())


def max_weight_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert sorted(a) == sorted(b)
    return max(float((a[k] - b[k]).abs().max()) for k in a)
