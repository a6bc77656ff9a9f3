"""Hostile inputs outside the checkpoint corpus, each a bug the fuzz run or the issue-11 audit found: every
one must give the typed error of its reader, fast, and allocate nothing near what it asks for."""

from __future__ import annotations

import json
import os
import resource
import time

import pytest

from lstmtext.checkpoint import CheckpointConfigError, CheckpointError
from lstmtext.checkpoint import manifest as mf
from lstmtext.errors import ConfigError, DataError
from lstmtext.layers import Dense, Embedding, deserialize, serialize
from lstmtext.models import Sequential, load_model
from lstmtext.predictor import Predictor
from lstmtext.run.config import MAX_TOML_BYTES, resolve_run_config
from lstmtext.run.train import read_run_config
from lstmtext.text import Tokenizer, Vocab

DEEP = 100_000


def _fast(fn, error, match):
    start = time.perf_counter()
    with pytest.raises(error, match=match) as info:
        fn()
    assert time.perf_counter() - start < 1.0
    return info.value


# --- TOML run config -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [f"a = {'[' * DEEP}{']' * DEEP}", f"a = {'{b=' * DEEP}1{'}' * DEEP}",
                                  f"[train]\nepochs = {'[' * 5000}1{']' * 5000}"])
def test_deeply_nested_toml_is_a_config_error(tmp_path, text):
    path = tmp_path / "run.toml"
    path.write_text(text)
    err = _fast(lambda: resolve_run_config(config_file=path), ConfigError, "nested too deeply")
    assert "run.toml" in str(err)


def test_gigantic_or_special_toml_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.toml"
    with open(path, "wb") as f:
        f.truncate(64 << 30)  # sparse: refused on its size, never read
    _fast(lambda: resolve_run_config(config_file=path), ConfigError, f"larger than the {MAX_TOML_BYTES}-byte limit")
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)  # opening it would block forever
    _fast(lambda: resolve_run_config(config_file=fifo), ConfigError, "not a regular file")


def test_toml_at_the_size_limit_is_read(tmp_path):
    path = tmp_path / "run.toml"
    head = b'[train]\nepochs = 2\n#'
    path.write_bytes(head + b"x" * (MAX_TOML_BYTES - len(head)))
    assert resolve_run_config(config_file=path).experiment.train.epochs == 2


# --- tokenizer and vocabulary files ------------------------------------------------------------------------


@pytest.mark.parametrize("reader, what", [(Tokenizer.load, "tokenizer file"), (Vocab.load, "vocabulary file")])
@pytest.mark.parametrize("body", [b"[" * DEEP + b"]" * DEEP, b'{"a": ' * DEEP + b"1" + b"}" * DEEP,
                                  b'{"a": 1' + b"0" * 5000 + b"}"])
def test_deep_or_huge_number_json_files_are_data_errors(tmp_path, reader, what, body):
    path = tmp_path / "tok.json"
    path.write_bytes(body)
    err = _fast(lambda: reader(path), DataError, "not readable JSON")
    assert what in str(err) and "tok.json" in str(err)


def test_vocabulary_counts_beyond_int64_are_a_data_error(tmp_path):
    good = Tokenizer(Vocab(["a", "b"], [2, 1])).to_json_dict()
    good["vocab"]["counts"] = [2**64, 1]
    (tmp_path / "tok.json").write_text(json.dumps(good))
    _fast(lambda: Tokenizer.load(tmp_path / "tok.json"), DataError, "fit in int64")


@pytest.mark.parametrize("option", ["num_words", "skip_top", "start_char", "oov_char", "index_from"])
def test_tokenizer_ids_beyond_int32_are_a_config_error(option):
    with pytest.raises(ConfigError, match=rf"{option} must be a non-negative integer below 2\*\*31, got 18446744073"):
        Tokenizer({"a": 1}, **{option: 2**64})
    Tokenizer({"a": 1}, **{option: 2**31 - 1})  # the largest accepted


# --- model config (deserialize / Sequential.from_config) --------------------------------------------------------


@pytest.mark.parametrize("shape", [[True, 3], True, [None, {"a": 1}], [None, "config"], [None, -1], [None] * 9])
def test_sequential_build_input_shape_must_be_a_shape(shape):
    config = Sequential([Dense(2)]).get_config()
    config["build_input_shape"] = shape
    with pytest.raises(ConfigError, match="build_input_shape must be a list of 1 to 8 non-negative integers"):
        Sequential.from_config(config)


@pytest.mark.parametrize("initializer", [{"class_name": "RandomUniform", "config": {"minval": "x"}},
                                         {"class_name": "RandomUniform", "config": ["a"]}])
def test_layer_config_with_a_malformed_initializer_is_a_config_error(initializer):
    spec = serialize(Embedding(10, 3))
    spec["config"]["embeddings_initializer"] = initializer
    with pytest.raises(ConfigError, match="layer 'Embedding': bad config: ValueError"):
        deserialize(spec)


# --- checkpoint config asking for far more weights than the file holds -------------------------------------------


@pytest.fixture
def huge_config_checkpoint(tmp_path):
    """A committed checkpoint whose config.json asks for a 100,000,000 x 2 embedding (800 MB) over tiny weights."""
    model = Sequential([Embedding(10, 2), Dense(1)])
    model.build((None, 5))
    model.save(tmp_path / "ckpt")
    folder = tmp_path / "ckpt"
    config = json.loads((folder / "config.json").read_text())
    config["config"]["layers"][0]["config"]["input_dim"] = 100_000_000
    (folder / "config.json").write_text(json.dumps(config))
    mf.write_manifest(folder, {p.name: p.read_bytes() for p in sorted(folder.iterdir())
                               if p.is_file() and p.name != mf.MANIFEST})
    return folder


@pytest.mark.parametrize("loader", [load_model, Predictor.from_checkpoint])
def test_config_asking_for_more_weights_than_the_file_holds_allocates_nothing(huge_config_checkpoint, loader):
    # Before the fix the 800 MB embedding was allocated and initialized (3.7 s here) before the weights
    # were compared with it.
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    err = _fast(lambda: loader(huge_config_checkpoint), CheckpointConfigError, "needs 800000000 bytes")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert "config.json" in str(err) and "embeddings" in str(err)
    assert grown_mib < 100, f"peak resident memory grew {grown_mib:.0f} MiB"


def test_config_within_the_weights_file_still_loads(tmp_path):
    model = Sequential([Embedding(1000, 8), Dense(1)])
    model.build((None, 5))
    model.save(tmp_path / "ckpt")
    assert load_model(tmp_path / "ckpt").count_params() == model.count_params()


# --- run.json of a checkpoint folder -------------------------------------------------------------------------------


def test_deeply_nested_run_json_is_a_checkpoint_error(tmp_path):
    (tmp_path / "run.json").write_bytes(b'{"config": ' + b"[" * DEEP + b"]" * DEEP + b"}")
    err = _fast(lambda: read_run_config(tmp_path), CheckpointError, "nested")
    assert "run.json" in str(err)
