""".keras files of TextVectorization models: the vocabulary in the archive's assets/ as Keras keeps it.

Keras needs TensorFlow for this layer, so the Keras-written files come from
``tests/golden/keras_text_model_golden.json`` (``make_keras_text_model_golden.py``, run with TensorFlow):
the archive is rebuilt member by member and lstmtext must give Keras's predictions. Files lstmtext writes
use the member names and HDF5 paths of those Keras files."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import lstmtext
from lstmtext import layers
from lstmtext.checkpoint.errors import CheckpointConfigError, CorruptFileError
from lstmtext.interop.keras import MAX_ASSET_MEMBERS, load_keras_model, save_keras_model

h5py = pytest.importorskip("h5py")
GOLDEN = json.loads((Path(__file__).parent.parent / "golden" / "keras_text_model_golden.json").read_text("utf-8"))
TEXTS = GOLDEN["texts"]


def _archive(path: Path, model: dict, assets: dict | None = None) -> Path:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        for name, value in model["weights"].items():
            h5.create_dataset(name, data=np.asarray(value, dtype=np.float32))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("metadata.json", model["metadata.json"])
        zf.writestr("config.json", model["config.json"])
        zf.writestr("model.weights.h5", buf.getvalue())
        for name, text in (model["assets"] if assets is None else assets).items():
            zf.writestr(name, text.encode("utf-8"))
    return path


@pytest.mark.parametrize("kind", ["int", "tf_idf", "sequential"])
def test_keras_written_text_models_load_with_keras_predictions(tmp_path, kind):
    golden = GOLDEN["models"][kind]
    model = load_keras_model(_archive(tmp_path / "keras.keras", golden))
    assert type(model).__name__ == ("Sequential" if kind == "sequential" else "Functional")
    vocabulary = golden["assets"]["assets/layers/text_vectorization/vocabulary.txt"].splitlines()
    tv = next(la for la in model.layers if type(la).__name__ == "TextVectorization")
    assert tv.get_vocabulary() == vocabulary
    np.testing.assert_allclose(model.predict(np.array(TEXTS), verbose=0)[:, 0], golden["predictions"], atol=1e-5)
    # written back, the archive has Keras's members and weight paths, and loads with the same predictions
    save_keras_model(model, tmp_path / "ours.keras")
    with zipfile.ZipFile(tmp_path / "ours.keras") as zf:
        names = set(zf.namelist())
        assert {n for n in golden["assets"]} <= names
        for name, text in golden["assets"].items():
            assert zf.read(name).decode() == text
        config = json.loads(zf.read("config.json"))
        with h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as h5:
            for name in golden["weights"]:
                assert name in h5, name
    tv = next(la for la in config["config"]["layers"] if la["class_name"] == "TextVectorization")
    assert tv["config"]["vocabulary"] is None and "has_input_vocabulary" not in tv["config"]
    again = load_keras_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(again.predict(np.array(TEXTS), verbose=0)[:, 0], golden["predictions"], atol=1e-5)


def test_fixed_vocabulary_travels_in_the_config(tmp_path):
    torch.manual_seed(0)
    tv = layers.TextVectorization(vocabulary=["good", "bad", "film"], output_mode="multi_hot")
    inp = lstmtext.Input(shape=(1,), dtype="string")
    model = lstmtext.Model(inp, layers.Dense(1)(tv(inp)))
    save_keras_model(model, tmp_path / "fixed.keras")
    with zipfile.ZipFile(tmp_path / "fixed.keras") as zf:
        assert not [n for n in zf.namelist() if n.startswith("assets/")]
    again = load_keras_model(tmp_path / "fixed.keras")
    np.testing.assert_allclose(again.predict(np.array(TEXTS), verbose=0), model.predict(np.array(TEXTS), verbose=0))


def test_asset_limits_and_damage_are_named(tmp_path):
    golden = GOLDEN["models"]["int"]
    vocab_name = "assets/layers/text_vectorization/vocabulary.txt"
    bomb = tmp_path / "bomb.keras"
    _archive(bomb, golden, assets={})
    with zipfile.ZipFile(bomb, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(vocab_name, b"a\n" * (2 << 20))  # 4 MiB that deflate about 1,000x
    with pytest.raises(CorruptFileError, match=r"vocabulary.txt claims .* ratio limit of 100"):
        load_keras_model(bomb)
    many = _archive(tmp_path / "many.keras", golden,
                    assets={f"assets/x/{i}/vocabulary.txt": "a" for i in range(MAX_ASSET_MEMBERS + 1)})
    with pytest.raises(CorruptFileError, match=rf"{MAX_ASSET_MEMBERS + 1} members under assets/"):
        load_keras_model(many)
    missing = _archive(tmp_path / "missing.keras", golden, assets={})
    with pytest.raises(CorruptFileError, match=rf"layer 'text_vectorization' .*{vocab_name} is missing"):
        load_keras_model(missing)
    bad = _archive(tmp_path / "bad.keras", golden, assets={vocab_name: "\n[UNK]\ngood\ngood"})
    with pytest.raises(CorruptFileError, match=r"vocabulary.txt: .*"):
        load_keras_model(bad)


def test_a_token_keras_cannot_write_is_refused(tmp_path):
    tv = layers.TextVectorization(split=None, standardize=None, output_sequence_length=1)
    tv.adapt(np.array([["line\u2028break"], ["plain"]], dtype=object))
    inp = lstmtext.Input(shape=(1,), dtype="string")
    model = lstmtext.Model(inp, layers.Dense(1)(layers.Flatten()(layers.Embedding(5, 2)(tv(inp)))))
    with pytest.raises(CheckpointConfigError, match=r"token 'line\\u2028break' holds a line break"):
        save_keras_model(model, tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()
