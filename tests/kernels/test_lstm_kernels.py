"""The fused LSTM paths compute exactly what the reference cell loop computes: outputs and gradients."""

from __future__ import annotations

import shutil

import pytest
import torch

from lstmtext.errors import ConfigError
from lstmtext.kernels import (
    LSTMCall,
    available_strategies,
    build,
    force_impl,
    fused,
    fused_available,
    lstm_sequence,
    lstm_sequence_packed,
    lstm_sequence_reference,
    strategy_names,
)

ATOL = 1e-5


def _compiled_or_skip():
    if build.kernel_disabled():
        pytest.skip("LSTMTEXT_DISABLE_KERNEL is set")
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler on this machine")
    # With a compiler present the kernel must build: a silent fallback here would hide a broken kernel.
    assert build.load_ops() is not None, "the compiled LSTM kernel failed to build"


def _mask(kind: str, batch: int, steps: int, gen: torch.Generator) -> torch.Tensor | None:
    if kind == "none":
        return None
    idx = torch.arange(steps).unsqueeze(0)
    lengths = torch.randint(1, steps + 1, (batch, 1), generator=gen)
    if kind == "left":  # Keras pad_sequences default padding='pre'
        m = idx >= steps - lengths
    elif kind == "right":
        m = idx < lengths
    elif kind == "holes":
        m = torch.rand(batch, steps, generator=gen) > 0.4
    elif kind == "fully_masked_row":
        m = idx >= steps - lengths
        m[batch // 2] = False
    else:
        raise ValueError(kind)
    return m


def _inputs(batch, steps, features, units, *, bias=True, states=True, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen, dtype=dtype) * scale).requires_grad_()

    x = rnd(batch, steps, features)
    kernel = rnd(features, 4 * units, scale=0.5 / features**0.5)
    recurrent = rnd(units, 4 * units, scale=1.0 / units**0.5)
    b = rnd(4 * units, scale=0.3) if bias else None
    h0 = rnd(batch, units, scale=0.5) if states else torch.zeros(batch, units, dtype=dtype, requires_grad=True)
    c0 = rnd(batch, units, scale=0.5) if states else torch.zeros(batch, units, dtype=dtype, requires_grad=True)
    return x, kernel, recurrent, b, h0, c0, gen


def _outputs_and_grads(fn, x, kernel, recurrent, b, h0, c0, **kw):
    out, h, c = fn(LSTMCall(x, kernel, recurrent, b, h0, c0, **kw))
    wrt = [x, kernel, recurrent, h0, c0] + ([b] if b is not None else [])
    # Distinct weights per output element so that every gradient path is exercised.
    w = torch.linspace(-1.0, 1.0, out.numel(), dtype=out.dtype).view_as(out)
    loss = (out * w).sum() + (h * 1.3).sum() - (c * 0.7).sum()
    return [out, h, c, *torch.autograd.grad(loss, wrt)]


def _assert_same(fn, args, **kw):
    got = _outputs_and_grads(fn, *args, **kw)
    want = _outputs_and_grads(lstm_sequence_reference, *args, **kw)
    names = ["outputs", "h_T", "c_T", "d_x", "d_kernel", "d_recurrent", "d_h0", "d_c0", "d_bias"]
    for name, g, w in zip(names, got, want):
        assert g.shape == w.shape, name
        torch.testing.assert_close(g, w, atol=ATOL, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")


# (batch, steps, features, units): small u (row loop), u not a multiple of the vector width, large u
# (per-step GEMM), batch not divisible by the thread count, batch 1, one step.
SHAPES = [(6, 9, 5, 10), (7, 5, 3, 3), (5, 6, 4, 17), (3, 4, 6, 33), (5, 6, 4, 64), (3, 4, 5, 130),
          (1, 7, 3, 10), (4, 1, 3, 10), (1, 1, 2, 70)]
MASKS = ["none", "left", "right", "holes", "fully_masked_row"]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mask_kind", MASKS)
def test_compiled_matches_reference_on_masks(shape, mask_kind):
    _compiled_or_skip()
    *args, gen = _inputs(*shape, seed=sum(shape))
    mask = _mask(mask_kind, shape[0], shape[1], gen)
    _assert_same(lstm_sequence, args, mask=mask)


@pytest.mark.parametrize("shape", [(6, 9, 5, 10), (5, 6, 4, 17), (5, 6, 4, 64)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("per_gate", [False, True], ids=["shared", "per_gate"])
@pytest.mark.parametrize("mask_kind", ["none", "holes"])
def test_compiled_recurrent_dropout(shape, per_gate, mask_kind):
    _compiled_or_skip()
    batch, steps, _, units = shape
    *args, gen = _inputs(*shape, seed=3)
    keep = (torch.rand((4, batch, units) if per_gate else (batch, units), generator=gen) > 0.2).float() / 0.8
    _assert_same(lstm_sequence, args, mask=_mask(mask_kind, batch, steps, gen), recurrent_dropout_mask=keep)


@pytest.mark.parametrize("shape", [(6, 9, 5, 10), (5, 6, 4, 64)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mask_kind", ["left", "holes", "fully_masked_row"])
def test_compiled_zero_output_for_mask(shape, mask_kind):
    _compiled_or_skip()
    *args, gen = _inputs(*shape, seed=5)
    mask = _mask(mask_kind, shape[0], shape[1], gen)
    _assert_same(lstm_sequence, args, mask=mask, zero_output_for_mask=True)
    out, _, _ = lstm_sequence(LSTMCall(*args, mask=mask, zero_output_for_mask=True))
    assert torch.all(out[~mask] == 0)


STRATEGIES = ["rows", "gemm", "vector", "lanes"]


def test_the_tests_cover_every_strategy():
    # The list of strategies comes from the compiled library; a new one must be added to STRATEGIES.
    _compiled_or_skip()
    assert strategy_names() == ["auto", *STRATEGIES]
    assert set(available_strategies()) <= set(STRATEGIES) and "rows" in available_strategies()


def _force_or_skip(name):
    _compiled_or_skip()
    if name not in available_strategies():
        pytest.skip(f"strategy {name} is not built for this CPU")
    return force_impl(name)


def test_force_impl_is_scoped_and_checked():
    _compiled_or_skip()
    from lstmtext.kernels.strategies import forced_impl

    with force_impl("rows"):
        assert forced_impl() == 1
        with force_impl("gemm"):
            assert forced_impl() == 2
        assert forced_impl() == 1
    assert forced_impl() == 0
    with pytest.raises(ValueError, match="unknown strategy 'fast'"):
        with force_impl("fast"):
            pass


@pytest.mark.parametrize("impl", STRATEGIES)
@pytest.mark.parametrize("units", [3, 10, 20, 40])
@pytest.mark.parametrize("rd", ["none", "shared", "per_gate"])
@pytest.mark.parametrize("batch", [7, 21])
def test_every_cpu_strategy_matches_reference(impl, units, rd, batch):
    # Each C++ strategy (plain rows, per-step GEMM, vector rows, rows in lanes) on shapes the automatic
    # choice would not give it, so that all of them stay correct whatever the dispatch thresholds become;
    # batch 21 gives the lanes strategy full blocks of 8 rows and a partial one. On an AVX-512 CPU both the
    # 16-lane (vector) and the 8-lane AVX2 code (lanes) run here.
    with _force_or_skip(impl):
        _every_strategy_case(units, rd, batch)


def _every_strategy_case(units, rd, batch):
    steps = 6
    *args, gen = _inputs(batch, steps, 4, units, seed=units)
    keep = None
    if rd != "none":
        keep = (torch.rand((4, batch, units) if rd == "per_gate" else (batch, units), generator=gen) > 0.2) / 0.8
    mask = _mask("holes", batch, steps, gen)
    mask[2] = False
    _assert_same(lstm_sequence, args, mask=mask, recurrent_dropout_mask=keep)


# Large u: R packed in panels with a partial last panel (u = 130: 4u = 520 columns) and the depth cut into
# blocks (the backward's 4u > 512; u = 520: the forward's u > 512 too); the weight gradients both inside
# the time loop and as GEMMs over all steps.
def _large_case(shape, case, bias=True):
    batch, steps, _, units = shape
    *args, gen = _inputs(*shape, seed=units, bias=bias)
    mask, keep = None, None
    if case != "plain":
        mask = _mask("holes" if case.startswith("holes") else "left", batch, steps, gen)
        per_gate = "per_gate" in case
        keep = (torch.rand((4, batch, units) if per_gate else (batch, units), generator=gen) > 0.2).float() / 0.8
    return args, mask, keep


# The per-step GEMM strategy: weight gradients in the time loop or batched after it; the input projection of
# each step inside the loop (lstm_forward_x) or one GEMM before it.
@pytest.mark.parametrize("shape", [(3, 4, 5, 130), (2, 3, 4, 520)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("batched_grads", [False, True], ids=["grads_in_loop", "grads_batched"])
@pytest.mark.parametrize("case", ["plain", "holes_per_gate_dropout", "left_shared_dropout"])
@pytest.mark.parametrize("step_projection", [False, True], ids=["one_projection", "step_projections"])
def test_large_units_match_reference(monkeypatch, shape, batched_grads, case, step_projection):
    _compiled_or_skip()
    monkeypatch.setattr(fused, "FUSED_GRADS_MAX_BYTES", 0 if batched_grads else 1 << 40)
    monkeypatch.setattr(fused, "STEP_PROJECTION_MAX_BYTES", 1 << 40 if step_projection else 0)
    args, mask, keep = _large_case(shape, case)
    _assert_same(lstm_sequence, args, mask=mask, recurrent_dropout_mask=keep)


@pytest.mark.parametrize("step_projection", [False, True], ids=["one_projection", "step_projections"])
@pytest.mark.parametrize("case", ["plain", "holes_per_gate_dropout", "left_shared_dropout"])
@pytest.mark.parametrize("bias", [True, False])
def test_large_units_inference_matches_reference(monkeypatch, step_projection, case, bias):
    _compiled_or_skip()
    monkeypatch.setattr(fused, "STEP_PROJECTION_MAX_BYTES", 1 << 40 if step_projection else 0)
    args, mask, keep = _large_case((5, 7, 9, 70), case, bias)
    assert fused.step_projection(9, 70, 0) == step_projection
    with torch.no_grad():
        got = lstm_sequence(LSTMCall(*args, mask=mask, recurrent_dropout_mask=keep))
        want = lstm_sequence_reference(LSTMCall(*args, mask=mask, recurrent_dropout_mask=keep))
    for name, g, w in zip(["outputs", "h_T", "c_T"], got, want):
        torch.testing.assert_close(g, w, atol=ATOL, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("units", [10, 64])
def test_compiled_without_bias_and_zero_states(units):
    _compiled_or_skip()
    *args, gen = _inputs(4, 6, 3, units, bias=False, states=False)
    _assert_same(lstm_sequence, args, mask=_mask("holes", 4, 6, gen))


def test_compiled_path_is_taken_for_cpu_float32():
    _compiled_or_skip()
    *args, _ = _inputs(2, 3, 4, 5)
    out, _, _ = lstm_sequence(LSTMCall(*args))
    assert "FusedLSTM" in type(out.grad_fn).__name__
    assert fused_available("cpu")


def test_masked_steps_follow_keras_rnn_loop():
    # keras/src/backend/torch/rnn.py: a masked step carries h and c and repeats the previous output,
    # which starts at zeros (not h0) before the first real step.
    *args, _ = _inputs(2, 4, 3, 5)
    mask = torch.tensor([[False, True, False, True], [True, True, False, False]])
    for fn in (lstm_sequence, lstm_sequence_reference):
        out, h, c = fn(LSTMCall(*args, mask=mask))
        assert torch.all(out[0, 0] == 0)
        torch.testing.assert_close(out[0, 2], out[0, 1])
        torch.testing.assert_close(out[1, 3], out[1, 1])
        torch.testing.assert_close(h[1], out[1, 1])
        torch.testing.assert_close(h[0], out[0, 3])


def test_fully_masked_row_returns_initial_states_and_zero_outputs():
    x, kernel, recurrent, b, h0, c0, _ = _inputs(3, 5, 4, 6)
    mask = torch.ones(3, 5, dtype=torch.bool)
    mask[1] = False
    for fn in (lstm_sequence, lstm_sequence_reference):
        out, h, c = fn(LSTMCall(x, kernel, recurrent, b, h0, c0, mask=mask))
        assert torch.all(out[1] == 0)
        torch.testing.assert_close(h[1], h0[1])
        torch.testing.assert_close(c[1], c0[1])


@pytest.mark.parametrize("mask_kind", ["none", "left", "right", "fully_masked_row"])
@pytest.mark.parametrize("zero_output", [False, True])
def test_packed_torch_lstm_matches_reference(mask_kind, zero_output):
    # The cuDNN route (torch._VF.lstm with packing) runs here on CPU through oneDNN: same transformation.
    *args, gen = _inputs(5, 7, 4, 6, seed=11)
    mask = _mask(mask_kind, 5, 7, gen)
    got = _outputs_and_grads(lstm_sequence_packed, *args, mask=mask, zero_output_for_mask=zero_output)
    want = _outputs_and_grads(lstm_sequence_reference, *args, mask=mask, zero_output_for_mask=zero_output)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=ATOL, rtol=1e-4)


def test_packed_refuses_masks_with_holes():
    *args, _ = _inputs(2, 4, 3, 5)
    with pytest.raises(ValueError, match="contiguous block"):
        lstm_sequence_packed(LSTMCall(*args, mask=torch.tensor([[True, False, True, True], [True] * 4])))


def test_reference_gradcheck_float64():
    x, kernel, recurrent, b, h0, c0, gen = _inputs(3, 4, 2, 3, dtype=torch.float64)
    mask = torch.tensor([[False, True, True, False], [True, False, True, True], [False] * 4])
    keep = (torch.rand(4, 3, 3, generator=gen) > 0.3).double() / 0.7

    def fn(*t):
        return lstm_sequence(LSTMCall(*t, mask=mask, recurrent_dropout_mask=keep))

    assert torch.autograd.gradcheck(fn, (x, kernel, recurrent, b, h0, c0))


def test_disable_env_forces_reference_loop(monkeypatch):
    monkeypatch.setenv("LSTMTEXT_DISABLE_KERNEL", "1")
    *args, _ = _inputs(2, 3, 4, 5)
    out, _, _ = lstm_sequence(LSTMCall(*args))
    assert "FusedLSTM" not in type(out.grad_fn).__name__
    assert not fused_available("cpu")
    torch.testing.assert_close(out, lstm_sequence_reference(LSTMCall(*args))[0])


def test_build_failure_warns_once_and_falls_back(monkeypatch, tmp_path):
    broken = tmp_path / "lstm_cpu.cpp"
    broken.write_text("this is not C++\n")
    monkeypatch.setattr(build, "SOURCES", [broken, *build.SOURCES[1:]])
    monkeypatch.setattr(build, "_state", {})
    monkeypatch.setenv("LSTMTEXT_KERNEL_DIR", str(tmp_path / "cache" / "kernels"))
    with pytest.warns(RuntimeWarning, match="could not build or load the compiled CPU LSTM kernel"):
        assert build.load_ops() is None
    assert build.load_ops() is None  # no second attempt, no second warning
    *args, _ = _inputs(2, 3, 4, 5)
    out, _, _ = lstm_sequence(LSTMCall(*args))
    torch.testing.assert_close(out, lstm_sequence_reference(LSTMCall(*args))[0])


def test_bad_shapes_raise_config_error():
    x, kernel, recurrent, b, h0, c0, _ = _inputs(2, 3, 4, 5)
    with pytest.raises(ConfigError, match=r"kernel must have shape \(4, 20\), got \(3, 20\)"):
        LSTMCall(x, kernel[:3], recurrent, b, h0, c0)
    with pytest.raises(ConfigError, match=r"mask must have shape \(2, 3\), got \(2, 4\)"):
        LSTMCall(x, kernel, recurrent, b, h0, c0, mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ConfigError, match="recurrent_dropout_mask must have shape"):
        LSTMCall(x, kernel, recurrent, b, h0, c0, recurrent_dropout_mask=torch.ones(3, 5))
    with pytest.raises(ConfigError, match="x must be 3-D"):
        LSTMCall(x[0], kernel, recurrent, b, h0, c0)
    with pytest.raises(ConfigError, match=r"h0 must have shape \(2, 5\), got \(3, 5\)"):
        LSTMCall(x, kernel, recurrent, b, torch.zeros(3, 5), c0)
    ids = torch.zeros(2, 3, dtype=torch.int64)
    with pytest.raises(ConfigError, match="with ids, x must be the 2-D embedding table"):
        LSTMCall(x, kernel, recurrent, b, h0, c0, ids=ids)
    with pytest.raises(ConfigError, match="ids must be 2-D .* integer token ids"):
        LSTMCall(torch.zeros(9, 4), kernel, recurrent, b, h0, c0, ids=ids.float())
    with pytest.raises(ConfigError, match=r"kernel must have shape \(6, 20\)"):
        LSTMCall(torch.zeros(9, 6), kernel, recurrent, b, h0, c0, ids=ids)
    # A float mask is stored as bool; the call is frozen.
    call = LSTMCall(x, kernel, recurrent, b, h0, c0, mask=torch.ones(2, 3))
    assert call.mask.dtype == torch.bool and (call.batch, call.steps, call.units) == (2, 3, 5)


def test_token_ids_on_the_loop_and_packed_paths():
    # A call with ids that no compiled path serves (float64) runs the reference loop on table[ids]; the packed
    # (cuDNN) route looks the ids up too. Both equal the call on the embedded inputs.
    gen = torch.Generator().manual_seed(4)
    table, ids = torch.randn(30, 4, generator=gen, dtype=torch.float64), torch.randint(0, 30, (3, 6), generator=gen)
    x, kernel, recurrent, b, h0, c0, _ = _inputs(3, 6, 4, 5, dtype=torch.float64)
    mask = _mask("left", 3, 6, gen)
    want = lstm_sequence_reference(LSTMCall(table[ids], kernel, recurrent, b, h0, c0, mask=mask))
    for fn in (lstm_sequence, lstm_sequence_packed):
        got = fn(LSTMCall(table, kernel, recurrent, b, h0, c0, mask=mask, ids=ids))
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w)


def test_packed_refuses_recurrent_dropout():
    *args, _ = _inputs(2, 4, 3, 5)
    with pytest.raises(ValueError, match="no recurrent dropout"):
        lstm_sequence_packed(LSTMCall(*args, recurrent_dropout_mask=torch.ones(2, 5)))


@pytest.mark.gpu
@pytest.mark.parametrize("mask_kind", ["none", "left", "right", "holes", "fully_masked_row"])
@pytest.mark.parametrize("dropout", [False, True])
def test_cuda_matches_reference(mask_kind, dropout):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    *args, gen = _inputs(5, 8, 4, 16, seed=2)
    mask = _mask(mask_kind, 5, 8, gen)
    keep = (torch.rand(4, 5, 16, generator=gen) > 0.2).float() / 0.8 if dropout else None
    want = _outputs_and_grads(lstm_sequence_reference, *args, mask=mask, recurrent_dropout_mask=keep)
    cuda_args = [a.detach().cuda().requires_grad_() if a is not None else None for a in args]
    got = _outputs_and_grads(
        lstm_sequence, *cuda_args,
        mask=None if mask is None else mask.cuda(),
        recurrent_dropout_mask=None if keep is None else keep.cuda(),
    )
    for g, w in zip(got, want):
        torch.testing.assert_close(g.cpu(), w, atol=ATOL, rtol=1e-4)


@pytest.mark.slow
def test_concurrent_first_builds_share_one_cache_entry(tmp_path):
    # Two processes building into an empty cache at once: the file lock lets one compile while the other
    # waits, then both load the same library and compute the same numbers.
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler on this machine")
    import os
    import subprocess
    import sys

    code = (
        "import torch; from lstmtext.kernels import LSTMCall, build, lstm_sequence; "
        "assert build.load_ops() is not None; g = torch.Generator().manual_seed(0); "
        "x = torch.randn(3, 4, 2, generator=g); "
        "out, _, _ = lstm_sequence(LSTMCall(x, torch.randn(2, 8, generator=g), torch.randn(2, 8, generator=g), "
        "None, torch.zeros(3, 2), torch.zeros(3, 2))); print(repr(out.sum().item()))"
    )
    env = {**os.environ, "LSTMTEXT_KERNEL_DIR": str(tmp_path / "kernels"), "LSTMTEXT_DISABLE_KERNEL": ""}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (_, err) in zip(procs, results):
        assert p.returncode == 0, err
    assert results[0][0] == results[1][0]
    built = list((tmp_path / "kernels").glob("*/built.ok"))
    assert len(built) == 1


@pytest.mark.parametrize("rd", [None, "shared", "per_gate"])
def test_bfloat16_matmuls_stay_close_to_float32(monkeypatch, rd):
    # Opt-in reduced precision: only the big matrix products take bfloat16 operands, so outputs and gradients
    # stay within bfloat16 rounding of the float32 path (and the float32 path is untouched outside the block).
    from lstmtext.kernels import bfloat16_matmuls
    from lstmtext.kernels.strategies import bfloat16_supported

    _compiled_or_skip()
    if not bfloat16_supported():
        with pytest.raises(NotImplementedError):
            with bfloat16_matmuls():
                pass
        return
    gen = torch.Generator().manual_seed(3)
    b, t, f, u = 5, 7, 24, 64  # u > 48: the per-step GEMM strategy, whose projections are the big products
    x = torch.randn(b, t, f, generator=gen, requires_grad=True)
    k = (torch.randn(f, 4 * u, generator=gen) * 0.2).requires_grad_()
    r = (torch.randn(u, 4 * u, generator=gen) * 0.1).requires_grad_()
    bias = (torch.randn(4 * u, generator=gen) * 0.1).requires_grad_()
    h0 = torch.randn(b, u, generator=gen) * 0.3
    rdm = None
    if rd == "shared":
        rdm = (torch.rand(b, u, generator=gen) > 0.2).float() / 0.8
    elif rd == "per_gate":
        rdm = (torch.rand(4, b, u, generator=gen) > 0.2).float() / 0.8

    def run():
        out, h, c = lstm_sequence(LSTMCall(x, k, r, bias, h0, h0, recurrent_dropout_mask=rdm))
        w = torch.linspace(-1, 1, out.numel()).view_as(out)
        return [out, h, c, *torch.autograd.grad((out * w).sum() + h.sum(), (x, k, r, bias))]

    want = run()
    with bfloat16_matmuls():
        # Kernels under 1 MB: the forward projects each step and the backward forms the weight gradients in
        # its time loop, both in float32 (faster there than bfloat16 GEMMs).
        small = run()
        with monkeypatch.context() as m:
            m.setattr(fused, "STEP_PROJECTION_MAX_BYTES_BF16", 0)
            m.setattr(fused, "FUSED_GRADS_MAX_BYTES", 0)
            got = run()
    again = run()
    for g, w, a in zip(got, want, again):
        assert torch.equal(a.detach(), w.detach())  # the context is gone after the block
        assert not torch.equal(g.detach(), w.detach())  # bfloat16 really ran
        assert float((g - w).detach().norm() / w.detach().norm()) < 2e-2
    for s, w in zip(small, want):
        assert torch.equal(s.detach(), w.detach())


@pytest.mark.parametrize("source", ["step-projection", "one-gemm", "ids"])
def test_bfloat16_inference_recurrence_stays_close_to_float32(monkeypatch, source):
    # In inference the per-step GEMM strategy's per-step products are bfloat16 on AVX512_BF16 builds:
    # outputs within bfloat16 rounding of float32 (masked steps included), float32 again outside the block.
    from lstmtext.kernels import bfloat16_matmuls
    from lstmtext.kernels.strategies import bfloat16_supported

    _compiled_or_skip()
    if not bfloat16_supported():
        pytest.skip("no native bfloat16 matrix products on this CPU")
    ops = build.load_ops()
    gen = torch.Generator().manual_seed(5)
    b, t, f, u, vocab = 9, 11, 40, 64, 30
    table = torch.randn(vocab, f, generator=gen)
    ids = torch.randint(0, vocab, (b, t), generator=gen)
    k = torch.randn(f, 4 * u, generator=gen) * 0.2
    r = torch.randn(u, 4 * u, generator=gen) * 0.1
    bias = torch.randn(4 * u, generator=gen) * 0.1
    h0 = torch.randn(b, u, generator=gen) * 0.3
    mask = torch.rand(b, t, generator=gen) > 0.3
    if source == "one-gemm":
        monkeypatch.setattr(fused, "STEP_PROJECTION_MAX_BYTES_BF16", 0)

    def run():
        call = (LSTMCall(table, k, r, bias, h0, h0, mask=mask, ids=ids) if source == "ids"
                else LSTMCall(table[ids], k, r, bias, h0, h0, mask=mask))
        with torch.no_grad():
            return lstm_sequence(call)

    want = run()
    with bfloat16_matmuls():
        got = run()
    again = run()
    for g, w, a in zip(got, want, again):
        assert torch.equal(a, w)
        # the bfloat16 products ran where built (one GEMM before the loop is oneDNN's bfloat16 matmul anyway)
        assert torch.equal(g, w) != (ops.has_bf16_impl() or source == "one-gemm")
        assert float((g - w).norm() / w.norm()) < 2e-2
