import numpy as np
import pytest
import torch

from lstmtext.errors import ConfigError
from lstmtext.layers import Dense, Embedding, deserialize, serialize


def test_embedding_dense_counts_and_shapes():
    emb, dense = Embedding(5000, 15), Dense(1, activation="sigmoid")
    y = dense(emb(torch.randint(0, 5000, (4, 300)))[:, -1])
    assert y.shape == (4, 1)
    assert emb.count_params() == 75_000
    assert dense.count_params() == 16


def test_config_round_trip_rebuilds_same_layer():
    d = Dense(3, activation="relu", kernel_regularizer="l2", kernel_constraint="max_norm")
    d2 = deserialize(serialize(d))
    assert d2.get_config() == d.get_config()


def test_set_weights_checks_shapes():
    d = Dense(2)
    d(torch.ones(1, 4))
    with pytest.raises(ConfigError, match=r"weight 0 has shape \(3, 2\), expected \(4, 2\)"):
        d.set_weights([np.zeros((3, 2)), np.zeros(2)])


def test_unknown_layer_class_is_refused():
    with pytest.raises(ConfigError, match="unknown layer class 'Lambda'"):
        deserialize({"class_name": "Lambda", "config": {}})


def test_input_is_importable_from_layers_like_keras():
    from lstmtext.layers import Input
    from lstmtext.models import Input as ModelsInput
    from lstmtext.models import Sequential

    assert Input is ModelsInput
    assert Sequential([Input((5,)), Dense(2)]).count_params() == 12
