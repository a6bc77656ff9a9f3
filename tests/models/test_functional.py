"""The Functional API: graphs from symbolic calls, sub-models, dict inputs/outputs, configs, checkpoints, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lstmtext
from lstmtext import layers
from lstmtext.errors import CheckpointError, ConfigError, DataError
from lstmtext.models import Model, load_model

VOCAB, T = 30, 6


def _ids(n=8, seed=0):
    return np.random.default_rng(seed).integers(1, VOCAB, size=(n, T)).astype("int64")


def test_layer_input_output_and_get_layer_build_inference_submodels():
    # The encoder/decoder inference pattern: sub-models from get_layer(...).input/.output.
    enc_in = layers.Input((None,), dtype="int32", name="enc")
    dec_in = layers.Input((None,), dtype="int32", name="dec")
    _, h, c = layers.LSTM(5, return_state=True, name="encoder_lstm")(layers.Embedding(VOCAB, 4)(enc_in))
    dec = layers.LSTM(5, return_sequences=True, name="decoder_lstm")(layers.Embedding(VOCAB, 4)(dec_in),
                                                                     initial_state=[h, c])
    model = Model([enc_in, dec_in], layers.Dense(VOCAB, activation="softmax", name="out")(dec))
    enc_lstm = model.get_layer("encoder_lstm")
    encoder = Model(model.input[0], enc_lstm.output[1:])
    x = _ids()
    h_val, c_val = encoder.predict(x, verbose=0)
    assert h_val.shape == (8, 5) and c_val.shape == (8, 5)
    _, h_ref, c_ref = enc_lstm(model.get_layer(index=2)(torch.as_tensor(x)))
    np.testing.assert_allclose(h_val, h_ref.detach().numpy(), atol=1e-6)
    assert encoder.count_params() == 4 * VOCAB + 4 * 5 * (4 + 5 + 1)
    with pytest.raises(ConfigError, match="no layer named 'nope'"):
        model.get_layer("nope")


def test_shared_layer_input_is_ambiguous():
    a, b = layers.Input((T,)), layers.Input((T,))
    dense = layers.Dense(2)
    dense(a), dense(b)
    with pytest.raises(ConfigError, match="called 2 times"):
        _ = dense.output


def test_dict_inputs_and_outputs():
    title = layers.Input((T,), dtype="int32", name="title")
    body = layers.Input((T,), dtype="int32", name="body")
    emb = layers.Embedding(VOCAB, 4)
    merged = layers.Concatenate()([layers.GlobalAveragePooling1D()(emb(title)),
                                   layers.GlobalAveragePooling1D()(emb(body))])
    model = Model({"title": title, "body": body},
                  {"score": layers.Dense(1, name="score")(merged), "topic": layers.Dense(3, name="topic")(merged)})
    x = {"title": _ids(seed=1), "body": _ids(seed=2)}
    out = model.predict(x, verbose=0)
    assert set(out) == {"score", "topic"} and out["score"].shape == (8, 1) and out["topic"].shape == (8, 3)
    swapped = model.predict({"body": x["body"], "title": x["title"]}, verbose=0)
    np.testing.assert_array_equal(out["topic"], swapped["topic"])
    with pytest.raises(ConfigError, match="missing"):
        model.predict({"title": x["title"]}, verbose=0)


def test_masks_travel_through_the_graph():
    # A text alone or beside a much longer one (padding) gets the same output: the mask reaches the LSTM.
    inputs = layers.Input((None,), dtype="int32")
    x = layers.Embedding(VOCAB, 4, mask_zero=True)(inputs)
    x = layers.Bidirectional(layers.LSTM(3, return_sequences=True))(x)
    model = Model(inputs, layers.Dense(1)(layers.GlobalAveragePooling1D()(x)))
    short = np.array([[5, 6, 7]])
    padded = np.array([[0, 0, 0, 0, 5, 6, 7], [1, 2, 3, 4, 5, 6, 7]])
    np.testing.assert_allclose(model.predict(short, verbose=0)[0], model.predict(padded, verbose=0)[0], atol=1e-6)


def test_functional_checkpoint_and_config_round_trip(tmp_path):
    inputs = layers.Input((T,), dtype="int32")
    shared = layers.Dense(3, name="shared")
    x = layers.Embedding(VOCAB, 4)(inputs)
    y = layers.Add()([shared(layers.GlobalAveragePooling1D()(x)), shared(layers.GlobalMaxPooling1D()(x))])
    model = Model(inputs, layers.Dense(1, activation="sigmoid")(y), name="twice")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    xs, ys = _ids(), np.ones((8, 1))
    model.fit(xs, ys, epochs=1, verbose=0)
    model.save(tmp_path / "ckpt")
    back = load_model(tmp_path / "ckpt")
    assert type(back).__name__ == "Functional" and back.name == "twice"
    np.testing.assert_array_equal(back.predict(xs, verbose=0), model.predict(xs, verbose=0))
    assert back.get_config() == model.get_config()
    assert [la.name for la in back.layers] == [la.name for la in model.layers]
    back.fit(xs, ys, epochs=1, verbose=0)  # the compile state came back too


def test_nested_models_and_sequential_as_layer():
    inner_in = layers.Input((T,), dtype="int32")
    inner = Model(inner_in, layers.LSTM(4)(layers.Embedding(VOCAB, 3)(inner_in)), name="inner")
    stack = lstmtext.Sequential([layers.Dense(2)], name="head")
    inputs = layers.Input((T,), dtype="int32")
    model = Model(inputs, stack(inner(inputs)))
    assert model.count_params() == inner.count_params() + stack.count_params()
    out = model.predict(_ids(), verbose=0)
    np.testing.assert_allclose(out, stack.predict(inner.predict(_ids(), verbose=0), verbose=0), atol=1e-6)


def test_keras_names_at_the_top_level():
    assert lstmtext.Model is Model and lstmtext.Input is layers.Input
    assert lstmtext.layers.LSTM is layers.LSTM and lstmtext.models.Sequential is lstmtext.Sequential


# -- errors at graph-building time (acceptance 6) ----------------------------------------------------------
def test_incompatible_shape_names_layer_expected_and_got():
    a = layers.Input((10,))
    dense = layers.Dense(4, name="proj")
    dense(a)
    with pytest.raises(ConfigError, match=r'Layer "proj" \(Dense\) cannot take inputs of shape \(None, 20\).*'
                                          r"expected inputs with last axis 10"):
        dense(layers.Input((20,)))


def test_incompatible_rank_names_layer():
    with pytest.raises(ConfigError, match=r'Layer "rnn" \(LSTM\) cannot be built for input shape \(None, 7\).*'
                                          r"expected a 3-D input"):
        layers.LSTM(3, name="rnn")(layers.Input((7,)))


def test_merge_of_mismatched_shapes_is_refused_when_built():
    with pytest.raises(ConfigError, match=r'"concatenate".*\(None, 3, 4\).*\(None, 5, 2\)|concatenate'):
        layers.Concatenate(axis=-1)([layers.Input((3, 4)), layers.Input((5, 2))])


def test_string_input_to_a_numeric_layer_is_refused():
    with pytest.raises(ConfigError, match=r'layer "embedding".*expected numbers.*dtype \'string\''):
        layers.Embedding(VOCAB, 4, name="embedding")(layers.Input((1,), dtype="string"))


def test_output_not_connected_to_the_inputs():
    a, b = layers.Input((3,), name="a"), layers.Input((3,), name="b")
    out = layers.Dense(1, name="head")(layers.Concatenate()([a, b]))
    with pytest.raises(ConfigError, match=r"not connected to the inputs.*needs Input 'b'.*\['a'\]"):
        Model(a, out)
    with pytest.raises(ConfigError, match="must be symbolic tensors"):
        Model(a, np.zeros(3))


def test_string_array_to_a_model_without_text_vectorization():
    inputs = layers.Input((T,), dtype="int32")
    model = Model(inputs, layers.Dense(1)(layers.GlobalAveragePooling1D()(layers.Embedding(VOCAB, 4)(inputs))))
    model.compile(optimizer="adam", loss="mse")
    texts = np.array(["a fine film", "a dull film"])
    with pytest.raises(DataError, match=r"x: got strings.*TextVectorization"):
        model.fit(texts, np.zeros(2), verbose=0)
    with pytest.raises(DataError, match=r"x: got strings"):
        model.predict(["a fine film"], verbose=0)


def test_subclassed_model_folder_needs_its_class(tmp_path):
    class Tagger(Model):
        def __init__(self):
            super().__init__()
            self.embed = layers.Embedding(VOCAB, 4)
            self.pool = layers.GlobalAveragePooling1D()
            self.out = layers.Dense(1)

        def call(self, inputs, training=None):
            return self.out(self.pool(self.embed(inputs)))

    model = Tagger()
    model.compile(optimizer="adam", loss="mse")
    model.fit(_ids(), np.zeros(8), epochs=1, verbose=0)
    model.save(tmp_path / "tagger")
    with pytest.raises(CheckpointError, match=r"subclassed Model of class 'Tagger'.*needs that class.*load_weights"):
        load_model(tmp_path / "tagger")
    again = Tagger()
    again(_ids()[:1])
    again.load_weights(tmp_path / "tagger")
    np.testing.assert_array_equal(again.predict(_ids(), verbose=0), model.predict(_ids(), verbose=0))


class _WordCount(layers.Layer):
    """A layer that takes raw strings (``string_input``): each text -> its number of words, as a float."""

    string_input = True

    def call(self, inputs, mask=None, training=False, **kwargs):
        texts = np.asarray(inputs).reshape(-1)
        return torch.tensor([[float(len(str(t).split()))] for t in texts])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 1)


def test_a_first_layer_that_takes_strings_gets_text_arrays_unchanged():
    # The hook TextVectorization uses: fit/predict pass str/object arrays through to such a layer.
    inputs = lstmtext.Input((1,), dtype="string")
    for model in (lstmtext.Sequential([_WordCount(), layers.Dense(1)]),
                  Model(inputs, layers.Dense(1)(_WordCount()(inputs)))):
        model.compile(optimizer="sgd", loss="mse")
        texts = np.array([["a b c"], ["a"], ["a b"], ["x y z w"]], dtype=object)
        model.fit(texts, np.array([3.0, 1.0, 2.0, 4.0]), epochs=2, verbose=0)
        assert model.predict(texts, verbose=0).shape == (4, 1)
        assert model.takes_strings()


def test_feature_extractor_from_a_sequential_model():
    # Keras's pattern: Model(seq.inputs, seq.layers[-2].output), also after add() rebuilt the graph.
    seq = lstmtext.Sequential([layers.Input((T,), dtype="int32"), layers.Embedding(VOCAB, 4), layers.LSTM(3)])
    seq.add(layers.Dense(1))
    features = Model(seq.inputs, seq.layers[-2].output)
    x = _ids()
    np.testing.assert_allclose(features.predict(x, verbose=0), seq.layers[-2](seq.layers[0](torch.as_tensor(x)))
                               .detach().numpy(), atol=1e-6)
    assert features.count_params() == seq.count_params() - 4


def test_a_text_input_of_shape_1_takes_a_flat_array_of_texts():
    """Keras's rank rule: (N,) data for Input(shape=(1,)) gets its last axis (and (N, T, 1) data loses it)."""
    texts = ["a good film", "a bad film", "great acting", "boring plot"] * 2
    tv = lstmtext.layers.TextVectorization(max_tokens=20)
    tv.adapt(texts)
    inp = lstmtext.Input(shape=(1,), dtype="string")
    x = lstmtext.layers.LSTM(3)(lstmtext.layers.Embedding(20, 4, mask_zero=True)(tv(inp)))
    model = lstmtext.Model(inp, lstmtext.layers.Dense(1, activation="sigmoid")(x))
    model.compile("adam", "binary_crossentropy")
    flat, column = np.array(texts), np.array(texts, dtype=object).reshape(-1, 1)
    np.testing.assert_array_equal(model.predict(flat, verbose=0), model.predict(column, verbose=0))
    model.fit(flat, np.array([1, 0, 1, 0] * 2, np.float32), epochs=1, verbose=0)
    stack = lstmtext.Sequential([lstmtext.Input(shape=(1,), dtype="string"), tv, *model.layers[2:]])
    np.testing.assert_allclose(stack.predict(flat, verbose=0), model.predict(column, verbose=0), atol=1e-6)
    seq = lstmtext.Input(shape=(5,))
    squeeze = lstmtext.Model(seq, lstmtext.layers.Dense(2)(seq))
    assert squeeze.predict(np.zeros((3, 5, 1), np.float32), verbose=0).shape == (3, 2)
    with pytest.raises(DataError, match=r"x: expected inputs of shape \(None, 5\)"):
        squeeze.predict(np.zeros((3, 4), np.float32), verbose=0)


def test_a_nested_model_passes_its_output_mask_on():
    inner_in = lstmtext.Input(shape=(None,))
    seq = lstmtext.layers.LSTM(3, return_sequences=True)(lstmtext.layers.Embedding(10, 4, mask_zero=True)(inner_in))
    inner = lstmtext.Model(inner_in, seq)
    ids = torch.tensor([[0, 0, 3, 4], [5, 6, 7, 0]])
    np.testing.assert_array_equal(inner.compute_mask(ids).numpy(), [[False, False, True, True],
                                                                     [True, True, True, False]])
    outer_in = lstmtext.Input(shape=(None,))
    outer = lstmtext.Model(outer_in, lstmtext.layers.LSTM(2)(inner(outer_in)))
    padded, bare = outer.predict(np.array([[0, 0, 3, 4]]), verbose=0), outer.predict(np.array([[3, 4]]), verbose=0)
    np.testing.assert_allclose(padded, bare, atol=1e-6)


def test_bucketing_names_what_it_cannot_take():
    a, b = lstmtext.Input(shape=(None,), name="a"), lstmtext.Input(shape=(None,), name="b")
    emb = lstmtext.layers.Embedding(10, 2)
    model = lstmtext.Model([a, b], lstmtext.layers.Dense(1)(lstmtext.layers.Concatenate()(
        [lstmtext.layers.LSTM(2)(emb(a)), lstmtext.layers.LSTM(2)(emb(b))])))
    model.compile("adam", "mse")
    x = [np.ones((4, 3), np.int64), np.ones((4, 3), np.int64)]
    with pytest.raises(ConfigError, match=r"bucket_by_length=True takes x as one array .* got several inputs"):
        model.fit(x, np.zeros(4, np.float32), bucket_by_length=True, verbose=0)

    def batches():
        while True:
            yield x, np.zeros(4, np.float32)

    with pytest.raises(ConfigError, match=r"bucket_by_length=True .* got a generator"):
        model.fit(batches(), steps_per_epoch=1, bucket_by_length=True, verbose=0)


def test_the_keras_seq2seq_tutorial_trains_and_cuts_its_inference_models():
    """keras.io "Character-level recurrent sequence-to-sequence model": one-hot sequence targets with
    categorical_crossentropy, then encoder/decoder inference models from the trained layers."""
    rng = np.random.default_rng(0)
    enc_in, dec_in = lstmtext.Input(shape=(None, 6)), lstmtext.Input(shape=(None, 7))
    _, h, c = layers.LSTM(5, return_state=True)(enc_in)
    decoder_lstm = layers.LSTM(5, return_sequences=True, return_state=True)
    decoder_dense = layers.Dense(7, activation="softmax")
    seq, _, _ = decoder_lstm(dec_in, initial_state=[h, c])
    model = Model([enc_in, dec_in], decoder_dense(seq))
    model.compile("rmsprop", "categorical_crossentropy")
    x = [rng.random((8, 4, 6), dtype=np.float32), rng.random((8, 3, 7), dtype=np.float32)]
    y = np.eye(7, dtype=np.float32)[rng.integers(0, 7, (8, 3))]
    model.fit(x, y, epochs=1, verbose=0)
    with pytest.raises(DataError, match=r"needs one-hot targets of shape \(n, t, 7\)"):
        model.fit(x, y[..., :5], epochs=1, verbose=0)
    encoder = Model(model.input[0], [h, c])
    h_in, c_in = lstmtext.Input(shape=(5,)), lstmtext.Input(shape=(5,))
    step, h2, c2 = decoder_lstm(dec_in, initial_state=[h_in, c_in])
    decoder = Model([dec_in, h_in, c_in], [decoder_dense(step), h2, c2])
    states = encoder.predict(x[0], verbose=0)
    full = model.predict(x, verbose=0)
    stepped = decoder.predict([x[1], *states], verbose=0)[0]
    np.testing.assert_allclose(stepped, full, atol=1e-6)
