"""The pieces of distributed training that need no second process: sharding, sampler, loss scaling, set-up."""

from __future__ import annotations

import datetime

import numpy as np
import pytest
import torch
from ddp_launch import free_port

from lstmtext.errors import ConfigError
from lstmtext.layers import LSTM, Dense, Embedding
from lstmtext.models import Sequential
from lstmtext.training import distributed as dist_env
from lstmtext.training.data import epoch_permutation, make_data
from lstmtext.training.distributed_fit import DistributedFit
from lstmtext.training.losses import BinaryCrossentropy
from lstmtext.utils import set_random_seed

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def no_torchrun(monkeypatch):
    for v in TORCHRUN_VARS:
        monkeypatch.delenv(v, raising=False)


@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_shards_are_contiguous_cover_everything_and_differ_by_at_most_one(world):
    for count in range(0, 23):
        bounds = [dist_env.shard_bounds(count, world, r) for r in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == count
        assert all(bounds[r][1] == bounds[r + 1][0] for r in range(world - 1))
        sizes = [hi - lo for lo, hi in bounds]
        assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_sampler_ranks_together_take_exactly_the_one_process_batches():
    n, batch, world, seed = 23, 5, 3, 11
    for epoch in (0, 1):
        order = epoch_permutation(seed, epoch, n)
        per_rank = []
        for r in range(world):
            s = dist_env.DistributedBatchSampler(n, batch, seed=seed, rank=r, world_size=world)
            s.set_epoch(epoch)
            per_rank.append(list(s))
            assert len(s) == 5
        for k in range(5):
            together = sum((per_rank[r][k] for r in range(world)), [])
            assert together == order[k * batch:(k + 1) * batch].tolist()
    a = dist_env.DistributedBatchSampler(n, batch, seed=seed, rank=0, world_size=world)
    b = dist_env.DistributedBatchSampler(n, batch, seed=seed, rank=0, world_size=world)
    b.set_epoch(1)
    assert list(a) != list(b)  # a new permutation each epoch ...
    a.set_epoch(1)
    assert list(a) == list(b)  # ... that depends on (seed, epoch) only
    plain = dist_env.DistributedBatchSampler(7, 4, shuffle=False, rank=1, world_size=2)
    assert list(plain) == [[2, 3], [6]]


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ConfigError, match=r"rank must be in \[0, 2\), got 2"):
        dist_env.DistributedBatchSampler(10, 4, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="batch_size must be a positive integer, got 0"):
        dist_env.DistributedBatchSampler(10, 0)


def test_outside_torchrun_everything_is_one_process(no_torchrun):
    assert (dist_env.rank(), dist_env.world_size(), dist_env.local_rank()) == (0, 1, 0)
    assert dist_env.is_main_process()
    assert not dist_env.launched_distributed()
    assert dist_env.init_distributed() is False
    assert DistributedFit.start(None) is None
    with pytest.raises(ConfigError, match=r"RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT are not set: launch with e\.g\. "
                                          r"`torchrun --standalone --nproc-per-node 2 train\.py`"):
        dist_env.init_distributed(required=True)


def test_fit_distributed_true_outside_torchrun_says_how_to_launch(no_torchrun):
    model = Sequential([Embedding(10, 2), LSTM(2), Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ConfigError, match="launch with e.g. `torchrun"):
        model.fit(np.ones((4, 3), dtype="int64"), np.zeros(4), distributed=True, verbose=0)
    with pytest.raises(ConfigError, match="distributed must be True, False or None, got 'yes'"):
        model.fit(np.ones((4, 3), dtype="int64"), np.zeros(4), distributed="yes", verbose=0)


def test_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("LSTMTEXT_DIST_TIMEOUT", raising=False)
    assert dist_env.default_timeout() == datetime.timedelta(seconds=dist_env.DEFAULT_TIMEOUT_S)
    monkeypatch.setenv("LSTMTEXT_DIST_TIMEOUT", "2.5")
    assert dist_env.default_timeout() == datetime.timedelta(seconds=2.5)
    for bad in ("0", "-3", "soon"):
        monkeypatch.setenv("LSTMTEXT_DIST_TIMEOUT", bad)
        with pytest.raises(ConfigError, match=f"LSTMTEXT_DIST_TIMEOUT must be a positive number of seconds, got "
                                              f"'{bad}'"):
            dist_env.default_timeout()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match="WORLD_SIZE must be an integer, got 'two'"):
        dist_env.world_size()


def _model(reduction: str) -> Sequential:
    set_random_seed(3)
    m = Sequential([Embedding(20, 4), LSTM(3, kernel_regularizer="l2", activity_regularizer="l2"),
                    Dense(1, activation="sigmoid", kernel_regularizer="l1")])
    m.compile(optimizer="sgd", loss=BinaryCrossentropy(reduction=reduction))
    m.build((None, 5))
    return m


def _grads(model) -> list[torch.Tensor]:
    out = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    return out


@pytest.mark.parametrize("reduction", ["sum_over_batch_size", "sum", "mean_with_sample_weight"])
def test_scaled_rank_losses_average_to_the_global_batch_gradient(monkeypatch, reduction):
    """DDP averages the ranks' gradients; with the scaled losses that average is the global batch's gradient,
    for uneven shards and a rank with an empty share (3 ranks, batches of 5 then 2), regularizers included."""
    rng = np.random.default_rng(0)
    data = make_data(rng.integers(1, 20, size=(7, 5)), rng.integers(0, 2, size=7).astype("float32"),
                     rng.uniform(0.5, 2, size=7).astype("float32"))
    world, batch = 3, 5
    model = _model(reduction)
    order = epoch_permutation(5, 0, len(data))
    expected = []
    for xb, yb, swb in data.batches(batch, order):
        model.compute_loss(yb, model(xb, training=True), swb).backward()
        expected.append(_grads(model))
    ranks = []
    for r in range(world):
        fit = DistributedFit()
        fit.rank, fit.world_size = r, world
        ranks.append(fit)
    per_step: list[list[list[torch.Tensor]]] = [[], []]
    # The weighted reduction sums the shards' weights over ranks: here, the whole batch's.
    totals = iter([data.sample_weight[order[:5]].sum(), data.sample_weight[order[5:]].sum()] * world)
    monkeypatch.setattr(dist_env, "all_reduce_sum", lambda tensors, what="": [next(totals).double()])
    for fit in ranks:
        for k, (xb, yb, swb) in enumerate(fit.batches(data, batch, order)):
            loss = model.compute_loss(yb, model(xb, training=True), swb)
            fit.scale_loss(model, loss, swb).backward()
            per_step[k].append(_grads(model))
    assert [f.local_count for f in ranks] == [1, 1, 0]  # the last batch: 2 samples for 3 ranks
    for k in range(2):
        averaged = [torch.stack(g).mean(0) for g in zip(*per_step[k])]
        for got, want in zip(averaged, expected[k]):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


def test_batch_size_must_give_every_process_a_sample():
    fit = DistributedFit()
    fit.world_size = 4
    with pytest.raises(ConfigError, match="batch_size is the global batch .* split over 4 processes; it must be at "
                                          "least 4, got 3"):
        fit.begin(None, torch.device("cpu"), None, 3, 0, None)  # type: ignore[arg-type]


def test_a_one_process_group_trains_like_plain_fit(monkeypatch):
    """``torchrun --nproc-per-node 1``: the DDP path (wrapper, hooks, metric all-reduce) changes nothing."""
    rng = np.random.default_rng(1)
    x, y = rng.integers(1, 20, size=(37, 5)), rng.integers(0, 2, size=37).astype("float32")

    def train(distributed: bool):
        model = _model("sum_over_batch_size")
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        h = model.fit(x, y, batch_size=8, epochs=2, validation_split=0.25, verbose=0, distributed=distributed)
        return model.get_weights(), h.history

    w_plain, h_plain = train(False)
    for k, v in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(k, v)
    assert dist_env.init_distributed(backend="gloo", timeout=30)
    try:
        w_dist, h_dist = train(True)
    finally:
        dist_env.shutdown_distributed()
    assert not dist_env.is_initialized()
    for a, b in zip(w_plain, w_dist):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert sorted(h_dist) == sorted(h_plain)
    for name, values in h_plain.items():
        assert h_dist[name] == pytest.approx(values, rel=1e-6), name


def test_a_one_process_group_trains_a_two_input_functional_model_like_plain_fit(monkeypatch):
    """Distributed fit shards a dict of inputs by rows as it shards one array."""
    import lstmtext

    rng = np.random.default_rng(2)
    x = {"a": rng.integers(1, 20, size=(29, 5)), "b": rng.integers(1, 20, size=(29, 3))}
    y = rng.integers(0, 2, size=29).astype("float32")

    def train(distributed: bool):
        set_random_seed(3)
        a, b = lstmtext.Input(shape=(None,), name="a"), lstmtext.Input(shape=(None,), name="b")
        emb = Embedding(20, 4)
        both = lstmtext.layers.Concatenate()([LSTM(3)(emb(a)), LSTM(3)(emb(b))])
        model = lstmtext.Model({"a": a, "b": b}, Dense(1, activation="sigmoid")(both))
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, distributed=distributed)
        return model.get_weights()

    w_plain = train(False)
    for k, v in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
                 "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(k, v)
    assert dist_env.init_distributed(backend="gloo", timeout=30)
    try:
        w_dist = train(True)
    finally:
        dist_env.shutdown_distributed()
    for p, q in zip(w_plain, w_dist):
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-7)
