"""Write tests/golden/text_golden.json: Keras's TextVectorization and text_dataset_from_directory on real data.

Keras 3 needs TensorFlow for both, so this runs in a separate environment with ``tensorflow-cpu`` and
``keras`` (CI never installs TensorFlow; the tests only read the JSON):

    python tests/golden/make_text_golden.py --archive PATH/aclImdb_v1.tar.gz [--out tests/golden/text_golden.json]

What it records:

* ``text_vectorization``: for each option set, the vocabulary (size, SHA-256, head and tail), the IDF
  weights where there are few, and the outputs of the layer on every text (SHA-256 of the exact int64
  array, or per-row sums and non-zero counts for float outputs, plus a few full rows). Two corpora:
  ``imdb``, reviews of the archive's ``train/{pos,neg}`` folders (every ``--stride``-th file in name order;
  the member names are stored, not the texts), and ``generated``, the test suite's generated reviews
  (``tests/helpers.py``) plus the edge-case strings stored in the JSON (Unicode case, non-ASCII whitespace).
* ``text_dataset_from_directory``: a generated folder tree (listed in the JSON; each file holds its own
  path) read with several seeds and splits; which files land in the training and validation subsets.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tarfile
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests/helpers.py

EDGE_TEXTS = [
    "ÉCOLE Straße ǅungla İstanbul KELVIN K Ωmega",
    "A\x1cB c\xa0D e\u2003F g\x85H\tI\x0bJ\x0cK\rL\nM  N",
    "don't [UNK] stop -- it's 10/10!!! (really) <br /><br />Great.",
    "   leading and trailing   ",
    "",
    "naïve café ÜBER über Über",
    "a_b a-b a.b a'b a\"b a\\b a`b a~b a|b a{b}",
    "日本語のテキスト 中文 😀 emoji 😀",
]

MEMBER = re.compile(r"^aclImdb/train/(pos|neg)/\d+_\d+\.txt$")


def read_imdb_sample(archive: Path, stride: int) -> tuple[list[str], list[str]]:
    """Every ``stride``-th ``train/{pos,neg}`` review in member-name order: (names, texts)."""
    found: dict[str, str] = {}
    with tarfile.open(archive) as tf:
        for m in tf:
            if MEMBER.match(m.name):
                found[m.name] = tf.extractfile(m).read().decode("utf-8")
    names = sorted(found)[::stride]
    return names, [found[n] for n in names]


def generated_texts() -> list[str]:
    from helpers import tiny_imdb_files

    files = tiny_imdb_files(n_per_class=20, seed=0)
    texts = [files[n].decode("utf-8") for n in sorted(files) if MEMBER.match(n)]
    return texts + EDGE_TEXTS


# (name, corpus, constructor options, extras)
CASES: list[tuple[str, str, dict, dict]] = [
    ("default", "imdb", {}, {}),
    ("lower_only", "imdb", {"standardize": "lower", "max_tokens": 3000, "output_sequence_length": 120}, {}),
    ("strip_punctuation_only", "imdb", {"standardize": "strip_punctuation", "max_tokens": 4000}, {}),
    ("no_standardize", "imdb", {"standardize": None, "max_tokens": 2500}, {}),
    ("character", "imdb", {"split": "character", "standardize": "lower"}, {}),
    ("no_split_prefix", "imdb_prefix", {"split": None, "max_tokens": 300}, {}),
    ("bigrams", "imdb", {"ngrams": 2, "max_tokens": 6000}, {}),
    ("ngram_widths", "imdb", {"ngrams": (1, 3), "max_tokens": 5000, "output_sequence_length": 300}, {}),
    ("sequence_length", "imdb", {"max_tokens": 10000, "output_sequence_length": 200}, {}),
    ("multi_hot", "imdb", {"output_mode": "multi_hot", "max_tokens": 1000}, {}),
    ("multi_hot_padded", "imdb", {"output_mode": "multi_hot", "max_tokens": 40000, "pad_to_max_tokens": True}, {}),
    ("count", "imdb", {"output_mode": "count", "max_tokens": 800}, {}),
    ("count_bigrams", "imdb", {"output_mode": "count", "ngrams": 2, "max_tokens": 2000}, {}),
    ("tf_idf", "imdb", {"output_mode": "tf_idf", "max_tokens": 1000}, {}),
    ("tf_idf_padded", "imdb", {"output_mode": "tf_idf", "max_tokens": 30000, "pad_to_max_tokens": True}, {}),
    ("tf_idf_batches", "imdb", {"output_mode": "tf_idf", "max_tokens": 600}, {"adapt_batch": 37}),
    ("generated_default", "generated", {}, {}),
    ("generated_lower", "generated", {"standardize": "lower"}, {}),
    ("generated_character", "generated", {"split": "character", "standardize": None}, {}),
    ("generated_tf_idf", "generated", {"output_mode": "tf_idf", "ngrams": 2}, {}),
    ("fixed_vocabulary", "imdb", {"vocabulary": ["the", "movie", "film", "[UNK]", "great", "bad", "Bad", "é"]}, {}),
    ("fixed_vocabulary_specials", "imdb",
     {"vocabulary": ["", "[UNK]", "the", "movie", "great"], "output_sequence_length": 30}, {}),
    ("fixed_tf_idf", "imdb", {"output_mode": "tf_idf", "vocabulary": ["the", "a", "great", "bad", "movie"],
                              "idf_weights": [0.1, 0.2, 1.5, 2.5, 0.7]}, {}),
    ("fixed_tf_idf_specials_padded", "imdb",
     {"output_mode": "tf_idf", "vocabulary": ["[UNK]", "the", "great", "bad"], "idf_weights": [0.9, 0.1, 1.5, 2.5],
      "max_tokens": 10, "pad_to_max_tokens": True}, {}),
]

N_ROWS = 3  # full output rows stored per case


def sha256_json(obj) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False).encode("utf-8")).hexdigest()


def run_case(keras, tf, name: str, texts: list[str], options: dict, extras: dict) -> dict:
    layer = keras.layers.TextVectorization(**options)
    if "vocabulary" not in options:
        if "adapt_batch" in extras:
            b = extras["adapt_batch"]
            layer.adapt(tf.data.Dataset.from_tensor_slices(texts).batch(b))
        else:
            layer.adapt(texts)
    vocab = [str(t) for t in layer.get_vocabulary()]
    out = np.asarray(layer(np.array(texts, dtype=object)))
    rec: dict = {
        "name": name,
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()},
        "extras": extras,
        "vocabulary_size": int(layer.vocabulary_size()),
        "vocabulary_sha256": sha256_json(vocab),
        "vocabulary_head": vocab[:200],
        "vocabulary_tail": vocab[-60:],
        "output_shape": list(out.shape),
        "output_dtype": str(out.dtype),
    }
    mode = options.get("output_mode", "int")
    if mode == "tf_idf":
        weights = np.asarray(layer._lookup_layer.idf_weights_const)
        rec["idf_weights"] = [float(w) for w in weights[:1000]]
        rec["idf_weights_length"] = int(len(weights))
    if mode in ("int", "multi_hot", "count"):
        exact = out.astype(np.int64)
        rec["output_sha256"] = hashlib.sha256(np.ascontiguousarray(exact).tobytes()).hexdigest()
    else:
        rec["row_sums"] = [float(s) for s in out.astype(np.float64).sum(axis=1)]
        rec["row_nonzeros"] = [int(n) for n in (out != 0).sum(axis=1)]
    rows = {}
    for i in range(min(N_ROWS, len(texts))):
        row = np.atleast_1d(out[i])
        if mode == "int":
            rows[str(i)] = [int(v) for v in row]
        else:
            nz = np.flatnonzero(row)
            rows[str(i)] = {"indices": [int(j) for j in nz], "values": [float(row[j]) for j in nz]}
    rec["rows"] = rows
    return rec


# -- text_dataset_from_directory ------------------------------------------------------------------------------

def directory_tree() -> list[str]:
    """Relative paths of the generated tree: three classes, a nested folder, names that sort in tricky ways."""
    rng = np.random.RandomState(20261207)
    paths = []
    for cls, n in (("neg", 23), ("pos", 31), ("zz_other", 9)):
        ids = rng.permutation(n * 3)[:n]
        for i in ids:
            paths.append(f"{cls}/{int(i)}_{int(rng.randint(1, 11))}.txt")
    paths += ["pos/nested/deeper/1000_9.txt", "pos/nested/0_1.txt", "neg/UPPER_CASE.TXT", "neg/notes.md",
              "pos/.hidden_file.txt", ".hidden_class/0_1.txt", "neg/Z_last.txt", "neg/a_first.txt"]
    return paths


DIRECTORY_CASES = [
    {"name": "both_1337", "seed": 1337, "validation_split": 0.2, "subset": "both"},
    {"name": "training_42", "seed": 42, "validation_split": 0.25, "subset": "training"},
    {"name": "validation_7", "seed": 7, "validation_split": 0.3, "subset": "validation"},
    {"name": "no_shuffle", "shuffle": False, "validation_split": 0.2, "subset": "both"},
    {"name": "class_names", "seed": 3, "class_names": ["pos", "neg"], "validation_split": 0.2, "subset": "both"},
    {"name": "no_labels", "seed": 11, "labels": None, "validation_split": 0.1, "subset": "training"},
    {"name": "all_shuffled", "seed": 5},
]


def run_directory_cases(keras) -> dict:
    tree = directory_tree()
    out = {"tree": tree, "cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        for rel in tree:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(rel, encoding="utf-8")
        for case in DIRECTORY_CASES:
            kwargs = {k: v for k, v in case.items() if k != "name"}
            result = keras.utils.text_dataset_from_directory(str(root), batch_size=None, verbose=False, **kwargs)
            datasets = result if isinstance(result, (list, tuple)) else [result]
            subsets = []
            for ds in datasets:
                items = []
                for item in ds:
                    if isinstance(item, tuple):
                        items.append([item[0].numpy().decode(), int(item[1].numpy())])
                    else:
                        items.append([item.numpy().decode(), None])
                subsets.append({"class_names": list(ds.class_names) if ds.class_names is not None else None,
                                "items": items})
            out["cases"].append({"name": case["name"], "kwargs": kwargs, "subsets": subsets})
    return out


def compact_json(obj: dict) -> str:
    """JSON with one line per top-level entry and per case (small diffs when a case changes)."""
    def dump(v) -> str:
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))

    lines = []
    for key, value in obj.items():
        if key == "text_vectorization":
            lines.append(f"{dump(key)}:[\n" + ",\n".join(dump(c) for c in value) + "\n]")
        elif key == "text_dataset_from_directory":
            cases = ",\n".join(dump(c) for c in value["cases"])
            lines.append(f'{dump(key)}:{{"tree":{dump(value["tree"])},\n"cases":[\n{cases}\n]}}')
        else:
            lines.append(f"{dump(key)}:{dump(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archive", required=True, type=Path, help="aclImdb_v1.tar.gz")
    parser.add_argument("--stride", type=int, default=50, help="take every N-th train review (default 50: 500)")
    parser.add_argument("--out", type=Path, default=HERE / "text_golden.json")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    names, imdb = read_imdb_sample(args.archive, args.stride)
    corpora = {"imdb": imdb, "imdb_prefix": [t[:6] for t in imdb], "generated": generated_texts()}
    cases = []
    for name, corpus, options, extras in CASES:
        cases.append({"corpus": corpus, **run_case(keras, tf, name, corpora[corpus], options, extras)})
        print(f"{name}: vocabulary {cases[-1]['vocabulary_size']}, output {cases[-1]['output_shape']}")
    golden = {
        "generator": "tests/golden/make_text_golden.py",
        "versions": {"keras": keras.__version__, "tensorflow": tf.__version__, "numpy": np.__version__},
        "imdb": {"stride": args.stride, "members": names,
                 "sha256": hashlib.sha256("\x00".join(imdb).encode("utf-8")).hexdigest()},
        "generated": {"source": "tests/helpers.py tiny_imdb_files(n_per_class=20, seed=0), train/{pos,neg} in "
                                "name order, then edge_texts", "edge_texts": EDGE_TEXTS},
        "text_vectorization": cases,
        "text_dataset_from_directory": run_directory_cases(keras),
    }
    args.out.write_text(compact_json(golden), encoding="utf-8")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
