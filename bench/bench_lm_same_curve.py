"""Does lstmtext's LanguageModel learn like the same model in plain PyTorch? Training perplexity, same windows.

Both models (Embedding -> LSTM stack -> adaptive softmax, no dropout, Adam, gradient clipping) train on the
same first BPTT windows of a corpus built by ``lstmtext pretrain``; the perplexity of each block of steps
is printed side by side.

    nice -n 19 .venv/bin/python bench/bench_lm_same_curve.py --corpus $WORK/probe2/lm-corpus
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from bench_lm_throughput import PlainLM

from lstmtext.lm import BPTTStream, LanguageModel, LMConfig, TokenCorpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--block", type=int, default=25)
    ap.add_argument("--embedding-dim", type=int, default=64)
    ap.add_argument("--hidden-units", type=int, nargs="*", default=[128])
    ap.add_argument("--cutoffs", type=int, nargs="+", default=[2000, 10000])
    ap.add_argument("--lr", type=float, default=3e-3)
    args = ap.parse_args()
    corpus = TokenCorpus.open(args.corpus)
    stream = BPTTStream(corpus.train, 32, 35, vary=False)
    batches = [(torch.from_numpy(b.x), torch.from_numpy(b.y)) for _, b in zip(range(args.steps), stream.epoch(0))]
    units = [*args.hidden_units, args.embedding_dim]
    none = dict(embed_dropout=0, input_dropout=0, hidden_dropout=0, weight_dropout=0, output_dropout=0)
    for name in ("lstmtext", "pytorch"):
        torch.manual_seed(0)
        if name == "lstmtext":
            model = LanguageModel(LMConfig(num_words=corpus.num_words, embedding_dim=args.embedding_dim,
                                           hidden_units=tuple(args.hidden_units), cutoffs=tuple(args.cutoffs),
                                           tie_weights=False, output_bias=False, **none), ar_alpha=0, tar_beta=0)
            state = None
        else:
            model = PlainLM(corpus.num_words, args.embedding_dim, units, list(args.cutoffs))
            state = [(torch.zeros(1, 32, u), torch.zeros(1, 32, u)) for u in units]
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        losses = []
        for x, y in batches:
            if name == "lstmtext":
                out = model(x, y, state)
                loss, state = out.loss, out.state
            else:
                loss, state = model(x, y, state)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.4)
            opt.step()
            opt.zero_grad()
            losses.append(float(loss.detach()))
        blocks = [round(math.exp(np.mean(losses[i:i + args.block]))) for i in range(0, len(losses), args.block)]
        print(f"{name}: training perplexity per {args.block} steps: {blocks}", flush=True)


if __name__ == "__main__":
    main()
