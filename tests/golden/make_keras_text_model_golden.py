"""Write tests/golden/keras_text_model_golden.json: `.keras` files of TextVectorization models written by Keras.

Keras 3 needs TensorFlow for TextVectorization, so this runs in a separate environment with
``tensorflow-cpu`` and ``keras`` (CI never installs TensorFlow; the tests only read the JSON):

    KERAS_BACKEND=tensorflow python tests/golden/make_keras_text_model_golden.py [--out PATH]

For each model (a Functional model on ``Input(shape=(1,), dtype="string")`` whose TextVectorization is
adapted on a few sentences: ``"int"`` mode into Embedding(mask_zero) + LSTM, ``"tf_idf"`` mode into a Dense
layer; and the TensorFlow RNN tutorial's Sequential model, TextVectorization first) it stores every member of
the archive Keras wrote: ``config.json`` and ``metadata.json`` as text, the
``assets/`` files (the vocabularies) as text, and each dataset of ``model.weights.h5`` as a list; plus the
texts and Keras's predictions on them. ``tests/interop/test_keras_text_models.py`` rebuilds the archive
from this (zip + HDF5) and checks that lstmtext loads it with Keras's predictions.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np

HERE = Path(__file__).resolve().parent
TEXTS = ["A good film.", "a bad film, really bad", "Great acting and a GREAT story!", "boring", "",
         "the plot was fine but slow", "an unseen word here"]
ADAPT = TEXTS[:4] + ["the plot was fine", "good good story"]


def _datasets(h5: bytes) -> dict[str, list]:
    import h5py

    out: dict[str, list] = {}
    with h5py.File(io.BytesIO(h5), "r") as f:
        f.visititems(lambda name, obj: out.__setitem__(name, np.asarray(obj).tolist())
                     if isinstance(obj, h5py.Dataset) else None)
    return out


def main() -> None:
    import keras
    import tensorflow as tf
    from keras import layers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "keras_text_model_golden.json"))
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    models = {}
    for mode in ("int", "tf_idf"):
        tv = layers.TextVectorization(max_tokens=40, output_mode=mode,
                                      output_sequence_length=10 if mode == "int" else None)
        tv.adapt(tf.constant(ADAPT))
        inp = keras.Input(shape=(1,), dtype="string")
        x = tv(inp)
        if mode == "int":
            x = layers.LSTM(4)(layers.Embedding(40, 6, mask_zero=True)(x))
        model = keras.Model(inp, layers.Dense(1, activation="sigmoid")(x))
        preds = model.predict(tf.constant(np.array(TEXTS).reshape(-1, 1)), verbose=0)[:, 0]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "m.keras"
            model.save(path)
            with zipfile.ZipFile(path) as zf:
                members = {i.filename: zf.read(i) for i in zf.infolist()}
        models[mode] = {
            "config.json": members["config.json"].decode(),
            "metadata.json": members["metadata.json"].decode(),
            "assets": {k: v.decode("utf-8") for k, v in members.items() if k.startswith("assets/")},
            "weights": _datasets(members["model.weights.h5"]),
            "predictions": [float(p) for p in preds],
        }
    # the TensorFlow "Text classification with an RNN" tutorial's form: a Sequential model, TextVectorization
    # first, no Input (built by its first call)
    tv = layers.TextVectorization(max_tokens=40)
    tv.adapt(tf.constant(ADAPT))
    model = keras.Sequential([tv, layers.Embedding(len(tv.get_vocabulary()), 6, mask_zero=True),
                              layers.Bidirectional(layers.LSTM(4)), layers.Dense(4, activation="relu"),
                              layers.Dense(1)])
    preds = model.predict(tf.constant(np.array(TEXTS)), verbose=0)[:, 0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.keras"
        model.save(path)
        with zipfile.ZipFile(path) as zf:
            members = {i.filename: zf.read(i) for i in zf.infolist()}
    models["sequential"] = {
        "config.json": members["config.json"].decode(),
        "metadata.json": members["metadata.json"].decode(),
        "assets": {k: v.decode("utf-8") for k, v in members.items() if k.startswith("assets/")},
        "weights": _datasets(members["model.weights.h5"]),
        "predictions": [float(p) for p in preds],
    }
    out = {"keras_version": keras.__version__, "tensorflow_version": tf.__version__, "texts": TEXTS,
           "models": models}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
