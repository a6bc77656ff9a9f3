"""One training run from a config: data -> tokenizer -> padding -> model -> fit -> test -> checkpoint folder.

:func:`train_from_config` is what ``lstmtext train`` runs, callable from Python with the same result::

    from lstmtext.run import resolve_run_config, train_from_config

    cfg = resolve_run_config("keras-imdb", overrides={"data": {"archive": "aclImdb_v1.tar.gz"},
                                                      "run": {"out": "runs/imdb"}})
    result = train_from_config(cfg)
    result.test_metrics            # {"accuracy": 0.87..., "loss": 0.31...}

The output folder is one checkpoint (see :mod:`lstmtext.checkpoint.folder`), saved after every epoch
(so an interrupted run can be continued with ``resume``) and once more at the end with the test
metrics: ``config.json``, ``model.safetensors``, ``vocab.json`` (tokenizer, padding and class
names: :meth:`lstmtext.Predictor.from_checkpoint` reads it), ``run.json`` (command line, resolved
config, seed, library versions, device, per-epoch history and test metrics) and ``manifest.json``.
"""

from __future__ import annotations

import contextlib
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstmtext.checkpoint.folder import DERIVED_ENTRIES, KNOWN_FILES
from lstmtext.checkpoint.limits import JSON_LIMITS
from lstmtext.checkpoint.manifest import MANIFEST
from lstmtext.checkpoint.safejson import read_json
from lstmtext.config import ExperimentConfig, build_model
from lstmtext.errors import CheckpointError, ConfigError
from lstmtext.run.config import RunConfig
from lstmtext.run.data import RunData, check_data_path, load_run_data
from lstmtext.training.callbacks import Callback
from lstmtext.utils.lock import FolderLock


@dataclass
class RunResult:
    """What a finished run produced.

    Attributes:
        out: the checkpoint folder.
        config: the resolved config the run used (with its seed and output layer filled in).
        history: per-epoch ``{"loss": [...], "accuracy": [...], "val_loss": [...], ...}``.
        test_metrics: loss and metrics on the test split, e.g. ``{"loss": 0.31, "accuracy": 0.87}``.
        class_names: the classes, in output order.
        seconds: wall-clock time of the whole run.
        model: the trained model.
    """

    out: Path
    config: RunConfig
    history: dict[str, list[float]]
    test_metrics: dict[str, float]
    class_names: list[str]
    seconds: float
    model: Any = field(repr=False)


def adapt_to_classes(exp: ExperimentConfig, num_classes: int) -> list[str]:
    """Fit the output layer and loss to the number of classes, in place; returns notes on what changed.

    A binary config (one sigmoid unit, binary cross-entropy) meeting more than two classes becomes a
    softmax over ``num_classes`` units with sparse categorical cross-entropy. A config already set up
    for ``num_classes`` is kept; any other mismatch is an error.

    Raises:
        ConfigError: ``model.output_units`` does not fit ``num_classes``.
    """
    m, t = exp.model, exp.train
    if num_classes == 2 and m.output_units in (1, 2):
        return []
    if num_classes > 2 and m.output_units == 1:
        m.output_units, m.output_activation = num_classes, "softmax"
        notes = [f"{num_classes} classes: model.output_units = {num_classes}, model.output_activation = \"softmax\""]
        if t.loss in ("binary_crossentropy", "BinaryCrossentropy"):
            t.loss = "sparse_categorical_crossentropy"
            notes.append('train.loss = "sparse_categorical_crossentropy"')
        return notes
    if m.output_units == num_classes:
        return []
    raise ConfigError(f"ModelConfig.output_units: {m.output_units} output units for data with {num_classes} classes; "
                      f"expected 1 (binary) or {num_classes}")


def check_output_folder(cfg: RunConfig) -> None:
    """Refuse to start a run that could not save, or would silently replace a checkpoint.

    Raises:
        ConfigError: ``out`` holds a checkpoint and neither ``resume`` nor ``overwrite`` is set, or
            ``resume`` is set and there is nothing to resume.
        CheckpointError: ``out`` is a file, or a folder of files that are not a checkpoint's.
    """
    from lstmtext.checkpoint import recover_interrupted_save

    out = cfg.out
    if not out.exists():
        recover_interrupted_save(out)  # a crash between the two renames of a save left it moved aside
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"--out {str(out)!r}: exists and is not a folder")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    foreign = [n for n in entries if n not in (*KNOWN_FILES, *DERIVED_ENTRIES, MANIFEST) and not n.endswith(".tmp")]
    if foreign:
        raise CheckpointError(f"--out {str(out)!r}: holds files that are not part of a checkpoint "
                              f"({', '.join(foreign[:5])}); choose an empty or new folder")
    has_checkpoint = any(n in entries for n in ("config.json", MANIFEST))
    if cfg.output.resume and not has_checkpoint:
        raise ConfigError(f"--resume: no checkpoint in {str(out)!r} to continue; run without --resume to start one")
    if cfg.output.resume and "trainer.json" not in entries:
        raise ConfigError(f"--resume: the checkpoint in {str(out)!r} has no training state (trainer.json) to "
                          "continue from; start a new run with --overwrite")
    if has_checkpoint and not (cfg.output.resume or cfg.output.overwrite):
        raise ConfigError(f"--out {str(out)!r} already holds a checkpoint; pass --resume to continue that run or "
                          "--overwrite to replace it")


def _seed(cfg: RunConfig) -> int:
    """The run's seed: the configured one, else a fresh one (recorded, so the run can be repeated)."""
    if cfg.experiment.train.seed is None:
        cfg.experiment.train.seed = random.SystemRandom().randrange(2**31)
    return cfg.experiment.train.seed


def _device_of(model: Any) -> str:
    for p in model.parameters():
        return str(p.device)
    return "cpu"


def train_from_config(cfg: RunConfig, *, argv: Sequence[str] | None = None, callbacks: Sequence[Any] = (),
                      print_fn: Callable[[str], Any] = print) -> RunResult:
    """Train, test and save the model a :class:`RunConfig` describes.

    Steps: print the resolved config; load the data (:func:`~lstmtext.run.data.load_run_data`); fit the
    output layer to the number of classes; seed every generator; build and compile the model; ``fit``
    with a checkpoint after every epoch (continuing the one in ``out`` with ``resume``); evaluate on
    the test split; save the final checkpoint with the tokenizer, class names and ``run.json``.

    Args:
        cfg: the run (see :func:`~lstmtext.run.config.resolve_run_config`); its seed and output layer
            are filled in place.
        argv: the command line recorded in ``run.json`` (default ``sys.argv``).
        callbacks: extra ``fit`` callbacks (e.g. a report or TensorBoard writer).
        print_fn: where the config, summary and results go.

    Returns:
        A :class:`RunResult`.

    Raises:
        ConfigError, DataError, CheckpointError: bad config, data or output folder (each naming it).
        FolderLockedError: another run is writing ``cfg.out`` (a :class:`CheckpointError`).
    """
    from lstmtext.training.distributed import is_main_process

    main_process = is_main_process()  # under torchrun only rank 0 prints, tests and saves
    # One run at a time per folder: a second run on the same --out is refused at once, before it reads or
    # writes anything, while this one holds it (the OS releases the lock if this process dies).
    with FolderLock(cfg.out, what=f"--out {str(cfg.out)!r}") if main_process else contextlib.nullcontext():
        return _train_locked(cfg, argv=argv, callbacks=callbacks, print_fn=print_fn if main_process else _quiet,
                             main_process=main_process)


def _train_locked(cfg: RunConfig, *, argv: Sequence[str] | None, callbacks: Sequence[Any],
                  print_fn: Callable[[str], Any], main_process: bool) -> RunResult:
    """:func:`train_from_config`'s steps, with the output folder locked."""
    from lstmtext.utils import set_random_seed

    t0 = time.perf_counter()
    check_output_folder(cfg)
    check_data_path(cfg.experiment.data.archive)
    exp, verbose = cfg.experiment, cfg.output.verbose
    seed = _seed(cfg)
    print_fn(cfg.format())
    print_fn("")
    t_data = time.perf_counter()
    data = load_run_data(exp.data)
    for note in adapt_to_classes(exp, data.num_classes):
        print_fn(f"note: {note}")
    print_fn(f"data: {len(data.x_train):,} train / {len(data.x_test):,} test examples, {data.num_classes} classes "
             f"({', '.join(data.class_names)}) from {data.source} ({time.perf_counter() - t_data:.1f} s)")

    set_random_seed(seed)
    model = build_model(exp.model, maxlen=exp.data.maxlen)
    model.compile(optimizer=exp.train.make_optimizer(), loss=exp.train.loss, metrics=list(exp.train.metrics))
    if verbose:
        model.summary(print_fn=print_fn)
    run_info = _run_info_base(cfg, data, argv)
    saver = RunCheckpoint(cfg.out, vocab=_vocab_record(data, cfg), run_info=run_info)
    history = model.fit(data.x_train, data.y_train, batch_size=exp.train.batch_size, epochs=exp.train.epochs,
                        validation_split=exp.train.validation_split, shuffle=exp.train.shuffle, verbose=verbose,
                        callbacks=[saver, *callbacks], resume_from=str(cfg.out) if cfg.output.resume else None)
    if not main_process:
        hist = {k: [float(x) for x in v] for k, v in history.history.items()}
        return RunResult(cfg.out, cfg, hist, {}, data.class_names, time.perf_counter() - t0, model)
    test = model.evaluate(data.x_test, data.y_test, batch_size=exp.train.batch_size, verbose=0, return_dict=True)
    test = {k: float(v) for k, v in test.items()}
    seconds = time.perf_counter() - t0
    hist = {k: [float(x) for x in v] for k, v in history.history.items()}
    run_info.update(metrics=hist, test_metrics=test, seconds=round(seconds, 3))
    saver.save(model, run_info)
    from lstmtext.report import run_report  # after the save: saving replaces the folder

    page = run_report(cfg.out, model=model, history=hist, test_data=(data.x_test, data.y_test), test_metrics=test,
                      tokenizer=data.tokenizer, labels=data.class_names, run_info=run_info)
    if page is not None:
        print_fn(f"report: {page}")
    print_fn("test: " + " - ".join(f"{k}: {v:.4f}" for k, v in sorted(test.items())))
    print_fn(f"saved {cfg.out} ({seconds:.1f} s in all)")
    return RunResult(cfg.out, cfg, hist, test, data.class_names, seconds, model)


def _quiet(*_: Any) -> None:
    """The ``print_fn`` of ranks > 0 in a distributed run."""


def _run_info_base(cfg: RunConfig, data: RunData, argv: Sequence[str] | None) -> dict[str, Any]:
    from lstmtext.checkpoint import make_run_info

    info = make_run_info(seed=cfg.experiment.train.seed)
    info["command"] = list(sys.argv if argv is None else argv)
    info["config"] = json.loads(json.dumps(cfg.to_dict()))  # tuples -> lists
    info["data"] = {"source": data.source, "kind": data.kind, "classes": data.class_names,
                    "train_examples": len(data.x_train), "test_examples": len(data.x_test)}
    return info


def _vocab_record(data: RunData, cfg: RunConfig) -> dict[str, Any]:
    from lstmtext.predictor import inference_record

    d = cfg.experiment.data
    return inference_record(data.tokenizer, maxlen=d.maxlen, padding=d.padding, truncating=d.truncating,
                            labels=data.class_names)


class RunCheckpoint(Callback):
    """Saves the model to the run's folder after every epoch, with its vocabulary and run record.

    Each save (``lstmtext.models.saving.save_model``) replaces the previous one atomically and holds
    everything ``resume`` needs (weights, optimizer, loop position, RNG states) and everything
    :class:`~lstmtext.Predictor` needs (``vocab.json``: tokenizer, padding, class names), so the folder
    predicts on raw text during training too. ``run.json`` gets the history so far.

    Args:
        out: the checkpoint folder.
        vocab: the ``vocab.json`` record (:func:`lstmtext.predictor.inference_record`).
        run_info: the ``run.json`` record; ``metrics`` and ``device`` are filled in at each save.
    """

    main_process_only = True  # a distributed fit runs it on rank 0 only

    def __init__(self, out: str | Path, *, vocab: dict[str, Any], run_info: dict[str, Any]) -> None:
        super().__init__()
        self.out, self.vocab, self.run_info = Path(out), vocab, run_info

    def save(self, model: Any, run_info: dict[str, Any] | None = None) -> Path:
        """Write ``model`` with the vocabulary and ``run_info`` (default: the record given, with the history so far)."""
        from lstmtext.models.saving import save_model

        info = dict(self.run_info if run_info is None else run_info)
        if run_info is None:
            history = getattr(getattr(model, "train_state", None), "history", None) or {}
            info["metrics"] = {k: [float(x) for x in v] for k, v in history.items()}
        info["device"] = _device_of(model)
        return save_model(model, self.out, vocab=self.vocab, run_info=info)

    def on_epoch_end(self, epoch, logs=None):
        self.save(self.model)


def read_run_config(folder: str | Path) -> dict[str, Any] | None:
    """The ``config`` a run recorded in ``folder/run.json`` (``{"name", "data", "model", "train", "run"}``), or None."""
    from lstmtext.checkpoint import recover_interrupted_save

    if not Path(folder).exists():
        recover_interrupted_save(folder)  # a crash between the two renames of a save left it moved aside
    path = Path(folder) / "run.json"
    if not path.is_file():
        return None
    # Bounded, strict and depth-limited like every JSON file of a checkpoint (CorruptFileError names the file)
    info = read_json(path, limits=JSON_LIMITS["run.json"], expect=None)
    cfg = info.get("config") if isinstance(info, dict) else None
    return cfg if isinstance(cfg, dict) else None
