"""Forward+backward time of one LSTM layer per batch: fused path vs cell loop vs torch.nn.LSTM vs Keras 3.

Shapes are those of the two reference models (../shared/peers/): seed 1 = Embedding(5000, 15) -> LSTM(10),
B=128, T=300; seed 2 = LSTM(128, return_sequences) then LSTM(64) on 300-d embeddings, B=256, T=200.
Conditions: no mask; a left-padded mask (Keras ``pad_sequences`` default, lengths uniform in [T/5, T]);
``recurrent_dropout=0.2`` (training). Every implementation runs the same inputs in the same process,
interleaved round by round so that machine noise hits all of them alike; the median over rounds is reported.

Implementations:
    fused       lstmtext.kernels.lstm_sequence (compiled CPU kernel on CPU)
    layer       lstmtext.layers.LSTM (the user-facing layer; dispatches to ``fused``)
    loop        lstmtext.kernels.lstm_sequence_reference (the pure-PyTorch cell loop)
    nn.LSTM     torch.nn.LSTM (oneDNN on CPU); no masks, no recurrent dropout: n/a there
    keras       keras.layers.LSTM, Keras 3 with the torch backend

``--large``: the GEMM-bound shapes of language models and bigger classifiers instead, one layer and a
3-layer stack, forward+backward (``train``) and forward without autograd (``predict``), ``fused`` against
``nn.LSTM`` only, with GFLOP/s (matrix products only: ``2*B*T*(F+u)*4u`` per layer forward, three times that
for forward+backward) and the sgemm peak measured in the same run (the faster of ``torch.mm`` and oneDNN's
matmul on square float32 matrices, same threads).

Run from the repository root:
    PATH=/path/to/venv/bin:$PATH PYTHONPATH=src python bench/bench_lstm_layer.py [--rounds 5] [--quick|--large]

The process runs with torch's defaults unless the environment says otherwise; prefix the command with
``OMP_WAIT_POLICY=PASSIVE THP_MEM_ALLOC_ENABLE=1`` for the runtime that ``lstmtext``'s entry points set up
(``lstmtext.utils.tune_cpu_runtime``). Both frameworks run in the same process, so under the same settings;
the header line prints them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "torch")

import torch

from lstmtext.kernels import LSTMCall, lstm_sequence, lstm_sequence_reference
from lstmtext.utils.runtime import TORCH_ENV_DEFAULTS

SHAPES = {
    "seed1 LSTM(10)": dict(batch=128, steps=300, features=15, units=10, return_sequences=False),
    "seed2 LSTM(128)": dict(batch=256, steps=200, features=300, units=128, return_sequences=True),
    "seed2 LSTM(64)": dict(batch=256, steps=200, features=128, units=64, return_sequences=False),
}
CONDITIONS = ["no mask", "left-padded", "rec. dropout 0.2"]
# (batch, steps, features, units, layers): LSTM language-model and large-classifier shapes (issue 16).
LARGE = {
    "64,70,256,512": (64, 70, 256, 512, 1),
    "64,70,400,1024": (64, 70, 400, 1024, 1),
    "256,200,300,128": (256, 200, 300, 128, 1),
    "64,70,400,1150 x3": (64, 70, 400, 1150, 3),
}


def _left_padded(batch: int, steps: int, gen: torch.Generator) -> torch.Tensor:
    lengths = torch.randint(steps // 5, steps + 1, (batch, 1), generator=gen)
    return torch.arange(steps).unsqueeze(0) >= steps - lengths


def _loss(out: torch.Tensor, return_sequences: bool) -> torch.Tensor:
    return out.sum() if return_sequences else out[:, -1].sum()


def make_runners(shape: dict, condition: str, with_keras: bool) -> dict:
    """name -> zero-argument callable running one forward+backward, or None where not applicable."""
    b, t, f, u, seq = (shape[k] for k in ("batch", "steps", "features", "units", "return_sequences"))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(b, t, f, generator=gen, requires_grad=True)
    kernel = (torch.randn(f, 4 * u, generator=gen) / f**0.5).requires_grad_()
    recurrent = (torch.randn(u, 4 * u, generator=gen) / u**0.5).requires_grad_()
    bias = torch.zeros(4 * u, requires_grad=True)
    h0 = torch.zeros(b, u)
    mask = _left_padded(b, t, gen) if condition == "left-padded" else None
    rate = 0.2 if condition.startswith("rec. dropout") else 0.0
    runners: dict = {}

    def gate_masks():  # Keras draws four masks (one per gate) when recurrent_dropout > 0
        return (torch.rand(4, b, u) >= rate).float() / (1 - rate) if rate else None

    def kernel_runner(fn):
        def run():
            out, _, _ = fn(LSTMCall(x, kernel, recurrent, bias, h0, h0, mask=mask, recurrent_dropout_mask=gate_masks()))
            _loss(out, seq).backward()

        return run

    runners["fused"] = kernel_runner(lstm_sequence)
    try:
        from lstmtext.layers import LSTM

        layer = LSTM(u, return_sequences=True, recurrent_dropout=rate)
        layer(x[:1, :1])

        def run_layer():
            out = layer(x, mask=mask, training=bool(rate))
            _loss(out, seq).backward()

        runners["layer"] = run_layer
    except ImportError:
        runners["layer"] = None
    runners["loop"] = kernel_runner(lstm_sequence_reference)
    if mask is None and not rate:
        lstm = torch.nn.LSTM(f, u, batch_first=True)

        def run_nn():
            out, _ = lstm(x)
            _loss(out, seq).backward()

        runners["nn.LSTM"] = run_nn
    else:
        runners["nn.LSTM"] = None
    if with_keras:
        import keras

        klayer = keras.layers.LSTM(u, return_sequences=True, recurrent_dropout=rate)
        klayer.build((b, t, f))

        def run_keras():
            out = klayer(x, mask=mask, training=bool(rate))
            _loss(out, seq).backward()

        runners["keras"] = run_keras
    return runners


def measure(runners: dict, rounds: int, clock=time.perf_counter) -> dict:
    times: dict = {k: [] for k, r in runners.items() if r is not None}
    for name in times:
        runners[name]()  # warm-up (first call builds / allocates)
    for _ in range(rounds):
        for name in times:
            start = clock()
            runners[name]()
            times[name].append((clock() - start) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def sgemm_peak(n: int = 2048, rounds: int = 5, clock=time.perf_counter) -> tuple[float, str]:
    """GFLOP/s of the faster of ``torch.mm`` and oneDNN's matmul on ``n x n`` float32 matrices."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    bt = b.t().contiguous()
    cands = {"torch.mm": lambda: torch.mm(a, b)}
    if torch.backends.mkldnn.is_available():
        cands["oneDNN"] = lambda: torch.ops.mkldnn._linear_pointwise(a, bt, None, "none", [None], "")
    best = (0.0, "")
    for name, fn in cands.items():
        fn()
        ts = []
        for _ in range(rounds):
            start = clock()
            fn()
            ts.append(clock() - start)
        best = max(best, (2 * n**3 / statistics.median(ts) / 1e9, name))
    return best


def large_runners(batch: int, steps: int, features: int, units: int, layers: int, train: bool,
                  bf16: bool = False) -> dict:
    """fused (lstm_sequence per layer) and nn.LSTM, return_sequences, no mask; loss = sum of the outputs.
    With ``bf16`` also ``fused bf16``: the same inside ``bfloat16_matmuls()`` (opt-in reduced precision)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, steps, features, generator=gen, requires_grad=train)
    weights = []
    for i in range(layers):
        f = features if i == 0 else units
        weights.append([(torch.randn(f, 4 * units, generator=gen) / f**0.5).requires_grad_(train),
                        (torch.randn(units, 4 * units, generator=gen) / units**0.5).requires_grad_(train),
                        torch.zeros(4 * units, requires_grad=train)])
    h0 = torch.zeros(batch, units)
    lstm = torch.nn.LSTM(features, units, num_layers=layers, batch_first=True).requires_grad_(train)

    def run_fused():
        with torch.set_grad_enabled(train):
            y = x
            for k, r, b in weights:
                y = lstm_sequence(LSTMCall(y, k, r, b, h0, h0))[0]
            if train:
                y.sum().backward()

    def run_nn():
        with torch.set_grad_enabled(train):
            y, _ = lstm(x)
            if train:
                y.sum().backward()

    runners = {"fused": run_fused, "nn.LSTM": run_nn}
    if bf16:
        from lstmtext.kernels import bfloat16_matmuls

        def run_bf16():
            with bfloat16_matmuls():
                run_fused()

        runners["fused bf16"] = run_bf16
    return runners


def main_large(rounds: int, cpu_time: bool = False, only: str | None = None, bf16: bool = False) -> None:
    # --cpu-time: one thread, timed by the thread's CPU time, which other processes on a shared machine
    # barely disturb (wall-clock ratios of multi-threaded runs swing with their load).
    clock = time.thread_time if cpu_time else time.perf_counter
    if cpu_time:
        torch.set_num_threads(1)
        print("# one thread, CPU time (time.thread_time)")
    peak, how = sgemm_peak(clock=clock)
    print(f"sgemm peak: {peak:.0f} GFLOP/s ({how}, 2048x2048 float32, {torch.get_num_threads()} threads)")
    extra = " bf16 ms | bf16 speed / nn.LSTM |" if bf16 else ""
    print("| B, T, F, u (layers) | mode | fused ms | GFLOP/s | % of peak | nn.LSTM ms | GFLOP/s "
          "| fused speed / nn.LSTM |" + extra)
    print("|---|---|---|---|---|---|---|---|" + ("---|---|" if bf16 else ""))
    for label, (b, t, f, u, layers) in LARGE.items():
        if only and only not in label:
            continue
        fwd = sum(2 * b * t * ((f if i == 0 else u) + u) * 4 * u for i in range(layers))
        for train in (True, False):
            res = measure(large_runners(b, t, f, u, layers, train, bf16), rounds, clock)
            flops = 3 * fwd if train else fwd
            gf = {k: flops / v / 1e6 for k, v in res.items()}
            cells = (f" {res['fused bf16']:.1f} | {res['nn.LSTM'] / res['fused bf16']:.2f}x |"
                     if bf16 else "")
            print(f"| {label} | {'train' if train else 'predict'} | {res['fused']:.1f} | {gf['fused']:.0f} | "
                  f"{100 * gf['fused'] / peak:.0f} % | {res['nn.LSTM']:.1f} | {gf['nn.LSTM']:.0f} | "
                  f"{res['nn.LSTM'] / res['fused']:.2f}x |" + cells, flush=True)
    peak2, how2 = sgemm_peak(clock=clock)
    print(f"sgemm peak at the end: {peak2:.0f} GFLOP/s ({how2}); load avg {os.getloadavg()[0]:.1f}")


def _header() -> str:
    # The two variables torch reads at import that lstmtext's entry points set (lstmtext.utils.runtime): with
    # them unset, the large inputs' projections are fresh 4 KB pages on every call (bench/RESULTS.md).
    env = ", ".join(f"{k}={os.environ.get(k, 'unset')}" for k in TORCH_ENV_DEFAULTS)
    return (f"# {time.strftime('%Y-%m-%d %H:%M')} | {platform.processor() or platform.machine()} | "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads | {env} | "
            f"load avg {os.getloadavg()[0]:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds per cell (median reported)")
    ap.add_argument("--quick", action="store_true", help="seed-1 shape only, 3 rounds")
    ap.add_argument("--no-keras", action="store_true", help="skip Keras")
    ap.add_argument("--large", action="store_true", help="the GEMM-bound shapes against nn.LSTM, with GFLOP/s")
    ap.add_argument("--cpu-time", action="store_true", help="with --large: one thread, timed in CPU time")
    ap.add_argument("--only", default=None, help="with --large: only the shapes whose label contains this")
    ap.add_argument("--bf16", action="store_true", help="with --large: also the opt-in bfloat16 matrix products")
    args = ap.parse_args()
    print(_header())
    if args.large:
        return main_large(args.rounds, args.cpu_time, args.only, args.bf16)
    shapes = {k: v for k, v in SHAPES.items() if not args.quick or k.startswith("seed1")}
    rounds = 3 if args.quick else args.rounds
    names = ["fused", "layer", "loop", "nn.LSTM", "keras"]
    print("| shape | condition | " + " | ".join(f"{n} ms" for n in names) + " | keras / fused | loop / fused |")
    print("|---|---|" + "---|" * (len(names) + 2))
    for label, shape in shapes.items():
        for condition in CONDITIONS:
            res = measure(make_runners(shape, condition, not args.no_keras), rounds)
            cells = [f"{res[n]:.1f}" if n in res else "n/a" for n in names]
            ratio_k = f"{res['keras'] / res['fused']:.1f}x" if "keras" in res else "n/a"
            ratio_l = f"{res['loop'] / res['fused']:.1f}x"
            print(f"| {label} | {condition} | " + " | ".join(cells) + f" | {ratio_k} | {ratio_l} |", flush=True)
    print(f"# load avg at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
