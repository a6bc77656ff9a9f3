"""Sequential's Keras API: building, config round trip, weights, saving, summary."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lstmtext.errors import CheckpointError, ConfigError
from lstmtext.layers import LSTM, Dense, Dropout, Embedding, Flatten, GlobalAveragePooling1D
from lstmtext.models import Input, Sequential, load_model


def _tutorial() -> Sequential:
    return Sequential([Embedding(5000, 15, input_length=300), LSTM(10), Dense(1, activation="sigmoid")])


def test_tutorial_model_counts_76051_and_prints_keras_table():
    model = _tutorial()
    assert model.count_params() == 76_051
    lines: list[str] = []
    model.summary(print_fn=lines.append)
    text = lines[0].splitlines()
    assert text[0] == f'Model: "{model.name}"'
    assert text[2] == "┃ Layer (type)                    ┃ Output Shape           ┃       Param # ┃"
    assert any("│ (None, 300, 15)        │        75,000 │" in ln for ln in text)
    assert any("(LSTM)" in ln and "│ (None, 10)             │         1,040 │" in ln for ln in text)
    assert text[-3:] == [" Total params: 76,051 (297.07 KB)", " Trainable params: 76,051 (297.07 KB)",
                         " Non-trainable params: 0 (0.00 B)"]


def test_add_pop_and_input_build_the_model():
    model = Sequential()
    model.add(Input((12,), dtype="int32"))
    model.add(Embedding(40, 3))
    assert model.built and model.layers[0].built
    model.add(Flatten())
    model.add(Dense(2))
    assert model.compute_output_shape((None, 12)) == (None, 2)
    assert model.count_params() == 40 * 3 + 36 * 2 + 2
    popped = model.pop()
    assert isinstance(popped, Dense) and len(model.layers) == 2
    with pytest.raises(ConfigError, match="an Input can only be the first entry"):
        model.add(Input((3,)))
    with pytest.raises(ConfigError, match="layer must be an lstmtext Layer, got Linear"):
        model.add(torch.nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="count_params\\(\\) needs a built model"):
        Sequential([Dense(2)]).count_params()


def test_lazy_build_on_first_call_with_masks():
    model = Sequential([Embedding(10, 4, mask_zero=True), GlobalAveragePooling1D(), Dense(1)])
    x = torch.tensor([[1, 2, 0, 0], [3, 0, 0, 0]])
    out = model(x)
    assert out.shape == (2, 1) and model.build_input_shape == (None, 4)
    # The mask reaches the pooling: padded steps do not change the result.
    longer = model(torch.tensor([[1, 2, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0]]))
    torch.testing.assert_close(out, longer)


def test_config_round_trip_rebuilds_an_identical_model():
    model = Sequential([Input((20,), dtype="int32"), Embedding(50, 8, mask_zero=True),
                        LSTM(6, return_sequences=True), Dropout(0.5), LSTM(4), Dense(1, activation="sigmoid")],
                       name="clf")
    cfg = model.get_config()
    assert cfg["name"] == "clf" and cfg["build_input_shape"] == [None, 20]
    names = [la["class_name"] for la in cfg["layers"]]
    assert names == ["InputLayer", "Embedding", "LSTM", "Dropout", "LSTM", "Dense"]
    cfg = json.loads(json.dumps(cfg))
    clone = Sequential.from_config(cfg)
    assert clone.get_config() == model.get_config()
    clone.set_weights(model.get_weights())
    x = torch.randint(0, 50, (3, 20))
    torch.testing.assert_close(clone(x), model(x))
    assert list(clone.state_dict()) == list(model.state_dict())
    assert list(model.state_dict())[0] == "layers.0.embeddings"


def test_get_and_set_weights_use_keras_shapes_and_check_them():
    model = _tutorial()
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(5000, 15), (15, 40), (10, 40), (40,), (10, 1), (1,)]
    with pytest.raises(ConfigError, match="expected 6 arrays, got 5"):
        model.set_weights(model.get_weights()[:5])


def test_save_and_load_model_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(1, 30, size=(40, 8)), rng.integers(0, 2, size=40)
    model = Sequential([Embedding(30, 4), LSTM(3), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "config.json", "manifest.json", "model.safetensors", "optimizer.safetensors", "run.json", "trainer.json"]
    loaded = load_model(tmp_path / "ckpt")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
    # Saving again replaces the folder whole; no temporary folders are left behind.
    model.save(tmp_path / "ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_loading_bad_checkpoints_names_the_file(tmp_path):
    model = Sequential([Input((5,)), Dense(2)])
    model.save(tmp_path / "c")
    (tmp_path / "c" / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match=r"model.safetensors: is 15 bytes, manifest.json says \d+"):
        load_model(tmp_path / "c")
    model.save(tmp_path / "c")
    other = Sequential([Input((5,)), Dense(3)])
    with pytest.raises(CheckpointError, match=r"weight 'layers.0.(kernel|bias)' has shape \(5, 2\), expected \(5, 3\)"):
        other.load_weights(tmp_path / "c")
    (tmp_path / "c" / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"config.json: listed in manifest.json but missing"):
        load_model(tmp_path / "c")
