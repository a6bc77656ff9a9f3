"""A bounded, deterministic fuzz run over the checkpoint reader and the config parser: no crash other
than a typed CheckpointError (the long run is ``bench/fuzz_checkpoint.py``)."""

from __future__ import annotations

import fuzz_targets as ft
from hypothesis import HealthCheck, given, settings

FUZZ = settings(max_examples=400, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(ft.tensor_file_inputs)
def test_fuzz_safetensors_reader(data):
    ft.read_tensor_file(data)


@FUZZ
@given(ft.config_inputs)
def test_fuzz_config_parser(data):
    ft.parse_config(data)


@FUZZ
@given(ft.tree_inputs)
def test_fuzz_trainer_tree_decoder(tree):
    ft.decode_trainer_tree(tree)


@settings(FUZZ, max_examples=100)
@given(ft.rng_states())
def test_fuzz_rng_state_restore(state):
    ft.restore_rng(state)


@FUZZ
@given(ft.keras_configs())
def test_fuzz_keras_config_parser(config):
    ft.parse_keras(config)


def test_fuzz_targets_ran():
    # Runs after the fuzz tests in file order; a target that silently stopped being called would show here.
    assert all(ft.COUNTS.get(name, 0) >= 100 for name in ("safetensors reader", "config parser",
                                                          "trainer tree decoder", "RNG state restorer",
                                                          "keras config parser")), ft.COUNTS
