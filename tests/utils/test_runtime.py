"""`import lstmtext` changes nothing in the process; `tune_cpu_runtime()` (called by the CLI) sets torch's CPU
runtime defaults, keeping anything the user set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")
KEYS = ("OMP_WAIT_POLICY", "THP_MEM_ALLOC_ENABLE", "LSTMTEXT_KEEP_TORCH_ENV")

# glibc serves an 8 MiB malloc with mmap under its default threshold (128 KiB) and from the heap once
# mallopt(M_MMAP_THRESHOLD, 32 MiB) ran: mallinfo2().hblks (mmapped blocks) tells which happened.
PROBE = """
import ctypes, json, os, sys
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info
libc.malloc.restype = ctypes.c_void_p
env_before = dict(os.environ)
{code}
before = libc.mallinfo2().hblks
p = libc.malloc(8 << 20)
mmapped = libc.mallinfo2().hblks - before
libc.free(ctypes.c_void_p(p))
changed = sorted(k for k in set(env_before) | set(os.environ) if env_before.get(k) != os.environ.get(k))
print(json.dumps({{"changed": changed, "mmapped": mmapped, "torch": "torch" in sys.modules,
                  "omp": os.environ.get("OMP_WAIT_POLICY"), "thp": os.environ.get("THP_MEM_ALLOC_ENABLE")}}))
"""


def _run(code: str, **env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k not in KEYS}
    base["PYTHONPATH"] = os.pathsep.join([SRC, base.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", PROBE.format(code=code)], env={**base, **env}, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_changes_nothing():
    got = _run("import lstmtext, lstmtext.utils; lstmtext.__version__")
    assert got == {"changed": [], "mmapped": 1, "torch": False, "omp": None, "thp": None}


def test_import_of_the_model_api_changes_nothing():
    got = _run("import lstmtext; lstmtext.Model; lstmtext.layers.LSTM; lstmtext.Sequential")
    assert got["changed"] == [] and got["mmapped"] == 1 and got["torch"] is True


@pytest.mark.parametrize(("code", "env", "expected"), [
    ("from lstmtext.utils import tune_cpu_runtime; tune_cpu_runtime()", {}, ("PASSIVE", "1", 0)),
    ("from lstmtext.utils import tune_cpu_runtime; tune_cpu_runtime()", {"OMP_WAIT_POLICY": "ACTIVE"},
     ("ACTIVE", "1", 0)),  # the user's value is kept
    ("from lstmtext.utils import tune_cpu_runtime; tune_cpu_runtime()", {"LSTMTEXT_KEEP_TORCH_ENV": "1"},
     (None, None, 1)),
    ("import torch; from lstmtext.utils import tune_cpu_runtime; tune_cpu_runtime()", {},
     (None, None, 0)),  # too late for torch's environment, the allocator still applies
])
def test_tune_cpu_runtime(code, env, expected):
    got = _run(code, **env)
    assert (got["omp"], got["thp"], got["mmapped"]) == expected


def test_cli_tunes_its_process():
    code = ("import sys; from lstmtext.cli import main; sys.argv = ['lstmtext', '--version']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass")
    got = _run(code)
    assert (got["omp"], got["thp"], got["mmapped"]) == ("PASSIVE", "1", 0)
