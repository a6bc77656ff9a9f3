"""``lstmtext train --init-from LMDIR``: a classifier fine-tuned from a pretrained language model (ULMFiT).

Steps: load the language model (refusing a folder that holds nothing or a classifier); read the labelled
texts of the run's data and encode them with the language model's tokenizer (the classifier's ids must be
the LM's); optionally fine-tune the language model on the training texts (``lm_epochs``); build the
classifier (:func:`lstmtext.lm.finetune.build_classifier`), copy the embedding and LSTMs over by name; fine-tune
in stages (gradual unfreezing, discriminative learning rates, one-cycle or slanted triangular schedule,
reviews read in BPTT chunks); evaluate once on the test split; save an ordinary checkpoint folder (with
``vocab.json``, so ``evaluate``, ``predict`` and ``serve`` use it like any other).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstmtext.data.sequence import pad_flat
from lstmtext.errors import ConfigError
from lstmtext.kernels.build import load_ops
from lstmtext.lm.finetune import (
    FineTuneConfig,
    accuracy,
    build_classifier,
    check_vocabulary,
    fine_tune_classifier,
    predict_chunked,
    transfer_weights,
)
from lstmtext.lm.pretrain import PretrainConfig, fit_language_model, load_language_model
from lstmtext.run.config import RunConfig
from lstmtext.run.data import read_labelled_splits
from lstmtext.text.tokenizer import Tokenizer
from lstmtext.utils.lock import FolderLock


@dataclass
class FineTuneResult:
    """What :func:`finetune_from_config` produced."""

    out: Path
    history: dict[str, list[float]]
    test_metrics: dict[str, float]
    seconds: float
    model: Any


def parse_stages(text: str | None, epochs: int) -> tuple[tuple[int, int, float], ...]:
    """``"F:E:LR,..."`` as stages; None: ULMFiT's four stages, the last one ``max(1, epochs - 3)`` epochs long."""
    if text is None:
        return ((-1, 1, 2e-2), (-2, 1, 1e-2), (-3, 1, 5e-3), (0, max(1, epochs - 3), 1e-3))
    stages = []
    for part in text.split(","):
        bits = part.strip().split(":")
        try:
            if len(bits) != 3:
                raise ValueError
            stages.append((int(bits[0]), int(bits[1]), float(bits[2])))
        except ValueError:
            raise ConfigError(f"--stages {text!r}: expected freeze_to:epochs:lr items separated by commas, "
                              f"got {part!r}") from None
    return tuple(stages)


def _encode(tokenizer: Tokenizer, texts: Sequence[str], maxlen: int, ops: Any) -> np.ndarray:
    ids, offsets = tokenizer.texts_to_flat(texts, caller="--init-from fine-tuning", ops=ops)
    return pad_flat(ids, offsets, maxlen, dtype="int64", padding="pre", truncating="pre")


def finetune_from_config(cfg: RunConfig, init_from: str, *, lm_epochs: int = 0, stages: str | None = None,
                         schedule: str = "one_cycle", argv: Sequence[str] | None = None,
                         print_fn: Callable[[str], Any] = print, transfer: bool = True,
                         decay: float = 2.6) -> FineTuneResult:
    """Fine-tune a classifier from the language model in ``init_from`` on the data of ``cfg``.

    ``cfg.experiment.data`` gives the source and ``maxlen`` (reviews longer than it keep their last
    ``maxlen`` words; read in chunks, so it can be large), ``cfg.experiment.train`` the batch size, epochs
    and seed; the vocabulary is the language model's. ``transfer=False`` keeps the classifier's random
    initial weights (the same architecture, vocabulary and fine-tuning without the pretrained weights: the
    control that measures what pretraining adds). ``decay`` is the discriminative learning-rate factor
    between consecutive layer groups (ULMFiT's 2.6; 1: one learning rate for all).

    Raises:
        CheckpointError: ``init_from`` is missing or not a language model.
        ConfigError, DataError: bad options or data.
        FolderLockedError: another run is writing ``cfg.out`` (a :class:`CheckpointError`).
    """
    # One run at a time per folder, as ``lstmtext train`` (the OS releases the lock if this process dies).
    with FolderLock(cfg.out, what=f"--out {str(cfg.out)!r}"):
        return _finetune_locked(cfg, init_from, lm_epochs=lm_epochs, stages=stages, schedule=schedule, argv=argv,
                                print_fn=print_fn, transfer=transfer, decay=decay)


def _finetune_locked(cfg: RunConfig, init_from: str, *, lm_epochs: int, stages: str | None, schedule: str,
                     argv: Sequence[str] | None, print_fn: Callable[[str], Any], transfer: bool,
                     decay: float) -> FineTuneResult:
    """:func:`finetune_from_config`'s steps, with the output folder locked."""
    from lstmtext.checkpoint import make_run_info
    from lstmtext.models.saving import save_model
    from lstmtext.predictor import inference_record
    from lstmtext.run.train import check_output_folder

    t0 = time.perf_counter()
    lm, vocab = load_language_model(init_from)
    if not isinstance(vocab, dict) or "tokenizer" not in vocab:
        raise ConfigError(f"--init-from {init_from!r}: the language model has no tokenizer (vocab.json)")
    tokenizer = Tokenizer.from_json_dict(vocab["tokenizer"], source=f"{init_from}/vocab.json")
    check_output_folder(cfg)
    exp = cfg.experiment
    seed = exp.train.seed if exp.train.seed is not None else 0
    ft = FineTuneConfig(stages=parse_stages(stages, exp.train.epochs), batch_size=exp.train.batch_size,
                        schedule=schedule, seed=seed, decay=decay)
    print_fn(cfg.format())
    print_fn(f"init-from: {init_from} ({lm.config.num_words:,} ids, LSTMs {lm.config.layer_units}); fine-tuning "
             f"stages (freeze_to, epochs, lr): {list(ft.stages)}, schedule {schedule}, learning-rate decay per group "
             f"{ft.decay:g}, LM epochs {lm_epochs}")
    data = read_labelled_splits(exp.data)
    ops = load_ops()  # the fine-tuning runs on the kernel; its word lookups encode the texts (None: Python's)
    x_train = _encode(tokenizer, data.train_texts, exp.data.maxlen, ops)
    x_test = _encode(tokenizer, data.test_texts, exp.data.maxlen, ops)
    print_fn(f"data: {len(x_train):,} train / {len(x_test):,} test examples, classes {data.class_names} from "
             f"{data.source}; encoded with the language model's tokenizer, maxlen {exp.data.maxlen}")
    if lm_epochs > 0 and transfer:
        ids, _ = tokenizer.texts_to_flat(data.train_texts, ops=ops)
        lm_cfg = PretrainConfig(epochs=lm_epochs, batch_size=32, bptt=ft.bptt, lr=1e-3, seed=seed,
                                checkpoint_every=0)
        fit_language_model(lm, ids, None, lm_cfg, verbose=cfg.output.verbose, print_fn=print_fn,
                           corpus_name="training texts")
    import torch

    torch.manual_seed(seed)
    model = build_classifier(lm.config, max(2, len(data.class_names)))
    check_vocabulary(tokenizer, tokenizer)
    copied = transfer_weights(lm.encoder_layers(), model) if transfer else []
    print_fn(f"classifier: {model.count_params():,} parameters; copied from the language model: "
             + (", ".join(copied) if copied else "nothing (random initial weights)"))
    history = fine_tune_classifier(model, x_train, data.y_train, ft, verbose=cfg.output.verbose, print_fn=print_fn)
    probs = predict_chunked(model, x_test, bptt=ft.bptt)
    test = {"accuracy": accuracy(probs, data.y_test)}
    if probs.shape[1] == 1:
        p = np.clip(probs[:, 0], 1e-7, 1 - 1e-7)
        test["loss"] = float(-np.mean(data.y_test * np.log(p) + (1 - data.y_test) * np.log(1 - p)))
    loss = "binary_crossentropy" if probs.shape[1] == 1 else "sparse_categorical_crossentropy"
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    seconds = time.perf_counter() - t0
    info = make_run_info(seed=seed)
    info.update(command=list(sys.argv if argv is None else argv), config=json.loads(json.dumps(cfg.to_dict())),
                init_from=str(Path(init_from).resolve()),
                finetune={"stages": [list(s) for s in ft.stages], "schedule": schedule, "lm_epochs": lm_epochs,
                          "decay": decay, "transferred": copied},
                data={"source": data.source, "kind": data.kind, "classes": data.class_names,
                      "train_examples": len(x_train), "test_examples": len(x_test)},
                metrics=history, test_metrics=test, seconds=round(seconds, 3))
    record = inference_record(tokenizer, maxlen=exp.data.maxlen, padding="pre", truncating="pre",
                              labels=data.class_names)
    save_model(model, cfg.out, vocab=record, run_info=info)
    print_fn("test: " + " - ".join(f"{k}: {v:.4f}" for k, v in sorted(test.items())))
    print_fn(f"saved {cfg.out} ({seconds:.1f} s in all)")
    return FineTuneResult(cfg.out, history, test, seconds, model)
