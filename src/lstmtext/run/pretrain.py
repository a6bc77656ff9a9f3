"""One language-model pretraining run: documents -> corpus shards -> LanguageModel -> checkpoint + report.

:func:`pretrain_run` is what ``lstmtext pretrain`` runs::

    from lstmtext.lm import LMConfig, PretrainConfig
    from lstmtext.run.pretrain import PretrainRunConfig, pretrain_run

    cfg = PretrainRunConfig(data="aclImdb_v1.tar.gz", out="runs/lm", preset="imdb-cpu")
    result = pretrain_run(cfg)

The output folder is an lstmtext checkpoint whose ``config.json`` names ``LanguageModel`` (``vocab.json``
holds its tokenizer), saved during training with everything an exact resume needs (``--resume``), and
``report/`` with the perplexity curve. The tokenized corpus lives beside it (``<out>-corpus/`` unless
``corpus_dir`` says otherwise) and is reused by later runs on the same source and options. For IMDB sources
the corpus is the labelled training reviews plus ``train/unsup``; the test reviews only with
``include_test`` (recorded in ``run.json``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstmtext.checkpoint.folder import CONFIG, check_model_config
from lstmtext.checkpoint.limits import JSON_LIMITS
from lstmtext.checkpoint.safejson import read_json
from lstmtext.errors import ConfigError, DataError
from lstmtext.kernels.build import load_ops
from lstmtext.lm.corpus import CORPUS_FILE, TokenCorpus, build_corpus
from lstmtext.lm.documents import iter_documents, source_kind
from lstmtext.lm.model import LanguageModel, LMConfig
from lstmtext.lm.presets import get_lm_preset
from lstmtext.lm.pretrain import LM_CLASS, PretrainConfig, PretrainResult, fit_language_model
from lstmtext.text.tokenizer import TOKENIZER_VERSION
from lstmtext.training.distributed import broadcast_int, init_distributed, is_main_process, launched_distributed
from lstmtext.utils.lock import FolderLock


@dataclass
class PretrainRunConfig:
    """A pretraining run (``lstmtext pretrain``): data, output, preset and overrides."""

    data: str
    """Raw texts: an aclImdb archive/folder, a folder of .txt files, a .txt file (one document per line),
    a .csv/.tsv or .jsonl file."""
    out: str
    """The language model's checkpoint folder."""
    preset: str = "imdb-cpu"
    """Language-model preset (``imdb-cpu``, ``awd-lstm``, ``tiny``)."""
    model: dict[str, Any] = field(default_factory=dict)
    """Overrides of the preset's :class:`~lstmtext.lm.LMConfig` fields."""
    train: dict[str, Any] = field(default_factory=dict)
    """Overrides of the preset's :class:`~lstmtext.lm.PretrainConfig` fields."""
    corpus_dir: str | None = None
    """Where the token shards go (default: ``<out>-corpus``)."""
    include_test: bool = False
    """IMDB sources: also pretrain on the labelled test reviews (recorded in run.json)."""
    text_column: str = "text"
    """Text column/key of a CSV or JSON-lines source."""
    valid_every: int = 50
    """Every this-many-th document is held out for the perplexity (0: none)."""
    resume: bool = False
    """Continue the run saved in ``out``."""
    overwrite: bool = False
    """Replace a checkpoint in ``out``."""
    verbose: int = 1
    """1: a progress bar with tokens/s and ETA; 0: epoch lines only."""

    def resolve(self) -> tuple[LMConfig, PretrainConfig]:
        """The preset with the overrides applied."""
        preset = get_lm_preset(self.preset)
        model = {**preset["model"], **{k: v for k, v in self.model.items() if v is not None}}
        train = {**preset["train"], **{k: v for k, v in self.train.items() if v is not None}}
        try:
            return LMConfig(**model), PretrainConfig(**train)
        except TypeError as e:
            raise ConfigError(f"pretrain: {e}") from None

    @property
    def corpus_path(self) -> Path:
        return Path(self.corpus_dir) if self.corpus_dir else Path(f"{os.fspath(self.out).rstrip('/')}-corpus")


def _source_key(cfg: PretrainRunConfig, num_words: int) -> dict[str, Any]:
    p = Path(cfg.data)
    st = p.stat()
    return {"source": str(p.resolve()), "size": st.st_size if p.is_file() else None, "mtime_ns": st.st_mtime_ns,
            "num_words": num_words, "include_test": cfg.include_test, "valid_every": cfg.valid_every,
            "text_column": cfg.text_column, "tokenizer_version": TOKENIZER_VERSION}


def prepare_corpus(cfg: PretrainRunConfig, num_words: int, print_fn: Callable[[str], Any] = print) -> TokenCorpus:
    """The corpus of ``cfg``: reused from ``corpus_path`` when built from the same source and options."""
    source_kind(cfg.data)  # a missing or unknown source fails here, naming --data
    key = _source_key(cfg, num_words)
    path = cfg.corpus_path
    if (path / CORPUS_FILE).is_file():
        try:
            corpus = TokenCorpus.open(path)
            if corpus.info.get("key") == key:
                print_fn(f"corpus: {path} (reused: {corpus.info['tokens']['train']:,} training tokens)")
                return corpus
        except (DataError, KeyError, TypeError, ValueError):  # a stale or broken corpus is rebuilt
            pass
    print_fn(f"corpus: tokenizing {cfg.data} into {path}")
    # The training needs the kernel anyway; loaded now, it also does the tokenizer's word lookups (None: the
    # kernel is unavailable or disabled, and the Python lookups give the same ids).
    ops = load_ops()
    # Two runs with different --out may share a corpus folder: only one builds it at a time.
    with FolderLock(path, what=f"corpus folder {str(path)!r}"):
        corpus = build_corpus(lambda: iter_documents(cfg.data, include_test=cfg.include_test,
                                                     text_column=cfg.text_column),
                              path, num_words=num_words, valid_every=cfg.valid_every, source=str(cfg.data),
                              progress=print_fn if cfg.verbose else None, key=key, ops=ops)
    info = corpus.info
    print_fn(f"corpus: {info['documents']:,} documents, {info['tokens']['train']:,} training and "
             f"{info['tokens']['valid']:,} held-out tokens, {len(corpus.tokenizer.vocab):,} words "
             f"({info['seconds']:.0f} s)")
    return corpus


def _check_out(cfg: PretrainRunConfig) -> None:
    out = Path(cfg.out)
    has = (out / "config.json").is_file()
    if cfg.resume and not has:
        raise ConfigError(f"--resume: no checkpoint in {str(out)!r} to continue; run without --resume to start one")
    if has and not (cfg.resume or cfg.overwrite):
        raise ConfigError(f"--out {str(out)!r} already holds a checkpoint; pass --resume to continue that run or "
                          "--overwrite to replace it")
    if has and cfg.resume:
        # The bounded, counted reader and schema of every checkpoint file: a hostile or corrupt config.json
        # is refused (naming it) before anything is built from it.
        path = out / CONFIG
        kind = check_model_config(read_json(path, limits=JSON_LIMITS[CONFIG]), file=path)["class_name"]
        if kind != LM_CLASS:
            raise ConfigError(f"--resume: {str(out)!r} holds a {kind!r} model, not a language model")


def format_config(cfg: PretrainRunConfig, model: LMConfig, train: PretrainConfig) -> str:
    """The resolved configuration, printed at the start of the run."""
    lines = ["pretrain config:"]
    run = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("model", "train")}
    for section, values in (("run", run), ("model", model.to_dict()), ("train", dataclasses.asdict(train))):
        lines.append(f"  [{section}]")
        lines += [f"    {k} = {v!r}" for k, v in values.items()]
    return "\n".join(lines)


def pretrain_run(cfg: PretrainRunConfig, *, argv: Sequence[str] | None = None,
                 print_fn: Callable[[str], Any] = print) -> PretrainResult:
    """Run a pretraining (see the module docstring).

    Raises:
        ConfigError, DataError, CheckpointError: bad options, data or output folder (each naming it).
        FolderLockedError: another run is writing ``cfg.out`` (a :class:`CheckpointError`).
    """
    model_cfg, train_cfg = cfg.resolve()
    # Under torchrun every process trains on its rows of each batch; rank 0 alone builds the corpus, prints,
    # holds the folder lock and writes (lstmtext.lm.distributed).
    if launched_distributed():
        init_distributed(required=True)
    main = is_main_process()
    # One run at a time per folder, as ``lstmtext train``: a second run on the same --out is refused at
    # once, before it reads or writes anything (the OS releases the lock if this process dies).
    with FolderLock(cfg.out, what=f"--out {str(cfg.out)!r}") if main else contextlib.nullcontext():
        return _pretrain_locked(cfg, model_cfg, train_cfg, argv=argv, print_fn=print_fn if main else _quiet)


def _quiet(*_: Any) -> None:
    """The ``print_fn`` of ranks > 0 in a distributed run."""


def _pretrain_locked(cfg: PretrainRunConfig, model_cfg: LMConfig, train_cfg: PretrainConfig, *,
                     argv: Sequence[str] | None, print_fn: Callable[[str], Any]) -> PretrainResult:
    """:func:`pretrain_run`'s steps, with the output folder locked."""
    from lstmtext.checkpoint import make_run_info
    from lstmtext.predictor import inference_record

    _check_out(cfg)
    print_fn(format_config(cfg, model_cfg, train_cfg))
    distributed, main = launched_distributed(), is_main_process()
    if distributed and not main:
        broadcast_int(0, what="waiting for rank 0 to build the corpus")  # then it is there to reuse
    corpus = prepare_corpus(cfg, model_cfg.num_words, print_fn)
    if distributed and main:
        broadcast_int(0, what="handing the corpus to the other processes")
    import torch

    torch.manual_seed(train_cfg.seed)
    model = LanguageModel(model_cfg)
    params = sum(p.numel() for p in model.parameters())
    print_fn(f"model: {params:,} parameters; LSTMs {model_cfg.layer_units} over {model_cfg.embedding_dim}-d "
             f"embeddings, adaptive softmax cutoffs {list(model_cfg.cutoffs)}")
    info = make_run_info(seed=train_cfg.seed)
    info["command"] = list(sys.argv if argv is None else argv)
    info["config"] = {"run": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("model", "train")},
                      "model": model_cfg.to_dict(), "train": json.loads(json.dumps(dataclasses.asdict(train_cfg)))}
    info["data"] = {"source": str(Path(cfg.data).resolve()), "kind": source_kind(cfg.data),
                    "include_test": cfg.include_test, "documents": corpus.info["documents"],
                    "tokens": corpus.info["tokens"], "corpus": str(corpus.path)}
    vocab = inference_record(corpus.tokenizer, maxlen=None)
    result = fit_language_model(model, corpus.train, corpus.valid if len(corpus.valid) else None, train_cfg,
                                out=cfg.out, resume=cfg.resume, vocab=vocab, run_info=info, verbose=cfg.verbose,
                                print_fn=print_fn, corpus_name=f"corpus {str(corpus.path)!r}")
    page = write_pretrain_report(cfg.out, result) if main else None
    ppl = result.history.get("val_perplexity") or []
    state = "finished" if result.finished else "stopped (time budget); continue with --resume"
    print_fn(f"{state}: {result.global_step:,}/{result.total_steps:,} steps, {result.seconds:.0f} s in all"
             + (f", held-out perplexity {ppl[-1]:.1f}" if ppl else "") + f"; saved {cfg.out}"
             + (f"; report: {page}" if page else ""))
    return result


def write_pretrain_report(out: str | os.PathLike[str], result: PretrainResult) -> Path | None:
    """``report/perplexity.png`` (training perplexity per logged step, held-out per epoch) and ``report.json``."""
    from lstmtext.utils.io import atomic_write_json

    folder = Path(out) / "report"
    folder.mkdir(parents=True, exist_ok=True)
    h = result.history
    atomic_write_json(folder / "report.json", {
        "train_curve": h.get("train_curve", []), "loss": h.get("loss", []),
        "val_perplexity": h.get("val_perplexity", []), "epoch_end_tokens": h.get("epoch_end_tokens", []),
        "steps": result.global_step, "total_steps": result.total_steps, "seconds": result.seconds})
    try:
        from lstmtext.report.plots import _figure, _save
    except ImportError:
        return folder / "report.json"
    try:
        fig, ax = _figure()
    except ConfigError:
        return folder / "report.json"
    curve = h.get("train_curve", [])
    if curve:
        ax.plot([c[1] for c in curve], [math.exp(min(c[2], 50)) for c in curve], label="training (dropout on)")
    if h.get("val_perplexity"):
        ax.plot(h.get("epoch_end_tokens", [])[: len(h["val_perplexity"])], h["val_perplexity"], "o-",
                color="#d62728", label="held-out, end of epoch")
    ax.set_xlabel("training tokens")
    ax.set_ylabel("perplexity")
    ax.set_yscale("log")
    ax.legend()
    return _save(fig, folder / "perplexity.png")
