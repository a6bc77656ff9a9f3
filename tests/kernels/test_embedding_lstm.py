"""Embedding -> LSTM with the projection on the vocabulary equals the LSTM on the embedded tokens."""

from __future__ import annotations

import shutil

import pytest
import torch

from lstmtext.kernels import (
    LSTMCall,
    available_strategies,
    build,
    embedding_lstm,
    force_impl,
    lstm_sequence_fused,
    lstm_sequence_reference,
)
from lstmtext.kernels.build import load_ops
from lstmtext.layers import LSTM, Dense, Dropout, Embedding
from lstmtext.models import Sequential
from lstmtext.training.optimizers import Adam

ATOL = 1e-5


@pytest.fixture(autouse=True)
def _compiled():
    if build.kernel_disabled():
        pytest.skip("LSTMTEXT_DISABLE_KERNEL is set")
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler on this machine")
    assert build.load_ops() is not None


def _grads(fn, table, ids, kernel, recurrent, bias, h0, c0, **kw):
    out, h, c = fn(table, ids, kernel, recurrent, bias, h0, c0, **kw)
    w = torch.linspace(-1, 1, out.numel()).view_as(out)
    loss = (out * w).sum() + 1.3 * h.sum() - 0.7 * c.sum()
    wrt = [table, kernel, recurrent, h0, c0] + ([bias] if bias is not None else [])
    return [out, h, c, *torch.autograd.grad(loss, wrt)]


def _from_table(table, ids, kernel, recurrent, bias, h0, c0, return_sequences=True, **kw):
    # A call with token ids: the compiled path with the input projection on the vocabulary must take it.
    out, h, c, path = lstm_sequence_fused(LSTMCall(table, kernel, recurrent, bias, h0, c0, ids=ids, **kw),
                                          return_sequences=return_sequences)
    assert path.endswith("+vocabulary projection"), path
    return out, h, c


def _reference(table, ids, kernel, recurrent, bias, h0, c0, **kw):
    return lstm_sequence_reference(LSTMCall(table[ids], kernel, recurrent, bias, h0, c0, **kw))


# units 10 (lanes on AVX2, vector rows on AVX-512), 33 (two vectors, remainder lanes), 70 (per-step GEMM with fused
# weight grads); then every strategy forced on the small shape (batch 11: a full and a partial block of 8 lanes).
@pytest.mark.parametrize(
    ("units", "impl", "batch"),
    [(10, "auto", 5), (33, "auto", 5), (70, "auto", 5), (10, "rows", 11), (10, "gemm", 11), (10, "vector", 11),
     (10, "lanes", 11)],
    ids=["u10", "u33", "u70", "rows", "gemm", "vector", "lanes"],
)
@pytest.mark.parametrize("case", ["plain", "left_mask", "holes_mask", "rec_dropout", "shared_dropout", "no_bias"])
@pytest.mark.parametrize("last_only", [False, True], ids=["sequences", "last_output"])
@pytest.mark.parametrize("words", ["vocabulary", "batch"])
def test_matches_the_reference_loop_on_embedded_tokens(monkeypatch, units, impl, batch, case, last_only, words):
    # words: the training step projects the whole vocabulary, or only the rows of the batch's words.
    if load_ops() is None or impl not in ["auto", *available_strategies()]:
        pytest.skip(f"strategy {impl} is not available here")
    monkeypatch.setattr(embedding_lstm, "BATCH_VOCABULARY_MAX_FRACTION", 1.0 if words == "batch" else 0.0)
    monkeypatch.setattr(embedding_lstm, "BATCH_VOCABULARY_MIN_TABLE_BYTES", 0)
    with force_impl(impl):
        _embedded_tokens_case(units, batch, case, last_only, few_words=words == "batch")


def _last_output_only(table, ids, kernel, recurrent, bias, h0, c0, **kw):
    # return_sequences=False: the kernels give the last output (B, u); no (B, T, u) outputs on the vector path.
    return _from_table(table, ids, kernel, recurrent, bias, h0, c0, return_sequences=False, **kw)


def _reference_last(table, ids, kernel, recurrent, bias, h0, c0, **kw):
    out, h, c = _reference(table, ids, kernel, recurrent, bias, h0, c0, **kw)
    return out[:, -1], h, c


def _embedded_tokens_case(units, batch, case, last_only=False, few_words=False, feat=7):
    gen = torch.Generator().manual_seed(units)
    vocab, steps = 40, 9

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=gen) * scale).requires_grad_()

    table, kernel = rnd(vocab, feat), rnd(feat, 4 * units, scale=0.4)
    recurrent, bias = rnd(units, 4 * units, scale=0.3), (None if case == "no_bias" else rnd(4 * units, scale=0.2))
    h0, c0 = rnd(batch, units, scale=0.5), rnd(batch, units, scale=0.5)
    ids = torch.randint(0, vocab, (batch, steps), generator=gen)
    if few_words:  # a third of the vocabulary, spread over it: the other rows' gradients must be zeros
        ids = torch.randint(0, vocab // 3, (batch, steps), generator=gen) * 3 + 1
        ids[0, 0] = vocab - 1
        assert embedding_lstm.batch_vocabulary(ids, vocab) is not None
    kw = {}
    if case == "left_mask":
        lengths = torch.randint(0, steps + 1, (batch, 1), generator=gen)  # a fully masked row is likely
        kw["mask"] = torch.arange(steps) >= steps - lengths
    if case == "holes_mask":  # steps masked anywhere (first and last steps too), zero outputs there
        kw["mask"] = torch.rand(batch, steps, generator=gen) > 0.4
        kw["mask"][0] = False
        kw["zero_output_for_mask"] = True
    if case == "rec_dropout":
        kw["recurrent_dropout_mask"] = (torch.rand(4, batch, units, generator=gen) > 0.3).float() / 0.7
    if case == "shared_dropout":
        kw["recurrent_dropout_mask"] = (torch.rand(batch, units, generator=gen) > 0.3).float() / 0.7
    fn, ref = (_last_output_only, _reference_last) if last_only else (_from_table, _reference)
    got = _grads(fn, table, ids, kernel, recurrent, bias, h0, c0, **kw)
    want = _grads(ref, table, ids, kernel, recurrent, bias, h0, c0, **kw)
    names = ["outputs", "h_T", "c_T", "d_table", "d_kernel", "d_recurrent", "d_h0", "d_c0", "d_bias"]
    for name, g, w in zip(names, got, want):
        torch.testing.assert_close(g, w, atol=ATOL, rtol=1e-4, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.parametrize("units", [10, 70])
def test_sequential_fast_path_equals_the_layer_by_layer_model(units):
    torch.manual_seed(0)
    model = Sequential([Embedding(30, 6, mask_zero=True), LSTM(units, return_sequences=True, go_backwards=True),
                        Dropout(0.0), LSTM(4), Dense(1)])
    ids = torch.randint(0, 30, (4, 11))
    ids[:, :3] = 0
    model(ids)  # build
    emb, lstm = model.layers[0], model.layers[1]
    assert lstm.accepts_embedding(emb, training=True)
    out = model(ids, training=True)
    grads = torch.autograd.grad(out.sum(), list(model.parameters()))
    ref, mask = ids, None
    for layer in model.layers:  # layer by layer, with the mask flowing as in Keras
        ref, mask = layer(ref, mask=mask, training=True), layer.compute_mask(ref, mask)
    ref_grads = torch.autograd.grad(ref.sum(), list(model.parameters()))
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=1e-4)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, atol=ATOL, rtol=1e-4)


def test_no_fast_path_with_input_dropout_or_activity_regularizer():
    emb, lstm = Embedding(10, 3), LSTM(4, dropout=0.2)
    emb(torch.zeros(1, 2, dtype=torch.long))
    lstm(torch.zeros(1, 2, 3))
    assert not lstm.accepts_embedding(emb, training=True)
    assert lstm.accepts_embedding(emb, training=False)  # input dropout only acts in training
    reg = LSTM(4, activity_regularizer="l2")
    reg(torch.zeros(1, 2, 3))
    assert not reg.accepts_embedding(emb, training=False)


def test_inference_cache_follows_weight_updates():
    torch.manual_seed(1)
    model = Sequential([Embedding(20, 5), LSTM(6), Dense(1, activation="sigmoid")])
    model.compile(optimizer=Adam(learning_rate=0.1), loss="binary_crossentropy")
    ids = torch.randint(1, 20, (8, 7)).numpy()
    y = torch.randint(0, 2, (8, 1)).float().numpy()
    before = model.predict(ids, verbose=0)
    assert embedding_lstm._inference_cache  # the projected table was cached
    assert (model.predict(ids, verbose=0) == before).all()
    model.fit(ids, y, epochs=1, batch_size=8, verbose=0)  # the fused Adam updates the weights in place
    after = model.predict(ids, verbose=0)
    emb, lstm, dense = model.layers
    with torch.no_grad():
        expected = dense(lstm(emb(torch.from_numpy(ids).long()))).numpy()
    assert not (after == before).all()
    torch.testing.assert_close(torch.from_numpy(after), torch.from_numpy(expected), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("units", [10, 70])
def test_wide_embeddings_take_the_other_projection(units):
    # Up to NARROW_FEATURES features the vocabulary projection is the compiled one-pass ops, above it oneDNN's matmul.
    assert embedding_lstm.NARROW_FEATURES < 80
    for case in ("plain", "holes_mask"):
        _embedded_tokens_case(units, 6, case, feat=80)


def test_batch_vocabulary_renumbers_the_batch_words():
    ids = torch.tensor([[7, 3, 7], [0, 9, 3]])
    rows, local = embedding_lstm.batch_vocabulary(ids, 100)
    assert rows.tolist() == [0, 3, 7, 9]
    assert local.tolist() == [[2, 1, 2], [0, 3, 1]]
    assert torch.equal(rows[local], ids)
    assert embedding_lstm.batch_vocabulary(ids, 12) is not None  # 4 of 12 words
    assert embedding_lstm.batch_vocabulary(ids, 10) is not None
    assert embedding_lstm.batch_vocabulary(torch.tensor([[0, 1], [2, 3]]), 5) is None  # 4 of 5: above 0.75
    assert embedding_lstm.batch_vocabulary(ids, 9) is None  # id 9 out of range: left to the kernel's check
    assert embedding_lstm.batch_vocabulary(ids - 1, 100) is None


def test_an_id_out_of_range_is_refused_in_training(monkeypatch):
    monkeypatch.setattr(embedding_lstm, "BATCH_VOCABULARY_MIN_TABLE_BYTES", 0)  # the batch's words are tried
    table, kernel = torch.randn(50, 3, requires_grad=True), torch.randn(3, 8)
    recurrent, h = torch.randn(2, 8), torch.zeros(2, 2)
    ids = torch.tensor([[1, 2, 3], [4, 50, 6]])
    with pytest.raises(IndexError, match="id 50 is out of range"):
        lstm_sequence_fused(LSTMCall(table, kernel, recurrent, None, h, h, ids=ids))


@pytest.mark.parametrize("fused", [True, False])
def test_vector_backward_with_and_without_the_fused_table_gradient(monkeypatch, fused):
    # The vector strategy adds the step gradients into the table gradient inside its backward loop unless the
    # per-thread partial tables would be too big; both ways give the reference's gradients, on two threads.
    if "vector" not in available_strategies():
        pytest.skip("no vector strategy on this CPU")
    if not fused:
        monkeypatch.setattr(embedding_lstm, "FUSED_TABLE_GRADS_MAX_BYTES", 0)
    assert embedding_lstm.fuse_table_grads(40, 10, 3) is fused
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with force_impl("vector"):
            for case in ("plain", "holes_mask", "shared_dropout"):
                _embedded_tokens_case(10, 13, case)
    finally:
        torch.set_num_threads(threads)
