"""Backward language models (`pretrain --backwards`) and the classifiers built from them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lstmtext.cli import main
from lstmtext.errors import ConfigError
from lstmtext.layers import ReverseSequence
from lstmtext.lm import LanguageModel, LMConfig, PretrainConfig, build_corpus, evaluate_perplexity, fit_language_model
from lstmtext.lm.finetune import (
    build_classifier,
    classifier_forward,
    encode_chunks,
    layer_groups,
    predict_chunked,
    predict_ensemble,
    transfer_weights,
)

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "in", "park", "big", "red"]


def config(**kw) -> LMConfig:
    return LMConfig(**{**dict(num_words=20, embedding_dim=8, hidden_units=(16,), cutoffs=(8,)), **kw})


def test_reverse_sequence_flips_time_and_its_mask():
    layer = ReverseSequence()
    x = torch.arange(12.0).reshape(2, 3, 2)
    assert torch.equal(layer(x), x[:, [2, 1, 0]])
    mask = torch.tensor([[False, True, True], [True, True, True]])
    assert torch.equal(layer.compute_mask(x, mask), mask[:, [2, 1, 0]])
    assert layer.compute_mask(x, None) is None


def test_a_backward_lm_learns_the_reversed_stream(tmp_path):
    # Each document walks the word cycle forwards: read right to left, it walks it backwards, which a
    # backward model learns as well as a forward one learns the forward walk.
    rng = np.random.default_rng(0)
    docs = [" ".join(WORDS[(s + j) % len(WORDS)] for j in range(40)) for s in rng.integers(0, len(WORDS), 120)]
    corpus = build_corpus(lambda: docs, tmp_path / "corpus", num_words=20, valid_every=10, source="generated")
    torch.manual_seed(0)
    lm = LanguageModel(config(backwards=True, embed_dropout=0.0, weight_dropout=0.0, input_dropout=0.1))
    cfg = PretrainConfig(batch_size=8, bptt=10, epochs=3, lr=3e-2, seed=0, checkpoint_every=0)
    result = fit_language_model(lm, corpus.train, corpus.valid, cfg, verbose=0, print_fn=lambda s: None)
    backward = result.history["val_perplexity"][-1]
    assert backward < 3, backward
    assert evaluate_perplexity(lm, corpus.valid) == pytest.approx(backward, rel=0.05)  # other windows
    # The same weights reading left to right: the walks run the other way and the model is lost.
    lm.config.backwards = False
    forward = evaluate_perplexity(lm, corpus.valid)
    assert forward > 3 * backward, (forward, backward)


def test_a_backward_classifier_reads_right_to_left():
    torch.manual_seed(3)
    lm = LanguageModel(config(num_words=40, hidden_units=(16, 12), backwards=True))
    lm.eval()
    clf = build_classifier(lm.config)
    assert isinstance(clf.layers[0], ReverseSequence)
    assert [[layer.name for layer in g] for g in layer_groups(clf)][:2] == [["reverse_sequence", "embedding"],
                                                                              ["lstm_1"]]
    transfer_weights(lm.encoder_layers(), clf)
    clf.eval()
    ids = torch.randint(1, 40, (4, 33))
    expected, _, _ = lm.encode(torch.flip(ids, [1]))
    got, _ = encode_chunks(clf, ids, bptt=10)
    assert torch.equal(got, expected)
    # Left padding becomes right padding: the chunked reading still equals the Sequential's one pass.
    padded = ids.clone()
    padded[0, :20] = 0
    padded[1, :32] = 0
    torch.testing.assert_close(classifier_forward(clf, padded, bptt=10), clf(padded), atol=1e-5, rtol=0)
    # The review's last state is its first word's: row 1 holds one word, read last and alone.
    one_word = clf(padded[1:2])
    alone = clf(padded[1:2, -1:])
    torch.testing.assert_close(one_word, alone, atol=1e-6, rtol=0)


def test_a_backward_classifier_saves_loads_and_exports(tmp_path):
    from lstmtext.models import load_model

    torch.manual_seed(4)
    clf = build_classifier(config(num_words=30, backwards=True))
    clf.eval()
    clf.compile(optimizer="adam", loss="binary_crossentropy")
    clf.save(tmp_path / "clf")
    again = load_model(tmp_path / "clf")
    assert type(again.layers[0]).__name__ == "ReverseSequence"
    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, (4, 12))
    x[1, :7] = 0
    x[3] = 0
    with torch.inference_mode():
        expected = clf(torch.from_numpy(x), training=False).numpy()
        np.testing.assert_allclose(again(torch.from_numpy(x)).numpy(), expected, atol=1e-6, rtol=0)
    pytest.importorskip("onnxruntime")
    from lstmtext.export import OnnxModel, to_onnx

    result = to_onnx(clf, tmp_path / "clf.onnx")
    np.testing.assert_allclose(OnnxModel(result.path)(x).numpy(), expected, atol=1e-5, rtol=0)


def test_pretrain_backwards_is_recorded(tmp_path, tiny_imdb_archive, capsys):
    out = tmp_path / "lm"
    assert main(["pretrain", "--data", str(tiny_imdb_archive), "--out", str(out), "--preset", "tiny", "--backwards",
                 "--max-tokens", "200", "--verbose", "0"]) == 0
    assert "backwards = True" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["config"]["backwards"] is True


def test_an_ensemble_averages_a_forward_and_a_backward_classifier():
    torch.manual_seed(5)
    forward, backward = build_classifier(config(num_words=30)), build_classifier(config(num_words=30, backwards=True))
    x = np.random.default_rng(1).integers(1, 30, (6, 9))
    x[2, :4] = 0
    both = predict_ensemble([forward, backward], x, batch_size=4)
    np.testing.assert_allclose(both, (predict_chunked(forward, x) + predict_chunked(backward, x)) / 2, atol=1e-6)
    with pytest.raises(ConfigError, match="different numbers of outputs"):
        predict_ensemble([forward, build_classifier(config(num_words=30), num_classes=3)], x)
