"""Language-model pretraining and fine-tuning on small generated corpora."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lstmtext.errors import CheckpointError, ConfigError, DataError
from lstmtext.layers import ConcatPooling
from lstmtext.lm import (
    BPTTStream,
    LanguageModel,
    LMConfig,
    PretrainConfig,
    TokenCorpus,
    build_corpus,
    evaluate_perplexity,
    fit_language_model,
    load_language_model,
)
from lstmtext.lm.finetune import (
    FineTuneConfig,
    build_classifier,
    check_vocabulary,
    classifier_forward,
    encode_chunks,
    fine_tune_classifier,
    freeze_to,
    layer_groups,
    param_groups,
    transfer_weights,
)
from lstmtext.lm.model import linear_nll
from lstmtext.lm.schedule import one_cycle, slanted_triangular

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "in", "park", "big", "red"]


def structured_docs(n: int = 120, length: int = 40, seed: int = 0) -> list[str]:
    """Documents that follow a fixed cycle of words from a random start: the next word is predictable."""
    rng = np.random.default_rng(seed)
    return [" ".join(WORDS[(s + j) % len(WORDS)] for j in range(length)) for s in rng.integers(0, len(WORDS), n)]


def small_config(**kw) -> LMConfig:
    base = dict(num_words=20, embedding_dim=8, hidden_units=(16,), cutoffs=(8,))
    base.update(kw)
    return LMConfig(**base)


@pytest.fixture
def corpus(tmp_path) -> TokenCorpus:
    docs = structured_docs()
    return build_corpus(lambda: docs, tmp_path / "corpus", num_words=20, valid_every=10, source="generated")


# -- corpus and stream -------------------------------------------------------------------------------------
def test_corpus_shards_hold_the_tokenized_documents(corpus, tmp_path):
    again = TokenCorpus.open(corpus.path)
    docs = structured_docs()
    held = [d for i, d in enumerate(docs) if i % 10 == 9]
    ids, _ = again.tokenizer.texts_to_flat(held)
    np.testing.assert_array_equal(again.valid[np.arange(len(again.valid))], ids)
    assert again.info["tokens"]["train"] + again.info["tokens"]["valid"] == 120 * 41  # 40 words + start id
    assert again.num_words == 20 and len(again.tokenizer.vocab) == len(WORDS)


def test_stream_windows_follow_each_other_and_resume_exactly():
    tokens = np.arange(10_000)
    s = BPTTStream(tokens, batch_size=4, bptt=20, seed=3)
    batches = list(s.epoch(0))
    assert sum(b.x.shape[1] for b in batches) == s.row_len - 1
    for a, b in zip(batches, batches[1:]):
        np.testing.assert_array_equal(a.x[:, -1] + 1, b.x[:, 0])  # contiguous rows
        np.testing.assert_array_equal(a.y, a.x + 1)
    again = list(BPTTStream(tokens, batch_size=4, bptt=20, seed=3).epoch(0, start_step=5))
    np.testing.assert_array_equal(again[0].x, batches[5].x)
    assert len({b.x.shape[1] for b in batches}) > 1  # lengths vary
    assert s.lengths(0) != s.lengths(1)


def test_empty_corpus_is_refused(tmp_path):
    with pytest.raises(DataError, match="empty corpus"):
        build_corpus(lambda: ["", "123 !!", "  "], tmp_path / "c", num_words=20, source="empty.txt")


def test_corpus_shorter_than_one_bptt_window_is_refused(tmp_path):
    c = build_corpus(lambda: ["the cat sat on the mat"] * 3, tmp_path / "c", num_words=20, valid_every=0)
    with pytest.raises(DataError, match="shorter than one BPTT window.*--batch-size or --bptt"):
        fit_language_model(LanguageModel(small_config()), c.train, None, PretrainConfig(batch_size=4, bptt=70),
                           verbose=0, corpus_name=str(c.path))


# -- the model -----------------------------------------------------------------------------------------------
def test_adaptive_softmax_is_a_distribution_and_matches_its_loss():
    torch.manual_seed(0)
    lm = LanguageModel(small_config(num_words=30, cutoffs=(5, 12)))
    h = torch.randn(7, 8)
    logp = lm.softmax.log_prob(h)
    torch.testing.assert_close(logp.exp().sum(1), torch.ones(7))
    target = torch.tensor([0, 4, 5, 11, 12, 29, 3])
    torch.testing.assert_close(lm.softmax(h, target), -logp.gather(1, target[:, None])[:, 0])


def _copy_softmax_weights(ours, ref: torch.nn.AdaptiveLogSoftmaxWithLoss) -> None:
    """Give torch's adaptive softmax the head and tail weights of ours (the same layout)."""
    with torch.no_grad():
        ref.head.weight.copy_(ours.head)
        for r, o in zip(ref.tail, ours.tails, strict=True):
            r[0].weight.copy_(o[0].weight)
            r[1].weight.copy_(o[1].weight)


def test_adaptive_softmax_equals_torch_untied():
    torch.manual_seed(0)
    ours = LanguageModel(small_config(num_words=30, embedding_dim=32, cutoffs=(5, 12), tie_weights=False)).softmax
    ref = torch.nn.AdaptiveLogSoftmaxWithLoss(32, 30, [5, 12], div_value=4.0)
    _copy_softmax_weights(ours, ref)
    h, t = torch.randn(40, 32, requires_grad=True), torch.randint(0, 30, (40,))
    loss = ours(h, t).mean()
    torch.testing.assert_close(loss, ref(h, t).loss)
    # The gradients too (the head and tails compute softmax - one-hot in their own buffer).
    grads = torch.autograd.grad(loss, [h, ours.head, *[w for tail in ours.tails for w in tail.parameters()]])
    ref_grads = torch.autograd.grad(ref(h, t).loss, [h, ref.head.weight, *[w for tail in ref.tail
                                                                            for w in tail.parameters()]])
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r)


def test_adaptive_softmax_head_bias_equals_torch_head_bias():
    torch.manual_seed(0)
    ours = LanguageModel(small_config(num_words=30, embedding_dim=32, cutoffs=(5, 12), tie_weights=False,
                                      output_bias=True)).softmax
    ref = torch.nn.AdaptiveLogSoftmaxWithLoss(32, 30, [5, 12], div_value=4.0, head_bias=True)
    with torch.no_grad():
        ours.head_bias.uniform_(-1, 1)
        ref.head.bias.copy_(ours.head_bias)
    _copy_softmax_weights(ours, ref)
    h, t = torch.randn(40, 32, requires_grad=True), torch.randint(0, 30, (40,))
    loss = ours(h, t).mean()
    torch.testing.assert_close(loss, ref(h, t).loss)
    torch.testing.assert_close(ours.log_prob(h), ref.log_prob(h))
    grads = torch.autograd.grad(loss, [h, ours.head, ours.head_bias])
    ref_grads = torch.autograd.grad(ref(h, t).loss, [h, ref.head.weight, ref.head.bias])
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r)


def test_language_model_config_without_output_bias_still_loads():
    config = LanguageModel(small_config()).get_config()
    assert config["output_bias"] is True
    del config["output_bias"]  # a model saved before the field existed had no head bias
    assert LanguageModel.from_config(config).softmax.head_bias is None


def test_linear_nll_matches_cross_entropy_and_refuses_a_second_backward():
    torch.manual_seed(0)
    h, w = torch.randn(6, 5, requires_grad=True), torch.randn(11, 5, requires_grad=True)
    t = torch.tensor([0, 3, 10, 3, 7, 1])
    upstream = torch.rand(6)
    ours = linear_nll(h, w, t)
    ref = torch.nn.functional.cross_entropy(h @ w.T, t, reduction="none")
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(torch.autograd.grad(ours, [h, w], upstream, retain_graph=True),
                               torch.autograd.grad(ref, [h, w], upstream))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad(ours, [h, w], upstream)  # its buffer became the gradient: no silent reuse


def test_lm_loss_falls_on_structured_text(corpus, tmp_path):
    torch.manual_seed(0)
    lm = LanguageModel(small_config(embed_dropout=0.0, weight_dropout=0.0, input_dropout=0.1))
    before = evaluate_perplexity(lm, corpus.valid, batch_size=4, bptt=10)
    cfg = PretrainConfig(batch_size=8, bptt=10, epochs=3, lr=3e-2, seed=0, checkpoint_every=0)
    result = fit_language_model(lm, corpus.train, corpus.valid, cfg, verbose=0, print_fn=lambda s: None)
    after = result.history["val_perplexity"][-1]
    assert result.history["loss"][-1] < result.history["loss"][0]
    # 12 words in a fixed cycle: the next word is almost certain once the model has learned it.
    assert before > 10 and after < 3, (before, after)


def test_chunked_bptt_with_carried_state_equals_one_pass():
    torch.manual_seed(1)
    lm = LanguageModel(small_config(num_words=50))
    lm.eval()
    ids = torch.randint(1, 50, (3, 230))
    one, state_one, _ = lm.encode(ids)
    state, parts = None, []
    for s in range(0, 230, 70):
        out, state, _ = lm.encode(ids[:, s:s + 70], state)
        parts.append(out)
    torch.testing.assert_close(torch.cat(parts, 1), one, atol=1e-5, rtol=0)
    for (h1, c1), (h2, c2) in zip(state_one, state):
        torch.testing.assert_close(h1, h2, atol=1e-5, rtol=0)
        torch.testing.assert_close(c1, c2, atol=1e-5, rtol=0)
    # The classifier's chunked reading (masks, left padding) equals the Sequential's one pass too.
    clf = build_classifier(lm.config)
    transfer_weights(lm.encoder_layers(), clf)
    clf.eval()
    padded = ids.clone()
    padded[0, :101] = 0
    torch.testing.assert_close(classifier_forward(clf, padded, bptt=70), clf(padded), atol=1e-5, rtol=0)


def _pretrain(out, corpus, cfg):
    torch.manual_seed(0)
    lm = LanguageModel(small_config())
    return lm, fit_language_model(lm, corpus.train, corpus.valid, cfg, out=out, verbose=0, print_fn=lambda s: None)


def test_resume_is_bit_identical(corpus, tmp_path):
    full_cfg = PretrainConfig(batch_size=8, bptt=10, epochs=2, lr=1e-2, seed=5, checkpoint_every=0)
    straight, r1 = _pretrain(tmp_path / "a", corpus, full_cfg)
    assert r1.finished
    # Stop mid-epoch (time budget 0: save after the first step), then continue in fresh objects.
    part_cfg = PretrainConfig(**{**full_cfg.__dict__, "time_budget_s": 0.0})
    _, r2 = _pretrain(tmp_path / "b", corpus, part_cfg)
    assert not r2.finished and r2.global_step == 1
    torch.manual_seed(123)  # the resumed run must not depend on the state of the new process
    resumed = LanguageModel(small_config())
    r3 = fit_language_model(resumed, corpus.train, corpus.valid, full_cfg, out=tmp_path / "b", resume=True,
                            verbose=0, print_fn=lambda s: None)
    assert r3.finished and r3.global_step == r1.global_step
    for (k, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    loaded, vocab = load_language_model(tmp_path / "b")
    for a, b in zip(loaded.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_on_another_vocabulary_is_refused(corpus, tmp_path):
    from lstmtext.predictor import inference_record

    cfg = PretrainConfig(batch_size=8, bptt=10, epochs=1, lr=1e-2, seed=5, checkpoint_every=0, time_budget_s=0.0)
    record = inference_record(corpus.tokenizer, maxlen=None)
    torch.manual_seed(0)
    fit_language_model(LanguageModel(small_config()), corpus.train, corpus.valid, cfg, out=tmp_path / "a",
                       vocab=record, verbose=0, print_fn=lambda s: None)
    other = build_corpus(lambda: ["zebra yak " * 20] * 20, tmp_path / "c2", num_words=30, valid_every=0)
    with pytest.raises(CheckpointError, match=r"vocab\.json'?: the checkpoint's vocabulary differs"):
        fit_language_model(LanguageModel(small_config()), corpus.train, corpus.valid, cfg, out=tmp_path / "a",
                           resume=True, vocab=inference_record(other.tokenizer, maxlen=None), verbose=0,
                           print_fn=lambda s: None)
    # The same words (a corpus rebuilt from the same texts) continue.
    again = build_corpus(structured_docs, tmp_path / "c3", num_words=20, valid_every=10, source="generated")
    r = fit_language_model(LanguageModel(small_config()), corpus.train, corpus.valid, cfg, out=tmp_path / "a",
                           resume=True, vocab=inference_record(again.tokenizer, maxlen=None), verbose=0,
                           print_fn=lambda s: None)
    assert r.global_step == 2


# -- fine-tuning -----------------------------------------------------------------------------------------------
def test_encoder_reproduces_the_lm_encoder_after_transfer():
    torch.manual_seed(2)
    lm = LanguageModel(small_config(num_words=40, hidden_units=(16, 12)))
    lm.eval()
    clf = build_classifier(lm.config)
    assert transfer_weights(lm.encoder_layers(), clf) == ["embedding", "lstm_1", "lstm_2", "lstm_3"]
    ids = torch.randint(1, 40, (4, 33))
    expected, _, _ = lm.encode(ids)
    got, _ = encode_chunks(clf, ids, bptt=10)
    assert torch.equal(got, expected)
    x = clf.layers[0](ids)
    for layer in clf.layers[1:4]:
        x = layer(x)
    assert torch.equal(x, expected)  # the Sequential's own layers too


def test_vocabulary_mismatch_is_refused(corpus, tmp_path):
    lm = LanguageModel(small_config())
    other = build_classifier(small_config(num_words=25))
    with pytest.raises(ConfigError, match="vocabulary 'embedding'"):
        transfer_weights(lm.encoder_layers(), other)
    c2 = build_corpus(lambda: ["zebra yak " * 20] * 20, tmp_path / "c2", num_words=20, valid_every=0)
    with pytest.raises(ConfigError, match="vocabulary does not match the language model's"):
        check_vocabulary(corpus.tokenizer, c2.tokenizer)
    check_vocabulary(corpus.tokenizer, TokenCorpus.open(corpus.path).tokenizer)


def test_init_from_nothing_or_a_classifier_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="--init-from .*no such folder"):
        load_language_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        load_language_model(tmp_path / "empty")
    clf = build_classifier(small_config())
    clf.save(tmp_path / "clf")
    with pytest.raises(CheckpointError, match="holds a 'Sequential' model .*not a language model"):
        load_language_model(tmp_path / "clf")


def test_gradual_unfreezing_trains_only_the_unfrozen_groups():
    torch.manual_seed(3)
    clf = build_classifier(small_config(hidden_units=(16, 12)))
    groups = layer_groups(clf)
    assert [g[0].name for g in groups[:-1]] == ["embedding", "lstm_1", "lstm_2", "lstm_3"]
    assert [layer.name for layer in groups[-1]][0] == "concat_pooling"
    ids, y = torch.randint(1, 20, (6, 15)), torch.tensor([0, 1, 0, 1, 1, 0])
    for n, trained in ((-1, {4}), (-2, {3, 4}), (-3, {2, 3, 4}), (0, {0, 1, 2, 3, 4})):
        freeze_to(clf, n)
        before = [[p.detach().clone() for layer in g for p in layer.parameters()] for g in groups]
        opt = torch.optim.SGD(param_groups(clf, 0.1), lr=0.1)
        out = classifier_forward(clf, ids, training=False)
        torch.nn.functional.binary_cross_entropy(out[:, 0], y.float()).backward()
        opt.step()
        opt.zero_grad()
        now = [[p for layer in g for p in layer.parameters()] for g in groups]
        changed = {g for g in range(len(groups)) if any(not torch.equal(a, p) for a, p in zip(before[g], now[g]))}
        assert changed == trained, (n, changed)


def test_discriminative_learning_rates_scale_each_group():
    clf = build_classifier(small_config(hidden_units=(16,)))
    groups = param_groups(clf, 1e-2, decay=2.6)
    assert [g["lr"] for g in groups] == pytest.approx([1e-2 / 2.6**3, 1e-2 / 2.6**2, 1e-2 / 2.6, 1e-2])
    # One SGD step with every gradient 1 moves each weight of group g by exactly its learning rate.
    opt = torch.optim.SGD(groups, lr=1.0)
    before = [[p.detach().clone() for p in g["params"]] for g in groups]
    for g in groups:
        for p in g["params"]:
            p.grad = torch.ones_like(p)
    opt.step()
    for g, old in zip(groups, before):
        for a, p in zip(old, g["params"]):
            torch.testing.assert_close(a - p.detach(), torch.full_like(a, g["lr"]))


def test_schedules():
    assert slanted_triangular(0, 100) == pytest.approx(1 / 32)
    assert slanted_triangular(10, 100) == pytest.approx(1.0)
    assert slanted_triangular(55, 100) == pytest.approx((1 + 0.5 * 31) / 32)
    assert one_cycle(0, 100) == pytest.approx(1 / 25)
    assert one_cycle(25, 100) == pytest.approx(1.0)
    assert one_cycle(100, 100) == pytest.approx(1 / 25e4)
    assert all(one_cycle(t, 100) >= one_cycle(t + 1, 100) for t in range(25, 100))


def test_concat_pooling_uses_only_real_steps():
    x = torch.tensor([[[1.0], [5.0], [2.0], [9.0]], [[7.0], [3.0], [4.0], [0.0]]])
    mask = torch.tensor([[False, True, True, False], [True, True, True, True]])
    out = ConcatPooling()(x, mask=mask)
    assert out.tolist() == [[2.0, 5.0, 3.5], [0.0, 7.0, 3.5]]
    assert ConcatPooling()(x, mask=torch.zeros(2, 4, dtype=torch.bool)).abs().sum() == 0


def test_fine_tuning_learns_and_saves_an_ordinary_checkpoint(tmp_path):
    from lstmtext.models import load_model

    rng = np.random.default_rng(0)
    n, t = 64, 30
    x = rng.integers(3, 20, (n, t))
    y = (x[:, -5:] >= 12).sum(1) >= 3  # the label depends on the end of the text
    x[::2, :10] = 0  # left padding
    torch.manual_seed(0)
    clf = build_classifier(small_config())
    cfg = FineTuneConfig(stages=((-1, 2, 2e-2), (0, 6, 1e-2)), batch_size=16, bptt=8, seed=0)
    hist = fine_tune_classifier(clf, x, y.astype(np.int64), cfg, verbose=0, print_fn=lambda s: None)
    assert hist["loss"][-1] < hist["loss"][0]
    # Every weight trainable again after the last stage, except the head's moving statistics (never trained).
    frozen = [n for n, p in clf.named_parameters() if not p.requires_grad]
    assert frozen and all(n.split(".")[-1] in ("moving_mean", "moving_variance") for n in frozen), frozen
    clf.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    clf.save(tmp_path / "clf")
    again = load_model(tmp_path / "clf")
    ids = torch.from_numpy(x[:5])
    clf.eval()
    torch.testing.assert_close(again(ids), clf(ids))
    assert math.isfinite(float(again.evaluate(x, y.astype(np.float32), verbose=0)[0]))


def direction_docs(n: int, seed: int) -> tuple[list[str], np.ndarray]:
    """Documents that walk the word cycle forwards (label 1) or backwards (label 0) from a random word."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    docs = []
    for label in labels:
        length, start, step = int(rng.integers(15, 40)), int(rng.integers(len(WORDS))), 1 if label else -1
        docs.append(" ".join(WORDS[(start + step * j) % len(WORDS)] for j in range(length)))
    return docs, labels


def test_fine_tuning_from_a_pretrained_lm_separates_the_classes(tmp_path):
    """The whole ULMFiT path on generated documents: pretraining on unlabelled ones, transfer by name,
    encoding with the LM's tokenizer, gradual unfreezing with discriminative learning rates, chunked
    prediction of unseen documents. A language model must learn the direction of the walk to predict the
    next word; with its encoder the classifier separates the directions after a few steps. A wrong label
    order, a lost mask or reversed reading, a transfer that copies nothing, or a head whose inference
    statistics lag its training ones (Keras's BatchNormalization momentum 0.99 over a few dozen steps)
    leaves it at chance."""
    from lstmtext.lm.finetune import accuracy, predict_chunked
    from lstmtext.preprocessing.sequence import pad_sequences

    unlabelled, _ = direction_docs(150, seed=1)
    corpus = build_corpus(lambda: unlabelled, tmp_path / "corpus", num_words=20, valid_every=10, source="generated")
    torch.manual_seed(0)
    lm = LanguageModel(small_config(embed_dropout=0.0, weight_dropout=0.0, input_dropout=0.1))
    fit_language_model(lm, corpus.train, corpus.valid, PretrainConfig(batch_size=8, bptt=12, epochs=3, lr=3e-2,
                                                                      seed=0, checkpoint_every=0),
                       verbose=0, print_fn=lambda s: None)
    clf = build_classifier(lm.config)
    assert transfer_weights(lm.encoder_layers(), clf) == ["embedding", "lstm_1", "lstm_2"]
    (train_docs, y_train), (test_docs, y_test) = direction_docs(96, seed=2), direction_docs(200, seed=3)

    def encode(docs: list[str]) -> np.ndarray:
        return pad_sequences(corpus.tokenizer.texts_to_sequences(docs), maxlen=40, dtype="int64", padding="pre")

    cfg = FineTuneConfig(stages=((-1, 2, 2e-2), (0, 2, 1e-2)), batch_size=16, bptt=16, seed=0)
    fine_tune_classifier(clf, encode(train_docs), y_train, cfg, verbose=0, print_fn=lambda s: None)
    acc = accuracy(predict_chunked(clf, encode(test_docs), bptt=16), y_test)
    assert acc >= 0.9, acc


def test_fine_tuned_classifier_exports_to_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    from lstmtext.export import OnnxModel, to_onnx

    torch.manual_seed(4)
    clf = build_classifier(small_config(num_words=30))
    clf.eval()
    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, (5, 12))
    x[1, :7] = 0  # left padding
    x[2, 5:] = 0  # right padding
    x[3] = 0  # fully padded: zeros pooled
    x[4, :-1] = 0
    result = to_onnx(clf, tmp_path / "clf.onnx")
    with torch.inference_mode():
        expected = clf(torch.from_numpy(x), training=False).numpy()
    np.testing.assert_allclose(OnnxModel(result.path)(x).numpy(), expected, atol=1e-5, rtol=0)
