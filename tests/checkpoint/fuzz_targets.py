"""Fuzz targets and input strategies for the checkpoint reader and the config parser.

Each target feeds one input to the package's reading code and returns normally or raises a
:class:`CheckpointError`; anything else escaping is a bug. Used by ``test_checkpoint_fuzz.py`` (a
short deterministic run) and ``bench/fuzz_checkpoint.py`` (a long run whose counts SECURITY.md cites).
"""

from __future__ import annotations

import json
import random
import struct
import warnings
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st

import lstmtext.models  # noqa: F401  (registers Sequential: the registry must not change mid-run)
from lstmtext.checkpoint import CheckpointError, check_model_config, restore_rng_state
from lstmtext.checkpoint.rng import capture_rng_state
from lstmtext.checkpoint.safejson import parse_json
from lstmtext.checkpoint.tensorfile import DTYPES, decode_tensors, encode_tensors
from lstmtext.checkpoint.tree import decode_tree
from lstmtext.layers import registered_layers, serialize
from lstmtext.models.saving import build_model

COUNTS: dict[str, int] = {}


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


# --- safetensors reader -------------------------------------------------------------------------------

_TORCH_DTYPES = [dt for dt, _ in DTYPES.values()]


@st.composite
def valid_tensor_files(draw) -> bytes:
    tensors = {}
    for i in range(draw(st.integers(0, 4))):
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        dtype = draw(st.sampled_from(_TORCH_DTYPES))
        tensors[f"t{i}"] = torch.zeros(shape, dtype=dtype)
    return encode_tensors(tensors)


@st.composite
def mutated_tensor_files(draw) -> bytes:
    data = bytearray(draw(valid_tensor_files()))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "truncate", "append", "length", "insert"]))
        if kind == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[draw(st.integers(0, len(data))):]
        elif kind == "append":
            data += draw(st.binary(max_size=16))
        elif kind == "length" and len(data) >= 8:
            data[:8] = struct.pack("<Q", draw(st.integers(0, 2**64 - 1)))
        elif kind == "insert":
            pos = draw(st.integers(0, len(data)))
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


_json_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
                 | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
json_values = st.recursive(
    _json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=16)


@st.composite
def forged_headers(draw) -> bytes:
    header: dict[str, Any] = {}
    for i in range(draw(st.integers(0, 4))):
        entry = {
            "dtype": draw(st.sampled_from([*DTYPES, "F8_E4M3", "C64", "U64", "", 3, None])),
            "shape": draw(st.lists(st.integers(-2, 6), max_size=3) | json_values),
            "data_offsets": draw(st.lists(st.integers(-4, 64), min_size=0, max_size=3) | json_values),
        }
        if draw(st.booleans()):
            entry = draw(st.dictionaries(st.sampled_from(["dtype", "shape", "data_offsets", "x"]), json_values)) \
                if draw(st.booleans()) else entry
        header[draw(st.sampled_from([f"t{i}", "", "__metadata__"]))] = entry
    raw = json.dumps(header).encode()
    length = len(raw) if draw(st.booleans()) else draw(st.integers(0, 2 * len(raw) + 8))
    return struct.pack("<Q", length) + raw + draw(st.binary(max_size=64))


tensor_file_inputs = st.binary(max_size=256) | valid_tensor_files() | mutated_tensor_files() | forged_headers()


def read_tensor_file(data: bytes) -> None:
    """Target: decode a weights file, optionally against expected shapes."""
    _count("safetensors reader")
    try:
        tensors = decode_tensors(data, file="fuzz/model.safetensors")
    except CheckpointError:
        return
    for t in tensors.values():
        if not isinstance(t, torch.Tensor):
            raise AssertionError(f"decoded a {type(t).__name__}")
    try:
        decode_tensors(data, file="fuzz/model.safetensors", expected={"t0": (1,)})
    except CheckpointError:
        pass


# --- JSON config parser ---------------------------------------------------------------------------------


def _layer_configs() -> list[dict[str, Any]]:
    out = []
    for name, cls in sorted(registered_layers().items()):
        for args in ((1,), (10, 3), ()):
            try:
                out.append(serialize(cls(*args)))
                break
            except Exception:
                continue  # try the next argument shape
        else:
            out.append({"class_name": name, "config": {}})
    return out


_LAYER_CONFIGS = _layer_configs()  # once: automatic layer names change with every construction


@st.composite
def layer_configs(draw) -> dict[str, Any]:
    base = draw(st.sampled_from(_LAYER_CONFIGS))
    config = dict(base["config"])
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*config, "name", "dtype", "trainable", "x"])) if config else "x"
        config[key] = draw(json_values)
    class_name = draw(st.sampled_from([base["class_name"], "Lambda", "os.system", "", "Sequential"])) \
        if draw(st.integers(0, 4)) == 0 else base["class_name"]
    return {"class_name": class_name, "config": config}


config_inputs = (st.binary(max_size=256) | json_values.map(lambda v: json.dumps(v).encode())
                 | layer_configs().map(lambda v: json.dumps(v).encode()))


def parse_config(data: bytes) -> None:
    """Target: parse config.json bytes and build the model they describe."""
    _count("config parser")
    try:
        config = check_model_config(parse_json(data, file="fuzz/config.json"), file="fuzz/config.json")
        build_model(decode_tree(config, file="fuzz/config.json"))
    except CheckpointError:
        return


# --- trainer.json trees and RNG states -----------------------------------------------------------------

_MARKERS = st.sampled_from(["__tensor__", "__tuple__", "__dict__", "__float__"])
tree_inputs = st.recursive(_json_scalars | st.builds(lambda k, v: {k: v}, _MARKERS, _json_scalars),
                           lambda c: st.lists(c, max_size=4) | st.builds(lambda k, v: {k: v}, _MARKERS, c)
                           | st.dictionaries(st.text(max_size=4), c, max_size=3), max_leaves=16)


def decode_trainer_tree(tree: Any) -> None:
    """Target: decode a trainer.json tree whose markers may be malformed."""
    _count("trainer tree decoder")
    try:
        decode_tree(tree, {"t": torch.zeros(1)}, file="fuzz/trainer.json")
    except CheckpointError:
        return


@st.composite
def rng_states(draw) -> Any:
    state = json.loads(json.dumps(capture_rng_state()))
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(sorted(state)))
        if isinstance(state[section], dict) and state[section] and draw(st.booleans()):
            state[section][draw(st.sampled_from(sorted(state[section])))] = draw(json_values)
        else:
            state[section] = draw(json_values)
    return state


def restore_rng(state: Any) -> None:
    """Target: restore a damaged RNG state; the global generators are put back afterwards."""
    _count("RNG state restorer")
    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a forged CUDA state list warns on a CPU machine
            restore_rng_state(state)
    except CheckpointError:
        pass
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])


# --- Keras config.json (the .keras importer) -------------------------------------------------------------


def _keras_base_config() -> dict[str, Any]:
    from lstmtext.interop.keras import _keras_model_config
    from lstmtext.layers import LSTM, Bidirectional, Dense, Dropout, Embedding

    layers = [Embedding(20, 4, mask_zero=True), Bidirectional(LSTM(3, return_sequences=True)), Dropout(0.1),
              LSTM(2), Dense(1, activation="sigmoid")]
    return json.loads(json.dumps(_keras_model_config(layers, (7,), "int32", "sequential")))


_KERAS_BASE = _keras_base_config()


def _slots(node: Any) -> list[tuple[Any, Any]]:
    out, stack = [], [node]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            items = list(current.items())
        else:
            items = list(enumerate(current)) if isinstance(current, list) else []
        for key, value in items:
            out.append((current, key))
            stack.append(value)
    return out


@st.composite
def keras_configs(draw) -> Any:
    config = json.loads(json.dumps(_KERAS_BASE))
    for _ in range(draw(st.integers(1, 4))):
        slots = _slots(config)
        container, key = slots[draw(st.integers(0, len(slots) - 1))]
        container[key] = draw(json_values | st.sampled_from(["Lambda", "function", "my.module", "GRU", "InputLayer"]))
    return config


def parse_keras(config: Any) -> None:
    """Target: translate a (damaged) Keras config and build each layer from registered classes."""
    from lstmtext.interop.keras import parse_keras_config

    _count("keras config parser")
    try:
        spec = parse_keras_config(config, file="fuzz.keras")
        for layer_spec in spec.layer_specs:
            build_model(layer_spec, file="fuzz.keras")
    except CheckpointError:
        return
