"""Importing lstmtext before torch sets torch's CPU runtime defaults, keeping anything the user set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")
SHOW = "import os; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('THP_MEM_ALLOC_ENABLE'))"


def _run(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_WAIT_POLICY", "THP_MEM_ALLOC_ENABLE", "LSTMTEXT_KEEP_TORCH_ENV")}
    base["PYTHONPATH"] = os.pathsep.join([SRC, base.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize(("code", "env", "expected"), [
    (f"import lstmtext; {SHOW}", {}, "PASSIVE 1"),
    (f"import lstmtext; {SHOW}", {"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE 1"),  # the user's value is kept
    (f"import lstmtext; {SHOW}", {"LSTMTEXT_KEEP_TORCH_ENV": "1"}, "None None"),
    (f"import torch, lstmtext; {SHOW}", {}, "None None"),  # too late: torch has read its environment
])
def test_runtime_defaults(code, env, expected):
    assert _run(code, **env) == expected
