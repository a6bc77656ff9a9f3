"""Does the opt-in bfloat16 matrix-product path train a language model as well as float32? Same windows.

lstmtext's LanguageModel (Embedding -> LSTM stack -> adaptive softmax, no dropout, Adam, gradient clipping)
trains twice from the same seed on the same first BPTT windows of a corpus built by ``lstmtext pretrain``:
once in float32, once inside ``lstmtext.kernels.bfloat16_matmuls()`` (the LSTM layers' input projections and
weight/input gradients with bfloat16 operands, float32 accumulation, recurrence and weights). Printed: the
training perplexity of each block of steps, then the perplexity of both models on the same held-out
windows of the corpus's validation split (evaluated in float32 and, for the bf16 model, in bf16 as well).

    nice -n 19 .venv/bin/python bench/bench_bf16_lm.py --corpus $WORK/lm-corpus --hidden-units 512 512
"""

from __future__ import annotations

import argparse
import contextlib
import math
import time

import numpy as np
import torch

from lstmtext.kernels import bfloat16_matmuls
from lstmtext.lm import BPTTStream, LanguageModel, LMConfig, TokenCorpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--block", type=int, default=25)
    ap.add_argument("--valid-windows", type=int, default=40)
    ap.add_argument("--embedding-dim", type=int, default=256)
    ap.add_argument("--hidden-units", type=int, nargs="*", default=[512])
    ap.add_argument("--cutoffs", type=int, nargs="+", default=[2000, 10000])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--bptt", type=int, default=70)
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args()
    print(f"config: {vars(args)}; torch {torch.__version__}, {torch.get_num_threads()} threads, seed 0", flush=True)
    corpus = TokenCorpus.open(args.corpus)
    train = BPTTStream(corpus.train, args.batch_size, args.bptt, vary=False)
    batches = [(torch.from_numpy(b.x), torch.from_numpy(b.y)) for _, b in zip(range(args.steps), train.epoch(0))]
    valid = BPTTStream(corpus.valid, args.batch_size, args.bptt, vary=False)
    vbatches = [(torch.from_numpy(b.x), torch.from_numpy(b.y))
                for _, b in zip(range(args.valid_windows), valid.epoch(0))]
    none = dict(embed_dropout=0, input_dropout=0, hidden_dropout=0, weight_dropout=0, output_dropout=0)

    def evaluate(model, bf16: bool) -> float:
        losses, state = [], None
        with torch.no_grad(), (bfloat16_matmuls() if bf16 else contextlib.nullcontext()):
            for x, y in vbatches:
                out = model(x, y, state)
                losses.append(float(out.loss))
                state = out.state
        return math.exp(float(np.mean(losses)))

    for name in ("float32", "bfloat16"):
        torch.manual_seed(0)
        model = LanguageModel(LMConfig(num_words=corpus.num_words, embedding_dim=args.embedding_dim,
                                       hidden_units=tuple(args.hidden_units), cutoffs=tuple(args.cutoffs),
                                       tie_weights=False, **none), ar_alpha=0, tar_beta=0)
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        losses, state = [], None
        start = time.perf_counter()
        with bfloat16_matmuls() if name == "bfloat16" else contextlib.nullcontext():
            for x, y in batches:
                out = model(x, y, state)
                out.loss.backward()
                state = out.state
                torch.nn.utils.clip_grad_norm_(model.parameters(), 0.4)
                opt.step()
                opt.zero_grad()
                losses.append(float(out.loss.detach()))
        took = time.perf_counter() - start
        blocks = [round(math.exp(np.mean(losses[i:i + args.block]))) for i in range(0, len(losses), args.block)]
        evals = f"valid perplexity {evaluate(model, False):.1f} (float32 inference)"
        if name == "bfloat16":
            evals += f", {evaluate(model, True):.1f} (bf16 inference)"
        print(f"{name}: training perplexity per {args.block} steps: {blocks}; {evals}; {took:.0f} s", flush=True)


if __name__ == "__main__":
    main()
