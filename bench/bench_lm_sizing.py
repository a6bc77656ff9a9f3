"""Language-model sizing probe: held-out perplexity against tokens seen and wall time, for one model size.

Trains ``lstmtext.lm.LanguageModel`` on a corpus built by ``lstmtext pretrain`` (its ``<out>-corpus``
folder) with the step of ``fit_language_model`` (AdamW, clipping, AWD-LSTM regularisation, one-cycle
schedule over ``--tokens``) and measures the held-out perplexity on the first ``--valid-tokens`` held-out
tokens at every quarter of the run, printing tokens seen, seconds, tokens/s and the perplexity; the unigram
perplexity of the same held-out tokens (training-set frequencies) is the chance line. Run it for several
sizes with the same ``--tokens x FLOP`` budget to choose the pretraining configuration of the 3-hour
pipeline (``bench/bench_lm_imdb.py``).

    nice -n 19 .venv/bin/python bench/bench_lm_sizing.py --corpus $WORK/lm-corpus --embedding-dim 200 \\
        --hidden-units 512 --tokens 1200000 --json $WORK/sizing-200-512.json
"""

from __future__ import annotations

import argparse
import json
import math
import time

from lstmtext.utils.runtime import tune_cpu_runtime

tune_cpu_runtime()  # before torch is imported, as `lstmtext pretrain` does

import numpy as np  # noqa: E402
import torch  # noqa: E402

from lstmtext.lm import LanguageModel, LMConfig, PretrainConfig  # noqa: E402
from lstmtext.lm.corpus import TokenCorpus  # noqa: E402
from lstmtext.lm.presets import get_lm_preset  # noqa: E402
from lstmtext.lm.pretrain import evaluate_perplexity, make_optimizer  # noqa: E402
from lstmtext.lm.schedule import get_schedule  # noqa: E402
from lstmtext.lm.stream import BPTTStream  # noqa: E402


def unigram_perplexity(train: np.ndarray, valid: np.ndarray, num_words: int) -> float:
    """Perplexity of ``valid`` under the add-one unigram distribution of ``train`` (predicted tokens only)."""
    counts = np.bincount(np.asarray(train, dtype=np.int64), minlength=num_words).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return float(math.exp(-logp[np.asarray(valid[1:], dtype=np.int64)].mean()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", required=True, help="a corpus folder written by lstmtext pretrain")
    ap.add_argument("--embedding-dim", type=int, default=200)
    ap.add_argument("--hidden-units", type=int, nargs="*", default=[512])
    ap.add_argument("--tokens", type=int, default=1_200_000, help="training tokens (the schedule spans them)")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the imdb-cpu preset's)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--bptt", type=int, default=70)
    ap.add_argument("--valid-tokens", type=int, default=60_000)
    ap.add_argument("--evals", type=int, default=4, help="held-out evaluations over the run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--fine-tune-cost", type=int, default=0, metavar="N",
                    help="instead: time LM steps and the fine-tuning stages and prediction of the classifier of "
                         "this size on N labelled training reviews (needs --archive)")
    ap.add_argument("--archive", default=None, help="the aclImdb archive (for --fine-tune-cost)")
    ap.add_argument("--maxlen", type=int, default=400)
    args = ap.parse_args()
    if args.fine_tune_cost:
        fine_tune_cost(args)
        return

    corpus = TokenCorpus.open(args.corpus)
    preset = get_lm_preset("imdb-cpu")
    model_cfg = {**preset["model"], "num_words": corpus.info["num_words"], "embedding_dim": args.embedding_dim,
                 "hidden_units": tuple(args.hidden_units)}
    train_cfg = PretrainConfig(**{**preset["train"], "batch_size": args.batch_size, "bptt": args.bptt,
                                  "max_tokens": args.tokens, "seed": args.seed,
                                  **({"lr": args.lr} if args.lr else {})})
    torch.manual_seed(args.seed)
    model = LanguageModel(LMConfig(**model_cfg)).train()
    optimizer = make_optimizer(model, train_cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    valid = np.asarray(corpus.valid[np.arange(min(args.valid_tokens, len(corpus.valid)))], dtype=np.int64)
    sample = corpus.train[np.arange(min(len(corpus.train), 5_000_000))]
    chance = unigram_perplexity(sample, valid, corpus.info["num_words"])
    print(f"model {args.embedding_dim}-d embeddings, LSTMs {[*args.hidden_units, args.embedding_dim]}; "
          f"{sum(p.numel() for p in params):,} parameters; lr {train_cfg.lr}; {args.tokens:,} tokens; "
          f"unigram perplexity of the {len(valid):,} held-out tokens: {chance:.1f}", flush=True)
    stream = BPTTStream(corpus.train, args.batch_size, args.bptt, seed=args.seed, name=args.corpus)
    total = math.ceil(args.tokens / (args.batch_size * args.bptt))
    marks = {round(total * (k + 1) / args.evals) for k in range(args.evals)}
    schedule = get_schedule(train_cfg.schedule)
    curve, seen, state, train_s = [], 0, None, 0.0
    t0 = time.perf_counter()
    for step, b in enumerate(stream.epoch(0)):
        if step >= total:
            break
        ts = time.perf_counter()
        for g in optimizer.param_groups:
            g["lr"] = train_cfg.lr * schedule(step, total)
        out = model(torch.from_numpy(b.x), torch.from_numpy(b.y), state)
        (out.loss + out.penalty).backward()
        torch.nn.utils.clip_grad_norm_(params, train_cfg.clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        state = out.state
        seen += b.tokens
        train_s += time.perf_counter() - ts
        if step + 1 in marks:
            ppl = evaluate_perplexity(model, valid, batch_size=16, bptt=args.bptt)
            model.train()
            curve.append({"tokens": seen, "seconds": round(time.perf_counter() - t0, 1),
                          "train_tokens_per_s": round(seen / train_s), "val_perplexity": round(ppl, 1)})
            print(f"  {seen:>10,} tokens  {curve[-1]['seconds']:>7.0f} s  {curve[-1]['train_tokens_per_s']:>6,} "
                  f"tokens/s  held-out perplexity {ppl:.1f}", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "unigram_perplexity": chance, "curve": curve,
                       "torch_threads": torch.get_num_threads()}, f, indent=1)


def fine_tune_cost(args: argparse.Namespace) -> None:
    """Tokens/s of LM training steps and of each fine-tuning stage and prediction, in one process.

    The ratios (not the absolute figures, which depend on the machine's load) size the pipeline: a
    fine-tuning epoch costs ``tokens / (LM tokens/s * ratio)`` on a machine whose LM rate is known.
    """
    from lstmtext.data.archive import read_archive
    from lstmtext.lm.finetune import FineTuneConfig, build_classifier, fine_tune_classifier, predict_chunked
    from lstmtext.preprocessing.sequence import pad_sequences

    corpus = TokenCorpus.open(args.corpus)
    cfg = LMConfig(**{**get_lm_preset("imdb-cpu")["model"], "num_words": corpus.info["num_words"],
                      "embedding_dim": args.embedding_dim, "hidden_units": tuple(args.hidden_units)})
    train = read_archive(args.archive)["train"]
    rows = np.random.default_rng(0).choice(len(train.texts), args.fine_tune_cost, replace=False)
    seqs = corpus.tokenizer.texts_to_sequences([train.texts[i] for i in rows])
    x = pad_sequences(seqs, maxlen=args.maxlen, dtype="int64", padding="pre", truncating="pre")
    y = train.labels[rows]
    tokens = int((x != 0).sum())
    torch.manual_seed(0)
    lm = LanguageModel(cfg).train()
    opt = make_optimizer(lm, PretrainConfig())
    stream = BPTTStream(corpus.train, args.batch_size, args.bptt, seed=0, name=args.corpus)
    lm_tokens, state, t0 = 0, None, time.perf_counter()
    for step, b in enumerate(stream.epoch(0)):
        if step == 8:
            break
        if step == 2:
            lm_tokens, t0 = 0, time.perf_counter()
        out = lm(torch.from_numpy(b.x), torch.from_numpy(b.y), state)
        (out.loss + out.penalty).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        state, lm_tokens = out.state, lm_tokens + b.tokens
    lm_rate = lm_tokens / (time.perf_counter() - t0)
    print(f"LM training: {lm_rate:,.0f} tokens/s; {len(x)} reviews, maxlen {args.maxlen}: {tokens:,} tokens "
          f"({tokens / len(x):.0f} per review)", flush=True)
    clf = build_classifier(cfg)
    result = {"lm_tokens_per_s": lm_rate, "reviews": len(x), "tokens": tokens}
    for freeze in (-1, -2, 0):
        t0 = time.perf_counter()
        fine_tune_classifier(clf, x, y, FineTuneConfig(stages=((freeze, 1, 1e-3),), seed=0), verbose=0,
                             print_fn=lambda _s: None)
        rate = tokens / (time.perf_counter() - t0)
        result[f"freeze_to_{freeze}"] = rate
        print(f"fine-tuning, freeze_to {freeze:>2}: {rate:,.0f} tokens/s ({rate / lm_rate:.2f}x the LM's)", flush=True)
    t0 = time.perf_counter()
    predict_chunked(clf, x)
    rate = tokens / (time.perf_counter() - t0)
    result["predict"] = rate
    print(f"prediction: {rate:,.0f} tokens/s ({rate / lm_rate:.2f}x the LM's)", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
