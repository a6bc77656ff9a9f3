"""Keras 3 interop against real Keras (KERAS_BACKEND=torch): .keras and .weights.h5 files go both ways with
the same predictions, and files holding code or unsupported layers are refused, naming the layer."""

from __future__ import annotations

import io
import json
import os
import time
import zipfile

import numpy as np
import pytest
import torch

from lstmtext.checkpoint import CheckpointConfigError, CheckpointError, CorruptFileError
from lstmtext.interop.keras import (
    load_keras_layers,
    load_keras_model,
    load_keras_weights,
    run_layers,
    save_keras_model,
)
from lstmtext.layers import LSTM, Bidirectional, Dense, Dropout, Embedding, Masking

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytestmark = pytest.mark.keras

VOCAB, T = 60, 9


def tokens(seed=0, batch=6):
    x = np.random.RandomState(seed).randint(1, VOCAB, size=(batch, T))
    x[0, :4] = 0  # padding, so masks matter
    x[1, :] = 0
    return x


def keras_reference_model(mask_zero=True):
    keras.utils.set_random_seed(1)
    return keras.Sequential([
        keras.Input((T,), dtype="int32"),
        keras.layers.Embedding(VOCAB, 8, mask_zero=mask_zero),
        keras.layers.Bidirectional(keras.layers.LSTM(5, return_sequences=True)),
        keras.layers.Dropout(0.3),
        keras.layers.LSTM(4),
        keras.layers.Dense(1, activation="sigmoid"),
    ])


def keras_predict(model, x):
    return np.asarray(model.predict(x, verbose=0))


def lstmtext_predict(layers, x):
    with torch.no_grad():
        return run_layers(layers, torch.as_tensor(x)).numpy()


@pytest.mark.parametrize("mask_zero", [True, False])
def test_keras_archive_loads_with_the_same_predictions(tmp_path, mask_zero):
    model = keras_reference_model(mask_zero)
    model.save(tmp_path / "m.keras")
    layers, spec = load_keras_layers(tmp_path / "m.keras")
    assert [type(layer).__name__ for layer in layers] == ["Embedding", "Bidirectional", "Dropout", "LSTM", "Dense"]
    assert spec.input_shape == (T,) and spec.input_dtype == "int32" and spec.keras_version == keras.__version__
    x = tokens()
    np.testing.assert_allclose(lstmtext_predict(layers, x), keras_predict(model, x), atol=1e-5)


def test_keras_model_becomes_a_sequential_and_back(tmp_path):
    """Issue 6 acceptance 3 with models: Embedding -> Bidirectional(LSTM, seq) -> LSTM -> Dense, both ways."""
    from lstmtext.models import Input, Sequential

    model = keras_reference_model()
    model.save(tmp_path / "m.keras")
    ours = load_keras_model(tmp_path / "m.keras")
    assert isinstance(ours, Sequential) and ours.count_params() == model.count_params()
    x = tokens(4)
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras_predict(model, x), atol=1e-5)

    torch.manual_seed(5)
    native = Sequential([Input((T,), dtype="int32"), Embedding(VOCAB, 8, mask_zero=True),
                         Bidirectional(LSTM(5, return_sequences=True)), LSTM(4), Dense(1, activation="sigmoid")])
    native.compile(optimizer="adam", loss="binary_crossentropy")
    native.fit(x, np.array([0, 1, 0, 1, 1, 0], dtype="float32"), epochs=1, verbose=0)  # trained weights
    save_keras_model(native, tmp_path / "native.keras")
    theirs = keras.saving.load_model(tmp_path / "native.keras")
    np.testing.assert_allclose(keras_predict(theirs, x), native.predict(x, verbose=0), atol=1e-5)


def test_weights_h5_loads_into_the_matching_model(tmp_path):
    model = keras_reference_model()
    model.save(tmp_path / "m.keras")
    _, spec = load_keras_layers(tmp_path / "m.keras")
    for w in model.weights:  # different weights, same architecture
        w.assign(np.random.RandomState(3).normal(size=w.shape).astype("float32") * 0.3)
    model.save_weights(tmp_path / "m.weights.h5")
    layers = load_keras_weights(spec, tmp_path / "m.weights.h5")
    x = tokens(1)
    np.testing.assert_allclose(lstmtext_predict(layers, x), keras_predict(model, x), atol=1e-5)


def test_lstmtext_model_exported_to_keras_predicts_the_same(tmp_path):
    torch.manual_seed(0)
    layers = [Embedding(VOCAB, 8, mask_zero=True), Bidirectional(LSTM(5, return_sequences=True)), LSTM(4),
              Dense(3, activation="softmax")]
    x = tokens(2)
    ours = lstmtext_predict(layers, x)  # builds the layers
    save_keras_model(layers, tmp_path / "ours.keras", input_shape=(T,))
    model = keras.saving.load_model(tmp_path / "ours.keras")  # real Keras reads our file
    np.testing.assert_allclose(keras_predict(model, x), ours, atol=1e-5)
    again, _ = load_keras_layers(tmp_path / "ours.keras")
    np.testing.assert_array_equal(lstmtext_predict(again, x), ours)


def test_masking_and_float_inputs_round_trip(tmp_path):
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((T, 3)), keras.layers.Masking(0.0), keras.layers.LSTM(4),
                              keras.layers.Dense(2)])
    model.save(tmp_path / "f.keras")
    x = np.random.RandomState(0).normal(size=(4, T, 3)).astype("float32")
    x[0, :3] = 0.0
    layers, spec = load_keras_layers(tmp_path / "f.keras")
    assert spec.input_shape == (T, 3)
    np.testing.assert_allclose(lstmtext_predict(layers, x), keras_predict(model, x), atol=1e-5)


def refused(error, path, *words):
    start = time.perf_counter()
    with pytest.raises(error) as info:
        load_keras_layers(path)
    assert time.perf_counter() - start < 1.0
    assert isinstance(info.value, CheckpointError) and str(path) in str(info.value)
    for word in words:
        assert word in str(info.value), str(info.value)
    return info.value


def test_lambda_layer_is_refused_and_its_code_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    # The function would create the marker file whenever it runs (Keras runs it once to build the model).
    def touch(v, p=str(marker)):
        open(p, "w").close()
        return v

    model = keras.Sequential([keras.Input((T,)), keras.layers.Lambda(touch, name="double"), keras.layers.Dense(1)])
    model.save(tmp_path / "lambda.keras")
    assert marker.exists()
    marker.unlink()
    refused(CheckpointConfigError, tmp_path / "lambda.keras", "'double'", "Lambda", "code")
    assert not marker.exists()


def test_custom_registered_class_is_refused(tmp_path):
    @keras.saving.register_keras_serializable(package="evil")
    class MyDense(keras.layers.Dense):
        pass

    model = keras.Sequential([keras.Input((4,)), MyDense(2, name="mine")])
    model.save(tmp_path / "custom.keras")
    refused(CheckpointConfigError, tmp_path / "custom.keras", "'mine'")


def test_unsupported_layer_and_functional_model_are_refused(tmp_path):
    model = keras.Sequential([keras.Input((T,)), keras.layers.Embedding(VOCAB, 4), keras.layers.GRU(3, name="gru_x")])
    model.save(tmp_path / "gru.keras")
    refused(CheckpointConfigError, tmp_path / "gru.keras", "'gru_x'", "GRU", "not supported")
    inp = keras.Input((4,))
    functional = keras.Model(inp, keras.layers.Dense(1)(inp))
    functional.save(tmp_path / "functional.keras")
    refused(CheckpointConfigError, tmp_path / "functional.keras", "only Sequential")


def rewrite(src, dst, **members):
    with zipfile.ZipFile(src) as zf:
        contents = {n: zf.read(n) for n in zf.namelist()}
    contents.update(members)
    with zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in contents.items():
            zf.writestr(name, data)


def test_hostile_archives(tmp_path):
    model = keras_reference_model()
    good = tmp_path / "good.keras"
    model.save(good)
    (tmp_path / "pickle.keras").write_bytes(b"\x80\x04\x95" + b"\0" * 40)
    refused(CorruptFileError, tmp_path / "pickle.keras", "not a valid .keras")
    data = good.read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    refused(CorruptFileError, tmp_path / "cut.keras")
    rewrite(good, tmp_path / "extra.keras", **{"evil.py": b"import os"})
    refused(CorruptFileError, tmp_path / "extra.keras", "unexpected member 'evil.py'")
    rewrite(good, tmp_path / "bomb.keras", **{"config.json": b" " * (40 << 20)})  # 40 MiB compressing to ~40 KiB
    refused(CorruptFileError, tmp_path / "bomb.keras", "config.json claims")
    config = json.loads(zipfile.ZipFile(good).read("config.json"))
    config["config"]["layers"][1]["config"]["input_dim"] = 10**12  # a 10^12-row embedding, never allocated
    rewrite(good, tmp_path / "huge.keras", **{"config.json": json.dumps(config).encode()})
    refused(CheckpointConfigError, tmp_path / "huge.keras", "layer 0 'embedding", "config implies weight 0")
    rewrite(good, tmp_path / "deep.keras", **{"config.json": b"[" * 100_000 + b"]" * 100_000})
    refused(CorruptFileError, tmp_path / "deep.keras", "100000 JSON objects and arrays, more than the limit")
    rewrite(good, tmp_path / "noh5.keras", **{"model.weights.h5": b"not hdf5"})
    refused(CorruptFileError, tmp_path / "noh5.keras", "HDF5")


def test_wrong_weight_shapes_in_h5_are_refused(tmp_path):
    import h5py

    model = keras_reference_model()
    model.save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        h5 = io.BytesIO(zf.read("model.weights.h5"))
    with h5py.File(h5, "a") as f:
        del f["layers/lstm/cell/vars/0"]
        f["layers/lstm/cell/vars/0"] = np.zeros((7, 16), dtype="float32")
    rewrite(tmp_path / "m.keras", tmp_path / "bad.keras", **{"model.weights.h5": h5.getvalue()})
    refused(CheckpointConfigError, tmp_path / "bad.keras", "'lstm", "(7, 16)")


def test_export_refuses_what_keras_cannot_rebuild(tmp_path):
    layer = Dense(2, name="d")
    layer(torch.ones(1, 3))
    save_keras_model([layer, Dropout(0.1)], tmp_path / "ok.keras", input_shape=(3,), input_dtype="float32")
    assert keras.saving.load_model(tmp_path / "ok.keras").layers[0].name == "d"
    masking = Masking(0.0)
    save_keras_model([masking], tmp_path / "m.keras", input_shape=(T, 2), input_dtype="float32")
    lstm = LSTM(2, time_major=True)
    with pytest.raises(CheckpointConfigError, match="time_major=True has no Keras 3 equivalent"):
        save_keras_model([lstm], tmp_path / "tm.keras", input_shape=(T, 2))
