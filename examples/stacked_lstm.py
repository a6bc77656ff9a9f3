"""The TF1 sentiment tutorial's model: an LSTM stack built from a list of sizes, trained on IMDB.

Embedding(20000, 300) -> LSTM(128) -> Dropout(0.5) -> LSTM(64) -> Dropout(0.5) -> Dense(1, sigmoid),
reviews padded to 200 tokens, batch 256, Adam, 3 epochs, the last 20 % of the training reviews for
validation (the ``stacked-imdb`` preset). :func:`plain_sequential` shows the same model written out as a
plain Sequential.

Usage:
    python examples/stacked_lstm.py [--archive PATH] [--seed N] [--epochs N] [--lstm-sizes 128 64]
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lstmtext.config import build_stacked_lstm, get_preset
from lstmtext.datasets import imdb
from lstmtext.layers import LSTM, Dense, Dropout, Embedding
from lstmtext.models import Input, Sequential
from lstmtext.preprocessing.sequence import pad_sequences
from lstmtext.utils import set_random_seed


def default_archive() -> str:
    env = os.environ.get("LSTMTEXT_IMDB_ARCHIVE")
    if env:
        return env
    return str(Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "aclImdb_v1.tar.gz")


def plain_sequential(vocab: int = 20000, maxlen: int = 200) -> Sequential:
    """What ``build_stacked_lstm(lstm_sizes=(128, 64), dropout=0.5)`` builds, written out."""
    return Sequential([
        Input((maxlen,), dtype="int32"),
        Embedding(vocab, 300),
        LSTM(128, return_sequences=True), Dropout(0.5),
        LSTM(64), Dropout(0.5),
        Dense(1, activation="sigmoid"),
    ])


def run(archive: str, seed: int | None = 1, epochs: int | None = None, lstm_sizes: tuple[int, ...] | None = None,
        verbose: int = 1) -> dict[str, float]:
    """Train and test the stack; returns ``{"test_loss", "test_accuracy"}``."""
    cfg = get_preset("stacked-imdb")
    if epochs is not None:
        cfg.train.epochs = epochs
    if lstm_sizes is not None:
        cfg.model.lstm_sizes = tuple(lstm_sizes)
    if seed is not None:
        set_random_seed(seed)
    (x_train, y_train), (x_test, y_test) = imdb.load_data(archive, num_words=cfg.data.num_words)
    x_train = pad_sequences(x_train, maxlen=cfg.data.maxlen)
    x_test = pad_sequences(x_test, maxlen=cfg.data.maxlen)

    model = build_stacked_lstm(vocab_size=cfg.model.vocab_size, embedding_dim=cfg.model.embedding_dim,
                               lstm_sizes=cfg.model.lstm_sizes, dropout=cfg.model.dropout, maxlen=cfg.data.maxlen)
    model.compile(optimizer=cfg.train.make_optimizer(), loss=cfg.train.loss, metrics=list(cfg.train.metrics))
    model.summary()
    model.fit(x_train, y_train, batch_size=cfg.train.batch_size, epochs=cfg.train.epochs,
              validation_split=cfg.train.validation_split, verbose=verbose)
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=cfg.train.batch_size, verbose=0)
    print(f"Test results - Loss: {loss:.4f} - Accuracy: {100 * accuracy:.2f}%")
    return {"test_loss": float(loss), "test_accuracy": float(accuracy)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default=default_archive(), help="aclImdb_v1.tar.gz, aclImdb/ or imdb.npz")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=None, help="default: the preset's 3")
    parser.add_argument("--lstm-sizes", type=int, nargs="+", default=None, help="default: 128 64")
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    args = parser.parse_args(argv)
    run(args.archive, seed=args.seed, epochs=args.epochs,
        lstm_sizes=tuple(args.lstm_sizes) if args.lstm_sizes else None, verbose=args.verbose)


if __name__ == "__main__":
    main()
