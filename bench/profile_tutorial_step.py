"""Where one training step of the tutorial (or stacked) model goes: torch-profiler self times per op, per step.

Model: Embedding(5000, 15) -> LSTM(10) -> Dense(1, sigmoid), Adam, binary cross-entropy, batch 128,
300 random token ids per row (the padded IMDB shape); with ``--model stacked`` the seed-2 stacked model of
``bench_vs_keras.py`` (Embedding(20000, 300) -> LSTM(128, seq) -> Dropout -> LSTM(64) -> Dropout -> Dense,
batch 256, 200 ids per row). Prints the median step time of plain ``fit`` epochs (no profiler), then the
profiled epoch's ops by self CPU time per step (the profiler adds a little per op). ``--tune`` calls
``tune_cpu_runtime()`` first, as the ``lstmtext`` command does; ``--bf16`` runs inside
``bfloat16_matmuls()``.

``--parts``: instead, the single-thread CPU time (``time.thread_time``, which other processes on a shared
machine barely disturb) of each part of the model's LSTM step on the same shape, called directly: the
vocabulary projection, the recurrence forward with and without the tensors kept for the backward, the
recurrence backward, the recurrent-kernel gradient, the embedding-gradient scatter, and the whole
autograd forward+backward of the Embedding -> LSTM pair (all outputs, and the last output only as the model
uses it); medians over ``--rounds`` interleaved rounds.

Run from the repository root (under the benchmark lock on a shared machine):
    PYTHONPATH=src python bench/profile_tutorial_step.py [--steps 20] [--rounds 3] [--parts]
    PYTHONPATH=src python bench/profile_tutorial_step.py --model stacked --steps 5 [--tune] [--bf16] \
        [--data DATA_DIR/stacked_padded_20000_200.npz] [--whole-vocabulary]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

# The two models, their shapes and the padded arrays as bench_vs_keras.py has them (that module imports only
# NumPy). torch and lstmtext are imported in the functions: --tune must run before torch is imported.
from bench_vs_keras import MODELS, build_lstmtext, load_padded


def parts(rounds: int) -> None:
    """Single-thread CPU time of each part of the tutorial LSTM step (see the module docstring)."""
    import torch

    from lstmtext.kernels import LSTMCall, lstm_sequence, lstm_sequence_fused, strategy_names
    from lstmtext.kernels.build import load_ops
    from lstmtext.kernels.embedding_lstm import project_table
    from lstmtext.kernels.strategies import resolved_strategy

    torch.set_num_threads(1)
    ops = load_ops()
    gen = torch.Generator().manual_seed(0)
    b, t, f, u, v = 128, 300, 15, 10, 5000
    table = (torch.randn(v, f, generator=gen) * 0.05).requires_grad_()
    kernel = (torch.randn(f, 4 * u, generator=gen) / f**0.5).requires_grad_()
    rec = (torch.randn(u, 4 * u, generator=gen) / u**0.5).requires_grad_()
    bias = torch.zeros(4 * u, requires_grad=True)
    ids = torch.randint(1, v, (b, t), generator=gen)
    h0 = torch.zeros(b, u)
    with torch.no_grad():
        proj = project_table(table, kernel, bias).detach().clone()
    fwd = ops.lstm_forward_ids(proj, ids, rec.detach(), h0, h0, None, None, False, True, 0)
    out, _, _, gates, cseq, hprev = fwd[:6]
    dout = torch.zeros_like(out)
    dout[:, -1] = torch.randn(b, u, generator=gen)
    dz = ops.lstm_backward(dout, h0, h0, rec.detach(), gates, cseq, h0, None, None, False, 0)[0]

    def whole():
        o, _, _ = lstm_sequence(LSTMCall(table, kernel, rec, bias, h0, h0, ids=ids))
        (o[:, -1] * dout[:, -1]).sum().backward()

    def whole_last():  # return_sequences=False, as in the model: the last output only
        last, _, _, _ = lstm_sequence_fused(LSTMCall(table, kernel, rec, bias, h0, h0, ids=ids),
                                            return_sequences=False)
        (last * dout[:, -1]).sum().backward()

    rec_d = rec.detach()
    fused = {}
    if hasattr(ops, "lstm_backward_ids") and resolved_strategy(u) == "vector":
        fwd2 = ops.lstm_forward_ids(proj, ids, rec_d, h0, h0, None, None, False, True, 0, False)
        fused = {
            "recurrence forward, keeping gates and c only (fused backward)":
                lambda: ops.lstm_forward_ids(proj, ids, rec_d, h0, h0, None, None, False, True, 0, False),
            "recurrence backward with dR and the table gradient fused":
                lambda: ops.lstm_backward_ids(dout, h0, h0, rec_d, fwd2[3], fwd2[4], h0, h0, ids, v, None, None,
                                              False, 0),
        }
    cases = {
        "vocabulary projection + its backward (autograd)":
            lambda: project_table(table, kernel, bias).backward(torch.ones(v, 4 * u)),
        "recurrence forward, keeping the tensors for the backward":
            lambda: ops.lstm_forward_ids(proj, ids, rec.detach(), h0, h0, None, None, False, True, 0),
        "recurrence forward, nothing kept (inference)":
            lambda: ops.lstm_forward_ids(proj, ids, rec.detach(), h0, h0, None, None, False, False, 0),
        "recurrence backward, writing dz": lambda: ops.lstm_backward(
            dout, h0, h0, rec.detach(), gates, cseq, h0, None, None, False, 0),
        "recurrent-kernel gradient H^T dZ (torch.mm)":
            lambda: torch.mm(hprev.reshape(-1, u).t(), dz.reshape(-1, 4 * u)),
        "dz scattered into the projected table's gradient": lambda: ops.embedding_backward(dz, ids, v),
        **fused,
        "whole Embedding -> LSTM forward+backward (autograd)": whole,
        "whole, last output only (return_sequences=False, as in the model)": whole_last,
    }
    times = {k: [] for k in cases}
    for fn in cases.values():
        fn()
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.thread_time()
            fn()
            times[name].append((time.thread_time() - start) * 1e3)
    print(f"one thread, CPU time, median of {rounds}; strategy {resolved_strategy(u)} "
          f"(built: {', '.join(strategy_names()[1:])}); B={b}, T={t}, F={f}, u={u}, V={v}")
    print("| part | ms (1 thread) | spread |")
    print("|---|---|---|")
    for name, ts in times.items():
        print(f"| {name} | {statistics.median(ts):.2f} | {min(ts):.2f}-{max(ts):.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=20, help="training steps per epoch")
    ap.add_argument("--rounds", type=int, default=3, help="unprofiled epochs timed (median reported)")
    ap.add_argument("--parts", action="store_true", help="single-thread CPU time of the tutorial LSTM step's parts")
    ap.add_argument("--model", choices=sorted(MODELS), default="tutorial")
    ap.add_argument("--tune", action="store_true", help="tune_cpu_runtime() first, as the lstmtext command does")
    ap.add_argument("--bf16", action="store_true", help="run inside bfloat16_matmuls() (opt-in bfloat16 products)")
    ap.add_argument("--data", default=None, help="bench_vs_keras.py's padded .npz for the model: real reviews "
                    "instead of random ids (a batch of real text holds a fraction of the vocabulary)")
    ap.add_argument("--whole-vocabulary", action="store_true",
                    help="project the whole vocabulary every training step, not only the batch's words")
    args = ap.parse_args()
    if args.tune:
        from lstmtext.utils.runtime import tune_cpu_runtime

        print(f"tune_cpu_runtime(): {tune_cpu_runtime()}")
    if args.parts:
        return parts(max(args.rounds, 9))
    import numpy as np
    import torch
    from torch.profiler import ProfilerActivity, profile

    from lstmtext.kernels import bfloat16_matmuls

    spec = MODELS[args.model]
    batch, maxlen, vocab = spec["batch"], spec["maxlen"], spec["vocab"]
    rng = np.random.default_rng(0)
    n = batch * args.steps
    if args.data is not None:  # the first n training reviews of bench_vs_keras.py's padded arrays
        d = load_padded(args.data)
        x, y = d["x_train"][:n].astype("int64"), d["y_train"][:n].astype("float32")
        if x.shape != (n, maxlen) or int(x.max()) >= vocab:
            raise SystemExit(f"--data {args.data}: x_train[:{n}] is {x.shape} with ids up to {x.max()}, "
                             f"expected ({n}, {maxlen}) with ids below {vocab} for the {args.model} model")
    else:
        x, y = rng.integers(1, vocab, (n, maxlen)), rng.integers(0, 2, (n,)).astype("float32")
    if args.whole_vocabulary:
        from lstmtext.kernels import embedding_lstm

        embedding_lstm.BATCH_VOCABULARY_MAX_FRACTION = 0.0
    torch.manual_seed(0)
    model = build_lstmtext(args.model)  # compiled with Adam, binary cross-entropy and accuracy
    with bfloat16_matmuls() if args.bf16 else contextlib.nullcontext():
        model.fit(x, y, epochs=1, batch_size=batch, verbose=0)  # warm-up: kernel load, allocations
        times = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            model.fit(x, y, epochs=1, batch_size=batch, verbose=0)
            times.append((time.perf_counter() - start) / args.steps * 1e3)
        print(f"{args.model}{' (whole vocabulary)' if args.whole_vocabulary else ''}; "
              f"{'reviews' if args.data else 'random ids'}; {torch.get_num_threads()} threads; "
              f"ms/step without profiler: median "
              f"{statistics.median(times):.2f} (rounds: {', '.join(f'{t:.2f}' for t in times)})")
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model.fit(x, y, epochs=1, batch_size=batch, verbose=0)
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows)
    print(f"profiled: {total / 1e3 / args.steps:.2f} ms/step of self CPU time in ops")
    print("| op | self ms / step | share |")
    print("|---|---|---|")
    for e in rows[:14]:
        per_step, share = e.self_cpu_time_total / 1e3 / args.steps, 100 * e.self_cpu_time_total / total
        print(f"| {e.key} | {per_step:.2f} | {share:.0f} % |")


if __name__ == "__main__":
    main()
