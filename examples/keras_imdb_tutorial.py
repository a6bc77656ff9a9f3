"""The Keras IMDB LSTM tutorial, with only its imports changed to lstmtext.

Embedding(5000, 15) -> LSTM(10) -> Dense(1, sigmoid); Adam, binary cross-entropy, reviews padded to 300
tokens, batch 128, 5 epochs, the last 20 % of the training reviews for validation. Prints the summary
(76,051 parameters) and the test loss and accuracy.

Usage:
    python examples/keras_imdb_tutorial.py [--archive PATH] [--seed N] [--epochs N] [--verbose N]

The archive defaults to ``$LSTMTEXT_IMDB_ARCHIVE``, else ``../shared/datasets/aclImdb_v1.tar.gz`` next to
the repository.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from lstmtext.datasets import imdb
from lstmtext.layers import LSTM, Dense, Embedding
from lstmtext.losses import BinaryCrossentropy
from lstmtext.models import Sequential
from lstmtext.optimizers import Adam
from lstmtext.preprocessing.sequence import pad_sequences
from lstmtext.utils import set_random_seed


def default_archive() -> str:
    env = os.environ.get("LSTMTEXT_IMDB_ARCHIVE")
    if env:
        return env
    return str(Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "aclImdb_v1.tar.gz")


def run(archive: str, seed: int | None = None, epochs: int = 5, verbose: int | str = "auto") -> dict[str, float]:
    """Train and test the tutorial model; returns ``{"test_loss", "test_accuracy"}``."""
    if seed is not None:
        set_random_seed(seed)

    # Model configuration (as in the tutorial)
    additional_metrics = ["accuracy"]
    batch_size = 128
    embedding_output_dims = 15
    loss_function = BinaryCrossentropy()
    max_sequence_length = 300
    num_distinct_words = 5000
    number_of_epochs = epochs
    optimizer = Adam()
    validation_split = 0.20
    verbosity_mode = verbose

    # Load dataset
    (x_train, y_train), (x_test, y_test) = imdb.load_data(archive, num_words=num_distinct_words)
    print(x_train.shape)
    print(x_test.shape)

    # Pad all sequences
    padded_inputs = pad_sequences(x_train, maxlen=max_sequence_length, value=0.0)
    padded_inputs_test = pad_sequences(x_test, maxlen=max_sequence_length, value=0.0)

    # Define the Keras model
    model = Sequential()
    model.add(Embedding(num_distinct_words, embedding_output_dims, input_length=max_sequence_length))
    model.add(LSTM(10))
    model.add(Dense(1, activation="sigmoid"))

    # Compile the model
    model.compile(optimizer=optimizer, loss=loss_function, metrics=additional_metrics)

    # Give a summary
    model.summary()

    # Train the model
    model.fit(padded_inputs, y_train, batch_size=batch_size, epochs=number_of_epochs, verbose=verbosity_mode,
              validation_split=validation_split)

    # Test the model after training
    test_results = model.evaluate(padded_inputs_test, y_test, verbose=False)
    print(f"Test results - Loss: {test_results[0]} - Accuracy: {100 * test_results[1]}%")
    return {"test_loss": float(test_results[0]), "test_accuracy": float(test_results[1])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", default=default_archive(), help="aclImdb_v1.tar.gz, aclImdb/ or imdb.npz")
    parser.add_argument("--seed", type=int, default=None, help="seed of every random draw (default: unseeded)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2))
    args = parser.parse_args(argv)
    run(args.archive, seed=args.seed, epochs=args.epochs, verbose=args.verbose)


if __name__ == "__main__":
    main()
