"""A model whose first layer is TextVectorization: trained on raw strings, saved, served on raw text.

model.predict, load_model, Predictor, `lstmtext predict` and the HTTP service give the same probabilities;
a text alone or beside a much longer one gets the same probability (the padding is masked).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from helpers import tiny_imdb_files

from lstmtext.cli import main
from lstmtext.layers import LSTM, Dense, Embedding, Input, TextVectorization
from lstmtext.models import Model, Sequential, load_model
from lstmtext.predictor import Predictor
from lstmtext.utils import set_random_seed

MEMBER = re.compile(r"^aclImdb/(train|test)/(pos|neg)/\d+_\d+\.txt$")


@pytest.fixture(scope="module")
def reviews() -> tuple[np.ndarray, np.ndarray]:
    files = tiny_imdb_files(n_per_class=20, seed=0)
    names = [n for n in sorted(files) if MEMBER.match(n)]
    texts = np.array([files[n].decode("utf-8") for n in names], dtype=object)
    labels = np.array([1.0 if "/pos/" in n else 0.0 for n in names], dtype=np.float32)
    return texts, labels


def sequential(texts) -> Sequential:
    vectorize = TextVectorization(max_tokens=300)
    vectorize.adapt(texts)
    return Sequential([vectorize, Embedding(300, 8, mask_zero=True), LSTM(6), Dense(1, activation="sigmoid")])


def functional(texts) -> Model:
    vectorize = TextVectorization(max_tokens=300, output_sequence_length=80)
    vectorize.adapt(texts)
    inputs = Input(shape=(1,), dtype="string")
    x = Embedding(300, 8, mask_zero=True)(vectorize(inputs))
    return Model(inputs, Dense(1, activation="sigmoid")(LSTM(6)(x)))


@pytest.fixture(scope="module")
def saved(reviews, tmp_path_factory):
    texts, labels = reviews
    set_random_seed(3)
    model = sequential(texts)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(texts, labels, epochs=3, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    folder = tmp_path_factory.mktemp("tv-model") / "ckpt"
    model.save(folder)
    return model, folder


def test_the_vocabulary_is_in_the_checkpoint_folder(saved):
    model, folder = saved
    config = json.loads((folder / "config.json").read_text())
    layer_configs = [layer["config"] for layer in config["config"]["layers"]
                     if layer["class_name"] == "TextVectorization"]
    assert layer_configs[0]["vocabulary"] == model.layers[0].get_vocabulary()


def test_load_model_predictor_cli_and_service_match_model_predict(saved, reviews, capsys):
    model, folder = saved
    texts = list(reviews[0][:5]) + ["A wonderful, moving film.", ""]
    expected = model.predict(np.array(texts, dtype=object), verbose=0).ravel()
    np.testing.assert_allclose(load_model(folder).predict(np.array(texts, dtype=object), verbose=0).ravel(),
                               expected, atol=1e-6)
    predictor = Predictor.from_checkpoint(folder)
    np.testing.assert_allclose(predictor.predict_proba(texts)[:, 1], expected, atol=1e-6)
    assert main(["predict", str(folder), *texts[-2:], "--format", "jsonl"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    probability_of_1 = [r["probability"] if r["label"] in ("1", 1) else 1 - r["probability"] for r in rows]
    np.testing.assert_allclose(probability_of_1, expected[-2:], atol=1e-6)
    fastapi = pytest.importorskip("fastapi.testclient")
    from lstmtext.service import ServiceConfig, create_app

    with fastapi.TestClient(create_app(predictor, ServiceConfig(warmup=False))) as client:
        for _ in range(100):
            if client.get("/readyz").status_code == 200:
                break
        body = client.post("/v1/predict", json={"texts": texts}).json()
    served = [p["probabilities"][1] if "probabilities" in p else p["probability"] for p in body["predictions"]]
    np.testing.assert_allclose(served, expected, atol=1e-6)


@pytest.mark.parametrize("build", [sequential, functional])
def test_a_text_alone_or_beside_a_longer_one_gets_the_same_probability(build, reviews):
    texts = reviews[0]
    model = build(texts)
    short, longer = "a wonderful film", " ".join(texts[:3])
    column = build is functional  # Input(shape=(1,), dtype="string") takes a (batch, 1) column of texts
    alone = np.array([short], dtype=object)
    both = np.array([short, longer], dtype=object)
    alone = model.predict(alone[:, None] if column else alone, verbose=0)
    beside = model.predict(both[:, None] if column else both, verbose=0)
    np.testing.assert_allclose(alone[0], beside[0], atol=1e-6)


def test_a_string_model_refuses_numbers_and_a_number_model_refuses_strings(reviews):
    model = sequential(reviews[0])
    with pytest.raises(Exception, match="expected text|strings"):
        model.predict(np.zeros((2, 5), dtype=np.int64), verbose=0)
    numbers = Sequential([Input(shape=(5,)), Embedding(10, 2), LSTM(2), Dense(1)])
    with pytest.raises(Exception, match="TextVectorization"):
        numbers.predict(np.array(["some text"] * 2, dtype=object), verbose=0)


def test_text_vectorization_example_runs_small(tiny_imdb_folder, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "text_vectorization_imdb.py"
    spec = importlib.util.spec_from_file_location("text_vectorization_imdb", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    model, history, test = example.main(tiny_imdb_folder, max_features=200, sequence_length=40, embedding_dim=8,
                                        units=4, batch_size=8, epochs=2, out=tmp_path / "ckpt", verbose=0)
    assert len(history.history["val_loss"]) == 2 and 0.0 <= test["accuracy"] <= 1.0
    assert "test accuracy" in capsys.readouterr().out
    texts = ["a wonderful film", "awful and boring"]
    np.testing.assert_allclose(Predictor.from_checkpoint(tmp_path / "ckpt").predict_proba(texts)[:, 1],
                               model.predict(np.array(texts, dtype=object), verbose=0).ravel(), atol=1e-6)
