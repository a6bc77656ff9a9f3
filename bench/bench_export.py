"""Inference latency of an exported model: PyTorch (lstmtext) vs onnxruntime on CPU.

Models (random weights; latency does not depend on their values):
    tutorial   Embedding(5000, 15) -> LSTM(10) -> Dense(1, sigmoid), the Keras IMDB tutorial model
    bidi-mask  Embedding(5000, 15, mask_zero=True) -> Bidirectional(LSTM(8, return_sequences=True))
               -> LSTM(6) -> Dense(1, sigmoid)

Inputs are 300-step id sequences, left-padded like ``pad_sequences`` (real lengths uniform in [50, 300]):
one review (batch 1) and a batch of 256. Both backends run the same inputs in the same process,
interleaved call by call so machine noise hits both alike; each figure is the median over all calls
(and the 90th percentile). Outputs are compared too (max abs difference).

Run from the repository root:
    PATH=/path/to/venv/bin:$PATH PYTHONPATH=src python bench/bench_export.py [--calls 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lstmtext.export import OnnxModel, to_onnx
from lstmtext.layers import LSTM, Bidirectional, Dense, Embedding
from lstmtext.models import Sequential

MODELS = {
    "tutorial": lambda: [Embedding(5000, 15), LSTM(10), Dense(1, activation="sigmoid")],
    "bidi-mask": lambda: [Embedding(5000, 15, mask_zero=True), Bidirectional(LSTM(8, return_sequences=True)),
                          LSTM(6), Dense(1, activation="sigmoid")],
}


def left_padded(batch: int, steps: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.integers(1, 5000, size=(batch, steps), dtype=np.int64)
    lengths = rng.integers(50, steps + 1, size=batch)
    for row, n in enumerate(lengths):
        x[row, :steps - n] = 0
    return x


def measure(model: Sequential, onnx_model: OnnxModel, x: np.ndarray, calls: int) -> dict[str, float]:
    xt = torch.from_numpy(x)
    times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
    for _ in range(5):  # warm-up (kernel build, allocator, onnxruntime's first run)
        with torch.inference_mode():
            model(xt, training=False)
        onnx_model(x)
    for _ in range(calls):
        t0 = time.perf_counter()
        with torch.inference_mode():
            y_torch = model(xt, training=False)
        t1 = time.perf_counter()
        y_onnx = onnx_model(x)
        t2 = time.perf_counter()
        times["torch"].append(t1 - t0)
        times["onnxruntime"].append(t2 - t1)
    out = {"max_abs_diff": float((y_torch - y_onnx).abs().max())}
    for name, ts in times.items():
        out[f"{name}_median_ms"] = 1e3 * statistics.median(ts)
        out[f"{name}_p90_ms"] = 1e3 * float(np.percentile(ts, 90))
    out["torch/onnxruntime"] = out["torch_median_ms"] / out["onnxruntime_median_ms"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="timed calls per backend and case (default 200)")
    parser.add_argument("--threads", type=int, default=2, help="threads of both backends (default 2)")
    parser.add_argument("--steps", type=int, default=300, help="sequence length (default 300)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, threads {args.threads}, "
          f"{args.calls} calls per case, T={args.steps}")
    print(f"{'model':<10} {'batch':>5} {'torch ms':>9} {'(p90)':>8} {'ort ms':>8} {'(p90)':>8} {'torch/ort':>9} "
          f"{'max diff':>9}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, layers in MODELS.items():
            model = Sequential(layers())
            model.build((None, args.steps))
            model.eval()
            exported = to_onnx(model, Path(tmp) / f"{name}.onnx")
            onnx_model = OnnxModel(exported.path, threads=args.threads)
            for batch in (1, 256):
                r = measure(model, onnx_model, left_padded(batch, args.steps, rng), args.calls)
                r.update(model=name, batch=batch)
                results.append(r)
                print(f"{name:<10} {batch:>5} {r['torch_median_ms']:>9.3f} {r['torch_p90_ms']:>8.3f} "
                      f"{r['onnxruntime_median_ms']:>8.3f} {r['onnxruntime_p90_ms']:>8.3f} "
                      f"{r['torch/onnxruntime']:>8.2f}x {r['max_abs_diff']:>9.1e}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
