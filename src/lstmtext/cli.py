"""The ``lstmtext`` command line: one sub-command per job, each a thin layer over the Python API.

Sub-commands: ``stats`` (dataset statistics). Each has an ``add_<name>_parser(subparsers)`` that
declares its options and a ``cmd_<name>(args) -> int`` that runs it; `build_parser` registers them.
A lstmtext error (bad data, bad option) ends the command with its message and exit status 1.

    lstmtext stats --data ../shared/datasets/aclImdb_v1.tar.gz
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from lstmtext import __version__
from lstmtext.errors import LstmtextError


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
        help="cache folder (default: $LSTMTEXT_CACHE_DIR or ~/.cache/lstmtext)",
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


def build_parser() -> argparse.ArgumentParser:
    """The ``lstmtext`` parser with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="lstmtext", description="Keras-exact LSTM text classifiers on PyTorch.")
    parser.add_argument("--version", action="version", version=f"lstmtext {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_stats_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lstmtext`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LstmtextError as e:
        print(f"lstmtext {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"lstmtext {args.command}: interrupted", file=sys.stderr)
        return 130
