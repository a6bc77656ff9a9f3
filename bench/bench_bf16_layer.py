"""One LSTM layer's training step (forward + backward) in float32 and inside ``bfloat16_matmuls()``.

Three variants, alternated in one process at each shape (B, T, F, u), 2 threads, median wall time:

* ``f32``: outside the context;
* ``bf16``: inside it, as the kernels choose (the weight gradients formed in the backward's time loop, in
  float32, where kernel and recurrent kernel fit ``fused.FUSED_GRADS_MAX_BYTES``);
* ``bf16, GEMM grads``: inside it with that limit set to 0, so the weight gradients are always three bfloat16
  GEMMs after the loop (what the context did before).

Run from the repository root::

    PYTHONPATH=src python bench/bench_bf16_layer.py [--rounds 8] [--tune]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

SHAPES = [(256, 200, 128, 64), (256, 200, 300, 128), (64, 70, 256, 512)]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--tune", action="store_true", help="lstmtext.utils.tune_cpu_runtime() first")
    args = p.parse_args(argv)
    if args.tune:
        from lstmtext.utils.runtime import tune_cpu_runtime

        tune_cpu_runtime()
    import torch

    from lstmtext.kernels import LSTMCall, bfloat16_matmuls, fused, lstm_sequence
    from lstmtext.kernels.strategies import bfloat16_supported

    if not bfloat16_supported():
        raise SystemExit("this CPU has no native bfloat16 matrix products")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds (median of the "
          "last rounds but two)")
    print("| B, T, F, u | f32 ms | bf16 ms | bf16, GEMM grads ms | bf16 / f32 | bf16 / bf16 GEMM grads |")
    print("|---|---|---|---|---|---|")
    limit = fused.FUSED_GRADS_MAX_BYTES
    for b, t, f, u in SHAPES:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(b, t, f, generator=g, requires_grad=True)
        k = (torch.randn(f, 4 * u, generator=g) * 0.1).requires_grad_()
        r = (torch.randn(u, 4 * u, generator=g) * 0.1).requires_grad_()
        bias = torch.zeros(4 * u, requires_grad=True)
        h0 = torch.zeros(b, u)

        call = LSTMCall(x, k, r, bias, h0, h0)

        def step(call: LSTMCall = call) -> None:
            out, _, _ = lstm_sequence(call)
            out.sum().backward()

        variants = {"f32": (False, limit), "bf16": (True, limit), "bf16, GEMM grads": (True, 0)}
        times: dict[str, list[float]] = {v: [] for v in variants}
        for i in range(args.rounds):
            for name in (list(variants) if i % 2 == 0 else list(reversed(variants))):
                bf16, grads_limit = variants[name]
                fused.FUSED_GRADS_MAX_BYTES = grads_limit
                with bfloat16_matmuls() if bf16 else contextlib.nullcontext():
                    t0 = time.perf_counter()
                    step()
                    times[name].append(time.perf_counter() - t0)
        fused.FUSED_GRADS_MAX_BYTES = limit
        med = {v: 1e3 * statistics.median(ts[2:] if len(ts) > 4 else ts) for v, ts in times.items()}
        print(f"| {b}, {t}, {f}, {u} | {med['f32']:.1f} | {med['bf16']:.1f} | {med['bf16, GEMM grads']:.1f} | "
              f"{med['bf16'] / med['f32']:.2f} | {med['bf16'] / med['bf16, GEMM grads']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
