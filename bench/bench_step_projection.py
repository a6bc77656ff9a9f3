"""Forward of one LSTM layer on the per-step GEMM strategy: the input projection per step inside the time loop
(``lstm_forward_x``) against one (B*T, F) x (F, 4u) GEMM before it (oneDNN) and the loop over its output.

The measurement behind ``lstmtext.kernels.fused.STEP_PROJECTION_MAX_BYTES``: both ways run on the same inputs
in the same process, alternated round by round; the median of each is printed with their ratio and the size
of the (F, 4u) float32 kernel, which every step of the per-step way reads again.

Run from the repository root (the runtime of lstmtext's entry points is set up first, as they do):
    PYTHONPATH=src python bench/bench_step_projection.py [--rounds 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

from lstmtext.utils.runtime import tune_cpu_runtime

# (B, T, F, u): the stacked model's layers, language-model shapes, the 3-layer stack's inner layer, a small one.
SHAPES = [(256, 200, 128, 64), (256, 200, 300, 128), (64, 70, 256, 512), (64, 70, 400, 1024),
          (64, 70, 1150, 1150), (32, 100, 64, 256)]


def time_shape(b: int, t: int, f: int, u: int, rounds: int) -> tuple[float, float]:
    """Median ms of (one GEMM + loop, per-step projection) for one shape, alternated round by round."""
    import torch

    from lstmtext.kernels import strategy_names
    from lstmtext.kernels.build import load_ops
    from lstmtext.kernels.fused import linear

    ops, gemm = load_ops(), strategy_names().index("gemm")
    x, kernel = torch.randn(b, t, f), torch.randn(f, 4 * u) / f**0.5
    recurrent, bias = torch.randn(u, 4 * u) / u**0.5, torch.randn(4 * u)
    h0 = torch.zeros(b, u)

    def one_gemm():
        xz = linear(x.reshape(b * t, f), kernel.t().contiguous(), bias)
        return ops.lstm_forward(xz.view(b, t, -1), recurrent, h0, h0, None, None, False, False, gemm)

    def per_step():
        return ops.lstm_forward_x(x, kernel, bias, recurrent, h0, h0, None, None, False, False, gemm)

    diff = float((one_gemm()[1] - per_step()[1]).abs().max())
    if diff > 1e-4:
        raise SystemExit(f"{(b, t, f, u)}: the two ways differ by {diff}")
    times: dict[str, list[float]] = {"one": [], "step": []}
    for r in range(rounds):
        order = (("one", one_gemm), ("step", per_step)) if r % 2 == 0 else (("step", per_step), ("one", one_gemm))
        for name, fn in order:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    one, step = (statistics.median(times[k]) * 1e3 for k in ("one", "step"))
    return one, step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7, help="alternations of the two ways per shape")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    print(f"tune_cpu_runtime(): {tune_cpu_runtime()}")
    import torch

    from lstmtext.kernels.build import load_ops

    torch.set_num_threads(args.threads)
    if load_ops() is None:
        raise SystemExit("the compiled kernel is not available")
    torch.manual_seed(0)
    print(f"{args.threads} threads, median of {args.rounds} rounds each")
    print("| B, T, F, u | kernel MB | one GEMM + loop, ms | per-step projection, ms | per-step / one GEMM |")
    print("|---|---|---|---|---|")
    for b, t, f, u in SHAPES:
        one, step = time_shape(b, t, f, u, args.rounds)
        print(f"| {b}, {t}, {f}, {u} | {f * 4 * u * 4 / 2**20:.1f} | {one:.1f} | {step:.1f} | {step / one:.2f} |",
              flush=True)


if __name__ == "__main__":
    main()
