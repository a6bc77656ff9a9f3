"""pad_sequences equals real keras.utils.pad_sequences: random inputs, every option, errors included."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstmtext.data.sequence import pad_flat
from lstmtext.preprocessing.sequence import pad_sequences


@pytest.fixture(scope="module")
def keras_pad():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    return keras.utils.pad_sequences


def _outcome(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # compared by type below
        return e


def _assert_same_outcome(ours, theirs):
    if isinstance(theirs, Exception):
        assert isinstance(ours, Exception), f"Keras raised {theirs!r}, lstmtext returned {ours!r}"
        assert isinstance(ours, type(theirs)) or isinstance(ours, ValueError) and isinstance(theirs, ValueError)
        return
    assert not isinstance(ours, Exception), f"lstmtext raised {ours!r}, Keras returned {theirs!r}"
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


sequence_lists = st.lists(st.lists(st.integers(-300, 300), max_size=9), max_size=7)


@pytest.mark.keras
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sequences=sequence_lists,
    maxlen=st.none() | st.integers(0, 11),
    dtype=st.sampled_from(["int32", "int64", "float32", "float64", "int16", "uint8", "bool"]),
    padding=st.sampled_from(["pre", "post"]),
    truncating=st.sampled_from(["pre", "post"]),
    value=st.sampled_from([0.0, 0, -1, 7, 2.5, -3.75]),
    as_arrays=st.booleans(),
)
def test_equals_keras_on_random_inputs(keras_pad, sequences, maxlen, dtype, padding, truncating, value, as_arrays):
    if as_arrays:
        sequences = [np.asarray(s, dtype=np.int64) for s in sequences]
    kwargs = {"maxlen": maxlen, "dtype": dtype, "padding": padding, "truncating": truncating, "value": value}
    _assert_same_outcome(_outcome(pad_sequences, sequences, **kwargs), _outcome(keras_pad, sequences, **kwargs))


@pytest.mark.keras
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sequences=st.lists(st.lists(st.floats(-1e3, 1e3, allow_nan=False), max_size=6), min_size=1, max_size=5),
    maxlen=st.none() | st.integers(1, 8),
    dtype=st.sampled_from(["int32", "float32", "float64"]),
    padding=st.sampled_from(["pre", "post"]),
    truncating=st.sampled_from(["pre", "post"]),
)
def test_equals_keras_on_float_items(keras_pad, sequences, maxlen, dtype, padding, truncating):
    kwargs = {"maxlen": maxlen, "dtype": dtype, "padding": padding, "truncating": truncating}
    _assert_same_outcome(_outcome(pad_sequences, sequences, **kwargs), _outcome(keras_pad, sequences, **kwargs))


@pytest.mark.keras
@pytest.mark.parametrize(
    ("sequences", "kwargs"),
    [
        ([[[1, 2], [3, 4]], [], [[5, 6]]], {"maxlen": 3}),  # sequences of vectors
        ([[[1, 2], [3, 4]], [[5, 6]]], {"padding": "post", "truncating": "post", "maxlen": 1}),
        ([["a", "b"], ["c"]], {"dtype": object, "value": "<pad>"}),
        ([["a", "b"], ["c"]], {"dtype": "<U5", "value": "-"}),
        ([[1, 2], [3]], {"value": "x"}),  # string value with a numeric dtype
        ([[1, 2], 5], {}),  # not a list of iterables
        ([[[1, 2]], [[1, 2, 3]]], {}),  # items of different shapes
        ([[1, 2], np.array([[5]])], {}),  # a 2-D item among flat ones
        ([[1, 2], [[5]]], {"maxlen": 3}),
        ([[1, 2], [3]], {"padding": "middle"}),
        ([[1, 2], [3]], {"truncating": "both"}),
        ([[1, 2], [3]], {"maxlen": 0}),
        ([[1, 2], [3]], {"maxlen": 0, "truncating": "post"}),
        ([[], []], {}),
        ([], {"maxlen": 4}),
        ([[1.5, np.nan]], {"dtype": "float32", "value": np.nan}),
        ([[2**40]], {}),  # does not fit int32
        ((x for x in [[1]]), {}),  # a generator has no len()
    ],
)
def test_equals_keras_on_edge_cases(keras_pad, sequences, kwargs):
    _assert_same_outcome(_outcome(pad_sequences, sequences, **kwargs), _outcome(keras_pad, sequences, **kwargs))


def test_documented_examples():
    seqs = [[1], [2, 3], [4, 5, 6]]
    np.testing.assert_array_equal(pad_sequences(seqs), [[0, 0, 1], [0, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, padding="post"), [[1, 0, 0], [2, 3, 0], [4, 5, 6]])
    np.testing.assert_array_equal(pad_sequences(seqs, maxlen=2, truncating="post"), [[0, 1], [2, 3], [4, 5]])
    assert pad_sequences(seqs).dtype == np.int32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"padding": "middle"}, 'Padding type "middle" not understood'),
        ({"truncating": "x"}, 'Truncating type "x" not understood'),
        ({"maxlen": -2}, "maxlen must be a non-negative integer or None, got -2"),
        ({"maxlen": 2.5}, "maxlen must be a non-negative integer or None, got 2.5"),
    ],
)
def test_bad_options_raise_even_for_empty_sequences(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pad_sequences([[], []], **kwargs)


def test_no_sequences_without_maxlen_is_a_clear_error():
    with pytest.raises(ValueError, match="maxlen=None needs at least one sequence"):
        pad_sequences([])
    assert pad_sequences([], maxlen=3).shape == (0, 3)


@pytest.mark.keras
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sequences=sequence_lists,
    maxlen=st.integers(1, 11),
    dtype=st.sampled_from(["int32", "int64", "float32"]),
    padding=st.sampled_from(["pre", "post"]),
    truncating=st.sampled_from(["pre", "post"]),
    value=st.sampled_from([0, -1, 7]),
)
def test_pad_flat_equals_keras(keras_pad, sequences, maxlen, dtype, padding, truncating, value):
    # What Predictor pads tokenizer output with: the same sequences given as one flat array and offsets.
    ids = np.asarray([x for s in sequences for x in s], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sequences], dtype=np.int64)])
    kwargs = {"maxlen": maxlen, "dtype": dtype, "padding": padding, "truncating": truncating, "value": value}
    ours = pad_flat(ids, offsets, **kwargs)
    theirs = keras_pad(sequences, **kwargs)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((np.arange(3), np.array([0, 3]), 0), "maxlen must be a positive integer"),
        ((np.arange(3), np.array([0, 2]), 4), "offsets from 0 to len"),
        ((np.arange(3), np.array([0, 2, 1, 3]), 4), "non-decreasing offsets"),
        ((np.arange(6).reshape(2, 3), np.array([0, 6]), 4), "1-D ids"),
    ],
)
def test_pad_flat_refuses_inconsistent_input(args, message):
    with pytest.raises(ValueError, match=message):
        pad_flat(*args)
