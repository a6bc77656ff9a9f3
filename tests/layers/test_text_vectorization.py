"""TextVectorization: shapes, Keras's documented examples, vocabulary setting, config and assets, clear errors.

Parity with Keras's numbers on real reviews is in test_text_vectorization_golden.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lstmtext.errors import ConfigError, DataError
from lstmtext.layers import TextVectorization, deserialize, serialize
from lstmtext.text.vectorize import tf_reduce_mean_float32


def adapted(**kwargs) -> TextVectorization:
    layer = TextVectorization(**kwargs)
    layer.adapt(["foo bar", "bar baz", "baz bada boom"])
    return layer


def test_keras_docstring_examples():
    layer = adapted(max_tokens=5000, output_sequence_length=4)
    assert layer([["foo qux bar"], ["qux baz"]]).tolist() == [[4, 1, 3, 0], [1, 2, 0, 0]]
    fixed = TextVectorization(max_tokens=5000, output_sequence_length=4, vocabulary=["earth", "wind", "and", "fire"])
    assert fixed.get_vocabulary() == ["", "[UNK]", "earth", "wind", "and", "fire"]
    assert fixed.get_vocabulary(include_special_tokens=False) == ["earth", "wind", "and", "fire"]
    assert fixed.vocabulary_size() == 6


def test_ranking_ties_and_special_tokens():
    layer = TextVectorization(standardize=None)
    layer.adapt(["b a c [UNK] a", "c b", "B"])
    # counts: a 2, b 2, c 2, B 1; ties by the token's bytes, descending; "[UNK]" never learned
    assert layer.get_vocabulary() == ["", "[UNK]", "c", "b", "a", "B"]
    assert layer(["a [UNK] zzz"]).tolist() == [[4, 1, 1]]
    dense = TextVectorization(standardize=None, output_mode="count")
    dense.adapt(["b a c [UNK] a", "c b", "B"])
    assert dense.get_vocabulary() == ["[UNK]", "c", "b", "a", "B"]
    assert dense(["a a zzz"]).tolist() == [[1.0, 0.0, 0.0, 2.0, 0.0]]


def test_ascii_only_lowercase_and_whitespace_like_tensorflow():
    layer = TextVectorization()
    layer.adapt(["ÉCOLE Straße A\x1cB c\xa0D x\ty"])
    assert sorted(layer.get_vocabulary(include_special_tokens=False)) == sorted(
        ["École", "straße", "a\x1cb", "c\xa0d", "x", "y"])


def test_output_shapes_for_scalar_column_and_split_none_inputs():
    layer = adapted()
    assert layer("foo bar").shape == (2,)
    assert layer(np.array([["foo bar"], ["baz"]])).shape == (2, 2)
    assert layer([]).shape == (0, 0)
    whole = TextVectorization(split=None, standardize=None)
    whole.adapt(["x y", "z"])
    assert whole(["x y", "q"]).tolist() == [3, 1]  # "z" (2) sorts above "x y" (3) on ties
    assert whole("z").shape == ()
    padded = adapted(output_sequence_length=1)
    assert padded(["foo bar baz", ""]).tolist() == [[4], [0]]
    multi = adapted(output_mode="multi_hot", max_tokens=8, pad_to_max_tokens=True)
    out = multi(["foo foo", "nothing"])
    assert out.dtype == torch.float32 and out.shape == (2, 8)
    assert out.tolist()[0][:6] == [0, 0, 0, 1, 0, 0] and out.tolist()[1][0] == 1


def test_ngrams_and_character_split():
    layer = TextVectorization(ngrams=2)
    layer.adapt(["a b c", "a b"])
    assert layer.get_vocabulary() == ["", "[UNK]", "b", "a b", "a", "c", "b c"]
    chars = TextVectorization(split="character", standardize=None)
    chars.adapt(["héé"])
    assert chars.get_vocabulary() == ["", "[UNK]", "é", "h"]
    assert chars(["éh!"]).tolist() == [[2, 3, 1]]


def test_tf_idf_formula_and_unk_weight():
    layer = TextVectorization(output_mode="tf_idf")
    layer.adapt(["a b c", "a b", "a"])
    idf = np.log(1 + 3 / (1 + np.array([3, 2, 1], dtype=np.float64))).astype(np.float32)
    np.testing.assert_array_equal(layer.idf_weights, np.concatenate([[tf_reduce_mean_float32(idf)], idf]))
    np.testing.assert_allclose(layer(["a d a"]).numpy(), [[idf.mean(), 2 * idf[0], 0, 0]], rtol=1e-6)


def test_callable_standardize_and_split():
    layer = TextVectorization(standardize=lambda x: np.char.upper(x), split=lambda x: [s.split("|") for s in x])
    layer.adapt(["a|b", "b"])
    assert layer.get_vocabulary() == ["", "[UNK]", "B", "A"]
    with pytest.raises(DataError, match="keep the shape"):
        TextVectorization(standardize=lambda x: x[:1]).adapt(["a", "b"])


def test_adapt_on_batches_of_texts_and_labels_and_steps():
    batches = [(np.array(["good film", "bad film"], dtype=object), np.array([1, 0])),
               (np.array(["awful"], dtype=object), np.array([0]))]
    layer = TextVectorization()
    layer.adapt(iter(batches))
    assert layer.get_vocabulary() == ["", "[UNK]", "film", "good", "bad", "awful"]
    layer.adapt(iter(batches), steps=1)
    assert layer.get_vocabulary() == ["", "[UNK]", "film", "good", "bad"]


def test_set_vocabulary_rules(tmp_path):
    layer = TextVectorization()
    layer.set_vocabulary(["", "[UNK]", "x", "y"])
    assert layer.get_vocabulary() == ["", "[UNK]", "x", "y"]
    with pytest.raises(ConfigError, match="repeated"):
        layer.set_vocabulary(["x", "x"])
    with pytest.raises(ConfigError, match="mask token"):
        layer.set_vocabulary(["x", ""])
    with pytest.raises(ConfigError, match="empty"):
        layer.set_vocabulary([])
    with pytest.raises(ConfigError, match="max_tokens is 3"):
        TextVectorization(max_tokens=3).set_vocabulary(["x", "y"])
    path = tmp_path / "vocab.txt"
    path.write_text("one\ntwo\r\n[UNK]\n", encoding="utf-8")
    layer.set_vocabulary(str(path))
    assert layer.get_vocabulary() == ["", "[UNK]", "one", "two", "[UNK]"]
    with pytest.raises(ConfigError, match="does not exist"):
        layer.set_vocabulary(str(tmp_path / "missing.txt"))
    tfidf = TextVectorization(output_mode="tf_idf", vocabulary=["a", "b"], idf_weights=[1.0, 3.0])
    np.testing.assert_array_equal(tfidf.idf_weights, [2.0, 1.0, 3.0])
    with pytest.raises(ConfigError, match="one weight per vocabulary entry"):
        tfidf.set_vocabulary(["a", "b"], idf_weights=[1.0])
    with pytest.raises(ConfigError, match="must be set"):
        tfidf.set_vocabulary(["a", "b"])
    with pytest.raises(ConfigError, match="after setting a static vocabulary"):
        tfidf.adapt(["a"])


def test_clear_errors():
    with pytest.raises(ConfigError, match="sparse=True is not supported"):
        TextVectorization(sparse=True)
    with pytest.raises(ConfigError, match="ragged=True"):
        TextVectorization(ragged=True)
    with pytest.raises(ConfigError, match="output_mode"):
        TextVectorization(output_mode="one_hot")
    with pytest.raises(ConfigError, match="standardize"):
        TextVectorization(standardize="upper")
    with pytest.raises(ConfigError, match="split"):
        TextVectorization(split="comma")
    with pytest.raises(ConfigError, match="ngrams"):
        TextVectorization(ngrams=0)
    with pytest.raises(ConfigError, match="output_sequence_length"):
        TextVectorization(output_mode="count", output_sequence_length=3)
    with pytest.raises(ConfigError, match="pad_to_max_tokens"):
        TextVectorization(output_mode="count", pad_to_max_tokens=True)
    with pytest.raises(ConfigError, match="idf_weights"):
        TextVectorization(output_mode="tf_idf", vocabulary=["a"])
    with pytest.raises(ConfigError, match="no vocabulary yet; call adapt"):
        TextVectorization(name="tv")(["text"])
    layer = adapted()
    with pytest.raises(DataError, match="expected strings"):
        layer(np.array([1, 2]))
    with pytest.raises(DataError, match="expected text"):
        layer(torch.ones(2))
    with pytest.raises(DataError, match="last dimension of 1"):
        layer(np.array([["a", "b"]]))


def test_config_round_trip_and_assets(tmp_path):
    layer = adapted(max_tokens=50, ngrams=(1, 2), output_mode="tf_idf", name="vec")
    cfg = json.loads(json.dumps(layer.get_config()))
    assert cfg["ngrams"] == [1, 2] and cfg["vocabulary_size"] == layer.vocabulary_size()
    clone = deserialize({"class_name": "TextVectorization", "config": cfg})
    assert clone.get_vocabulary() == ["[UNK]"]  # the config holds no adapted vocabulary: the assets do
    layer.save_assets(tmp_path)
    clone.load_assets(tmp_path)
    assert clone.get_vocabulary() == layer.get_vocabulary()
    np.testing.assert_array_equal(clone.idf_weights, layer.idf_weights)
    texts = ["foo bar bar", "boom qux"]
    assert torch.equal(clone(texts), layer(texts))
    fixed = TextVectorization(vocabulary=["x", "y"], output_sequence_length=3)
    rebuilt = TextVectorization.from_config(serialize(fixed)["config"])
    assert rebuilt.get_vocabulary() == fixed.get_vocabulary()
    (tmp_path / "text_vectorization.json").write_text('{"format": "other"}')
    with pytest.raises(DataError, match="not TextVectorization assets"):
        clone.load_assets(tmp_path)


def test_no_weights_and_follows_module_device():
    layer = adapted()
    assert layer.get_weights() == [] and layer.count_params() == 0
    assert layer.state_dict() == {}
    if torch.cuda.is_available():
        layer.to("cuda")
        assert layer(["foo"]).device.type == "cuda"


def test_untrusted_configs_are_refused_clearly(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("password\n")
    with pytest.raises(ConfigError, match="names a file"):
        deserialize({"class_name": "TextVectorization", "config": {"vocabulary": str(secret)}})
    with pytest.raises(ConfigError, match="from 1 to 64"):
        deserialize({"class_name": "TextVectorization", "config": {"ngrams": 10**9}})
    with pytest.raises(ConfigError, match="a serialized function is not imported"):
        deserialize({"class_name": "TextVectorization",
                     "config": {"standardize": {"module": "os", "class_name": "function", "config": "system"}}})
    with pytest.raises(ConfigError):
        deserialize({"class_name": "TextVectorization", "config": {"output_mode": "tf_idf",
                                                                   "idf_weights": ["x"], "vocabulary": ["a"]}})
