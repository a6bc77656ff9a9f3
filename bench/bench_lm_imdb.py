"""IMDB accuracy: LM pretraining + ULMFiT fine-tuning vs TF-IDF + logistic regression vs the Keras tutorial.

One resumable script for the whole comparison, on the aclImdb archive only:

1. ``pretrain``: ``lstmtext pretrain`` (Python API) on the labelled training reviews + ``train/unsup``
   (the test reviews are never read for it), ``--pretrain-tokens`` tokens at most;
2. ``clf-seed<N>``: ``lstmtext train --init-from`` for each ``--seeds`` value: ULMFiT fine-tuning on the
   25,000 labelled training reviews, then the test reviews read once for the score;
3. ``tfidf``: scikit-learn TfidfVectorizer (1-2 grams, sublinear tf, min_df 2) + LogisticRegression,
   same split (scikit-learn lives only in the bench environment: ``pip install scikit-learn``);
4. ``tutorial``: ``lstmtext train --preset keras-imdb --seed 1`` (the Keras tutorial model);
5. with ``--control``: ``clf-random-seed<N>``, the same classifier, vocabulary and fine-tuning from random
   initial weights (nothing copied from the language model): what the pretraining adds;
6. with ``--backwards``: ``pretrain-bwd`` (a backward language model on the same token shards, read right to
   left), ``clf-bwd-seed<N>`` fine-tuned from it, and ``ensemble-seed<N>``: the mean of the forward and
   backward classifiers' test probabilities (ULMFiT's forward + backward ensemble).

Every stage's checkpoints and a ``state.json`` (done stages, their accuracy and seconds, summed over
resumed parts) live in ``--work`` (outside the repository). Run the same command again to continue: a
pretraining stopped by ``--max-seconds`` resumes exactly where it stopped. The last lines print the three
accuracies and times side by side; the LM pipeline's time is pretraining + fine-tuning of every seed.

    nice -n 19 .venv/bin/python bench/bench_lm_imdb.py --archive PATH/aclImdb_v1.tar.gz --work $WORK/imdb
    # a reduced end-to-end probe (minutes):
    nice -n 19 .venv/bin/python bench/bench_lm_imdb.py --archive ... --work $WORK/probe --probe
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from lstmtext.utils.io import atomic_write_json
from lstmtext.utils.runtime import tune_cpu_runtime


def load_state(work: Path) -> dict[str, Any]:
    path = work / "state.json"
    return json.loads(path.read_text()) if path.is_file() else {"stages": {}}


def save_state(work: Path, state: dict[str, Any]) -> None:
    atomic_write_json(work / "state.json", state)


def make_subset(archive: str, folder: Path, per_class: int) -> str:
    """An aclImdb/ folder with ``per_class`` random reviews per split and class (seed 0), for a probe."""
    import numpy as np

    from lstmtext.data.archive import read_archive

    root = folder / "aclImdb"
    if (root / "done").is_file():
        return str(root)
    splits = read_archive(archive)
    rng = np.random.default_rng(0)
    for split, data in splits.items():
        for label, name in ((1, "pos"), (0, "neg")):
            (root / split / name).mkdir(parents=True, exist_ok=True)
            idx = np.flatnonzero(data.labels == label)
            for i in rng.choice(idx, per_class, replace=False):
                (root / split / name / f"{data.ids[i]}_0.txt").write_text(data.texts[i], encoding="utf-8")
    (root / "done").write_text("")
    return str(root)


def stage_pretrain(args: argparse.Namespace, work: Path, state: dict[str, Any], deadline: float, *,
                   backwards: bool = False) -> bool:
    from lstmtext.run.pretrain import PretrainRunConfig, pretrain_run

    st = state["stages"].setdefault("pretrain-bwd" if backwards else "pretrain", {"done": False, "seconds": 0.0})
    if st["done"]:
        return True
    out = work / ("lm-bwd" if backwards else "lm")
    resume = (out / "trainer.json").is_file()
    budget = max(60.0, deadline - time.time())
    model = {"embedding_dim": args.embedding_dim, "hidden_units": args.hidden_units, "num_words": args.num_words,
             "backwards": backwards}
    train = {"max_tokens": args.pretrain_tokens, "epochs": args.pretrain_epochs, "time_budget_s": budget,
             "checkpoint_every": 200, "seed": 0, "batch_size": args.lm_batch_size}
    cfg = PretrainRunConfig(data=args.archive, out=str(out), preset=args.preset, model=model, train=train,
                            corpus_dir=str(work / "lm-corpus"), resume=resume, overwrite=not resume,
                            verbose=args.verbose)
    result = pretrain_run(cfg, argv=sys.argv)
    # The training seconds of every part (the checkpoint carries them over a stop, a kill included) plus the
    # corpus build (once, by the forward model): a part stopped between checkpoints does not count its lost steps.
    corpus_info = json.loads((work / "lm-corpus" / "corpus.json").read_text())
    st["seconds"] = result.seconds + (0.0 if backwards else float(corpus_info.get("seconds", 0.0)))
    st["done"] = result.finished
    st["val_perplexity"] = (result.history.get("val_perplexity") or [None])[-1]
    st["tokens"] = int(json.loads((out / "run.json").read_text())["data"]["tokens"]["train"])
    st["tokens_seen"] = int(json.loads((out / "trainer.json").read_text())["state"]["tokens_seen"])
    save_state(work, state)
    return result.finished


def stage_classifier(args: argparse.Namespace, work: Path, state: dict[str, Any], seed: int, *,
                     transfer: bool = True, backwards: bool = False) -> None:
    from lstmtext.run.config import resolve_run_config
    from lstmtext.run.finetune import finetune_from_config

    name = f"clf-bwd-seed{seed}" if backwards else f"clf-seed{seed}" if transfer else f"clf-random-seed{seed}"
    st = state["stages"].setdefault(name, {"done": False, "seconds": 0.0})
    if st["done"]:
        return
    overrides = {"data": {"archive": args.labelled, "maxlen": args.maxlen},
                 "train": {"seed": seed, "batch_size": args.batch_size, "epochs": args.epochs},
                 "run": {"out": str(work / name), "overwrite": True, "verbose": args.verbose}}
    cfg = resolve_run_config("imdb-pretrained", None, overrides)
    t0 = time.time()
    lm_dir = str(work / ("lm-bwd" if backwards else "lm"))
    result = finetune_from_config(cfg, lm_dir, stages=args.stages, schedule=args.schedule, argv=sys.argv,
                                  transfer=transfer, decay=args.decay)
    st.update(done=True, seconds=st["seconds"] + time.time() - t0, accuracy=result.test_metrics["accuracy"],
              history=result.history)
    save_state(work, state)


def stage_ensemble(args: argparse.Namespace, work: Path, state: dict[str, Any], seed: int) -> None:
    """The mean of the forward and backward classifiers' test probabilities (each saved classifier reads the
    raw test reviews through its own checkpoint, as ``lstmtext predict`` would)."""
    import numpy as np

    from lstmtext.predictor import Predictor
    from lstmtext.run.config import resolve_run_config
    from lstmtext.run.data import read_labelled_splits

    name, s = f"ensemble-seed{seed}", state["stages"]
    parts = (f"clf-seed{seed}", f"clf-bwd-seed{seed}")
    if s.get(name, {}).get("done") or not all(s.get(p, {}).get("done") for p in parts):
        return
    t0 = time.time()
    data = read_labelled_splits(resolve_run_config("imdb-pretrained", None,
                                                   {"data": {"archive": args.labelled}}).experiment.data)
    probs = [Predictor.from_checkpoint(work / p, batch_size=64).predict_proba(data.test_texts)[:, -1] for p in parts]
    mean = (probs[0] + probs[1]) / 2
    acc = float(((mean > 0.5).astype(np.int64) == np.asarray(data.y_test)).mean())
    single = [float(((p > 0.5).astype(np.int64) == np.asarray(data.y_test)).mean()) for p in probs]
    s[name] = {"done": True, "seconds": time.time() - t0, "accuracy": acc, "parts": dict(zip(parts, single))}
    save_state(work, state)


def stage_tfidf(args: argparse.Namespace, work: Path, state: dict[str, Any]) -> None:
    st = state["stages"].setdefault("tfidf", {"done": False})
    if st["done"]:
        return
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        print("tfidf: scikit-learn is not installed in this environment (pip install scikit-learn); skipped")
        return
    from lstmtext.data.archive import read_archive, read_folder

    t0 = time.time()
    splits = read_folder(args.labelled) if Path(args.labelled).is_dir() else read_archive(args.labelled)
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    xtr = vec.fit_transform(splits["train"].texts)
    clf = LogisticRegression(C=4.0, max_iter=2000).fit(xtr, splits["train"].labels)
    acc = float((clf.predict(vec.transform(splits["test"].texts)) == splits["test"].labels).mean())
    st.update(done=True, seconds=time.time() - t0, accuracy=acc, features=int(xtr.shape[1]))
    save_state(work, state)


def stage_tutorial(args: argparse.Namespace, work: Path, state: dict[str, Any]) -> None:
    from lstmtext.run.config import resolve_run_config
    from lstmtext.run.train import train_from_config

    st = state["stages"].setdefault("tutorial", {"done": False})
    if st["done"]:
        return
    cfg = resolve_run_config("keras-imdb", None, {"data": {"archive": args.labelled},
                                                  "train": {"seed": 1},
                                                  "run": {"out": str(work / "tutorial"), "overwrite": True,
                                                          "verbose": 0}})
    t0 = time.time()
    result = train_from_config(cfg, argv=sys.argv)
    st.update(done=True, seconds=time.time() - t0, accuracy=result.test_metrics["accuracy"])
    save_state(work, state)


def report(args: argparse.Namespace, state: dict[str, Any]) -> None:
    s = state["stages"]
    seeds = [s[f"clf-seed{k}"] for k in args.seeds if s.get(f"clf-seed{k}", {}).get("done")]
    rows = []
    if seeds:
        accs = [x["accuracy"] for x in seeds]
        lm_time = s["pretrain"]["seconds"] + sum(x["seconds"] for x in seeds)
        rows.append((f"LSTM LM pretraining + ULMFiT fine-tuning (median of {len(accs)} seeds: "
                     + ", ".join(f"{100 * a:.2f}" for a in accs) + ")", statistics.median(accs), lm_time))
    backward = [s[f"clf-bwd-seed{k}"] for k in args.seeds if s.get(f"clf-bwd-seed{k}", {}).get("done")]
    if backward:
        accs = [x["accuracy"] for x in backward]
        lm_time = s["pretrain-bwd"]["seconds"] + sum(x["seconds"] for x in backward)
        rows.append((f"backward LM + ULMFiT fine-tuning (median of {len(accs)} seeds: "
                     + ", ".join(f"{100 * a:.2f}" for a in accs) + ")", statistics.median(accs), lm_time))
    both = [k for k in args.seeds if s.get(f"ensemble-seed{k}", {}).get("done")]
    if both:
        accs = [s[f"ensemble-seed{k}"]["accuracy"] for k in both]
        total = (s["pretrain"]["seconds"] + s["pretrain-bwd"]["seconds"]
                 + sum(s[f"{p}{k}"]["seconds"] for k in both for p in ("clf-seed", "clf-bwd-seed", "ensemble-seed")))
        rows.append((f"forward + backward ensemble (median of {len(accs)} seeds: "
                     + ", ".join(f"{100 * a:.2f}" for a in accs) + ")", statistics.median(accs), total))
    control = [s[f"clf-random-seed{k}"] for k in args.seeds if s.get(f"clf-random-seed{k}", {}).get("done")]
    if control:
        accs = [x["accuracy"] for x in control]
        rows.append((f"same classifier and fine-tuning, random initial weights (median of {len(accs)} seeds: "
                     + ", ".join(f"{100 * a:.2f}" for a in accs) + ")", statistics.median(accs),
                     sum(x["seconds"] for x in control)))
    for key, label in (("tfidf", "TF-IDF 1-2 grams + logistic regression"), ("tutorial", "Keras tutorial LSTM")):
        if s.get(key, {}).get("done"):
            rows.append((label, s[key]["accuracy"], s[key]["seconds"]))
    print("\n" + ("PROBE (reduced sizes, not the full pipeline)\n" if args.probe else "")
          + (f"SUBSET: {args.subset} reviews per split and class\n" if args.subset else ""))
    print(f"{'model':<90} {'test acc':>9} {'time':>10}")  # the ensemble's time: both pipelines in all
    for label, acc, sec in rows:
        print(f"{label:<90} {100 * acc:8.2f}% {sec / 60:9.1f}m")
    if "pretrain" in s:
        p = s["pretrain"]
        tuned = ", ".join(f"seed {k} {s[f'clf-seed{k}']['seconds'] / 60:.1f} min" for k in args.seeds
                          if f"clf-seed{k}" in s)
        print(f"pretraining: {p['seconds'] / 60:.1f} min, {p.get('tokens_seen', 0):,} tokens seen of a "
              f"{p.get('tokens', 0):,}-token corpus, held-out perplexity {p.get('val_perplexity')}; "
              f"fine-tuning: {tuned}")


def main() -> int:
    # This script owns its process and runs what `lstmtext pretrain` / `train` run: the same runtime settings
    # (before torch is imported; LSTMTEXT_KEEP_TORCH_ENV=1 keeps torch's defaults).
    print(f"runtime: {tune_cpu_runtime()}", flush=True)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", required=True)
    ap.add_argument("--work", required=True, help="checkpoints and state.json (outside the repository)")
    ap.add_argument("--preset", default="imdb-cpu")
    ap.add_argument("--num-words", type=int, default=30000)
    ap.add_argument("--embedding-dim", type=int, default=200)
    ap.add_argument("--hidden-units", type=int, nargs="*", default=[512])
    ap.add_argument("--lm-batch-size", type=int, default=64)
    ap.add_argument("--pretrain-tokens", type=int, default=None, help="stop pretraining after this many tokens")
    ap.add_argument("--pretrain-epochs", type=int, default=1)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--maxlen", type=int, default=400, help="words kept per review (the last ones)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--stages", default=None,
                    help="freeze_to:epochs:lr,... (default -1:1:0.02,-2:1:0.01,0:2:0.003: the head, then the last "
                         "LSTM too, then everything)")
    ap.add_argument("--schedule", default="one_cycle")
    ap.add_argument("--decay", type=float, default=1.0,
                    help="discriminative learning-rate factor between layer groups (ULMFiT: 2.6; default 1: at "
                         "the pretraining this script affords, the embedding and lower LSTM must adapt; see "
                         "bench/RESULTS.md)")
    ap.add_argument("--backwards", action="store_true",
                    help="also a backward language model, its classifiers and the forward + backward ensemble")
    ap.add_argument("--control", action="store_true",
                    help="also fine-tune the same classifier from random initial weights (per seed)")
    ap.add_argument("--max-seconds", type=float, default=None, help="stop this invocation after about this long")
    ap.add_argument("--probe", action="store_true", help="reduced sizes for an end-to-end check in minutes")
    ap.add_argument("--subset", type=int, default=None, metavar="N",
                    help="fine-tune and test every model on N random reviews per split and class (a probe; the "
                         "pretraining still reads the whole train + unsup)")
    ap.add_argument("--skip-baselines", action="store_true")
    ap.add_argument("--verbose", type=int, default=0)
    args = ap.parse_args()
    if args.probe:
        args.pretrain_tokens = args.pretrain_tokens or 1_500_000
        args.embedding_dim, args.hidden_units, args.num_words = 64, [128], 20000
        args.maxlen, args.seeds = 200, args.seeds[:2]
    args.stages = args.stages or "-1:1:0.02,-2:1:0.01,0:2:0.003"
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    args.labelled = make_subset(args.archive, work / "subset", args.subset) if args.subset else args.archive
    state = load_state(work)
    state["args"] = {k: v for k, v in vars(args).items()}
    deadline = time.time() + (args.max_seconds if args.max_seconds is not None else 1e9)
    for backwards in (False, True) if args.backwards else (False,):
        if backwards and time.time() > deadline:
            break
        if not stage_pretrain(args, work, state, deadline, backwards=backwards):
            print(f"{'backward ' * backwards}pretraining stopped at --max-seconds; run the same command again "
                  "to continue")
            report(args, state)
            return 0
        for seed in args.seeds:
            if time.time() > deadline:
                break
            stage_classifier(args, work, state, seed, backwards=backwards)
            if backwards:
                stage_ensemble(args, work, state, seed)
        for seed in args.seeds if args.control and not backwards else ():
            if time.time() > deadline:
                break
            stage_classifier(args, work, state, seed, transfer=False)
    if not args.skip_baselines and time.time() <= deadline:
        stage_tfidf(args, work, state)
        stage_tutorial(args, work, state)
    report(args, state)
    return 0


if __name__ == "__main__":
    sys.exit(main())
