"""Keras-format imdb.npz files are read without unpickling, and hostile ones are refused unexecuted."""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from lstmtext.data.keras_npz import parse_object_array_pickle, read_keras_imdb_npz
from lstmtext.errors import DataError


def _object_array(items):
    arr = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        arr[i] = item
    return arr


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_reads_every_pickle_protocol_numpy_writes(protocol):
    items = [[1, 2, 300], [], [70000, 2**31 - 1, 5], [0] * 1200]  # 1-, 2-, 4-byte ints, a long list (batches)
    raw = pickle.dumps(_object_array(items), protocol=protocol)
    assert parse_object_array_pickle(raw, "test") == items


def test_reads_a_keras_format_file(tmp_path):
    x_train = _object_array([[1, 14, 22], [1, 5, 9, 9], [1]])
    x_test = _object_array([[1, 2], [1, 70000]])
    path = _npz(
        tmp_path / "imdb.npz", x_train=x_train, y_train=np.array([1, 0, 1]), x_test=x_test, y_test=np.array([0, 1])
    )
    got = read_keras_imdb_npz(path)
    assert got["x_train"] == [[1, 14, 22], [1, 5, 9, 9], [1]] and got["x_test"] == [[1, 2], [1, 70000]]
    np.testing.assert_array_equal(got["y_train"], [1, 0, 1])


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > pwned.txt",))


def test_hostile_pickle_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    hostile = _object_array([[1, 2], _Payload()])
    path = tmp_path / "imdb.npz"
    _npz(path, x_train=hostile, y_train=np.array([1, 0]), x_test=_object_array([[1]]), y_test=np.array([1]))
    with pytest.raises(DataError, match=r"imdb\.npz.*array x_train: it refers to (posix|os|nt)\.system"):
        read_keras_imdb_npz(path)
    assert not (tmp_path / "pwned.txt").exists()


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (_object_array([[1, 2], [3, [4]]]), "item 1 is not a list of integers"),
        (_object_array([[1, 2], "text"]), "item 1 is not a list of integers"),
        (_object_array([[1.5]]), r"opcode b'G'"),
        (np.array([[1, 2]], dtype=object), r"shape \(1, 2\), expected 1-D"),
    ],
)
def test_anything_but_int_lists_is_refused(obj, message):
    with pytest.raises(DataError, match=message):
        parse_object_array_pickle(pickle.dumps(obj, protocol=4), "file.npz")


def test_truncated_stream_is_refused():
    raw = pickle.dumps(_object_array([[1, 2, 3]] * 10), protocol=4)
    with pytest.raises(DataError, match="truncated or malformed stream"):
        parse_object_array_pickle(raw[: len(raw) // 2], "file.npz")


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"'.*missing\.npz' does not exist"):
        read_keras_imdb_npz(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match=r"'.*junk\.npz' is not a readable \.npz"):
        read_keras_imdb_npz(tmp_path / "junk.npz")
    partial = _npz(tmp_path / "partial.npz", x_train=_object_array([[1]]), y_train=np.array([1]))
    with pytest.raises(DataError, match=r"has no x_test, y_test array"):
        read_keras_imdb_npz(partial)
    buf = io.BytesIO()
    np.save(buf, np.array([1.0, 2.0]))
    with zipfile.ZipFile(tmp_path / "floats.npz", "w") as zf:
        for name in ("x_train", "x_test"):
            zf.writestr(f"{name}.npy", buf.getvalue())
        for name in ("y_train", "y_test"):
            zf.writestr(f"{name}.npy", buf.getvalue())
    with pytest.raises(DataError, match="x_train is a float64 array, expected lists of word ids"):
        read_keras_imdb_npz(tmp_path / "floats.npz")
