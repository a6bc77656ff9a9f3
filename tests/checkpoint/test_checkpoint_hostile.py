"""The hostile-file corpus: every malformed or malicious checkpoint raises a typed error naming the file,
fast, with memory bounded by the file, and never runs code.

The attacker controls the whole folder, manifest included, so most cases forge a matching manifest
(``commit``): the format checks must hold on their own, not only because a hash differs.
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import time
import tracemalloc
from pathlib import Path

import pytest
import torch

from lstmtext.checkpoint import (
    CheckpointConfigError,
    CheckpointError,
    CheckpointNotFoundError,
    CorruptFileError,
    ManifestError,
    WeightMismatchError,
    load_checkpoint,
)
from lstmtext.models.saving import build_model

TIME_LIMIT_S = 1.0


def expect_refused(error: type[Exception], file: str, fn, *, max_peak_bytes: int = 4 << 20):
    """Run ``fn``; assert it raises ``error`` naming ``file`` within the time limit and memory bound."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(error) as info:
            fn()
    finally:
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert isinstance(info.value, CheckpointError)
    assert file in str(info.value), str(info.value)
    assert elapsed < TIME_LIMIT_S, f"took {elapsed:.2f} s"
    assert peak < max_peak_bytes, f"peak Python allocation {peak} bytes"
    return info.value


def safetensors_file(header: dict, data: bytes = b"", *, header_len: int | None = None) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if header_len is None else header_len) + raw + data


def put_weights(folder: Path, content: bytes, commit) -> None:
    (folder / "model.safetensors").write_bytes(content)
    commit(folder)


class _Boom:
    """Unpickling this would create a marker file: it must never happen."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_renamed_model_safetensors_is_refused_and_never_run(saved, commit, tmp_path):
    marker = tmp_path / "pwned"
    put_weights(saved, pickle.dumps({"w": _Boom(marker)}), commit)
    err = expect_refused(CorruptFileError, "model.safetensors", lambda: load_checkpoint(saved))
    assert "not a safetensors file" in str(err) or "truncated" in str(err)
    assert not marker.exists()


def test_torch_save_zip_renamed_model_safetensors_is_refused(saved, commit, tmp_path):
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(3)}, legacy)  # tests may write it; the package never reads it
    put_weights(saved, legacy.read_bytes(), commit)
    expect_refused(CorruptFileError, "model.safetensors", lambda: load_checkpoint(saved))


def test_header_claiming_100_gb_is_refused_without_allocating(saved, commit):
    put_weights(saved, struct.pack("<Q", 100 * 10**9) + b"{}", commit)
    err = expect_refused(CorruptFileError, "model.safetensors", lambda: load_checkpoint(saved), max_peak_bytes=1 << 20)
    assert "header claims 100000000000 bytes" in str(err)


def test_tensor_claiming_100_gb_is_out_of_range(saved, commit):
    header = {"w": {"dtype": "F32", "shape": [25 * 10**9], "data_offsets": [0, 100 * 10**9]}}
    put_weights(saved, safetensors_file(header, b"\0" * 16), commit)
    err = expect_refused(CorruptFileError, "model.safetensors", lambda: load_checkpoint(saved), max_peak_bytes=1 << 20)
    assert "out of range" in str(err)


@pytest.mark.parametrize("header, data, problem", [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12, "overlaps"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}}, b"\0" * 12, "out of range"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8, "gap"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8, "cover 4 bytes of a 8-byte"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "needs 12 bytes"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}, b"\0" * 8, "0 <= begin <= end"),
    ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8, "non-negative integers"),
    ({"a": {"dtype": "OBJECT", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8, "dtype 'OBJECT' is not allowed"),
    ({"a": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, b"\0" * 8, "dtype 'C64' is not allowed"),
    ({"a": {"dtype": [], "shape": None, "data_offsets": None}}, b"", "dtype [] is not allowed"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8], "code": "x"}}, b"\0" * 8, "expected keys"),
    ({"__metadata__": {"k": 1}}, b"", "__metadata__ must map strings to strings"),
    ({"a": [1, 2]}, b"", "expected keys"),
])
def test_malformed_headers_are_refused(saved, commit, header, data, problem):
    put_weights(saved, safetensors_file(header, data), commit)
    err = expect_refused(CorruptFileError, "model.safetensors", lambda: load_checkpoint(saved))
    assert problem in str(err)


@pytest.mark.parametrize("cut", [0, 4, 9, "half", -1])
def test_truncated_weights_are_refused(saved, commit, cut):
    data = (saved / "model.safetensors").read_bytes()
    end = len(data) // 2 if cut == "half" else cut
    put_weights(saved, data[:end], commit)
    expect_refused(CorruptFileError, "model.safetensors", lambda: load_checkpoint(saved))


def test_header_that_is_not_json_or_not_an_object(saved, commit):
    put_weights(saved, struct.pack("<Q", 5) + b"{oops", commit)
    expect_refused(CorruptFileError, "model.safetensors", lambda: load_checkpoint(saved))
    put_weights(saved, struct.pack("<Q", 2) + b"[]", commit)
    expect_refused(CorruptFileError, "model.safetensors", lambda: load_checkpoint(saved))
    nested = b"{" + b'"a":' * 0 + b"[" * 50 + b"]" * 50 + b"}"
    put_weights(saved, struct.pack("<Q", len(nested)) + nested, commit)
    expect_refused(CorruptFileError, "model.safetensors", lambda: load_checkpoint(saved))


def test_weights_of_the_wrong_shape_or_dtype_for_the_model(saved, dense_model):
    expected = dense_model.state_dict()
    expected["kernel"] = torch.zeros(5, 3)
    err = expect_refused(WeightMismatchError, "model.safetensors",
                         lambda: load_checkpoint(saved, expected_weights=expected))
    assert "weight 'kernel' has shape (4, 3), expected (5, 3)" in str(err)
    expected = {k: v.double() for k, v in dense_model.state_dict().items()}
    err = expect_refused(WeightMismatchError, "model.safetensors",
                         lambda: load_checkpoint(saved, expected_weights=expected))
    assert "has dtype F32, expected F64" in str(err)


def test_file_modified_after_commit_fails_the_manifest(saved):
    original = (saved / "model.safetensors").read_bytes()
    data = bytearray(original)
    data[-1] ^= 0xFF  # same size, one flipped bit of a weight
    (saved / "model.safetensors").write_bytes(bytes(data))
    err = expect_refused(ManifestError, "model.safetensors", lambda: load_checkpoint(saved))
    assert "sha256 differs" in str(err)
    (saved / "model.safetensors").write_bytes(original)
    load_checkpoint(saved)
    (saved / "vocab.json").write_text('{"the": 2}\n')
    expect_refused(ManifestError, "vocab.json", lambda: load_checkpoint(saved, verify=True))


def test_grown_or_truncated_file_fails_the_manifest(saved):
    with open(saved / "run.json", "ab") as f:
        f.write(b" " * 10)
    expect_refused(ManifestError, "run.json", lambda: load_checkpoint(saved))


def test_missing_config_json(saved, commit):
    os.unlink(saved / "config.json")
    err = expect_refused(ManifestError, "config.json", lambda: load_checkpoint(saved))
    assert "listed in manifest.json but missing" in str(err)
    commit(saved)  # a manifest that does not list it either
    expect_refused(CheckpointNotFoundError, "config.json", lambda: load_checkpoint(saved))
    expect_refused(CheckpointNotFoundError, "config.json", lambda: load_checkpoint(saved, verify=False))


@pytest.mark.parametrize("class_name", ["Lambda", "os.system", "builtins.eval", "__import__", "Module", "Layer"])
def test_config_naming_unknown_or_foreign_class(saved, commit, class_name):
    config = {"class_name": class_name, "config": {"function": "os.system('touch pwned')"},
              "module": "builtins", "registered_name": class_name}
    (saved / "config.json").write_text(json.dumps(config))
    commit(saved)
    ckpt = load_checkpoint(saved)  # reading is harmless; building refuses
    err = expect_refused(CheckpointConfigError, "config.json", lambda: build_model(ckpt))
    assert class_name in str(err)


def test_config_with_arguments_the_class_refuses(saved, commit):
    (saved / "config.json").write_text(json.dumps({"class_name": "Dense", "config": {"units": "many", "x": 1}}))
    commit(saved)
    expect_refused(CheckpointConfigError, "config.json", lambda: build_model(load_checkpoint(saved)))


@pytest.mark.parametrize("depth", [65, 10_000, 1_000_000])
def test_deeply_nested_json_is_a_typed_error_not_recursion(saved, commit, depth):
    (saved / "config.json").write_bytes(b'{"class_name": "Dense", "config": ' + b"[" * depth + b"]" * depth + b"}")
    commit(saved)
    err = expect_refused(CorruptFileError, "config.json", lambda: load_checkpoint(saved), max_peak_bytes=16 << 20)
    assert "nested" in str(err)


def test_gigantic_json_is_refused_before_reading(saved, commit):
    path = saved / "config.json"
    with open(path, "wb") as f:
        f.truncate(64 << 30)  # a 64 GiB sparse file: refused on its size, never read
    (saved / "manifest.json").unlink()
    expect_refused(CorruptFileError, "config.json", lambda: load_checkpoint(saved, verify=False),
                   max_peak_bytes=1 << 20)
    manifest = {"format": "lstmtext.checkpoint", "version": 1, "files": {
        "config.json": {"sha256": "0" * 64, "size": 64 << 30},
        "model.safetensors": {"sha256": "0" * 64, "size": 1}}}
    (saved / "manifest.json").write_text(json.dumps(manifest))
    err = expect_refused(CorruptFileError, "config.json", lambda: load_checkpoint(saved), max_peak_bytes=1 << 20)
    assert "limit" in str(err)


@pytest.mark.parametrize("text, problem", [
    (b'{"class_name": "Dense", "config": {"units": NaN}}', "NaN is not valid JSON"),
    (b'{"class_name": "Dense", "class_name": "Lambda", "config": {}}', "duplicate key 'class_name'"),
    (b'\xff\xfe{}', "not UTF-8"),
    (b'{"class_name": "Dense", "config": {"units": 1' + b"0" * 5000 + b"}}", "invalid JSON"),
    (b"[]", "must be a JSON object"),
])
def test_ambiguous_or_non_strict_json_config(saved, commit, text, problem):
    (saved / "config.json").write_bytes(text)
    commit(saved)
    err = expect_refused(CheckpointError, "config.json", lambda: load_checkpoint(saved))
    assert problem in str(err)


def test_manifest_cannot_point_outside_the_folder(saved):
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["files"]["../../etc/passwd"] = {"sha256": "0" * 64, "size": 1}
    (saved / "manifest.json").write_text(json.dumps(manifest))
    err = expect_refused(ManifestError, "manifest.json", lambda: load_checkpoint(saved))
    assert "not a plain file name" in str(err)


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'{"format": "other"}', b'{"format": "lstmtext.checkpoint", '
                                  b'"version": 1, "files": {"config.json": {"sha256": "xyz", "size": 1}}}'])
def test_malformed_manifest(saved, body):
    (saved / "manifest.json").write_bytes(body)
    expect_refused(ManifestError, "manifest.json", lambda: load_checkpoint(saved))


def test_special_files_are_never_opened(saved, commit):
    os.unlink(saved / "model.safetensors")
    os.symlink("/dev/zero", saved / "model.safetensors")  # would never end
    os.unlink(saved / "config.json")
    os.mkfifo(saved / "config.json")  # would block forever
    expect_refused(CorruptFileError, "config.json", lambda: load_checkpoint(saved, verify=False))
    expect_refused(ManifestError, "config.json", lambda: load_checkpoint(saved))
    os.unlink(saved / "config.json")
    (saved / "config.json").write_text(json.dumps({"class_name": "Dense", "config": {"units": 3}}))
    err = expect_refused(CorruptFileError, "model.safetensors", lambda: load_checkpoint(saved, verify=False))
    assert "not a regular file" in str(err)


@pytest.mark.parametrize("trainer", [
    {"format": "lstmtext.trainer", "version": 1, "state": None, "optimizer": {"__tensor__": "missing"}},
    {"format": "lstmtext.trainer", "version": 1, "state": {"__float__": "nope"}, "optimizer": None},
    {"format": "lstmtext.trainer", "version": 1, "state": {"__float__": ["nan"]}, "optimizer": None},
    {"format": "lstmtext.trainer", "version": 1, "state": {"__dict__": [[[1], 2]]}, "optimizer": None},
    {"format": "lstmtext.trainer", "version": 1, "state": {"__tuple__": 3}, "optimizer": None},
    {"format": "lstmtext.trainer", "version": 1, "state": [1], "optimizer": None},
    {"format": "pickle", "version": 1, "state": None, "optimizer": None},
])
def test_malformed_trainer_json(saved, commit, trainer):
    (saved / "trainer.json").write_text(json.dumps(trainer))
    commit(saved)
    expect_refused(CorruptFileError, "trainer.json", lambda: load_checkpoint(saved))
