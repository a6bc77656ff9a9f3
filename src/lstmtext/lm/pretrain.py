"""`fit_language_model`: train a :class:`LanguageModel` on a token stream, with exact resume.

The loop of AWD-LSTM / fastai's LM training: BPTT windows (:class:`~lstmtext.lm.stream.BPTTStream`) with
the LSTM state carried from window to window (detached), AdamW, gradient-norm clipping, a one-cycle (or
slanted triangular) learning-rate schedule over the whole run, AR/TAR penalties, and the held-out
perplexity after every epoch.

A checkpoint (an lstmtext checkpoint folder whose ``config.json`` names ``LanguageModel``) is written every
``checkpoint_every`` steps, at the end of every epoch and when ``time_budget_s`` runs out. It holds the
weights, the optimizer state, the position (epoch, step), the carried LSTM states and every random
generator, so a run continued in another process (``resume=True``) ends with bit-identical weights.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmtext.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from lstmtext.errors import CheckpointError, ConfigError
from lstmtext.lm.distributed import RowShards
from lstmtext.lm.model import LanguageModel, State
from lstmtext.lm.schedule import get_schedule
from lstmtext.lm.stream import BPTTStream

LM_CLASS = "LanguageModel"


@dataclass
class PretrainConfig:
    """How a language model is trained (``lstmtext pretrain`` flags of the same names)."""

    batch_size: int = 64
    """Parallel rows of the token stream."""
    bptt: int = 70
    """Base BPTT window length (varied around it, as AWD-LSTM)."""
    epochs: int = 1
    """Passes over the training tokens."""
    max_tokens: int | None = None
    """Stop after this many predicted tokens (the schedule spans them); None: all epochs."""
    lr: float = 3e-3
    """Peak learning rate of AdamW."""
    schedule: str = "one_cycle"
    """``one_cycle``, ``slanted_triangular`` or ``constant``."""
    betas: tuple[float, float] = (0.8, 0.99)
    """AdamW's betas (fastai's LM defaults)."""
    weight_decay: float = 0.01
    """AdamW's decoupled weight decay."""
    clip: float = 0.4
    """Gradient-norm clipping (0: none)."""
    vary_bptt: bool = True
    """Vary the window length (False: fixed ``bptt``)."""
    seed: int = 0
    """Seed of the weights, the dropout masks and the window lengths."""
    checkpoint_every: int = 500
    """Save every this many steps (0: at epoch ends only)."""
    time_budget_s: float | None = None
    """Save and stop after this many seconds (continue later with resume); None: no limit."""
    log_every: int = 50
    """Record the mean training loss every this many steps (the report's curve)."""

    def __post_init__(self) -> None:
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        for name in ("batch_size", "bptt", "epochs"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ConfigError(f"PretrainConfig.{name} (--{name.replace('_', '-')}) must be a positive integer, "
                                  f"got {v!r}")
        if self.max_tokens is not None and self.max_tokens <= 0:
            raise ConfigError(f"PretrainConfig.max_tokens (--max-tokens) must be positive, got {self.max_tokens!r}")
        if not self.lr > 0:
            raise ConfigError(f"PretrainConfig.lr (--lr) must be positive, got {self.lr!r}")
        get_schedule(self.schedule)
        for name in ("checkpoint_every", "log_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"PretrainConfig.{name} must be >= 0, got {getattr(self, name)!r}")


@dataclass
class PretrainResult:
    """What :func:`fit_language_model` did: its history and whether it finished."""

    history: dict[str, Any]
    finished: bool
    global_step: int
    total_steps: int
    seconds: float
    tokens_per_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def make_optimizer(model: torch.nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable weights (fused on CPU float32, where torch has it)."""
    params = [p for p in model.parameters() if p.requires_grad]
    fused = all(p.device.type == "cpu" and p.dtype == torch.float32 for p in params)
    try:
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, fused=fused)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def evaluate_perplexity(model: LanguageModel, tokens: Any, *, batch_size: int = 16, bptt: int = 70) -> float:
    """Held-out perplexity: ``exp`` of the mean negative log-likelihood of every predicted token.

    The tokens are read as fixed ``bptt`` windows with the state carried, in eval mode (no dropout).
    """
    n = len(tokens)
    batch_size = max(1, min(batch_size, (n - 1) // (bptt + 1)))
    stream = BPTTStream(model.config.reading_order(tokens), batch_size, bptt, vary=False, name="held-out tokens")
    was_training = model.training
    model.eval()
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for b in stream.epoch(0):
            out = model(torch.from_numpy(b.x), torch.from_numpy(b.y), state)
            total += float(out.loss) * b.tokens
            count += b.tokens
            state = out.state
    model.train(was_training)
    return math.exp(total / max(count, 1))


def _total_steps(stream: BPTTStream, cfg: PretrainConfig) -> tuple[int, list[int]]:
    per_epoch = [stream.steps(e) for e in range(cfg.epochs)]
    total = sum(per_epoch)
    if cfg.max_tokens is not None:
        tokens_per_step = stream.batch_size * stream.bptt
        total = min(total, max(1, math.ceil(cfg.max_tokens / tokens_per_step)))
    return total, per_epoch


def save_lm_checkpoint(path: str | Path, model: LanguageModel, optimizer: torch.optim.Optimizer | None,
                       position: Mapping[str, Any] | None, state: State | None, *, vocab: Any,
                       run_info: Mapping[str, Any] | None) -> Path:
    """Write the language model (and, during training, everything a resume needs) as a checkpoint folder."""
    trainer = None
    if position is not None:
        trainer = {**position, "rng_all": capture_rng_state()}
        if state is not None:
            trainer["carried_state"] = [[h.detach().cpu(), c.detach().cpu()] for h, c in state]
    return save_checkpoint(path, config={"class_name": LM_CLASS, "config": model.get_config()},
                           weights=model.state_dict(), optimizer_state=None if optimizer is None else
                           optimizer.state_dict(), trainer_state=trainer, vocab=vocab, run_info=run_info)


def load_language_model(path: str | Path, *, what: str = "--init-from") -> tuple[LanguageModel, Any]:
    """The :class:`LanguageModel` of a checkpoint folder written by ``lstmtext pretrain``, and its vocabulary.

    Raises:
        CheckpointError: nothing at ``path``, or a checkpoint of something else (a classifier), naming it.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{what} {str(p)!r}: no such folder; expected the output folder of lstmtext pretrain")
    if not (p / "config.json").is_file():
        raise CheckpointError(f"{what} {str(p)!r}: not a checkpoint folder (no config.json); expected the output "
                              "folder of lstmtext pretrain")
    ckpt = load_checkpoint(p, load_training_state=False)
    kind = ckpt.config.get("class_name")
    if kind != LM_CLASS:
        raise CheckpointError(f"{what} {str(p)!r}: holds a {kind!r} model (a classifier), not a language model; "
                              "expected the output folder of lstmtext pretrain")
    model = LanguageModel.from_config(ckpt.config["config"])
    _load_weights(model, ckpt.weights, p)
    return model, ckpt.vocab


def _load_weights(model: torch.nn.Module, weights: Mapping[str, torch.Tensor], path: Path) -> None:
    own = model.state_dict()
    if set(own) != set(weights) or any(tuple(own[k].shape) != tuple(v.shape) for k, v in weights.items()):
        raise CheckpointError(f"{path / 'model.safetensors'}: the weights do not match the model of its config.json")
    with torch.no_grad():
        for k, v in weights.items():
            own[k].copy_(v)


def _check_resumed_vocab(saved: Any, vocab: Any, path: Path) -> None:
    """Refuse to continue a run on token ids from another vocabulary.

    A corpus rebuilt between two parts of a run (its source file was replaced, or touched, so its key changed)
    gives the same ids only if it holds the same words; other ids would silently train the saved weights on
    scrambled text, so the records are compared (after a JSON round trip: the saved one was read from JSON).
    """
    if vocab is None or saved is None or json.loads(json.dumps(vocab)) == saved:
        return
    raise CheckpointError(
        f"--resume: {str(path / 'vocab.json')!r}: the checkpoint's vocabulary differs from the corpus's; the "
        "corpus was rebuilt from other texts or options (--data, --num-words); resume with the data the run "
        "started on, or start a new run with --overwrite")


def fit_language_model(
    model: LanguageModel,
    train_tokens: Any,
    valid_tokens: Any | None,
    cfg: PretrainConfig,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    vocab: Any = None,
    run_info: Mapping[str, Any] | None = None,
    verbose: int = 1,
    print_fn: Callable[[str], Any] = print,
    corpus_name: str = "corpus",
    distributed: bool | None = None,
) -> PretrainResult:
    """Train ``model`` on ``train_tokens`` (see the module docstring).

    Args:
        model: the language model (its weights are the starting point unless ``resume``).
        train_tokens, valid_tokens: 1-D id arrays (``TokenCorpus.train`` / ``.valid``); ``valid_tokens``
            None or too short: no held-out perplexity.
        cfg: the :class:`PretrainConfig`.
        out: the checkpoint folder (None: no checkpoints).
        resume: continue the run saved in ``out`` exactly where it stopped.
        vocab: the tokenizer record saved with the model (``vocab.json``).
        run_info: the ``run.json`` record (history and timings are added).
        verbose: 1 for a progress bar with tokens/s and ETA, 0 for none.
        print_fn: where per-epoch lines go.
        corpus_name: what the tokens are, for error messages.
        distributed: train in all the processes torchrun started, each on its rows of every batch, with
            DistributedDataParallel (True; None: when ``WORLD_SIZE > 1``; see :mod:`lstmtext.lm.distributed`).
            Only rank 0 prints and writes checkpoints.

    Returns:
        A :class:`PretrainResult` (``finished`` False when the time budget stopped it).

    Raises:
        DataError: the corpus is shorter than one BPTT window per row.
        CheckpointError: ``resume`` without a resumable checkpoint in ``out``, or with one whose vocabulary
            differs from ``vocab``.
    """
    from lstmtext.training.progress import Progbar

    shards = RowShards.start(distributed, cfg.batch_size)
    main = shards is None or shards.main
    verbose = verbose if main else 0
    stream = BPTTStream(model.config.reading_order(train_tokens), cfg.batch_size, cfg.bptt, vary=cfg.vary_bptt,
                        seed=cfg.seed, name=corpus_name)
    total, per_epoch = _total_steps(stream, cfg)
    schedule = get_schedule(cfg.schedule)
    model.train()
    optimizer = make_optimizer(model, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    history: dict[str, Any] = {"loss": [], "val_loss": [], "val_perplexity": [], "train_curve": []}
    epoch = step = global_step = 0
    tokens_seen, seconds_before = 0, 0.0
    state: State | None = None
    if resume:
        if out is None:
            raise ConfigError("fit_language_model: resume=True needs out")
        ckpt = load_checkpoint(out)
        if ckpt.trainer_state is None or ckpt.optimizer_state is None:
            raise CheckpointError(f"--resume: {str(out)!r} holds no training state to continue from")
        _check_resumed_vocab(ckpt.vocab, vocab, Path(out))  # before anything in the model changes
        _load_weights(model, ckpt.weights, Path(out))
        optimizer.load_state_dict(ckpt.optimizer_state)
        ts = ckpt.trainer_state
        epoch, step, global_step = int(ts["epoch"]), int(ts["step"]), int(ts["global_step"])
        tokens_seen, seconds_before = int(ts["tokens_seen"]), float(ts["seconds"])
        history = ts["history"]
        if ts.get("carried_state") is not None:
            state = [(h.clone(), c.clone()) for h, c in ts["carried_state"]]
        restore_rng_state(ts["rng_all"], file=Path(out) / "trainer.json")
    else:
        torch.manual_seed(cfg.seed)
    forward: torch.nn.Module = model
    if shards is not None:
        state = shards.local_state(state)
        forward = shards.wrap(model)  # after the RNG state: ranks > 0 derive theirs from it
        if main:
            print_fn(f"distributed: {shards.world_size} processes, {cfg.batch_size} rows per batch = "
                     f"{shards.per_rank} per process")
    info = dict(run_info or {})
    t0 = time.perf_counter()

    def position() -> dict[str, Any]:
        return {"epoch": epoch, "step": step, "global_step": global_step, "tokens_seen": tokens_seen,
                "seconds": seconds_before + time.perf_counter() - t0, "history": history,
                "pretrain_config": asdict(cfg), "total_steps": total}

    def save(done: bool) -> None:
        if out is None:
            return
        full = shards.gather_state(state) if shards is not None else state  # a collective: every rank joins
        if not main:
            return
        info.update(metrics={k: v for k, v in history.items() if k != "train_curve"},
                    seconds=round(seconds_before + time.perf_counter() - t0, 3), finished=done)
        save_lm_checkpoint(out, model, optimizer, position(), full, vocab=vocab, run_info=info)

    finished = False
    run_tokens, curve_sum, curve_n = 0, 0.0, 0
    while global_step < total and epoch < cfg.epochs:
        steps_this_epoch = min(per_epoch[epoch], step + total - global_step)
        bar = (Progbar(steps_this_epoch - step, verbose=verbose, unit_name="step", stream=sys.stdout)
               if verbose else None)
        if step == 0:
            state = None  # a new epoch starts from zero states (fastai resets the model)
        t_epoch, epoch_loss, epoch_tokens = time.perf_counter(), 0.0, 0
        for b in stream.epoch(epoch, step):
            if step >= steps_this_epoch:
                break
            mult = schedule(global_step, total)
            for g in optimizer.param_groups:
                g["lr"] = cfg.lr * mult
            x, y = (b.x, b.y) if shards is None else (shards.local(b.x), shards.local(b.y))
            out_t = forward(torch.from_numpy(x), torch.from_numpy(y), state)
            (out_t.loss + out_t.penalty).backward()
            if cfg.clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state = out_t.state
            loss = float(out_t.loss.detach())
            budget_hit = cfg.time_budget_s is not None and time.perf_counter() - t0 >= cfg.time_budget_s
            if shards is not None:  # equal rows and tokens per rank: the mean is the global batch's loss
                loss, budget_hit = shards.step_end(loss, budget_hit)
            step, global_step = step + 1, global_step + 1
            tokens_seen += b.tokens
            run_tokens += b.tokens
            epoch_loss += loss * b.tokens
            epoch_tokens += b.tokens
            curve_sum, curve_n = curve_sum + loss, curve_n + 1
            if cfg.log_every and global_step % cfg.log_every == 0:
                history["train_curve"].append([global_step, tokens_seen, curve_sum / curve_n])
                curve_sum, curve_n = 0.0, 0
            if bar is not None:
                rate = run_tokens / max(time.perf_counter() - t0, 1e-9)
                bar.update(step - (steps_this_epoch - bar.target), {
                    "loss": loss, "ppl": math.exp(min(loss, 50)), "tokens/s": round(rate),
                    "lr": cfg.lr * mult})
            if budget_hit or (cfg.checkpoint_every and global_step % cfg.checkpoint_every == 0
                              and step < steps_this_epoch):
                save(False)
            if budget_hit:
                return PretrainResult(history, False, global_step, total, seconds_before + time.perf_counter() - t0,
                                      run_tokens / max(time.perf_counter() - t0, 1e-9))
        train_loss = epoch_loss / max(epoch_tokens, 1)
        epoch_done = step >= per_epoch[epoch]
        line = (f"epoch {epoch + 1}/{cfg.epochs}: train loss {train_loss:.4f} "
                f"(perplexity {math.exp(min(train_loss, 50)):.1f})")
        history["loss"].append(train_loss)
        history.setdefault("epoch_end_tokens", []).append(tokens_seen)
        if valid_tokens is not None and len(valid_tokens) > cfg.bptt + 1:
            val_ppl = evaluate_perplexity(model, valid_tokens, batch_size=min(cfg.batch_size, 16), bptt=cfg.bptt)
            history["val_loss"].append(math.log(val_ppl))
            history["val_perplexity"].append(val_ppl)
            line += f" - held-out perplexity {val_ppl:.1f}"
        seconds = time.perf_counter() - t_epoch
        if main:
            print_fn(line + f" - {seconds:.0f} s, {epoch_tokens / max(seconds, 1e-9):,.0f} tokens/s")
        if epoch_done:
            epoch, step = epoch + 1, 0
        finished = global_step >= total or epoch >= cfg.epochs
        if not finished:
            save(False)
    finished = True
    save(True)
    seconds = seconds_before + time.perf_counter() - t0
    return PretrainResult(history, finished, global_step, total, seconds,
                          run_tokens / max(time.perf_counter() - t0, 1e-9))


def tokens_array(x: Any) -> np.ndarray:
    """``x`` as a 1-D int64 array (tests and small corpora)."""
    return np.asarray(x, dtype=np.int64).reshape(-1)
