"""TextVectorization against Keras's own layer (run on TensorFlow by tests/golden/make_text_golden.py).

Every option set of the golden file is rebuilt here: same vocabulary (size, order, ties, special tokens),
same outputs (exact for int / multi_hot / count; float32-close for tf_idf). The ``imdb`` cases read the
reviews named in the golden file from the real archive (skipped without it); the ``generated`` ones use
the suite's generated reviews plus edge-case strings, so they always run.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from text_samples import generated_reviews, golden, imdb_sample

from lstmtext.kernels.build import load_ops
from lstmtext.layers import TextVectorization, text_vectorization

GOLDEN = golden()
CASES = {case["name"]: case for case in GOLDEN["text_vectorization"]}


@pytest.fixture(params=["python", "compiled"])
def lookup_path(request, monkeypatch):
    """Both lookup paths: Python's dicts, and the compiled word lookups used once the kernel is loaded."""
    if request.param == "python":
        monkeypatch.setattr(text_vectorization, "loaded_ops", lambda: None)
    elif load_ops() is None:
        pytest.skip("the compiled kernel is not available here")
    return request.param


@pytest.fixture(scope="module")
def imdb_texts(shared_imdb_archive) -> list[str]:
    texts = imdb_sample(shared_imdb_archive)
    if texts is None:
        pytest.skip("the IMDB archive here holds other reviews than the one the golden file was made from")
    return list(texts)


def _vocab_sha(vocab: list[str]) -> str:
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest()


def check_case(case: dict, texts: list[str]) -> None:
    options = {k: tuple(v) if k == "ngrams" and isinstance(v, list) else v for k, v in case["options"].items()}
    layer = TextVectorization(**options)
    if "vocabulary" not in options:
        batch = case["extras"].get("adapt_batch")
        if batch:
            layer.adapt(texts[i:i + batch] for i in range(0, len(texts), batch))
        else:
            layer.adapt(texts)
    vocab = layer.get_vocabulary()
    name = case["name"]
    assert layer.vocabulary_size() == case["vocabulary_size"], name
    assert vocab[:200] == case["vocabulary_head"], name
    assert vocab[-60:] == case["vocabulary_tail"], name
    assert _vocab_sha(vocab) == case["vocabulary_sha256"], name
    out = layer(np.array(texts, dtype=object)).numpy()
    assert list(out.shape) == case["output_shape"], name
    mode = options.get("output_mode", "int")
    if mode == "tf_idf":
        idf = layer.idf_weights
        assert len(idf) == case["idf_weights_length"], name
        np.testing.assert_array_equal(idf[:1000], np.float32(case["idf_weights"]), err_msg=name)  # bit-exact
        np.testing.assert_allclose(out.astype(np.float64).sum(axis=1), case["row_sums"], rtol=1e-6, err_msg=name)
        assert (out != 0).sum(axis=1).tolist() == case["row_nonzeros"], name
    else:
        assert hashlib.sha256(np.ascontiguousarray(out.astype(np.int64)).tobytes()).hexdigest() == \
            case["output_sha256"], name
    for i, want in case["rows"].items():
        row = np.atleast_1d(out[int(i)])
        if mode == "int":
            assert row.tolist() == want, (name, i)
        else:
            nz = np.flatnonzero(row)
            assert nz.tolist() == want["indices"], (name, i)
            np.testing.assert_allclose(row[nz], want["values"], rtol=1e-6, err_msg=f"{name} row {i}")


IMDB_CASES = [n for n, c in CASES.items() if c["corpus"].startswith("imdb")]
GENERATED_CASES = [n for n, c in CASES.items() if c["corpus"] == "generated"]


def test_golden_file_covers_the_acceptance_option_sets():
    options = [c["options"] for c in CASES.values() if c["corpus"].startswith("imdb")]
    assert len(IMDB_CASES) >= 7
    assert {o.get("standardize", "lower_and_strip_punctuation") for o in options} >= {
        "lower_and_strip_punctuation", "lower", "strip_punctuation", None}
    assert {o.get("split", "whitespace") for o in options} >= {"whitespace", "character", None}
    assert {o.get("output_mode", "int") for o in options} == {"int", "multi_hot", "count", "tf_idf"}
    assert any(o.get("ngrams") == 2 for o in options)
    assert any("output_sequence_length" in o for o in options)
    assert any("max_tokens" in o for o in options)


@pytest.mark.parametrize("name", IMDB_CASES)
def test_matches_keras_on_imdb_reviews(name, imdb_texts, lookup_path):
    texts = imdb_texts if CASES[name]["corpus"] == "imdb" else [t[:6] for t in imdb_texts]
    check_case(CASES[name], texts)


@pytest.mark.parametrize("name", GENERATED_CASES)
def test_matches_keras_on_generated_and_edge_texts(name, lookup_path):
    check_case(CASES[name], generated_reviews())
