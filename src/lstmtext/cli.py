"""The ``lstmtext`` command line: one sub-command per job, each a thin layer over the Python API.

Sub-commands: ``stats`` (dataset statistics), ``train`` (train, test and save a model), ``evaluate``
(a checkpoint's loss and metrics), ``summary`` (its model table and run record), ``predict`` (labels
for raw texts from a checkpoint), ``serve`` (the HTTP prediction service), ``export`` (ONNX).
Each has an ``add_<name>_parser(subparsers)`` that declares its options and a ``cmd_<name>(args) -> int``
that runs it; `build_parser` registers them.
A lstmtext error (bad data, bad option) ends the command with its message and exit status 1.

    lstmtext stats --data ../shared/datasets/aclImdb_v1.tar.gz
    lstmtext train --preset keras-imdb --data ../shared/datasets/aclImdb_v1.tar.gz --out runs/imdb
    lstmtext evaluate runs/imdb
    lstmtext predict runs/imdb "A moving, beautiful film." "Two hours I will never get back."
    lstmtext serve runs/imdb --port 8000
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import io
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from lstmtext import __version__
from lstmtext.errors import DataError, LstmtextError
from lstmtext.utils.runtime import tune_cpu_runtime


def add_stats_parser(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``lstmtext stats``."""
    p = subparsers.add_parser(
        "stats",
        help="print dataset statistics",
        description=(
            "Load a dataset the way training will and print reviews per split, class balance, vocabulary "
            "size and token counts. IMDB sources (aclImdb_v1.tar.gz, an aclImdb/ folder, a Keras imdb.npz) "
            "are read like imdb.load_data; a <label>/*.txt folder, .csv/.tsv or .jsonl file like load_dataset."
        ),
    )
    p.add_argument(
        "--data",
        metavar="PATH",
        default=None,
        help="dataset path (default: $LSTMTEXT_IMDB_ARCHIVE, else the public IMDB archive, downloaded once)",
    )
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=None,
        help="cache folder (default: $LSTMTEXT_CACHE_DIR, else $XDG_CACHE_HOME/lstmtext or ~/.cache/lstmtext)",
    )
    p.add_argument("--text-column", default="text", help="text column/key of a CSV or JSON-lines file (default: text)")
    p.add_argument(
        "--label-column", default="label", help="label column/key of a CSV or JSON-lines file (default: label)"
    )
    p.add_argument(
        "--test-split", type=float, default=0.2, help="test fraction when the data has no test split (default: 0.2)"
    )
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.set_defaults(func=cmd_stats)


def cmd_stats(args: argparse.Namespace) -> int:
    """Run ``lstmtext stats``."""
    from lstmtext.data.stats import dataset_stats

    t0 = time.perf_counter()
    stats = dataset_stats(
        args.data,
        cache_dir=args.cache_dir,
        text_column=args.text_column,
        label_column=args.label_column,
        test_split=args.test_split,
    )
    seconds = time.perf_counter() - t0
    if args.json:
        print(json.dumps({**stats.to_dict(), "seconds": round(seconds, 3)}, indent=2))
    else:
        print(stats.format())
        print(f"time: {seconds:.2f} s")
    return 0


def add_predict_parser(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``lstmtext predict``."""
    p = subparsers.add_parser(
        "predict",
        help="predict labels of raw texts with a checkpoint",
        description=(
            "Load a checkpoint folder and print a label and probabilities for each text: the texts given on "
            "the command line, or one per line of --input (a .txt file, a .jsonl file whose objects hold "
            "the text in --field, or - for standard input). Texts are tokenized and padded as in training."
        ),
    )
    p.add_argument("checkpoint", metavar="DIR", help="checkpoint folder (config.json, model.safetensors, vocab.json)")
    p.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    p.add_argument("--input", metavar="FILE", help="read texts from FILE (.txt: one per line; .jsonl; - for stdin)")
    p.add_argument("--input-format", choices=("auto", "txt", "jsonl"), default="auto",
                   help="how to read --input (default: by extension; stdin is txt)")
    p.add_argument("--field", default="text", help="key of the text in JSON-lines input (default: text)")
    p.add_argument("--format", choices=("table", "jsonl"), default="table", help="output format (default: table)")
    p.add_argument("--batch-size", type=int, default=256, help="texts per model call (default: 256)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for the model (default: 1; a small LSTM runs fastest on one thread while "
                        "the texts of the next batch are tokenized on another core)")
    p.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="run the model with PyTorch (default) or onnxruntime (DIR may then be an exported .onnx)")
    p.add_argument("--bf16", action="store_true",
                   help="opt-in reduced precision: the large LSTMs' products in bfloat16 (torch backend, CPUs with "
                        "native bfloat16 products such as AVX512_BF16; probabilities within about 1e-3)")
    p.set_defaults(func=cmd_predict)


def _read_texts(path: str, fmt: str, field: str) -> Iterator[str]:
    """Texts of a .txt/.jsonl file or stdin (``-``); a bad line raises DataError naming file and line.

    Lines end at ``\n`` only (a ``\r\n`` ending is taken off whole): a lone ``\r`` inside a text is part
    of it, not a line break.
    """
    from lstmtext.data.loader import parse_json_line

    if fmt == "auto":
        fmt = "jsonl" if path.endswith((".jsonl", ".ndjson")) else "txt"
    try:
        if path == "-":  # a text stream without bytes underneath (a test's StringIO) is read as it is
            buffer = getattr(sys.stdin, "buffer", None)
            f = sys.stdin if buffer is None else io.TextIOWrapper(buffer, encoding="utf-8", newline="\n")
        else:
            f = open(path, encoding="utf-8", newline="\n")
    except OSError as e:
        raise DataError(f"--input {path!r}: cannot open ({e.strerror})") from None
    try:
        for n, line in enumerate(f, 1):
            line = line.removesuffix("\n").removesuffix("\r")
            if fmt == "txt":
                yield line
                continue
            if not line.strip():
                continue
            obj = parse_json_line(line, f"--input {path!r} line {n}", invalid="not valid JSON")
            text = obj.get(field) if isinstance(obj, dict) else obj
            if not isinstance(text, str):
                raise DataError(f"--input {path!r} line {n}: expected a string or an object with a string "
                                f"{field!r} field, got {type(text).__name__}")
            yield text
    except UnicodeDecodeError as e:
        raise DataError(f"--input {path!r}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise DataError(f"--input {path!r}: cannot read ({e.strerror})") from None
    finally:
        if f is not sys.stdin and path == "-":
            f.detach()  # leave sys.stdin open
        elif f is not sys.stdin:
            f.close()


def printable(text: str, keep: str = "") -> str:
    """``text`` safe to show on a terminal: control characters (escape sequences included), lone surrogates
    and other invisible or format characters (bidi overrides ...) written as ``\\x1b``, ``\\udc80`` ...;
    the characters of ``keep`` (e.g. a newline) stay as they are."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch in keep else ch.encode("unicode_escape").decode("ascii")
                   for ch in text)


def format_table(preds: Sequence, texts: Sequence[str], width: int = 60) -> str:
    """The ``lstmtext predict`` table: one row per text (index, label, probability, a one-line preview of at
    most ``width`` characters), every line ending with a newline, nothing written raw from the input."""
    labels = [printable(p.label) for p in preds]
    label_width = max(5, *(len(label) for label in labels))
    rows = [f"{'#':>6}  {'label':<{label_width}}  {'prob':>6}  text"]
    for i, (p, label, t) in enumerate(zip(preds, labels, texts)):
        preview = " ".join(t[: 4 * width].split())  # whitespace (\t, \r, \n ...) shown as one space
        preview = printable(preview if len(preview) <= width else preview[: width - 3] + "...")
        if len(preview) > width:
            preview = preview[: width - 3] + "..."
        rows.append(f"{i:>6}  {label:<{label_width}}  {p.probability:6.4f}  {preview}")
    return "\n".join(rows) + "\n"


def cmd_predict(args: argparse.Namespace) -> int:
    """Run ``lstmtext predict``."""
    from lstmtext.predictor import Predictor

    if bool(args.texts) == bool(args.input):
        raise DataError("give the texts either as arguments or with --input FILE, not both or neither")
    for flag, value in (("--batch-size", args.batch_size), ("--threads", args.threads)):
        if value <= 0:
            raise DataError(f"{flag} must be a positive integer, got {value}")
    import torch

    torch.set_num_threads(args.threads)
    texts = list(args.texts) if args.texts else list(_read_texts(args.input, args.input_format, args.field))
    if not texts:
        raise DataError(f"--input {args.input!r}: no texts in it (the file is empty)")
    if args.backend == "onnx":
        if args.bf16:
            raise DataError("--bf16 is for the torch backend; onnxruntime runs the exported float32 graph")
        from lstmtext.export import onnx_predictor

        predictor = onnx_predictor(args.checkpoint, batch_size=args.batch_size, threads=args.threads)
    else:
        predictor = Predictor.from_checkpoint(args.checkpoint, batch_size=args.batch_size, bfloat16=args.bf16)
    t0 = time.perf_counter()
    probs = predictor.predict_proba(texts)
    seconds = time.perf_counter() - t0
    preds = predictor.to_predictions(probs)
    out = sys.stdout
    if args.format == "jsonl":  # json.dumps escapes every non-ASCII and control character
        out.writelines(json.dumps({"index": i, **p.to_dict()}) + "\n" for i, p in enumerate(preds))
    else:
        out.write(format_table(preds, texts))
    out.flush()  # the table is complete on stdout before the timing line goes to stderr (one terminal)
    print(f"{len(texts)} texts in {seconds:.2f} s ({len(texts) / max(seconds, 1e-9):,.0f} texts/s, "
          f"tokenization included)", file=sys.stderr)
    return 0


def _service_config_fields() -> list[dataclasses.Field]:
    from lstmtext.service.config import ServiceConfig

    return [f for f in dataclasses.fields(ServiceConfig) if f.name not in ("admin_token", "watch_interval_s")]


def add_serve_parser(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``lstmtext serve`` (service options come from ``ServiceConfig``'s field docs)."""
    p = subparsers.add_parser(
        "serve",
        help="serve a checkpoint over HTTP",
        description=(
            "Serve POST /v1/predict, /healthz, /livez, /readyz, /v1/model, /metrics and /openapi.json for a "
            "checkpoint folder (needs the serve extra: pip install 'lstmtext[serve]'). JSON access logs go to "
            "stdout. SIGTERM turns /readyz to 503 and finishes every request in flight before exiting."
        ),
    )
    p.add_argument("checkpoint", metavar="DIR", help="checkpoint folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000; 0 picks a free one)")
    p.add_argument("--workers", type=int, default=1, help="server processes, each with its own model (default: 1)")
    p.add_argument("--watch", type=float, metavar="SECONDS", default=None,
                   help="reload the checkpoint when its manifest changes, checking every SECONDS")
    p.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"),
                   help="server log level (default: info)")
    try:
        from lstmtext.service.config import ServiceConfig
    except ImportError:  # the serve extra is not installed: the other commands work, `serve` says what to install
        p.set_defaults(func=cmd_serve)
        return
    docs = ServiceConfig.field_help()
    for f in _service_config_fields():
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                           help=f"turn off: {docs[f.name]}")
        else:
            kind = int if isinstance(f.default, int) else float
            p.add_argument(flag, dest=f.name, type=kind, default=f.default,
                           help=f"{docs[f.name]} (default: {f.default})")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Run ``lstmtext serve`` (admin reload is enabled by the LSTMTEXT_ADMIN_TOKEN environment variable)."""
    try:
        from lstmtext.service.config import ServiceConfig
        from lstmtext.service.server import serve
    except ImportError as e:
        raise DataError(str(e)) from None
    from lstmtext.predictor import Predictor

    config = ServiceConfig(
        **{f.name: getattr(args, f.name) for f in _service_config_fields()},
        admin_token=os.environ.get("LSTMTEXT_ADMIN_TOKEN") or None,  # not a flag: argv is visible to every user
        watch_interval_s=args.watch,
    )
    folder = Path(args.checkpoint)
    # Load once here so a bad folder fails at once with its message, before any port is opened.
    predictor = Predictor.from_checkpoint(folder)
    serve(predictor, host=args.host, port=args.port, workers=args.workers, config=config, log_level=args.log_level,
          source=folder)
    return 0


def add_export_parser(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``lstmtext export``."""
    p = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX",
        description=(
            "Write a checkpoint folder as an ONNX graph (ONNX's native LSTM operator, masks included; dynamic "
            "batch and sequence axes), checked against onnxruntime on padded inputs before it is written. The "
            "tokenizer and padding go into the file's metadata and a sidecar <out>.json."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="checkpoint folder")
    p.add_argument("--format", choices=["onnx"], default="onnx", help="export format (default: onnx)")
    p.add_argument("--out", metavar="FILE", default=None, help="output file (default: DIR/model.onnx)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset, 13 or newer (default: 17)")
    p.add_argument("--no-check", action="store_true", help="skip the onnxruntime-vs-PyTorch check")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """Run ``lstmtext export``."""
    from lstmtext.export import DEFAULT_OPSET, to_onnx

    t0 = time.perf_counter()
    result = to_onnx(args.dir, args.out, opset=args.opset or DEFAULT_OPSET, check=not args.no_check)
    print(f"wrote {result.path} (ONNX opset {result.opset}, {result.path.stat().st_size:,} bytes)")
    if result.sidecar is not None:
        print(f"wrote {result.sidecar} (tokenizer and padding)")
    if result.max_abs_diff is not None:
        print(f"checked against PyTorch with onnxruntime: max abs difference {result.max_abs_diff:.2e}")
    print(f"time: {time.perf_counter() - t0:.2f} s")
    return 0


def add_report_parser(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``lstmtext report``."""
    p = subparsers.add_parser(
        "report",
        help="rebuild a run's report/ (plots and report.html)",
        description=(
            "Redraw DIR/report/: loss and metric curves per epoch, the test confusion matrix and ROC curve, "
            "and report.html, from report/report.json and the folder's config.json, run.json and trainer.json."
        ),
    )
    p.add_argument("dir", metavar="DIR", help="checkpoint folder of a training run")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """Run ``lstmtext report``."""
    from lstmtext.report import rebuild_report

    page = rebuild_report(args.dir)
    pngs = sorted(p.name for p in page.parent.glob("*.png"))
    print(f"wrote {page} ({', '.join(pngs) or 'no plots'})")
    return 0


def add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``lstmtext train`` (one flag per field of the run's config dataclasses)."""
    from lstmtext.config import PRESETS
    from lstmtext.run.config import OutputConfig, add_config_flags, field_docs

    p = subparsers.add_parser(
        "train",
        help="train, test and save a model from a preset, a TOML config and flags",
        description=(
            "Train a text classifier and write its checkpoint folder (--out): load the data, build the "
            "vocabulary, pad, build and compile the model, fit with a progress bar (saving a checkpoint after "
            "every epoch), evaluate on the test split, and save the model with its vocabulary, run.json (command "
            "line, config, seed, versions, device, metrics) and manifest. The config starts from --preset, then "
            "--config FILE.toml, then the flags below (later wins); it is printed before training. With more "
            "than two classes the output becomes a softmax trained with sparse categorical cross-entropy."
        ),
        epilog=("example: lstmtext train --preset keras-imdb --data ../shared/datasets/aclImdb_v1.tar.gz "
                "--out runs/imdb --epochs 5 --seed 1"),
    )
    docs = field_docs(OutputConfig)
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="the config to start from (default: the config file's preset, else keras-imdb)")
    p.add_argument("--config", metavar="FILE", default=None,
                   help="TOML file over the preset: preset = \"...\", [data], [model], [train] and [run] tables "
                        "with the fields below (underscores, not dashes)")
    p.add_argument("--out", metavar="DIR", dest="run.out", default=argparse.SUPPRESS, help=docs["out"])
    p.add_argument("--resume", dest="run.resume", action="store_true", default=argparse.SUPPRESS,
                   help=docs["resume"] + " The config recorded in DIR/run.json replaces the preset.")
    p.add_argument("--overwrite", dest="run.overwrite", action="store_true", default=argparse.SUPPRESS,
                   help=docs["overwrite"])
    p.add_argument("--verbose", dest="run.verbose", type=int, choices=(0, 1, 2), default=argparse.SUPPRESS,
                   help=docs["verbose"] + " (default: 1)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("--tensorboard", metavar="DIR", default=None,
                   help="also log the epoch metrics for TensorBoard to DIR (needs the tensorboard package)")
    add_config_flags(p)
    g = p.add_argument_group("language-model fine-tuning (ULMFiT)")
    g.add_argument("--init-from", metavar="LMDIR", default=None,
                   help="start from the language model lstmtext pretrain wrote in LMDIR: its tokenizer, embedding and "
                        "LSTMs, a pooled head (last, max, mean), discriminative learning rates, gradual unfreezing and "
                        "reviews read in BPTT chunks (preset imdb-pretrained)")
    g.add_argument("--lm-epochs", type=int, default=0, metavar="N",
                   help="with --init-from: first fine-tune the language model on the training texts for N epochs "
                        "(default: 0)")
    g.add_argument("--stages", default=None, metavar="F:E:LR,...",
                   help="with --init-from: fine-tuning stages freeze_to:epochs:lr (default: ULMFiT's "
                        "-1:1:0.02,-2:1:0.01,-3:1:0.005,0:E-3:0.001 for --epochs E)")
    g.add_argument("--schedule", choices=("one_cycle", "slanted_triangular"), default="one_cycle",
                   help="with --init-from: learning-rate schedule of each stage (default: one_cycle)")
    g.add_argument("--decay", type=float, default=2.6, metavar="F",
                   help="with --init-from: discriminative learning rates, each layer group F times slower than the "
                        "one above it (default: ULMFiT's 2.6; 1: one rate for all, better from a weakly trained "
                        "language model)")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    """Run ``lstmtext train``."""
    from lstmtext.run.config import overrides_from_args, resolve_run_config
    from lstmtext.run.train import read_run_config, train_from_config

    overrides = overrides_from_args(args)
    cfg = resolve_run_config(args.preset, args.config, overrides)
    if cfg.output.resume:
        recorded = read_run_config(cfg.out)
        if recorded is not None:
            cfg = resolve_run_config(args.preset, args.config, overrides, base=recorded)
    if args.dry_run:
        print(cfg.format())
        return 0
    if args.init_from is not None:
        from lstmtext.run.finetune import finetune_from_config

        finetune_from_config(cfg, args.init_from, lm_epochs=args.lm_epochs, stages=args.stages,
                             schedule=args.schedule, decay=args.decay, argv=args.command_line)
        return 0
    callbacks = []
    if args.tensorboard is not None:
        from lstmtext.report import TensorBoard

        callbacks.append(TensorBoard(args.tensorboard))
    train_from_config(cfg, argv=args.command_line, callbacks=callbacks)
    return 0


def add_pretrain_parser(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``lstmtext pretrain``."""
    from lstmtext.lm.presets import LM_PRESETS

    p = subparsers.add_parser(
        "pretrain",
        help="train an LSTM language model on raw texts (for train --init-from)",
        description=(
            "Tokenize raw texts once into token-id shards (beside --out), then train an AWD-LSTM language model "
            "on them with BPTT windows, a progress bar with tokens/s and ETA, the held-out perplexity after each "
            "epoch, checkpoints with exact resume (--resume) and report/perplexity.png. IMDB sources give the "
            "labelled training reviews plus train/unsup; the test reviews only with --include-test."),
        epilog="example: lstmtext pretrain --data ../shared/datasets/aclImdb_v1.tar.gz --out runs/lm --preset imdb-cpu",
    )
    p.add_argument("--data", metavar="PATH", required=True,
                   help="an aclImdb archive or folder, a folder of .txt files, a .txt file (one document per line), "
                        "a .csv/.tsv or .jsonl file")
    p.add_argument("--out", metavar="DIR", required=True, help="the language model's checkpoint folder")
    p.add_argument("--preset", choices=sorted(LM_PRESETS), default="imdb-cpu", help="(default: imdb-cpu)")
    p.add_argument("--corpus-dir", metavar="DIR", default=None, help="token shards (default: <out>-corpus)")
    p.add_argument("--include-test", action="store_true",
                   help="IMDB: pretrain on the labelled test reviews too (recorded in run.json)")
    p.add_argument("--text-column", default="text", help="text column/key of a CSV or JSON-lines file")
    p.add_argument("--valid-every", type=int, default=50, metavar="N",
                   help="hold out every N-th document for the perplexity (default: 50; 0: none)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in --out exactly")
    p.add_argument("--overwrite", action="store_true", help="replace a checkpoint in --out")
    p.add_argument("--verbose", type=int, choices=(0, 1), default=1, help="1: progress bar (default)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    m = p.add_argument_group("model (overrides of the preset)")
    m.add_argument("--num-words", type=int, default=None, help="vocabulary size (ids)")
    m.add_argument("--embedding-dim", type=int, default=None, help="embedding size = last LSTM's units")
    m.add_argument("--hidden-units", type=int, nargs="+", default=None, help="units of the other LSTMs")
    m.add_argument("--cutoffs", type=int, nargs="+", default=None, help="adaptive softmax cluster bounds")
    m.add_argument("--backwards", action="store_true", default=None,
                   help="train on the texts read right to left (a backward model for a forward + backward "
                        "ensemble; its classifiers reverse their inputs)")
    t = p.add_argument_group("training (overrides of the preset)")
    for flag, kind, text in (("--epochs", int, "passes over the corpus"), ("--batch-size", int, "parallel rows"),
                             ("--bptt", int, "BPTT window"), ("--max-tokens", int, "stop after this many tokens"),
                             ("--lr", float, "peak learning rate"), ("--seed", int, "seed"),
                             ("--checkpoint-every", int, "save every N steps"),
                             ("--time-budget", float, "save and stop after this many seconds (resume later)")):
        t.add_argument(flag, type=kind, default=None, help=text)
    t.add_argument("--schedule", choices=("one_cycle", "slanted_triangular", "constant"), default=None)
    p.set_defaults(func=cmd_pretrain)


def cmd_pretrain(args: argparse.Namespace) -> int:
    """Run ``lstmtext pretrain``."""
    from lstmtext.run.pretrain import PretrainRunConfig, format_config, pretrain_run

    model = {"num_words": args.num_words, "embedding_dim": args.embedding_dim, "hidden_units": args.hidden_units,
             "cutoffs": args.cutoffs, "backwards": args.backwards}
    train = {"epochs": args.epochs, "batch_size": args.batch_size, "bptt": args.bptt, "max_tokens": args.max_tokens,
             "lr": args.lr, "seed": args.seed, "checkpoint_every": args.checkpoint_every,
             "time_budget_s": args.time_budget, "schedule": args.schedule}
    cfg = PretrainRunConfig(data=args.data, out=args.out, preset=args.preset, model=model, train=train,
                            corpus_dir=args.corpus_dir, include_test=args.include_test, text_column=args.text_column,
                            valid_every=args.valid_every, resume=args.resume, overwrite=args.overwrite,
                            verbose=args.verbose)
    if args.dry_run:
        print(format_config(cfg, *cfg.resolve()))
        return 0
    pretrain_run(cfg, argv=args.command_line)
    return 0


def add_evaluate_parser(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``lstmtext evaluate``."""
    p = subparsers.add_parser(
        "evaluate",
        help="loss and metrics of a checkpoint on its test split or other data",
        description=(
            "Print the loss and metrics of a checkpoint folder. Without --data: on the test split of the data it "
            "was trained on, loaded again as run.json records. With --data: on that data's test split (an IMDB "
            "archive or folder, a folder with train/ and test/) or on all of it (a <label>/*.txt folder, CSV or "
            "JSON-lines file), encoded with the checkpoint's own vocabulary and padding."
        ),
    )
    p.add_argument("checkpoint", metavar="DIR", help="checkpoint folder written by lstmtext train")
    p.add_argument("--data", metavar="PATH", default=None, help="labelled data to evaluate on (default: the run's)")
    p.add_argument("--text-column", metavar="NAME", default=None,
                   help="text column/key of a CSV or JSON-lines file (default: the run's)")
    p.add_argument("--label-column", metavar="NAME", default=None,
                   help="label column/key of a CSV or JSON-lines file (default: the run's)")
    p.add_argument("--batch-size", metavar="N", type=int, default=512, help="examples per model call (default: 512)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Run ``lstmtext evaluate``."""
    from lstmtext.run.evaluate import evaluate_checkpoint

    if args.batch_size <= 0:
        raise DataError(f"--batch-size must be a positive integer, got {args.batch_size}")
    r = evaluate_checkpoint(args.checkpoint, args.data, batch_size=args.batch_size, text_column=args.text_column,
                            label_column=args.label_column)
    if args.json:
        print(json.dumps({"metrics": r.metrics, "examples": r.examples, "data": r.data,
                          "seconds": round(r.seconds, 3)}, indent=2))
    else:
        print(f"{r.examples:,} examples from {r.data}")
        print(" - ".join(f"{k}: {v:.4f}" for k, v in sorted(r.metrics.items())))
        print(f"time: {r.seconds:.2f} s")
    return 0


def add_summary_parser(subparsers: argparse._SubParsersAction) -> None:
    """Declare ``lstmtext summary``."""
    p = subparsers.add_parser(
        "summary",
        help="a checkpoint's model table and run record",
        description=("Print Keras's summary table of a checkpoint folder's model, then its run: config name, date, "
                     "seed, device, data, classes, vocabulary, padding, per-epoch history, test metrics, library "
                     "versions, command line and files."),
    )
    p.add_argument("checkpoint", metavar="DIR", help="checkpoint folder")
    p.set_defaults(func=cmd_summary)


def cmd_summary(args: argparse.Namespace) -> int:
    """Run ``lstmtext summary``."""
    from lstmtext.run.evaluate import describe_checkpoint

    print(describe_checkpoint(args.checkpoint))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``lstmtext`` parser with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="lstmtext", description="Keras-exact LSTM text classifiers on PyTorch.")
    parser.add_argument("--version", action="version", version=f"lstmtext {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_stats_parser(subparsers)
    add_train_parser(subparsers)
    add_pretrain_parser(subparsers)
    add_evaluate_parser(subparsers)
    add_summary_parser(subparsers)
    add_predict_parser(subparsers)
    add_serve_parser(subparsers)
    add_export_parser(subparsers)
    add_report_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lstmtext`` console script; returns the exit status."""
    tune_cpu_runtime()  # this process trains or serves: before torch is imported (see lstmtext.utils.runtime)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = ["lstmtext", *(sys.argv[1:] if argv is None else argv)]  # recorded in run.json
    try:
        return args.func(args)
    except LstmtextError as e:
        print(f"lstmtext {args.command}: error: {printable(str(e), keep=chr(10))}", file=sys.stderr)
        return 1
    except OSError as e:  # a full disk, a read-only or vanished folder: the file and the reason, no traceback
        where = f"{e.filename}: " if e.filename else ""
        reason = e.strerror or str(e)
        hint = " (free some space; files are written atomically, so what was saved before is intact)" \
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else ""
        print(f"lstmtext {args.command}: error: {printable(where + reason)}{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lstmtext {args.command}: interrupted", file=sys.stderr)
        return 130
