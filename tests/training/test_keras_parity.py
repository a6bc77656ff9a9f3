"""Numbers from real Keras 3 (torch backend) with the same initial weights and the same batches."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lstmtext import losses as L
from lstmtext import metrics as M
from lstmtext import optimizers as O
from lstmtext.layers import Dense, Embedding, Flatten, GlobalAveragePooling1D, GlobalMaxPooling1D
from lstmtext.models import Input, Sequential

from .keras_helpers import assert_weights_close, copy_weights, import_keras

pytestmark = pytest.mark.keras

VOCAB, T, N = 50, 7, 48


def _data(seed: int = 0, classes: int = 2):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, VOCAB, size=(N, T)).astype("int64")
    x[:, -2:] = 0  # padding, so mask_zero matters
    y = rng.integers(0, classes, size=(N,))
    return x, y


def _pair(keras, head: str = "sigmoid", units: int = 1, pool: str = "avg", mask_zero: bool = False):
    k_pool = {"avg": keras.layers.GlobalAveragePooling1D, "max": keras.layers.GlobalMaxPooling1D,
              "flat": keras.layers.Flatten}[pool]
    o_pool = {"avg": GlobalAveragePooling1D, "max": GlobalMaxPooling1D, "flat": Flatten}[pool]
    km = keras.Sequential([keras.Input((T,), dtype="int32"), keras.layers.Embedding(VOCAB, 8, mask_zero=mask_zero),
                           k_pool(), keras.layers.Dense(6, activation="tanh"),
                           keras.layers.Dense(units, activation=head)])
    om = Sequential([Input((T,), dtype="int32"), Embedding(VOCAB, 8, mask_zero=mask_zero), o_pool(),
                     Dense(6, activation="tanh"), Dense(units, activation=head)])
    copy_weights(km, om)
    return km, om


OPTIMIZERS = [
    ("sgd", lambda k: k.optimizers.SGD(0.1), lambda: O.SGD(0.1)),
    ("sgd_momentum", lambda k: k.optimizers.SGD(0.1, momentum=0.9), lambda: O.SGD(0.1, momentum=0.9)),
    ("sgd_nesterov", lambda k: k.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
     lambda: O.SGD(0.1, momentum=0.9, nesterov=True)),
    ("adam", lambda k: k.optimizers.Adam(0.01), lambda: O.Adam(0.01)),
    ("adam_amsgrad", lambda k: k.optimizers.Adam(0.01, amsgrad=True), lambda: O.Adam(0.01, amsgrad=True)),
    ("adamw", lambda k: k.optimizers.AdamW(0.01, weight_decay=0.1), lambda: O.AdamW(0.01, weight_decay=0.1)),
    ("rmsprop", lambda k: k.optimizers.RMSprop(0.01), lambda: O.RMSprop(0.01)),
    ("rmsprop_momentum_centered", lambda k: k.optimizers.RMSprop(0.01, momentum=0.5, centered=True),
     lambda: O.RMSprop(0.01, momentum=0.5, centered=True)),
    ("adam_clipnorm", lambda k: k.optimizers.Adam(0.01, clipnorm=0.01), lambda: O.Adam(0.01, clipnorm=0.01)),
    ("sgd_global_clipnorm", lambda k: k.optimizers.SGD(0.5, global_clipnorm=0.05),
     lambda: O.SGD(0.5, global_clipnorm=0.05)),
    ("sgd_clipvalue", lambda k: k.optimizers.SGD(0.5, clipvalue=0.001), lambda: O.SGD(0.5, clipvalue=0.001)),
]


@pytest.mark.parametrize("name,k_opt,o_opt", OPTIMIZERS, ids=[o[0] for o in OPTIMIZERS])
def test_weights_after_three_steps_match_keras(name, k_opt, o_opt):
    keras = import_keras()
    keras.utils.set_random_seed(3)
    km, om = _pair(keras, mask_zero=True)
    x, y = _data(1)
    km.compile(optimizer=k_opt(keras), loss="binary_crossentropy", metrics=["accuracy"])
    om.compile(optimizer=o_opt(), loss="binary_crossentropy", metrics=["accuracy"])
    kh = km.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)  # 3 steps
    oh = om.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert_weights_close(km, om, atol=1e-5)
    for key in ("loss", "accuracy"):
        assert oh.history[key][0] == pytest.approx(kh.history[key][0], abs=1e-5)


def test_evaluate_matches_keras_binary_metrics():
    keras = import_keras()
    keras.utils.set_random_seed(4)
    km, om = _pair(keras, pool="max")
    x, y = _data(2)
    k_metrics = ["accuracy", keras.metrics.Precision(), keras.metrics.Recall(), keras.metrics.AUC(),
                 keras.metrics.AUC(curve="PR", name="pr_auc")]
    o_metrics = ["accuracy", M.Precision(), M.Recall(), M.AUC(), M.AUC(curve="PR", name="pr_auc")]
    km.compile(optimizer="adam", loss=keras.losses.BinaryCrossentropy(), metrics=k_metrics)
    om.compile(optimizer="adam", loss=L.BinaryCrossentropy(), metrics=o_metrics)
    kr = km.evaluate(x, y, batch_size=10, verbose=0, return_dict=True)
    orr = om.evaluate(x, y, batch_size=10, verbose=0, return_dict=True)
    rename = {"precision": "precision", "recall": "recall", "auc": "auc", "pr_auc": "pr_auc"}
    for name in kr:
        ours = orr[rename.get(name.rsplit("_", 1)[0] if name[-1].isdigit() else name, name)]
        assert ours == pytest.approx(float(kr[name]), abs=1e-5), name
    # The list form is [loss, *metrics] in compile order.
    as_list = om.evaluate(x, y, batch_size=10, verbose=0)
    assert as_list[0] == pytest.approx(float(kr["loss"]), abs=1e-5)
    assert len(as_list) == 6


def test_evaluate_returns_a_scalar_without_metrics():
    keras = import_keras()
    km, om = _pair(keras)
    x, y = _data(3)
    km.compile(optimizer="sgd", loss="binary_crossentropy")
    om.compile(optimizer="sgd", loss="binary_crossentropy")
    k, o = km.evaluate(x, y, verbose=0), om.evaluate(x, y, verbose=0)
    assert isinstance(o, float)
    assert o == pytest.approx(float(k), abs=1e-6)


@pytest.mark.parametrize("from_logits", [False, True])
def test_sparse_categorical_loss_accuracy_and_steps_match_keras(from_logits):
    keras = import_keras()
    keras.utils.set_random_seed(5)
    act = None if from_logits else "softmax"
    km, om = _pair(keras, head=act, units=3, pool="flat")
    x, y = _data(4, classes=3)
    km.compile(optimizer=keras.optimizers.Adam(0.01),
               loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits), metrics=["accuracy"])
    om.compile(optimizer=O.Adam(0.01), loss=L.SparseCategoricalCrossentropy(from_logits=from_logits),
               metrics=["accuracy"])
    kh = km.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    oh = om.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert_weights_close(km, om)
    assert oh.history["accuracy"][0] == pytest.approx(kh.history["accuracy"][0], abs=1e-6)
    assert oh.history["loss"][0] == pytest.approx(kh.history["loss"][0], abs=1e-5)


def test_categorical_crossentropy_with_label_smoothing_matches_keras():
    keras = import_keras()
    km, om = _pair(keras, head="softmax", units=3)
    x, y = _data(5, classes=3)
    onehot = np.eye(3, dtype="float32")[y]
    km.compile(optimizer="sgd", loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
               metrics=["accuracy"])
    om.compile(optimizer="sgd", loss=L.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    k = km.evaluate(x, onehot, batch_size=16, verbose=0)
    o = om.evaluate(x, onehot, batch_size=16, verbose=0)
    np.testing.assert_allclose(o, k, atol=1e-6)


def test_class_weight_and_sample_weight_match_keras():
    keras = import_keras()
    keras.utils.set_random_seed(6)
    km, om = _pair(keras)
    x, y = _data(6)
    km.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy", metrics=["accuracy"],
               weighted_metrics=["accuracy"])
    om.compile(optimizer=O.SGD(0.5), loss="binary_crossentropy", metrics=["accuracy"], weighted_metrics=["accuracy"])
    cw = {0: 0.3, 1: 2.0}
    kh = km.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, class_weight=cw)
    oh = om.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, class_weight=cw)
    assert_weights_close(km, om)
    for key in kh.history:
        assert oh.history[key][0] == pytest.approx(kh.history[key][0], abs=1e-5), key
    sw = np.linspace(0.1, 2.0, N)
    k = km.evaluate(x, y, sample_weight=sw, batch_size=16, verbose=0, return_dict=True)
    o = om.evaluate(x, y, sample_weight=sw, batch_size=16, verbose=0, return_dict=True)
    for key in k:
        assert o[key] == pytest.approx(float(k[key]), abs=1e-5), key


def test_regularizers_and_constraints_follow_keras():
    keras = import_keras()
    keras.utils.set_random_seed(7)
    km = keras.Sequential([keras.Input((T,), dtype="int32"), keras.layers.Embedding(VOCAB, 8),
                           keras.layers.GlobalAveragePooling1D(),
                           keras.layers.Dense(4, activation="relu", kernel_regularizer=keras.regularizers.l2(0.01),
                                              kernel_constraint=keras.constraints.MaxNorm(0.5)),
                           keras.layers.Dense(1, activation="sigmoid")])
    om = Sequential([Input((T,), dtype="int32"), Embedding(VOCAB, 8), GlobalAveragePooling1D(),
                     Dense(4, activation="relu", kernel_regularizer={"class_name": "L2", "config": {"l2": 0.01}},
                           kernel_constraint={"class_name": "MaxNorm", "config": {"max_value": 0.5}}),
                     Dense(1, activation="sigmoid")])
    copy_weights(km, om)
    x, y = _data(7)
    km.compile(optimizer=keras.optimizers.SGD(1.0), loss="binary_crossentropy")
    om.compile(optimizer=O.SGD(1.0), loss="binary_crossentropy")
    assert om.evaluate(x, y, verbose=0) == pytest.approx(float(km.evaluate(x, y, verbose=0)), abs=1e-6)
    kh = km.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    oh = om.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert_weights_close(km, om)
    assert oh.history["loss"][0] == pytest.approx(kh.history["loss"][0], abs=1e-5)


def _keras_summary_counts(model) -> list[str]:
    lines: list[str] = []
    model.summary(print_fn=lambda s, **kw: lines.extend(s.splitlines()))
    return [ln.strip() for ln in lines if "params:" in ln]


def _our_summary_counts(model) -> list[str]:
    lines: list[str] = []
    model.summary(print_fn=lambda s: lines.extend(s.splitlines()))
    return [ln.strip() for ln in lines if "params:" in ln]


def test_summary_counts_match_keras_for_several_models():
    keras = import_keras()
    kl, ol = keras.layers, __import__("lstmtext.layers", fromlist=["x"])
    cases = [
        (lambda: [keras.Input((300,), dtype="int32"), kl.Embedding(5000, 15), kl.GlobalAveragePooling1D(),
                  kl.Dense(1, activation="sigmoid")],
         lambda: [Input((300,), dtype="int32"), ol.Embedding(5000, 15), ol.GlobalAveragePooling1D(),
                  ol.Dense(1, activation="sigmoid")]),
        (lambda: [keras.Input((20,), dtype="int32"), kl.Embedding(100, 4), kl.Flatten(), kl.Dense(7),
                  kl.Dense(3, use_bias=False, activation="softmax")],
         lambda: [Input((20,), dtype="int32"), ol.Embedding(100, 4), ol.Flatten(), ol.Dense(7),
                  ol.Dense(3, use_bias=False, activation="softmax")]),
        (lambda: [keras.Input((12,)), kl.Dense(5), kl.Dropout(0.3), kl.Dense(2)],
         lambda: [Input((12,)), ol.Dense(5), ol.Dropout(0.3), ol.Dense(2)]),
    ]
    for kb, ob in cases:
        km, om = keras.Sequential(kb()), Sequential(ob())
        assert _our_summary_counts(om) == _keras_summary_counts(km)
        assert om.count_params() == km.count_params()
        # A frozen layer moves its weights to the non-trainable count, as in Keras.
        km.layers[-1].trainable = False
        om.layers[-1].trainable = False
        assert _our_summary_counts(om) == _keras_summary_counts(km)


def test_summary_counts_optimizer_params_after_training_like_keras():
    keras = import_keras()
    km, om = _pair(keras)
    x, y = _data(8)
    km.compile(optimizer="adam", loss="binary_crossentropy")
    om.compile(optimizer="adam", loss="binary_crossentropy")
    km.fit(x, y, epochs=1, verbose=0)
    om.fit(x, y, epochs=1, verbose=0)
    assert _our_summary_counts(om) == _keras_summary_counts(km)


def _lstm_pair(keras, mask_zero: bool, stacked: bool):
    from lstmtext.layers import LSTM

    k_rnn = ([keras.layers.LSTM(6, return_sequences=True), keras.layers.LSTM(4)] if stacked
             else [keras.layers.LSTM(5)])
    o_rnn = [LSTM(6, return_sequences=True), LSTM(4)] if stacked else [LSTM(5)]
    km = keras.Sequential([keras.Input((T,), dtype="int32"), keras.layers.Embedding(VOCAB, 8, mask_zero=mask_zero),
                           *k_rnn, keras.layers.Dense(1, activation="sigmoid")])
    om = Sequential([Input((T,), dtype="int32"), Embedding(VOCAB, 8, mask_zero=mask_zero), *o_rnn,
                     Dense(1, activation="sigmoid")])
    copy_weights(km, om)
    return km, om


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("mask_zero,stacked", [(False, False), (True, True)])
def test_lstm_models_match_keras_after_three_steps(optimizer, mask_zero, stacked):
    keras = import_keras()
    keras.utils.set_random_seed(8)
    km, om = _lstm_pair(keras, mask_zero, stacked)
    x, y = _data(9)
    k_opt = keras.optimizers.SGD(0.5) if optimizer == "sgd" else keras.optimizers.Adam(0.01)
    o_opt = O.SGD(0.5) if optimizer == "sgd" else O.Adam(0.01)
    km.compile(optimizer=k_opt, loss="binary_crossentropy", metrics=["accuracy", keras.metrics.AUC()])
    om.compile(optimizer=o_opt, loss="binary_crossentropy", metrics=["accuracy", M.AUC()])
    k_eval = km.evaluate(x, y, batch_size=16, verbose=0)
    o_eval = om.evaluate(x, y, batch_size=16, verbose=0)
    np.testing.assert_allclose(o_eval, k_eval, atol=1e-5)
    km.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    om.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert_weights_close(km, om, atol=1e-5)


def test_tutorial_model_summary_matches_keras():
    keras = import_keras()
    from lstmtext.layers import LSTM

    km = keras.Sequential([keras.Input((300,), dtype="int32"), keras.layers.Embedding(5000, 15),
                           keras.layers.LSTM(10), keras.layers.Dense(1, activation="sigmoid")])
    om = Sequential([Embedding(5000, 15, input_length=300), LSTM(10), Dense(1, activation="sigmoid")])
    assert _our_summary_counts(om) == _keras_summary_counts(km)
    assert om.count_params() == 76_051
    lines: list[str] = []
    om.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert re.search(r"│ lstm(_\d+)? \(LSTM\) ", text)  # Keras's automatic name, not "l_s_t_m"
    assert "(None, 300, 15)" in text and "75,000" in text and "1,040" in text and "│            11 │" in text
