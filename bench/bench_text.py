"""Time TextVectorization.adapt / encoding and the legacy Tokenizer on the 25,000 IMDB training reviews.

    python bench/bench_text.py --archive PATH/aclImdb_v1.tar.gz [--rounds 3] [--keras-python PATH/python]

For each TextVectorization configuration, both lookup paths are timed: ``python`` (dicts) and ``compiled``
(the kernel's word lookups, used once a process has loaded the kernel, as any process that runs an LSTM
has). ``--keras-python`` names a Python with TensorFlow + Keras 3: Keras's own TextVectorization is then
timed on the same texts, in a subprocess, in the same run (the ratio is the figure to quote; the machine is
shared). The Tokenizer is timed against the keras-preprocessing package when it is installed.
Medians of ``--rounds`` wall-clock timings.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = {
    "default": {},
    "tutorial": {"max_tokens": 10000, "output_sequence_length": 250},
    "multi_hot": {"max_tokens": 10000, "output_mode": "multi_hot"},
    "tf_idf": {"max_tokens": 10000, "output_mode": "tf_idf"},
}

KERAS_SCRIPT = r"""
import json, os, resource, statistics, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np, keras
texts = json.load(open(sys.argv[1], encoding="utf-8"))
configs, rounds = json.loads(sys.argv[2]), int(sys.argv[3])
arr = np.array(texts, dtype=object)
out = {}
for name, kw in configs.items():
    adapt, encode, adapt_cpu, encode_cpu = [], [], [], []
    for _ in range(rounds):
        layer = keras.layers.TextVectorization(**kw)
        c, t = time.process_time(), time.perf_counter(); layer.adapt(texts)
        adapt.append(time.perf_counter() - t); adapt_cpu.append(time.process_time() - c)
        c, t = time.process_time(), time.perf_counter(); y = layer(arr); np.asarray(y)
        encode.append(time.perf_counter() - t); encode_cpu.append(time.process_time() - c)
    out[name] = {"adapt": statistics.median(adapt), "encode": statistics.median(encode),
                 "adapt_cpu": statistics.median(adapt_cpu), "encode_cpu": statistics.median(encode_cpu),
                 "vocabulary_size": int(layer.vocabulary_size())}
print(json.dumps(out))
"""


def median_time(fn, rounds: int) -> tuple[float, float]:
    """Median wall-clock and median CPU seconds (all threads of this process) of ``rounds`` calls."""
    wall, cpu = [], []
    for _ in range(rounds):
        c, t = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def bench_text_vectorization(texts: list[str], rounds: int) -> dict:
    from lstmtext.kernels.build import load_ops
    from lstmtext.layers import TextVectorization, text_vectorization

    compiled = load_ops()
    results = {}
    real_loaded_ops = text_vectorization.loaded_ops
    for path in ("python", "compiled"):
        if path == "compiled" and compiled is None:
            continue
        text_vectorization.loaded_ops = real_loaded_ops if path == "compiled" else (lambda: None)
        for name, kw in CONFIGS.items():
            layer = TextVectorization(**kw)
            adapt, adapt_cpu = median_time(lambda layer=layer: layer.adapt(texts), rounds)
            encode, encode_cpu = median_time(lambda layer=layer: layer(texts), rounds)
            results[(name, path)] = {"adapt": adapt, "encode": encode, "adapt_cpu": adapt_cpu,
                                     "encode_cpu": encode_cpu, "vocabulary_size": layer.vocabulary_size()}
    text_vectorization.loaded_ops = real_loaded_ops
    return results


def bench_keras(python: str, texts: list[str], rounds: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, encoding="utf-8") as f:
        json.dump(texts, f)
    try:
        done = subprocess.run([python, "-c", KERAS_SCRIPT, f.name, json.dumps(CONFIGS), str(rounds)],
                              capture_output=True, text=True, check=True)
    finally:
        os.unlink(f.name)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_tokenizer(texts: list[str], rounds: int) -> dict:
    from lstmtext.preprocessing.text import Tokenizer

    def run(cls):
        tok = cls(num_words=10000, oov_token="<OOV>")
        tok.fit_on_texts(texts)
        tok.texts_to_sequences(texts)

    out = {"lstmtext": median_time(lambda: run(Tokenizer), rounds)[0]}
    try:
        from keras_preprocessing.text import Tokenizer as KerasTokenizer
    except ImportError:
        return out
    out["keras-preprocessing"] = median_time(lambda: run(KerasTokenizer), rounds)[0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", type=Path, required=True, help="aclImdb_v1.tar.gz")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keras-python", help="a Python with tensorflow and keras 3, for Keras's timings")
    args = parser.parse_args()

    from lstmtext.data.archive import read_archive

    texts = read_archive(args.archive)["train"].texts
    print(f"{len(texts)} reviews, {sum(map(len, texts)) / 1e6:.1f} M characters; rounds={args.rounds}; "
          f"torch threads={__import__('torch').get_num_threads()}")
    ours = bench_text_vectorization(texts, args.rounds)
    keras = bench_keras(args.keras_python, texts, args.rounds) if args.keras_python else {}
    print("\nSeconds, wall (CPU) medians; ratio = Keras wall / lstmtext wall.\n")
    print("| configuration | lookups | adapt | encode | Keras adapt | Keras encode | vocabulary |")
    print("|---|---|---|---|---|---|---|")
    for (name, path), r in ours.items():
        k = keras.get(name)
        ks = "- | -"
        if k:
            ks = (f"{k['adapt']:.2f} ({k['adapt_cpu']:.2f}) {k['adapt'] / r['adapt']:.1f}x | "
                  f"{k['encode']:.2f} ({k['encode_cpu']:.2f}) {k['encode'] / r['encode']:.1f}x")
            if k["vocabulary_size"] != r["vocabulary_size"]:
                ks += " VOCABULARY DIFFERS"
        print(f"| {name} {json.dumps(CONFIGS[name])} | {path} | {r['adapt']:.2f} ({r['adapt_cpu']:.2f}) | "
              f"{r['encode']:.2f} ({r['encode_cpu']:.2f}) | {ks} | {r['vocabulary_size']} |")
    tok = bench_tokenizer(texts, args.rounds)
    print("\nTokenizer(num_words=10000, oov_token) fit_on_texts + texts_to_sequences, s: "
          + ", ".join(f"{k} {v:.2f}" for k, v in tok.items()))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
