"""Raw IMDB text to an LSTM classifier, as the TensorFlow/Keras text tutorials write it: a folder of reviews,
``text_dataset_from_directory``, ``TextVectorization`` as the model's first layer, ``fit`` on the raw strings.

Only the imports differ from the Keras program (no TensorFlow needed). The saved folder then serves raw text:
``lstmtext predict OUT "a wonderful, moving film"``, ``Predictor.from_checkpoint(OUT)`` or ``lstmtext serve OUT``.

Usage:
    python examples/text_vectorization_imdb.py aclImdb [--epochs N] [--out FOLDER]

``aclImdb`` is the extracted ``aclImdb_v1.tar.gz`` (its ``train/`` and ``test/`` folders; ``train/unsup`` is
left out through ``class_names``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lstmtext as keras
from lstmtext import layers


def main(directory, max_features=10000, sequence_length=250, embedding_dim=32, units=32, batch_size=32,
         epochs=3, seed=1337, out=None, verbose="auto"):
    """Train on ``directory/train`` (20 % held out for validation), test on ``directory/test``; returns
    ``(model, history, test_metrics)``."""
    keras.utils.set_random_seed(seed)
    raw_train_ds, raw_val_ds = keras.utils.text_dataset_from_directory(
        Path(directory) / "train", batch_size=batch_size, validation_split=0.2, subset="both", seed=seed,
        class_names=["neg", "pos"])
    raw_test_ds = keras.utils.text_dataset_from_directory(Path(directory) / "test", batch_size=batch_size,
                                                          class_names=["neg", "pos"], shuffle=False)

    vectorize_layer = layers.TextVectorization(max_tokens=max_features, output_sequence_length=sequence_length)
    vectorize_layer.adapt(raw_train_ds.map(lambda text, label: text))

    model = keras.Sequential([
        vectorize_layer,
        layers.Embedding(max_features, embedding_dim, mask_zero=True),
        layers.LSTM(units),
        layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(raw_train_ds, validation_data=raw_val_ds, epochs=epochs, verbose=verbose)
    loss, accuracy = model.evaluate(raw_test_ds, verbose=verbose)
    print(f"test loss {loss:.4f}, test accuracy {accuracy:.4f}")
    if out is not None:
        model.save(out)  # config.json holds the vocabulary: the folder predicts on raw text
    return model, history, {"loss": loss, "accuracy": accuracy}


if __name__ == "__main__":
    keras.utils.tune_cpu_runtime()  # a training script: settle the CPU runtime before torch starts
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", help="the extracted aclImdb folder")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", help="save the trained model to this checkpoint folder")
    args = parser.parse_args()
    main(args.directory, epochs=args.epochs, out=args.out)
