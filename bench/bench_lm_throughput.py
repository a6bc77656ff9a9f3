"""Language-model training throughput: lstmtext's LanguageModel vs the same model in plain PyTorch.

Both models: Embedding(V, E) -> LSTM stack (the same units) -> adaptive softmax with the same cutoffs and
``div_value`` 4, untied, no head bias, no dropout, no AR/TAR; the same batch, BPTT length and token windows;
the LSTM state carried between windows (detached); gradient-norm clipping; AdamW. The plain model is what a PyTorch user
writes: ``nn.Embedding`` + one ``nn.LSTM`` per layer + ``nn.AdaptiveLogSoftmaxWithLoss`` +
``torch.optim.AdamW(model.parameters())``. lstmtext's is ``lstmtext.lm.LanguageModel`` trained by the step of
``fit_language_model`` (its fused LSTM kernel, its AdamW choice). The two run in alternating rounds in one
process; the report gives the median tokens/s of each and their ratio.

    flock $BENCH_LOCK .venv/bin/python bench/bench_lm_throughput.py --rounds 5 --steps 6
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

from lstmtext.utils.runtime import tune_cpu_runtime

tune_cpu_runtime()  # before torch is imported, as `lstmtext pretrain` does; both models run in this process

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from lstmtext.lm import LanguageModel, LMConfig, PretrainConfig  # noqa: E402
from lstmtext.lm.pretrain import make_optimizer  # noqa: E402


class PlainLM(nn.Module):
    """The reference: nn.Embedding + nn.LSTM per layer + nn.AdaptiveLogSoftmaxWithLoss."""

    def __init__(self, num_words: int, emb: int, units: list[int], cutoffs: list[int]) -> None:
        super().__init__()
        self.embedding = nn.Embedding(num_words, emb)
        sizes = [emb, *units]
        self.lstms = nn.ModuleList(nn.LSTM(a, b, batch_first=True) for a, b in zip(sizes, sizes[1:]))
        self.softmax = nn.AdaptiveLogSoftmaxWithLoss(units[-1], num_words, cutoffs, div_value=4.0)

    def forward(self, x, y, state):
        h = self.embedding(x)
        new = []
        for lstm, s in zip(self.lstms, state):
            h, (hn, cn) = lstm(h, s)
            new.append((hn.detach(), cn.detach()))
        loss = self.softmax(h.reshape(-1, h.shape[-1]), y.reshape(-1)).loss
        return loss, new


def zipf_tokens(n: int, num_words: int, seed: int = 0) -> np.ndarray:
    """Token ids with a Zipf (1/rank) frequency profile, like text: the softmax clusters fill as in a corpus."""
    rng = np.random.default_rng(seed)
    p = 1.0 / np.arange(1, num_words - 2)
    return (rng.choice(len(p), size=n, p=p / p.sum()) + 3).astype(np.int64)


def run_ours(model, opt, batches, clip):
    state = None
    params = [p for p in model.parameters() if p.requires_grad]
    t = time.perf_counter()
    for x, y in batches:
        out = model(x, y, state)
        (out.loss + out.penalty).backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        state = out.state
    return time.perf_counter() - t


def run_plain(model, opt, batches, clip, units, batch):
    state = [(torch.zeros(1, batch, u), torch.zeros(1, batch, u)) for u in units]
    t = time.perf_counter()
    for x, y in batches:
        loss, state = model(x, y, state)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-words", type=int, default=30000)
    ap.add_argument("--embedding-dim", type=int, default=200)
    ap.add_argument("--hidden-units", type=int, nargs="*", default=[512])
    ap.add_argument("--cutoffs", type=int, nargs="+", default=[2000, 10000])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--bptt", type=int, default=70)
    ap.add_argument("--steps", type=int, default=6, help="training steps per round and model")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--awd", action="store_true", help="also time lstmtext's model with AWD-LSTM regularisation on")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    args = ap.parse_args()

    torch.manual_seed(0)
    units = [*args.hidden_units, args.embedding_dim]
    no_dropout = dict(embed_dropout=0.0, input_dropout=0.0, hidden_dropout=0.0, weight_dropout=0.0,
                      output_dropout=0.0)
    cfg = LMConfig(num_words=args.num_words, embedding_dim=args.embedding_dim,
                   hidden_units=tuple(args.hidden_units), cutoffs=tuple(args.cutoffs), tie_weights=False,
                   output_bias=False, **no_dropout)
    pcfg = PretrainConfig(batch_size=args.batch_size, bptt=args.bptt)
    ours = LanguageModel(cfg, ar_alpha=0.0, tar_beta=0.0).train()
    ours_opt = make_optimizer(ours, pcfg)
    plain = PlainLM(args.num_words, args.embedding_dim, units, list(args.cutoffs)).train()
    plain_opt = torch.optim.AdamW(plain.parameters(), lr=pcfg.lr, betas=pcfg.betas, weight_decay=pcfg.weight_decay)
    models = {"lstmtext": lambda b: run_ours(ours, ours_opt, b, pcfg.clip),
              "pytorch": lambda b: run_plain(plain, plain_opt, b, pcfg.clip, units, args.batch_size)}
    if args.awd:
        awd = LanguageModel(LMConfig(num_words=args.num_words, embedding_dim=args.embedding_dim,
                                     hidden_units=tuple(args.hidden_units), cutoffs=tuple(args.cutoffs))).train()
        awd_opt = make_optimizer(awd, pcfg)
        models["lstmtext-awd"] = lambda b: run_ours(awd, awd_opt, b, pcfg.clip)
    n_ours = sum(p.numel() for p in ours.parameters())
    n_plain = sum(p.numel() for p in plain.parameters())
    print(f"parameters: lstmtext {n_ours:,}, pytorch {n_plain:,} (pytorch's LSTMs have two biases)")
    tokens = zipf_tokens(args.batch_size * (args.bptt * args.steps + 1) * 2, args.num_words)
    rows = tokens[: args.batch_size * (args.bptt * args.steps + 1)].reshape(args.batch_size, -1)
    batches = [(torch.from_numpy(rows[:, i * args.bptt:(i + 1) * args.bptt].copy()),
                torch.from_numpy(rows[:, i * args.bptt + 1:(i + 1) * args.bptt + 1].copy()))
               for i in range(args.steps)]
    tok = args.batch_size * args.bptt * args.steps
    for f in models.values():  # warm-up: kernel build, allocator, oneDNN primitives
        f(batches[:2])
    rates: dict[str, list[float]] = {k: [] for k in models}
    for r in range(args.rounds):
        for name, f in (models.items() if r % 2 == 0 else reversed(models.items())):
            rates[name].append(tok / f(batches))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f} tokens/s" for k, v in rates.items()))
    med = {k: statistics.median(v) for k, v in rates.items()}
    ratio = med["lstmtext"] / med["pytorch"]
    print("median tokens/s: " + ", ".join(f"{k} {v:,.0f}" for k, v in med.items()))
    print(f"lstmtext / pytorch: {ratio:.2f}x  (V={args.num_words}, E={args.embedding_dim}, LSTMs {units}, "
          f"cutoffs {args.cutoffs}, batch {args.batch_size}, bptt {args.bptt}, "
          f"torch threads {torch.get_num_threads()})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"median_tokens_per_s": med, "ratio": ratio, "rates": rates, "args": vars(args),
                       "torch": torch.__version__, "machine": platform.processor() or platform.machine()}, f, indent=1)


if __name__ == "__main__":
    main()
