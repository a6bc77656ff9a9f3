"""Variational dropout of the LSTM: Keras 3's masks, where they apply, when, and how they are drawn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmtext.layers import LSTM
from lstmtext.layers.initializers import Constant
from lstmtext.layers.lstm_ops import LSTMCall, draw_dropout_masks, lstm_cell_loop

B, T, F, U = 4, 6, 3, 5


def _x(seed=0):
    return torch.from_numpy(np.random.default_rng(seed).normal(size=(B, T, F)).astype("float32"))


def _pair(**kw):
    a, b = LSTM(U, **kw), LSTM(U, **kw)
    a.build((B, T, F))
    b.build((B, T, F))
    b.set_weights(a.get_weights())
    return a, b


@pytest.mark.keras
@pytest.mark.parametrize(("dropout", "recurrent_dropout"), [(0.3, 0.0), (0.0, 0.4), (0.3, 0.4)])
@pytest.mark.parametrize("masked", [False, True])
def test_injected_masks_give_keras_numbers(keras, dropout, recurrent_dropout, masked):
    """Same masks in both: Keras's cell caches them (``_dropout_mask``) and so does ours."""
    x = _x(1)
    mask = np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1] * 6, [0, 1, 0, 1, 1, 1]], bool) if masked else None
    kw = dict(dropout=dropout, recurrent_dropout=recurrent_dropout, return_sequences=True, return_state=True)
    theirs = keras.layers.LSTM(U, **kw)
    theirs.build((B, T, F))
    ours = LSTM(U, **kw)
    ours.build((B, T, F))
    ours.set_weights(theirs.get_weights())
    count = 4 if recurrent_dropout else 1
    assert ours.cell.dropout_mask_count == count
    g = torch.Generator().manual_seed(2)
    dp = draw_dropout_masks((B, F), dropout, count, x, g) if dropout else None
    rdp = draw_dropout_masks((B, U), recurrent_dropout, count, x, g) if recurrent_dropout else None
    # Keras keeps a single mask as a tensor and per-gate masks as a list.
    theirs.cell._dropout_mask = None if dp is None else (list(dp) if count == 4 else dp[0])
    theirs.cell._recurrent_dropout_mask = None if rdp is None else list(rdp)
    ours.cell._dropout_mask, ours.cell._recurrent_dropout_mask = dp, rdp
    expected = theirs(x, mask=mask, training=True)
    got = ours(x, mask=mask, training=True)
    for a, b in zip(got, expected):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), atol=1e-5)
    # The masks were used for this call only, as Keras does.
    assert ours.cell._dropout_mask is None and ours.cell._recurrent_dropout_mask is None


def test_input_mask_is_fixed_over_time():
    """Identical steps and a state that cannot carry over: every step's output is equal iff one mask is used."""
    x = torch.randn(64, 1, F).expand(64, T, F).contiguous()
    layer = LSTM(U, dropout=0.5, return_sequences=True, recurrent_initializer="zeros",
                 bias_initializer=Constant(0.0), unit_forget_bias=False)
    layer.build((64, T, F))
    with torch.no_grad():
        layer.cell.bias[U:2 * U] = -100.0  # forget gate shut: c_t depends on the step's input only
    out = layer(x, training=True)
    assert torch.allclose(out, out[:, :1].expand_as(out), atol=1e-6)
    assert not torch.allclose(out, layer(x, training=False), atol=1e-3)  # and dropout was active


@pytest.mark.parametrize(("dropout", "recurrent_dropout"), [(0.3, 0.0), (0.0, 0.4), (0.3, 0.4)])
def test_seeded_training_run_equals_one_fixed_mask_set(dropout, recurrent_dropout):
    """A seeded call draws its masks once (input, then recurrent) and uses them at every step."""
    x = _x(2)
    layer = LSTM(U, dropout=dropout, recurrent_dropout=recurrent_dropout, seed=7, return_sequences=True)
    layer.build((B, T, F))
    got = layer(x, training=True)
    g = torch.Generator().manual_seed(7)
    count = layer.cell.dropout_mask_count
    dp = draw_dropout_masks((B, F), dropout, count, x, g) if dropout else None
    rdp = draw_dropout_masks((B, U), recurrent_dropout, count, x, g) if recurrent_dropout else None
    c = layer.cell
    expected, _, _ = lstm_cell_loop(LSTMCall(x, c.kernel, c.recurrent_kernel, c.bias, torch.zeros(B, U),
                                             torch.zeros(B, U), recurrent_dropout_mask=rdp), input_masks=dp)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)


def test_dropout_only_in_training():
    a, b = _pair(dropout=0.4, recurrent_dropout=0.3, return_sequences=True)
    plain = LSTM(U, return_sequences=True)
    plain.build((B, T, F))
    plain.set_weights(a.get_weights())
    x = _x(3)
    ref = plain(x)
    torch.testing.assert_close(a(x, training=False), ref)
    a.eval()
    torch.testing.assert_close(a(x), ref)  # training=None follows module.eval()
    a.train()
    assert not torch.allclose(a(x), ref, atol=1e-3)


def test_seed_reproduces_and_each_call_draws_new_masks():
    a, b = _pair(dropout=0.4, recurrent_dropout=0.3, seed=11)
    x = _x(4)
    first_a, first_b = a(x, training=True), b(x, training=True)
    torch.testing.assert_close(first_a, first_b)
    second = a(x, training=True)
    assert not torch.allclose(first_a, second)
    torch.testing.assert_close(second, b(x, training=True))


def test_mask_statistics_and_scaling():
    """Keep probability 1 - rate, kept entries scaled by 1/(1-rate) (mean 1), per-gate masks independent."""
    layer = LSTM(4, dropout=0.25, recurrent_dropout=0.4, seed=0)
    layer.build((20000, 2, 8))
    dp = layer.cell.get_dropout_mask(torch.ones(20000, 8))
    rdp = layer.cell.get_recurrent_dropout_mask(torch.ones(20000, 4))
    assert dp.shape == (4, 20000, 8) and rdp.shape == (4, 20000, 4)
    for masks, rate in ((dp, 0.25), (rdp, 0.4)):
        kept = masks[masks != 0]
        torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - rate)))
        assert abs(float((masks == 0).float().mean()) - rate) < 0.01
        assert abs(float(masks.mean()) - 1.0) < 0.02
        agree = float((masks[0] == masks[1]).float().mean())  # independent: P(agree) = rate^2 + (1-rate)^2
        assert abs(agree - (rate**2 + (1 - rate) ** 2)) < 0.01
    # Without recurrent dropout, Keras 3 (implementation 2) draws a single input mask.
    assert LSTM(4, dropout=0.25).cell.dropout_mask_count == 1
