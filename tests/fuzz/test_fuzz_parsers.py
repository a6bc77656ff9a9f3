"""A bounded, deterministic fuzz run over the tokenizer, pad_sequences, the model config parser, the TOML run
config and the service's request body: nothing escapes but the errors each one documents (the long run is
``bench/bench_fuzz.py``; the checkpoint reader's run is ``tests/checkpoint/test_checkpoint_fuzz.py``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import parser_targets as pt
import pytest
from hypothesis import HealthCheck, given, settings

# derandomize + no example database: the same inputs on every run and machine, so a failure is never flaky
FUZZ = settings(max_examples=300, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


@FUZZ
@given(pt.tokenizer_inputs)
def test_fuzz_tokenizer_texts_to_sequences(data):
    pt.encode_text(data)


@FUZZ
@given(pt.tokenizer_file_inputs)
def test_fuzz_tokenizer_and_vocabulary_files(data):
    pt.load_tokenizer_file(data)


@settings(FUZZ, max_examples=600)
@given(pt.pad_inputs)
def test_fuzz_pad_sequences(kwargs):
    pt.pad(kwargs)


@FUZZ
@given(pt.model_config_inputs)
def test_fuzz_model_config_parser(data):
    pt.build_from_config(data)


@FUZZ
@given(pt.toml_inputs)
def test_fuzz_toml_run_config(data):
    pt.load_run_config(data)


@pytest.fixture(scope="module")
def service_client():
    pytest.importorskip("fastapi")
    pytest.importorskip("prometheus_client")
    from fastapi.testclient import TestClient

    from lstmtext.service import create_app

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
    from svc_helpers import wait_ready
    from svc_tiny import tiny_predictor

    with TestClient(create_app(tiny_predictor())) as client:
        wait_ready(client)
        yield client


@settings(FUZZ, max_examples=200)
@given(body=pt.service_bodies)
def test_fuzz_service_request_body(service_client, body):
    pt.post_body(service_client, body)


def test_fuzz_targets_ran():
    # Runs after the fuzz tests in file order; a target that silently stopped being called would show here.
    names = ["tokenizer", "tokenizer file", "pad_sequences", "model config", "run config (TOML)"]
    if importlib.util.find_spec("fastapi") and importlib.util.find_spec("prometheus_client"):
        names.append("service request body")
    assert all(pt.COUNTS.get(name, 0) >= 200 for name in names), pt.COUNTS
