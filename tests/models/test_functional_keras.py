"""Functional models against real Keras 3 (torch backend): the same program with only the imports changed.

Each model is built by one function from a namespace (``keras`` or ``lstmtext``); Keras's initial weights
are copied in with ``set_weights(keras_model.get_weights())``; predictions, parameter counts and the
weights after 3 Adam steps must agree.
"""

from __future__ import annotations

import numpy as np
import pytest
from training.keras_helpers import assert_weights_close, import_keras

import lstmtext

pytestmark = pytest.mark.keras

VOCAB, T, N = 40, 9, 16


def _ids(seed: int, n: int = N, t: int = T, pad: int = 3) -> np.ndarray:
    x = np.random.default_rng(seed).integers(1, VOCAB, size=(n, t)).astype("int64")
    x[: n // 2, :pad] = 0  # leading padding on half the rows, so masks matter
    return x


def stacked_bilstm(k):
    inputs = k.Input(shape=(None,), dtype="int32")
    x = k.layers.Embedding(VOCAB, 8)(inputs)
    x = k.layers.Bidirectional(k.layers.LSTM(6, return_sequences=True))(x)
    x = k.layers.Bidirectional(k.layers.LSTM(5))(x)
    outputs = k.layers.Dense(1, activation="sigmoid")(x)
    return k.Model(inputs, outputs)


def shared_embedding(k):
    a = k.Input(shape=(T,), dtype="int32", name="premise")
    b = k.Input(shape=(T,), dtype="int32", name="hypothesis")
    emb = k.layers.Embedding(VOCAB, 6, mask_zero=True)
    lstm = k.layers.LSTM(5)
    x = k.layers.Concatenate()([lstm(emb(a)), lstm(emb(b))])
    return k.Model([a, b], k.layers.Dense(1, activation="sigmoid")(x))


def encoder_decoder(k):
    enc_in = k.Input(shape=(None,), dtype="int32")
    dec_in = k.Input(shape=(None,), dtype="int32")
    _, h, c = k.layers.LSTM(7, return_state=True)(k.layers.Embedding(VOCAB, 6, mask_zero=True)(enc_in))
    dec = k.layers.LSTM(7, return_sequences=True)(k.layers.Embedding(VOCAB, 6)(dec_in), initial_state=[h, c])
    return k.Model([enc_in, dec_in], k.layers.Dense(VOCAB, activation="softmax")(dec))


def attention(k):
    inputs = k.Input(shape=(T,), dtype="int32")
    x = k.layers.Embedding(VOCAB, 8, mask_zero=True)(inputs)
    seq = k.layers.LSTM(6, return_sequences=True)(x)
    context = k.layers.Attention()([seq, seq])
    pooled = k.layers.GlobalAveragePooling1D()(context)
    return k.Model(inputs, k.layers.Dense(1, activation="sigmoid")(pooled))


def nested(k):
    inner_in = k.Input(shape=(T,), dtype="int32")
    inner = k.Model(inner_in, k.layers.LSTM(5)(k.layers.Embedding(VOCAB, 6)(inner_in)), name="encoder")
    inputs = k.Input(shape=(T,), dtype="int32")
    return k.Model(inputs, k.layers.Dense(2, activation="softmax")(inner(inputs)))


def nested_masked(k):
    # the inner model's output mask (from its Embedding) reaches the outer LSTM, as Keras keeps it on the tensor
    inner_in = k.Input(shape=(None,), dtype="int32")
    seq = k.layers.LSTM(5, return_sequences=True)(k.layers.Embedding(VOCAB, 6, mask_zero=True)(inner_in))
    inner = k.Model(inner_in, seq, name="masked_encoder")
    inputs = k.Input(shape=(None,), dtype="int32")
    return k.Model(inputs, k.layers.Dense(1, activation="sigmoid")(k.layers.LSTM(4)(inner(inputs))))


CASES = {
    "stacked_bilstm": (stacked_bilstm, lambda: _ids(0), "binary_crossentropy", lambda rng: rng.integers(0, 2, (N, 1))),
    "shared_embedding": (shared_embedding, lambda: [_ids(1), _ids(2)], "binary_crossentropy",
                         lambda rng: rng.integers(0, 2, (N, 1))),
    "encoder_decoder": (encoder_decoder, lambda: [_ids(3), _ids(4, pad=0)], "sparse_categorical_crossentropy",
                        lambda rng: rng.integers(0, VOCAB, (N, T))),
    "attention": (attention, lambda: _ids(5), "binary_crossentropy", lambda rng: rng.integers(0, 2, (N, 1))),
    "nested": (nested, lambda: _ids(6), "sparse_categorical_crossentropy", lambda rng: rng.integers(0, 2, (N,))),
    "nested_masked": (nested_masked, lambda: _ids(10, pad=5), "binary_crossentropy",
                      lambda rng: rng.integers(0, 2, (N, 1))),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_functional_model_matches_keras(case):
    keras = import_keras()
    build, data, loss, targets = CASES[case]
    km, om = build(keras), build(lstmtext)
    assert type(om).__name__ == "Functional"
    assert om.count_params() == km.count_params()
    assert [w.shape for w in om.get_weights()] == [tuple(w.shape) for w in km.get_weights()]
    om.set_weights(km.get_weights())
    x, y = data(), targets(np.random.default_rng(7)).astype("float32")
    np.testing.assert_allclose(om.predict(x, verbose=0), km.predict(x, verbose=0), atol=1e-5, rtol=0)
    km.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss)
    om.compile(optimizer=lstmtext.optimizers.Adam(0.01), loss=loss)
    for _ in range(3):
        km.train_on_batch(x, y)
        om.train_on_batch(x, y)
    assert_weights_close(km, om, atol=1e-5)
    np.testing.assert_allclose(om.predict(x, verbose=0), km.predict(x, verbose=0), atol=1e-5, rtol=0)


def two_outputs(k):
    title = k.Input((T,), dtype="int32", name="title")
    body = k.Input((T,), dtype="int32", name="body")
    emb = k.layers.Embedding(VOCAB, 4, mask_zero=True)
    merged = k.layers.Concatenate()([k.layers.GlobalAveragePooling1D()(emb(title)),
                                     k.layers.LSTM(3)(emb(body))])
    return k.Model([title, body], [k.layers.Dense(1, activation="sigmoid", name="score")(merged),
                                   k.layers.Dense(3, activation="softmax", name="topic")(merged)])


def test_per_output_losses_weights_and_metrics_match_keras():
    keras = import_keras()
    km, om = two_outputs(keras), two_outputs(lstmtext)
    om.set_weights(km.get_weights())
    rng = np.random.default_rng(3)
    x = {"title": _ids(8), "body": _ids(9)}
    y = {"score": rng.integers(0, 2, (N, 1)).astype("float32"), "topic": rng.integers(0, 3, (N,)).astype("float32")}
    args = dict(loss={"score": "binary_crossentropy", "topic": "sparse_categorical_crossentropy"},
                loss_weights={"score": 1.0, "topic": 0.5}, metrics={"score": ["accuracy"], "topic": ["accuracy"]})
    km.compile(optimizer=keras.optimizers.Adam(0.01), **args)
    om.compile(optimizer=lstmtext.optimizers.Adam(0.01), **args)
    want, got = km.evaluate(x, y, verbose=0, return_dict=True), om.evaluate(x, y, verbose=0, return_dict=True)
    assert sorted(got) == sorted(want) == ["loss", "score_accuracy", "score_loss", "topic_accuracy", "topic_loss"]
    for key in want:
        assert abs(got[key] - want[key]) < 1e-5, key
    km.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    om.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    assert_weights_close(km, om, atol=1e-5)
    for a, b in zip(om.predict(x, verbose=0), km.predict(x, verbose=0)):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_files_of_functional_models_both_ways(case, tmp_path):
    from lstmtext.interop.keras import load_keras_model, save_keras_model

    keras = import_keras()
    build, data, _, _ = CASES[case]
    x = data()
    km = build(keras)
    km.save(tmp_path / "keras_wrote.keras")
    ours = load_keras_model(tmp_path / "keras_wrote.keras")
    assert type(ours).__name__ == "Functional" and ours.count_params() == km.count_params()
    np.testing.assert_allclose(ours.predict(x, verbose=0), km.predict(x, verbose=0), atol=1e-5, rtol=0)
    om = build(lstmtext)
    save_keras_model(om, tmp_path / "lstmtext_wrote.keras")
    theirs = keras.saving.load_model(tmp_path / "lstmtext_wrote.keras")
    np.testing.assert_allclose(theirs.predict(x, verbose=0), om.predict(x, verbose=0), atol=1e-5, rtol=0)


def test_keras_operation_used_as_data_is_refused(tmp_path):
    import json
    import zipfile

    from lstmtext.checkpoint import CheckpointConfigError
    from lstmtext.interop.keras import load_keras_model

    keras = import_keras()
    inputs = keras.Input((T,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="head")(keras.ops.abs(inputs)))
    model.save(tmp_path / "op.keras")
    assert any(e.get("class_name") == "Absolute" for e in json.loads(
        zipfile.ZipFile(tmp_path / "op.keras").read("config.json"))["config"]["layers"])
    with pytest.raises(CheckpointConfigError, match=r"layer .head. \(Dense\) takes the output of the Keras "
                                                    r"operation 'absolute'"):
        load_keras_model(tmp_path / "op.keras")


def test_functional_keras_file_asking_for_huge_weights_allocates_nothing(tmp_path):
    import json
    import zipfile

    from lstmtext.checkpoint import CheckpointConfigError
    from lstmtext.interop.keras import load_keras_model

    keras = import_keras()
    stacked_bilstm(keras).save(tmp_path / "ok.keras")
    with zipfile.ZipFile(tmp_path / "ok.keras") as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    config = json.loads(members["config.json"])
    for entry in config["config"]["layers"]:
        if entry["class_name"] == "Embedding":
            entry["config"]["input_dim"] = 100_000_000  # 3.2 GB of float32 for a file of a few KB
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(tmp_path / "huge.keras", "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    with pytest.raises(CheckpointConfigError, match=r"embedding.*needs 400000000\d* bytes|weight 'embeddings'"):
        load_keras_model(tmp_path / "huge.keras")
