"""The compiled embedding, dropout and Adam kernels compute what the plain PyTorch formulas compute."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
import torch.nn.functional as F

from lstmtext.kernels import build
from lstmtext.kernels.training_ops import adam_update_, dropout, embedding_lookup, softmax_nll, softmax_nll_grad_
from lstmtext.layers import Dropout, Embedding
from lstmtext.training.optimizers import Adam


@pytest.fixture(autouse=True)
def _compiled():
    if build.kernel_disabled():
        pytest.skip("LSTMTEXT_DISABLE_KERNEL is set")
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler on this machine")
    assert build.load_ops() is not None, "the compiled kernels failed to build"


@pytest.mark.parametrize("threads", [1, 2])
def test_embedding_matches_f_embedding_values_and_gradient(threads):
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(0)
        weight = torch.randn(50, 7, generator=gen, requires_grad=True)
        # Repeated ids (a frequent id, as in text), every id of a small range, 2-D ids.
        ids = torch.cat([torch.zeros(40, dtype=torch.long), torch.randint(0, 50, (200,), generator=gen)]).view(16, 15)
        out = embedding_lookup(weight, ids)
        assert "Embedding" in type(out.grad_fn).__name__ and out.shape == (16, 15, 7)
        ref_w = weight.detach().clone().requires_grad_()
        ref = F.embedding(ids, ref_w)
        torch.testing.assert_close(out, ref, atol=0, rtol=0)
        g = torch.randn(out.shape, generator=gen)
        (dw,) = torch.autograd.grad(out, weight, g)
        (ref_dw,) = torch.autograd.grad(ref, ref_w, g)
        torch.testing.assert_close(dw, ref_dw, atol=1e-5, rtol=1e-5)
        assert dw[torch.isin(torch.arange(50), ids.unique(), invert=True)].eq(0).all()  # unused rows: exactly 0
    finally:
        torch.set_num_threads(old)


def test_embedding_gradient_is_deterministic_across_thread_counts():
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 30, (3000,), generator=gen)
    g = torch.randn(3000, 5, generator=gen)
    ops = build.load_ops()
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ops.embedding_backward(g, ids, 30)
        torch.set_num_threads(2)
        two = ops.embedding_backward(g, ids, 30)
    finally:
        torch.set_num_threads(old)
    assert torch.equal(one, two)


def test_embedding_out_of_range_id_raises_and_layer_uses_kernel():
    with pytest.raises(IndexError, match="id 9 is out of range"):
        embedding_lookup(torch.randn(9, 2), torch.tensor([[1, 9]]))
    layer = Embedding(20, 4)
    out = layer(torch.tensor([[1, 2, 3]]))
    assert "Embedding" in type(out.grad_fn).__name__
    torch.testing.assert_close(out, layer.embeddings[torch.tensor([[1, 2, 3]])])


def test_embedding_other_dtypes_fall_back_to_f_embedding():
    w = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    out = embedding_lookup(w, torch.tensor([4, 0]))
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, w[[4, 0]])


def test_dropout_keeps_with_probability_one_minus_rate_and_scales():
    x = torch.full((400, 500), 2.0)
    rate = 0.3
    y = dropout(x, rate, torch.Generator().manual_seed(3))
    kept = y.ne(0)
    n = x.numel()
    # Binomial(n, 0.7): 5 standard deviations is ~0.005 here.
    assert abs(kept.float().mean().item() - (1 - rate)) < 5 * math.sqrt(rate * (1 - rate) / n)
    assert torch.equal(y[kept], torch.full_like(y[kept], 2.0 / torch.tensor(1 - rate, dtype=torch.float32)))
    # Neighbouring elements and rows are independent: no visible pattern in the keep bits.
    k = kept.float()
    assert abs((k[:, 1:] * k[:, :-1]).mean().item() - (1 - rate) ** 2) < 0.01
    assert abs((k[1:] * k[:-1]).mean().item() - (1 - rate) ** 2) < 0.01


def test_dropout_gradient_uses_the_forward_mask():
    x = torch.randn(64, 33, requires_grad=True)
    y = dropout(x, 0.5, torch.Generator().manual_seed(5))
    assert "Dropout" in type(y.grad_fn).__name__
    g = torch.randn(64, 33)
    (dx,) = torch.autograd.grad(y, x, g)
    kept = y.detach().ne(0) | x.detach().eq(0)
    torch.testing.assert_close(dx, torch.where(kept, g / 0.5, torch.zeros(())))


def test_dropout_reproducible_from_the_generator_and_new_masks_each_call():
    x = torch.ones(10_000)
    a = dropout(x, 0.5, torch.Generator().manual_seed(7))
    b = dropout(x, 0.5, torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    gen = torch.Generator().manual_seed(7)
    first, second = dropout(x, 0.5, gen), dropout(x, 0.5, gen)
    assert not torch.equal(first, second)
    torch.manual_seed(11)
    c = dropout(x, 0.5)
    torch.manual_seed(11)
    assert torch.equal(c, dropout(x, 0.5))  # the global generator: set_random_seed reproduces it


def test_dropout_layer_training_only_and_float64_fallback():
    layer = Dropout(0.5)
    x = torch.ones(8, 100)
    assert torch.equal(layer(x, training=False), x)
    y = layer(x, training=True)
    assert set(y.unique().tolist()) <= {0.0, 2.0} and 0 < y.eq(0).sum() < x.numel()
    y64 = dropout(torch.ones(2000, dtype=torch.float64), 0.25)
    assert y64.dtype == torch.float64 and set(y64.unique().tolist()) <= {0.0, 1 / 0.75}


def _foreach_adam(params, grads, m, v, alpha, b1, b2, eps):
    torch._foreach_mul_(m, b1)
    torch._foreach_add_(m, grads, alpha=1 - b1)
    torch._foreach_mul_(v, b2)
    torch._foreach_add_(v, torch._foreach_mul(grads, grads), alpha=1 - b2)
    denom = torch._foreach_add(torch._foreach_sqrt(v), eps)
    torch._foreach_add_(params, torch._foreach_div(torch._foreach_mul(m, alpha), denom), alpha=-1.0)


def test_fused_adam_matches_the_foreach_formula_over_steps():
    gen = torch.Generator().manual_seed(2)
    shapes = [(300, 7), (40,), (1,), (33, 65)]
    ours = [torch.randn(s, generator=gen) for s in shapes]
    ref = [p.clone() for p in ours]
    m1, v1 = [torch.zeros_like(p) for p in ours], [torch.zeros_like(p) for p in ours]
    m2, v2 = [torch.zeros_like(p) for p in ours], [torch.zeros_like(p) for p in ours]
    for t in range(1, 6):
        grads = [torch.randn(s, generator=gen) * (0 if t == 3 else 1) for s in shapes]  # a zero-gradient step
        alpha = 1e-3 * math.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        assert adam_update_(ours, grads, m1, v1, alpha, 0.9, 0.999, 1e-7)
        _foreach_adam(ref, grads, m2, v2, alpha, 0.9, 0.999, 1e-7)
        for a, b in zip(ours + m1 + v1, ref + m2 + v2):
            torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-6)


def test_fused_adam_declines_other_dtypes_and_optimizer_uses_it():
    p = [torch.zeros(3, dtype=torch.float64)]
    assert not adam_update_(p, [torch.ones(3, dtype=torch.float64)], [torch.zeros_like(p[0])],
                            [torch.zeros_like(p[0])], 0.1, 0.9, 0.999, 1e-7)
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = Adam(learning_rate=0.1)
    opt.build([w])
    w.grad = torch.tensor([0.5, -0.25])
    opt.step()
    # First Adam step: m = 0.1 g, v = 0.001 g^2, alpha = lr * sqrt(0.001) / 0.1 -> w -= lr * g / (|g| + eps').
    torch.testing.assert_close(w.detach(), torch.tensor([0.9, -1.9]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("rows, classes", [(7, 3), (33, 17), (40, 2002), (3, 16), (5, 1)])
def test_softmax_nll_and_its_gradient_match_cross_entropy(monkeypatch, compiled, rows, classes):
    # Widths below, at and above one vector (16 lanes), with a remainder; large logits; the fallback too.
    if not compiled:
        monkeypatch.setenv("LSTMTEXT_DISABLE_KERNEL", "1")
    torch.manual_seed(rows * classes)
    x = torch.randn(rows, classes, dtype=torch.float32) * 8
    x[0, 0] = 80.0  # exp would overflow without the max subtracted first
    target = torch.randint(0, classes, (rows,))
    grad = torch.rand(rows)
    nll, lse = softmax_nll(x, target)
    ref = x.clone().requires_grad_()
    expected = F.cross_entropy(ref, target, reduction="none")
    expected.backward(grad)
    torch.testing.assert_close(nll, expected.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(lse, torch.logsumexp(x, dim=1), atol=1e-5, rtol=1e-5)
    buf = x.clone()
    out = softmax_nll_grad_(buf, lse, grad, target)
    assert out.data_ptr() == buf.data_ptr()  # in place: no second (N, C) buffer
    torch.testing.assert_close(out, ref.grad, atol=1e-6, rtol=1e-5)


def test_softmax_nll_refuses_a_target_out_of_range():
    with pytest.raises(IndexError, match="out of range"):
        softmax_nll(torch.zeros(2, 5), torch.tensor([1, 5]))


# The narrow vocabulary projection and its gradients (ops_cpu.cpp): gate columns that are whole vectors and
# not (40 = 16 + 16 + 8 on AVX-512), more than four vectors (200), one column; rows in blocks of four and not.
@pytest.mark.parametrize(("vocab", "features", "gates"), [(5000, 15, 40), (1001, 64, 200), (7, 3, 4), (5, 1, 1)])
@pytest.mark.parametrize("threads", [1, 2])
def test_table_projection_and_its_gradients_match_torch(vocab, features, gates, threads):
    ops = build.load_ops()
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(vocab)
        table, kernel = torch.randn(vocab, features, generator=gen), torch.randn(features, gates, generator=gen)
        bias, dproj = torch.randn(gates, generator=gen), torch.randn(vocab, gates, generator=gen)
        t64, k64, d64 = table.double(), kernel.double(), dproj.double()

        def close(got, expected):  # float32 sums of up to 5000 products against float64
            torch.testing.assert_close(got, expected, check_dtype=False, atol=1e-4, rtol=1e-5)

        close(ops.table_projection(table, kernel, bias), t64 @ k64 + bias.double())
        close(ops.table_projection(table, kernel, None), t64 @ k64)
        d_table, d_kernel, d_bias = ops.table_projection_backward(dproj, table, kernel, True, True, True)
        close(d_table, d64 @ k64.t())
        close(d_kernel, t64.t() @ d64)
        close(d_bias, d64.sum(0))
        # Gradients not asked for come back empty; the others are the same.
        d_table, d_kernel, d_bias = ops.table_projection_backward(dproj, table, kernel, False, True, False)
        assert d_table.numel() == 0 and d_bias.numel() == 0
        close(d_kernel, t64.t() @ d64)
        # The sums are taken in a fixed order: the same bits at every call.
        assert torch.equal(ops.table_projection_backward(dproj, table, kernel, True, True, True)[1],
                           ops.table_projection_backward(dproj, table, kernel, True, True, True)[1])
    finally:
        torch.set_num_threads(old)


def test_table_projection_refuses_mismatched_shapes():
    ops = build.load_ops()
    with pytest.raises(RuntimeError, match=r"table projection: expected float32 table \(V, F\) and kernel \(F, G\)"):
        ops.table_projection(torch.randn(5, 3), torch.randn(4, 8), None)
    with pytest.raises(RuntimeError, match=r"bias must be \(8\)"):
        ops.table_projection(torch.randn(5, 3), torch.randn(3, 8), torch.randn(7))
    with pytest.raises(RuntimeError, match="table projection backward: expected float32"):
        ops.table_projection_backward(torch.randn(5, 9), torch.randn(5, 3), torch.randn(3, 8), True, True, True)


def test_table_projection_gradients_are_the_same_bits_for_any_thread_count():
    ops = build.load_ops()
    gen = torch.Generator().manual_seed(5)
    table, kernel, dproj = torch.randn(3000, 15, generator=gen), torch.randn(15, 40, generator=gen), \
        torch.randn(3000, 40, generator=gen)
    old = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(ops.table_projection_backward(dproj, table, kernel, True, True, True))
    finally:
        torch.set_num_threads(old)
    for one, two in zip(*results):
        assert torch.equal(one, two)
