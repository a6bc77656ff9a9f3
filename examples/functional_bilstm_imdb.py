"""keras.io's "Bidirectional LSTM on IMDB" (a Functional model), with only its imports changed to lstmtext.

The program below is the keras.io example line for line (``import keras`` / ``from keras import layers``
became the two lstmtext imports); ``main`` only takes its sizes as arguments so that CI can run it small.
IMDB comes from ``$LSTMTEXT_IMDB_ARCHIVE`` (an aclImdb_v1.tar.gz) or lstmtext's data cache.

Usage:
    LSTMTEXT_IMDB_ARCHIVE=/path/to/aclImdb_v1.tar.gz python examples/functional_bilstm_imdb.py
"""

import lstmtext as keras
from lstmtext import layers


def main(max_features=20000, maxlen=200, embedding_dim=128, units=64, batch_size=32, epochs=2, verbose="auto"):
    """Build, summarize and train the model; returns ``(model, history)``."""
    # Input for variable-length sequences of integers
    inputs = keras.Input(shape=(None,), dtype="int32")
    # Embed each integer in a 128-dimensional vector
    x = layers.Embedding(max_features, embedding_dim)(inputs)
    # Add 2 bidirectional LSTMs
    x = layers.Bidirectional(layers.LSTM(units, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(units))(x)
    # Add a classifier
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.summary()

    (x_train, y_train), (x_val, y_val) = keras.datasets.imdb.load_data(num_words=max_features)
    print(len(x_train), "Training sequences")
    print(len(x_val), "Validation sequences")
    # Use pad_sequence to standardize sequence length:
    # this will truncate sequences longer than 200 words and zero-pad sequences shorter than 200 words.
    x_train = keras.utils.pad_sequences(x_train, maxlen=maxlen)
    x_val = keras.utils.pad_sequences(x_val, maxlen=maxlen)

    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_data=(x_val, y_val),
                        verbose=verbose)
    return model, history


if __name__ == "__main__":
    keras.utils.tune_cpu_runtime()  # a training script: settle the CPU runtime before torch starts
    main()
