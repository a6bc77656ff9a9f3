"""Long fuzz run over the tokenizer, pad_sequences, the model config parser, the TOML run config and the
service's request body (the checkpoint reader's long run is ``bench/fuzz_checkpoint.py``).

Usage (from the repository root):
    PYTHONPATH=src python bench/bench_fuzz.py [--examples 10000] [--seed 0] [--only NAME ...]

Prints, per target, the number of inputs tried and the time taken; exits non-zero if any input made a
target raise something outside its contract (``tests/fuzz/parser_targets.py``: ALLOWED), with the
minimal input hypothesis found. The counts are recorded in bench/RESULTS.md and SECURITY.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, seed, settings

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "fuzz"), str(ROOT / "tests" / "service")]
import parser_targets as pt  # noqa: E402


@contextlib.contextmanager
def service_client() -> Iterator[Any]:
    """The service in-process over the tiny test model (as in tests/fuzz)."""
    from fastapi.testclient import TestClient
    from svc_helpers import wait_ready
    from svc_tiny import tiny_predictor

    from lstmtext.service import create_app

    with TestClient(create_app(tiny_predictor())) as client:
        wait_ready(client)
        yield client


def keras_pad() -> Any:
    """Real ``keras.utils.pad_sequences`` (imported on first use)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    return keras.utils.pad_sequences


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="inputs per target (service body: a fifth)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", help="run only these targets (names as printed)")
    args = parser.parse_args()
    n = args.examples
    with service_client() as client:
        targets = [
            ("tokenizer", pt.tokenizer_inputs, pt.encode_text, n),
            ("tokenizer file", pt.tokenizer_file_inputs, pt.load_tokenizer_file, n),
            ("pad_sequences", pt.pad_inputs, pt.pad, n),
            ("pad_sequences vs Keras", pt.pad_inputs, lambda kw: pt.pad_like_keras(kw, keras_pad()), n),
            ("model config", pt.model_config_inputs, pt.build_from_config, n),
            ("run config (TOML)", pt.toml_inputs, pt.load_run_config, n),
            ("service request body", pt.service_bodies, lambda body: pt.post_body(client, body), max(1, n // 5)),
        ]
        failed = False
        for name, strategy, target, count in targets:
            if args.only and name not in args.only:
                continue
            run = seed(args.seed)(settings(max_examples=count, deadline=None, database=None,
                                           suppress_health_check=list(HealthCheck))(given(strategy)(target)))
            start = time.perf_counter()
            try:
                run()
                status = "no crash"
            except Exception as e:  # report and go on with the other targets
                status = f"CRASH: {type(e).__name__}: {e}"
                failed = True
            print(f"{name:22s} {pt.COUNTS.get(name, 0):7d} inputs  {time.perf_counter() - start:7.1f} s  {status}",
                  flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
