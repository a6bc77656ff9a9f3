"""Long fuzz run over the checkpoint reader, the config parser, trainer.json trees and RNG states.

Usage (from the repository root):
    PYTHONPATH=src python bench/fuzz_checkpoint.py [--examples 10000] [--seed 0]

Prints, per target, the number of inputs tried and the time taken; exits non-zero if any input made a
target raise something other than a typed CheckpointError (hypothesis then prints the minimal input).
The counts are recorded in SECURITY.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "checkpoint"))
import fuzz_targets as ft


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10_000, help="inputs per target (RNG states: a fifth)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    targets = [
        ("safetensors reader", ft.tensor_file_inputs, ft.read_tensor_file, args.examples),
        ("config parser", ft.config_inputs, ft.parse_config, args.examples),
        ("trainer tree decoder", ft.tree_inputs, ft.decode_trainer_tree, args.examples),
        ("RNG state restorer", ft.rng_states(), ft.restore_rng, max(1, args.examples // 5)),
        ("keras config parser", ft.keras_configs(), ft.parse_keras, args.examples),
    ]
    failed = False
    for name, strategy, target, n in targets:
        run = seed(args.seed)(settings(max_examples=n, deadline=None, database=None,
                                       suppress_health_check=list(HealthCheck))(given(strategy)(target)))
        start = time.perf_counter()
        try:
            run()
            status = "no crash"
        except Exception as e:  # report and go on with the other targets
            status = f"CRASH: {type(e).__name__}: {e}"
            failed = True
        print(f"{name:22s} {ft.COUNTS.get(name, 0):7d} inputs  {time.perf_counter() - start:7.1f} s  {status}",
              flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
