"""Round trips through a checkpoint folder: weights, optimizer, RNG and trainer state come back exactly."""

from __future__ import annotations

import json
import math
import os
import random

import numpy as np
import pytest
import torch

from lstmtext.checkpoint import (
    CheckpointConfigError,
    CheckpointError,
    CheckpointNotFoundError,
    ManifestError,
    WeightMismatchError,
    capture_rng_state,
    flatten_optimizer_state,
    load_checkpoint,
    make_run_info,
    restore_rng_state,
    save_checkpoint,
    unflatten_optimizer_state,
)
from lstmtext.checkpoint.tree import decode_tree, encode_tree
from lstmtext.layers import Dense, serialize
from lstmtext.models.saving import build_model

DENSE = {"class_name": "Dense", "config": {"units": 1}}


def test_folder_layout_and_manifest_lists_every_file(saved):
    names = sorted(p.name for p in saved.iterdir())
    assert names == ["config.json", "manifest.json", "model.safetensors", "optimizer.safetensors", "run.json",
                     "trainer.json", "vocab.json"]
    manifest = json.loads((saved / "manifest.json").read_text())
    assert sorted(manifest["files"]) == [n for n in names if n != "manifest.json"]
    assert manifest["files"]["model.safetensors"]["size"] == (saved / "model.safetensors").stat().st_size


def test_weights_and_all_dtypes_round_trip_bit_exact(tmp_path):
    weights = {
        "f32": torch.randn(3, 5),
        "f64": torch.randn(2, dtype=torch.float64),
        "bf16": torch.randn(4).to(torch.bfloat16),
        "f16": torch.randn(4).half(),
        "i64": torch.arange(6).reshape(2, 3),
        "u8": torch.arange(5, dtype=torch.uint8),
        "bool": torch.tensor([True, False]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 7),
        "strided": torch.randn(4, 6).t(),  # non-contiguous
    }
    weights["tied"] = weights["f32"]  # shared storage is stored as two tensors
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "c", config=DENSE, weights=weights))
    assert set(ckpt.weights) == set(weights)
    for name, t in weights.items():
        got = ckpt.weights[name]
        assert got.dtype == t.dtype and got.shape == t.shape and got.device.type == "cpu"
        assert torch.equal(got, t), name


def test_model_config_rebuilds_the_layer(saved, dense_model):
    ckpt = load_checkpoint(saved)
    layer = build_model(ckpt)
    assert isinstance(layer, Dense) and layer.get_config() == dense_model.get_config()
    layer(torch.ones(1, 4))
    layer.load_state_dict(ckpt.weights)
    x = torch.randn(5, 4)
    assert torch.equal(layer(x), dense_model(x))


def test_trainer_vocab_and_run_state_round_trip(tmp_path):
    state = {"epoch": 2, "history": {"loss": [0.5, math.nan], "val_loss": [math.inf, -math.inf]},
             "tuple": (1, (2, "x")), 7: {"int_key": None}, "__tensor__": "not a marker",
             "np": np.float32(0.25), "t": torch.arange(3)}
    vocab = {"word_index": {"the": 1, "a": 2}, "index_word": {1: "the", 2: "a"}, "order": ["z", "a"]}
    run = make_run_info(seed=7, device="cpu", metrics={"loss": [1.0]}, config={"batch_size": 128})
    ckpt = load_checkpoint(save_checkpoint(tmp_path / "c", config=DENSE, weights={"w": torch.zeros(1)},
                                           trainer_state=state, vocab=vocab, run_info=run))
    got = ckpt.trainer_state
    assert got["epoch"] == 2 and got["tuple"] == (1, (2, "x")) and got[7] == {"int_key": None}
    assert math.isnan(got["history"]["loss"][1]) and got["history"]["val_loss"] == [math.inf, -math.inf]
    assert got["__tensor__"] == "not a marker" and got["np"] == 0.25 and torch.equal(got["t"], torch.arange(3))
    assert ckpt.vocab == vocab and list(ckpt.vocab["word_index"]) == ["the", "a"]
    assert ckpt.run_info == run and run["command"] and run["saved_at"].endswith("Z")
    assert ckpt.run_info["seed"] == 7 and "torch" in ckpt.run_info["library_versions"]


def test_tree_refuses_values_it_cannot_store_exactly():
    with pytest.raises(CheckpointError, match="cannot store a set at a/0"):
        encode_tree({"a": [{1, 2}]})
    with pytest.raises(CheckpointError, match="cannot store a tensor at x"):
        encode_tree({"x": torch.zeros(1)})  # no tensor sink: JSON-only files
    assert decode_tree(encode_tree({(1, "a"): -0.0})) == {(1, "a"): -0.0}


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.8, 0.95)),
    lambda p: torch.optim.AdamW(p, lr=0.01, amsgrad=True),
    lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
    lambda p: torch.optim.RMSprop(p, lr=0.01, centered=True),
    lambda p: torch.optim.Adagrad(p, lr=0.1),
])
def test_optimizer_state_round_trip_continues_bit_identically(tmp_path, make_opt):
    def new_model():
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))

    data = torch.randn(16, 6, generator=torch.Generator().manual_seed(1))

    def train(model, opt, steps):
        for _ in range(steps):
            opt.zero_grad()
            model(data).square().mean().backward()  # dropout draws from the global torch RNG
            opt.step()

    ref = new_model()
    ref_opt = make_opt(ref.parameters())
    torch.manual_seed(5)
    train(ref, ref_opt, 6)

    model = new_model()
    opt = make_opt(model.parameters())
    torch.manual_seed(5)
    train(model, opt, 3)
    save_checkpoint(tmp_path / "c", config=DENSE, weights=model.state_dict(), optimizer_state=opt.state_dict(),
                    trainer_state={"rng": capture_rng_state()})
    torch.manual_seed(123)  # the resumed process starts elsewhere

    ckpt = load_checkpoint(tmp_path / "c")
    resumed = new_model()
    resumed.load_state_dict(ckpt.weights)
    resumed_opt = make_opt(resumed.parameters())
    resumed_opt.load_state_dict(ckpt.optimizer_state)
    restore_rng_state(ckpt.trainer_state["rng"])
    train(resumed, resumed_opt, 3)
    for a, b in zip(ref.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_flatten_optimizer_state_is_exact():
    p = torch.nn.Parameter(torch.randn(3))
    opt = torch.optim.Adam([p])
    p.grad = torch.ones(3)
    opt.step()
    tensors, tree = flatten_optimizer_state(opt.state_dict())
    assert set(tensors) == {"optimizer/state/0/step", "optimizer/state/0/exp_avg", "optimizer/state/0/exp_avg_sq"}
    back = unflatten_optimizer_state(tensors, json.loads(json.dumps(tree)))
    assert back["param_groups"] == opt.state_dict()["param_groups"]
    assert back["param_groups"][0]["betas"] == (0.9, 0.999)
    assert all(torch.equal(back["state"][0][k], v) for k, v in opt.state_dict()["state"][0].items())


def test_rng_state_round_trip_through_json_covers_every_generator():
    gen = torch.Generator().manual_seed(9)
    random.gauss(0, 1)  # leaves a cached gaussian in Python's state
    np.random.standard_normal()  # and one in NumPy's
    state = json.loads(json.dumps(capture_rng_state({"shuffle": gen})))

    def draw():
        return (random.random(), random.gauss(0, 1), np.random.rand(), np.random.standard_normal(),
                torch.rand(3).tolist(), torch.randperm(10, generator=gen).tolist())

    first = draw()
    restore_rng_state(state, {"shuffle": gen})
    assert draw() == first


def test_rng_state_garbage_is_refused_without_touching_generators():
    state = capture_rng_state()
    before = torch.get_rng_state()
    bad = {**state, "torch_cpu": "AAAA"}
    with pytest.raises(CheckpointError, match="trainer.json: RNG state torch_cpu: 3 bytes, expected 5056"):
        restore_rng_state(bad)
    bad = {**state, "python": {**state["python"], "internal": [1] * 3}}
    with pytest.raises(CheckpointError, match="python.internal"):
        restore_rng_state(bad)
    bad = {**state, "python": {**state["python"], "version": 0}}  # found by bench/fuzz_checkpoint.py
    with pytest.raises(CheckpointError, match="python.version: 0 is not this Python's random state version"):
        restore_rng_state(bad)
    with pytest.raises(CheckpointError, match=r"generators\.g: missing"):
        restore_rng_state(state, {"g": torch.Generator()})
    assert torch.equal(torch.get_rng_state(), before)


def test_saving_over_a_checkpoint_replaces_it_and_drops_stale_files(saved):
    save_checkpoint(saved, config=DENSE, weights={"w": torch.ones(2)})
    assert not (saved / "optimizer.safetensors").exists() and not (saved / "trainer.json").exists()
    ckpt = load_checkpoint(saved)
    assert ckpt.optimizer_state is None and ckpt.vocab is None and torch.equal(ckpt.weights["w"], torch.ones(2))


def test_uncommitted_folder_is_refused_unless_verify_is_off(saved):
    os.unlink(saved / "manifest.json")
    with pytest.raises(ManifestError, match=r"manifest\.json: missing: the checkpoint was not committed"):
        load_checkpoint(saved)
    assert load_checkpoint(saved, verify=False).trainer_state == {"epoch": 1, "step": 1}


def test_load_without_training_state_skips_optimizer(saved):
    ckpt = load_checkpoint(saved, load_training_state=False)
    assert ckpt.optimizer_state is None and ckpt.trainer_state is None and ckpt.vocab == {"the": 1}


def test_expected_weights_accepts_shapes_or_tensors(saved, dense_model):
    load_checkpoint(saved, expected_weights=dense_model.state_dict())
    load_checkpoint(saved, expected_weights={"kernel": (4, 3), "bias": [3]})
    with pytest.raises(WeightMismatchError, match=r"model\.safetensors: missing weights \['extra'\]"):
        load_checkpoint(saved, expected_weights={"kernel": (4, 3), "bias": [3], "extra": (1,)})


def test_missing_folder_and_bad_config_envelope(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="nowhere: checkpoint folder not found"):
        load_checkpoint(tmp_path / "nowhere")
    with pytest.raises(CheckpointConfigError, match=r"config\.json: must be \{"):
        save_checkpoint(tmp_path / "c", config={"units": 1}, weights={})
    with pytest.raises(CheckpointError, match="'w' is a list, not a torch.Tensor"):
        save_checkpoint(tmp_path / "c", config=DENSE, weights={"w": [1.0]})


def test_config_from_serialize_is_keras_envelope(tmp_path, dense_model):
    path = save_checkpoint(tmp_path / "c", config=serialize(dense_model), weights=dense_model.state_dict())
    config = json.loads((path / "config.json").read_text())
    assert config["class_name"] == "Dense" and config["config"]["units"] == 3


@pytest.mark.gpu
def test_cuda_checkpoint_loads_on_cpu_and_back(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    p = torch.nn.Parameter(torch.randn(4, 3, device="cuda"))
    opt = torch.optim.Adam([p])
    p.grad = torch.ones_like(p)
    opt.step()
    path = save_checkpoint(tmp_path / "c", config=DENSE, weights={"w": p}, optimizer_state=opt.state_dict(),
                           trainer_state={"rng": capture_rng_state()})
    cpu = load_checkpoint(path)
    assert cpu.weights["w"].device.type == "cpu" and torch.equal(cpu.weights["w"], p.detach().cpu())
    cuda = load_checkpoint(path, device="cuda")
    assert cuda.weights["w"].is_cuda and torch.equal(cuda.weights["w"], p.detach())
    assert len(cpu.trainer_state["rng"]["torch_cuda"]) == torch.cuda.device_count()
    restore_rng_state(cpu.trainer_state["rng"])
