"""Typed configs, the two presets and the LSTM-stack builder."""

from __future__ import annotations

import json

import pytest

from lstmtext.config import (
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    TrainConfig,
    build_model,
    build_stacked_lstm,
    get_preset,
)
from lstmtext.errors import ConfigError
from lstmtext.layers import LSTM, Dropout


def test_keras_imdb_preset_is_the_tutorial_model():
    cfg = get_preset("keras-imdb")
    model = build_model(cfg.model, maxlen=cfg.data.maxlen)
    assert model.count_params() == 76_051
    assert (cfg.train.batch_size, cfg.train.epochs, cfg.train.validation_split, cfg.data.maxlen) == (128, 5, 0.2, 300)
    assert type(cfg.train.make_optimizer()).__name__ == "Adam"


def test_stacked_preset_and_builder():
    cfg = get_preset("stacked-imdb")
    model = build_model(cfg.model, maxlen=cfg.data.maxlen)
    kinds = [type(la).__name__ for la in model.layers]
    assert kinds == ["Embedding", "LSTM", "Dropout", "LSTM", "Dropout", "Dense"]
    assert [la.return_sequences for la in model.layers if isinstance(la, LSTM)] == [True, False]
    # 20000*300 + 4*(128*(300+128)+128) + 4*(64*(128+64)+64) + 65
    assert model.count_params() == 6_269_121
    three = build_stacked_lstm(vocab_size=100, embedding_dim=8, lstm_sizes=[16, 8, 4], dropout=0.0, maxlen=10)
    assert [la.units for la in three.layers if isinstance(la, LSTM)] == [16, 8, 4]
    assert not any(isinstance(la, Dropout) for la in three.layers)


def test_presets_are_independent_copies_and_round_trip_through_json():
    a = get_preset("stacked-imdb")
    a.train.epochs = 99
    assert get_preset("stacked-imdb").train.epochs == 3
    d = json.loads(json.dumps(a.to_dict()))
    assert ExperimentConfig.from_dict(d) == a


@pytest.mark.parametrize("make,pattern", [
    (lambda: DataConfig(maxlen=0), r"DataConfig.maxlen: expected a positive integer, got 0"),
    (lambda: DataConfig(padding="middle"), r"DataConfig.padding: expected 'pre' or 'post', got 'middle'"),
    (lambda: ModelConfig(lstm_sizes=(128, -1)), r"ModelConfig.lstm_sizes\[1\]: expected a positive integer, got -1"),
    (lambda: ModelConfig(dropout=1.0), r"ModelConfig.dropout: expected a number in \[0, 1\), got 1.0"),
    (lambda: TrainConfig(optimizer="adagrad"), r"TrainConfig.optimizer: expected one of .*got 'adagrad'"),
    (lambda: ExperimentConfig(data=DataConfig(num_words=9000)), r"vocab_size \(5000\) must be at least"),
    (lambda: ExperimentConfig.from_dict({"train": {"epoch": 3}}), r"TrainConfig: unknown field\(s\) \['epoch'\]"),
    (lambda: get_preset("imdb"), r"unknown preset 'imdb'"),
])
def test_bad_configs_name_the_field(make, pattern):
    with pytest.raises(ConfigError, match=pattern):
        make()
