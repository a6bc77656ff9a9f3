"""`.keras` files of TextVectorization models that lstmtext writes, loaded by real Keras on TensorFlow.

The tests check the other direction in CI (Keras-written files from ``tests/golden/keras_text_model_golden.json``
load in lstmtext with Keras's predictions); this checks that Keras loads what lstmtext writes. Keras needs
TensorFlow for TextVectorization, so the Keras side runs in another Python that has it:

    python bench/keras_text_model_roundtrip.py --keras-python PATH/TO/venv-tf/bin/python

lstmtext (this Python) loads each golden Keras file, writes it back with ``save_keras_model``, and also
writes a freshly built Sequential ``[TextVectorization, Embedding(mask_zero), LSTM, Dense]``; the other Python
loads each file with ``keras.saving.load_model`` and prints the largest difference from the expected
predictions.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
KERAS_SIDE = r"""
import json, sys
import numpy as np, keras, tensorflow as tf
jobs = json.load(open(sys.argv[1]))
for job in jobs:
    model = keras.saving.load_model(job["path"])
    texts = np.array(job["texts"])
    x = tf.constant(texts.reshape(-1, 1) if job["column"] else texts)
    got = model.predict(x, verbose=0)[:, 0]
    print(f"{job['name']:<12} {type(model).__name__:<11} max |keras - lstmtext| = "
          f"{float(np.abs(got - np.array(job['expected'])).max()):.2e}")
print(f"keras {keras.__version__}, tensorflow {tf.__version__}")
"""


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "interop"))
    import test_keras_text_models as golden_tests

    import lstmtext
    from lstmtext.interop.keras import load_keras_model, save_keras_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keras-python", required=True, help="a Python with keras and tensorflow")
    args = parser.parse_args()
    texts = golden_tests.TEXTS
    jobs = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind, golden in golden_tests.GOLDEN["models"].items():
            model = load_keras_model(golden_tests._archive(Path(tmp) / f"keras_{kind}.keras", golden))
            path = Path(tmp) / f"lstmtext_{kind}.keras"
            save_keras_model(model, path)
            jobs.append({"name": kind, "path": str(path), "texts": texts, "column": kind != "sequential",
                         "expected": model.predict(np.array(texts), verbose=0)[:, 0].tolist()})
        lstmtext.utils.set_random_seed(0)
        tv = lstmtext.layers.TextVectorization(max_tokens=30)
        tv.adapt(texts)
        fresh = lstmtext.Sequential([tv, lstmtext.layers.Embedding(30, 4, mask_zero=True), lstmtext.layers.LSTM(3),
                                     lstmtext.layers.Dense(1, activation="sigmoid")])
        fresh.build((None,))
        path = Path(tmp) / "lstmtext_fresh.keras"
        save_keras_model(fresh, path)
        jobs.append({"name": "fresh", "path": str(path), "texts": texts, "column": False,
                     "expected": fresh.predict(np.array(texts), verbose=0)[:, 0].tolist()})
        (Path(tmp) / "jobs.json").write_text(json.dumps(jobs))
        env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
        subprocess.run([args.keras_python, "-c", KERAS_SIDE, str(Path(tmp) / "jobs.json")], check=True, env=env)


if __name__ == "__main__":
    main()
