"""ULMFiT fine-tuning: a classifier made of a language model's encoder, trained the ULMFiT way.

* :func:`build_classifier`: an ordinary :class:`~lstmtext.models.Sequential` ``Embedding(mask_zero) ->
  LSTM ... -> ConcatPooling -> Dropout -> Dense -> Dropout -> Dense`` whose ``embedding`` / ``lstm_i``
  layers have the language model's names and shapes, so its checkpoint is one that ``evaluate``,
  ``predict``, ``serve`` and ``export`` read like any other;
* :func:`transfer_weights`: copy weights by layer name (Keras's ``load_weights(..., skip_mismatch=True)``
  on top of ``get_weights``/``set_weights``);
* :func:`layer_groups`, :func:`freeze_to`, :func:`param_groups`: gradual unfreezing and discriminative
  learning rates (group ``g`` of ``G`` gets ``lr / decay**(G - 1 - g)``; ULMFiT's decay is 2.6);
* :func:`classifier_forward`: a document read in BPTT chunks with the LSTM states carried, gradients kept
  only for the last ``max_grad_len`` steps (fastai's ``SentenceEncoder``): long reviews are not cut, and
  memory stays bounded. Without dropout it computes exactly what the Sequential's one pass computes;
* :func:`predict_ensemble`: the mean output of several classifiers (a forward and a backward one);
* :func:`fine_tune_classifier`: the schedule of stages (freeze_to, epochs, learning rate), each with a
  slanted triangular or one-cycle learning rate, sortish batches trimmed to their longest review.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lstmtext.errors import ConfigError
from lstmtext.kernels import LSTMCall, lstm_sequence
from lstmtext.layers import LSTM, BatchNormalization, ConcatPooling, Dense, Dropout, Embedding, ReverseSequence
from lstmtext.lm.model import LMConfig
from lstmtext.lm.schedule import get_schedule
from lstmtext.models import Sequential


def build_classifier(lm_config: LMConfig, num_classes: int = 2, *, head_units: int = 50,
                     head_dropout: tuple[float, float] = (0.2, 0.1), batch_norm: bool = True) -> Sequential:
    """The classifier whose encoder has the layers of a language model of ``lm_config``, built.

    Args:
        lm_config: the language model's config (vocabulary, embedding and LSTM sizes).
        num_classes: 2 gives one sigmoid unit, more a softmax.
        head_units: units of the hidden Dense layer of the head.
        head_dropout: dropout before the hidden Dense layer and before the output.
        batch_norm: a ``BatchNormalization`` before each dropout of the head, as fastai's
            ``PoolingLinearClassifier`` (the pooled last/max/mean features have different scales).

    Returns:
        A built ``Sequential`` (not compiled).
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ConfigError(f"build_classifier: num_classes must be an integer >= 2, got {num_classes!r}")
    # A backward language model read texts right to left: so does its classifier, inside the model, so that
    # predict, evaluate, the service and ONNX need to know nothing about it.
    layers: list[Any] = [ReverseSequence(name="reverse_sequence")] if lm_config.backwards else []
    layers += [Embedding(lm_config.num_words, lm_config.embedding_dim, mask_zero=True, name="embedding")]
    layers += [LSTM(u, return_sequences=True, name=f"lstm_{i + 1}") for i, u in enumerate(lm_config.layer_units)]
    out_units, act = (1, "sigmoid") if num_classes == 2 else (num_classes, "softmax")
    def bn(i: int) -> list[Any]:
        return [BatchNormalization(momentum=0.9, name=f"head_batch_norm_{i}")] if batch_norm else []

    layers += [ConcatPooling(name="concat_pooling"), *bn(1), Dropout(head_dropout[0], name="head_dropout_1"),
               Dense(head_units, activation="relu", name="head_dense"), *bn(2),
               Dropout(head_dropout[1], name="head_dropout_2"), Dense(out_units, activation=act, name="output")]
    model = Sequential(layers, name="ulmfit_classifier")
    model.build((None, None))
    return model


def check_vocabulary(lm_tokenizer: Any, clf_tokenizer: Any, *, where: str = "classifier") -> None:
    """Refuse a classifier vocabulary that differs from the language model's.

    Raises:
        ConfigError: the two tokenizers map words to different ids (naming sizes and the first difference).
    """
    a, b = lm_tokenizer.to_json_dict(), clf_tokenizer.to_json_dict()
    if a == b:
        return
    wa, wb = lm_tokenizer.vocab.words, clf_tokenizer.vocab.words
    diff = next((i for i, (x, y) in enumerate(zip(wa, wb)) if x != y), min(len(wa), len(wb)))
    raise ConfigError(
        f"{where}: its vocabulary does not match the language model's ({clf_tokenizer.num_words} ids / "
        f"{len(wb):,} words vs the LM's {lm_tokenizer.num_words} ids / {len(wa):,} words; first difference at "
        f"rank {diff + 1}); encode the texts with the language model's tokenizer (lstmtext train --init-from does)")


def transfer_weights(source: Sequence[Any], model: Sequential, *, skip_mismatch: bool = False) -> list[str]:
    """Copy the weights of ``source`` layers into the layers of ``model`` with the same names.

    Args:
        source: layers (e.g. ``LanguageModel.encoder_layers()``).
        model: the receiving model.
        skip_mismatch: skip a layer whose weight shapes differ instead of raising (Keras's flag).

    Returns:
        The names of the layers copied.

    Raises:
        ConfigError: no layer name in common, or (without ``skip_mismatch``) a shape mismatch, naming it.
    """
    by_name = {layer.name: layer for layer in model.layers}
    copied = []
    for layer in source:
        target = by_name.get(layer.name)
        if target is None:
            continue
        src, dst = layer.get_weights(), target.get_weights()
        shapes_src, shapes_dst = [w.shape for w in src], [w.shape for w in dst]
        if shapes_src != shapes_dst:
            if skip_mismatch:
                continue
            what = "vocabulary" if layer.name == "embedding" else "layer"
            raise ConfigError(f"transfer_weights: {what} {layer.name!r} has weights of shapes {shapes_src} in the "
                              f"language model but {shapes_dst} in the classifier")
        target.set_weights(src)
        copied.append(layer.name)
    if not copied:
        raise ConfigError("transfer_weights: no layer of the classifier has the name of a language-model layer")
    return copied


# -- gradual unfreezing and discriminative learning rates ------------------------------------------------
def layer_groups(model: Sequential) -> list[list[Any]]:
    """ULMFiT's layer groups: ``[embedding], [lstm_1], ..., [lstm_n], [everything after]`` (a leading
    ``ReverseSequence``, which has no weights, joins the embedding's group)."""
    groups: list[list[Any]] = []
    head: list[Any] = []
    pre: list[Any] = []
    for layer in model.layers:
        if isinstance(layer, ReverseSequence) and not groups and not head:
            pre.append(layer)
        elif isinstance(layer, (Embedding, LSTM)) and not head:
            groups.append([*pre, layer] if not groups else [layer])
        else:
            head.append(layer)
    return [*groups, head]


def freeze_to(model: Sequential, n: int) -> None:
    """Make groups ``[:n]`` untrainable and the others trainable (``n`` < 0 counts from the end: ``-1``
    trains only the head, ``0`` everything), as fastai's ``freeze_to``."""
    groups = layer_groups(model)
    if not -len(groups) <= n <= len(groups):
        raise ConfigError(f"freeze_to: n must be in [{-len(groups)}, {len(groups)}], got {n}")
    cut = n % len(groups) if n < 0 else n
    for g, layers in enumerate(groups):
        for layer in layers:
            layer.trainable = g >= cut


def param_groups(model: Sequential, lr: float, decay: float = 2.6) -> list[dict[str, Any]]:
    """Torch optimizer parameter groups, one per layer group, group ``g`` of ``G`` at ``lr / decay**(G-1-g)``.

    Each group also records its ``base_lr`` (the schedule multiplies it).
    """
    groups = layer_groups(model)
    out = []
    for g, layers in enumerate(groups):
        params = [p for layer in layers for p in layer.parameters()]
        if params:
            base = lr / decay ** (len(groups) - 1 - g)
            out.append({"params": params, "lr": base, "base_lr": base, "group": g})
    return out


# -- the chunked encoder ---------------------------------------------------------------------------------
@dataclass
class EncoderDropout:
    """AWD-LSTM dropouts used while fine-tuning (fastai's classifier defaults times ``drop_mult`` 0.5)."""

    embed: float = 0.025
    input: float = 0.125
    hidden: float = 0.1
    weight: float = 0.25


def _encoder_parts(model: Sequential) -> tuple[list[Any], Embedding, list[LSTM], list[Any]]:
    """``(layers before the embedding, embedding, LSTMs, head)``."""
    groups = layer_groups(model)
    pre, emb, lstms = groups[0][:-1], groups[0][-1], [g[0] for g in groups[1:-1]]
    if not isinstance(emb, Embedding) or not lstms or not all(isinstance(x, LSTM) for x in lstms):
        raise ConfigError(f"{model.name}: expected [ReverseSequence ->] Embedding -> LSTM ... -> head layers")
    return pre, emb, lstms, groups[-1]


def encode_chunks(model: Sequential, ids: torch.Tensor, *, bptt: int = 70, max_grad_len: int | None = None,
                  training: bool = False, dropout: EncoderDropout | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The last LSTM's outputs ``(B, T, u)`` and the mask ``(B, T)`` for ``ids (B, T)`` read in chunks.

    Chunks of ``bptt`` steps run one after the other with every LSTM's ``(h, c)`` carried; chunks that
    end more than ``max_grad_len`` steps before the end run without gradients (None: all keep them).
    ``dropout`` applies only when ``training``.
    """
    pre, emb_layer, lstms, _ = _encoder_parts(model)
    for layer in pre:
        ids = layer(ids)
    mask = ids != 0
    batch, steps = ids.shape
    dp = dropout if (training and dropout is not None) else None
    states = [(torch.zeros(batch, layer.units, device=ids.device), torch.zeros(batch, layer.units, device=ids.device))
              for layer in lstms]
    masks = []
    if dp is not None:
        # One mask per review for all chunks, as one pass would draw it.
        vocab = emb_layer.input_dim
        word_keep = torch.empty(vocab, device=ids.device).bernoulli_(1 - dp.embed) / (1 - dp.embed)
        in_sizes = [emb_layer.output_dim] + [layer.units for layer in lstms[:-1]]
        rates = [dp.input] + [dp.hidden] * (len(lstms) - 1)
        masks = [torch.empty(batch, 1, f, device=ids.device).bernoulli_(1 - r) / (1 - r)
                 for f, r in zip(in_sizes, rates)]
        kernels = [F.dropout(layer.cell.recurrent_kernel, dp.weight, training=True) for layer in lstms]
    outputs = []
    for start in range(0, steps, bptt):
        chunk, m = ids[:, start:start + bptt], mask[:, start:start + bptt]
        grad = max_grad_len is None or steps - start <= max_grad_len
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            x = emb_layer(chunk)
            if dp is not None:
                x = x * word_keep[chunk].unsqueeze(-1)
            for i, layer in enumerate(lstms):
                if dp is not None:
                    x = x * masks[i]
                rk = kernels[i] if dp is not None else layer.cell.recurrent_kernel
                h0, c0 = states[i]
                x, h, c = lstm_sequence(LSTMCall(x, layer.cell.kernel, rk, layer.cell.bias, h0, c0, mask=m))
                states[i] = (h.detach(), c.detach()) if not grad else (h, c)
            outputs.append(x)
        if grad and max_grad_len is not None:
            states = [(h.detach(), c.detach()) for h, c in states]  # truncate: each chunk's graph stands alone
    return torch.cat(outputs, dim=1), mask


def classifier_forward(model: Sequential, ids: torch.Tensor, *, bptt: int = 70, max_grad_len: int | None = None,
                       training: bool = False, dropout: EncoderDropout | None = None) -> torch.Tensor:
    """The classifier's output for ``ids (B, T)`` with the encoder read in chunks (see :func:`encode_chunks`)."""
    seq, mask = encode_chunks(model, ids, bptt=bptt, max_grad_len=max_grad_len, training=training, dropout=dropout)
    *_, head = _encoder_parts(model)
    x: Any = seq
    for layer in head:
        out = layer(x, mask=mask, training=training)
        mask = layer.compute_mask(x, mask)
        x = out
    return x


# -- the fine-tuning loop ----------------------------------------------------------------------------------
@dataclass
class FineTuneConfig:
    """How a pretrained classifier is fine-tuned (ULMFiT's recipe by default)."""

    stages: tuple[tuple[int, int, float], ...] = ((-1, 1, 2e-2), (-2, 1, 1e-2), (-3, 1, 5e-3), (0, 2, 1e-3))
    """``(freeze_to, epochs, lr)`` per stage: the head first, then one more group per stage, then all."""
    batch_size: int = 32
    """Reviews per batch."""
    bptt: int = 70
    """Chunk length of the encoder."""
    max_grad_len: int | None = 1400
    """Back-propagate through the last this many steps of each review (None: all)."""
    decay: float = 2.6
    """Discriminative learning-rate factor between consecutive groups."""
    schedule: str = "one_cycle"
    """``one_cycle`` (fastai) or ``slanted_triangular`` (the ULMFiT paper) within each stage."""
    betas: tuple[float, float] = (0.7, 0.99)
    weight_decay: float = 0.01
    clip: float = 0.1
    dropout: EncoderDropout | None = None
    """Encoder dropouts (None: :class:`EncoderDropout`'s defaults)."""
    seed: int = 0

    def __post_init__(self) -> None:
        self.stages = tuple((int(f), int(e), float(lr)) for f, e, lr in self.stages)
        if not self.stages or any(e <= 0 or lr <= 0 for _, e, lr in self.stages):
            raise ConfigError("FineTuneConfig.stages: expected (freeze_to, epochs > 0, lr > 0) triples, "
                              f"got {self.stages}")
        if self.batch_size <= 0 or self.bptt <= 0:
            raise ConfigError("FineTuneConfig: batch_size and bptt must be positive")
        if not self.decay > 0:
            raise ConfigError(f"FineTuneConfig.decay must be positive (1: one learning rate for all), "
                              f"got {self.decay!r}")
        get_schedule(self.schedule)
        if self.dropout is None:
            self.dropout = EncoderDropout()


def sortish_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Batches of similar lengths in random order (fastai's ``SortishSampler``): shuffle, sort chunks of 50
    batches by length, cut them into batches, shuffle the batches."""
    idx = rng.permutation(len(lengths))
    chunk = batch_size * 50
    batches = []
    for s in range(0, len(idx), chunk):
        part = idx[s:s + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]


def _trim(x: np.ndarray, rows: np.ndarray, lengths: np.ndarray) -> torch.Tensor:
    """Rows of pre-padded ``x`` cut to the batch's longest real length."""
    n = max(1, int(lengths[rows].max()))
    return torch.from_numpy(np.ascontiguousarray(x[rows, -n:])).long()


def _loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if out.shape[1] == 1:
        return F.binary_cross_entropy(out[:, 0].clamp(1e-7, 1 - 1e-7), y.float())
    return F.nll_loss(torch.log(out.clamp_min(1e-12)), y.long())


def real_lengths(x: np.ndarray) -> np.ndarray:
    """Real (non-zero) steps per row of a pre-padded id array."""
    return (np.asarray(x) != 0).sum(axis=1)


def predict_chunked(model: Sequential, x: np.ndarray, *, batch_size: int = 64, bptt: int = 70) -> np.ndarray:
    """Model outputs for pre-padded ids, read in chunks, batches sorted by length (same values as ``predict``)."""
    lengths = real_lengths(x)
    order = np.argsort(-lengths, kind="stable")
    out = np.zeros((len(x), model.layers[-1].units), dtype=np.float32)
    was = model.training
    model.eval()
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            rows = order[s:s + batch_size]
            out[rows] = classifier_forward(model, _trim(x, rows, lengths), bptt=bptt).numpy()
    model.train(was)
    return out


def predict_ensemble(models: Sequence[Sequential], x: np.ndarray, *, batch_size: int = 64,
                     bptt: int = 70) -> np.ndarray:
    """The mean of several classifiers' outputs on pre-padded ids ``x`` (ULMFiT's forward + backward ensemble).

    Each model reads ``x`` its own way (a backward model's ``ReverseSequence`` reverses it), so the models
    must share one vocabulary: build them from language models with the same tokenizer.

    Raises:
        ConfigError: no model, or models with different output widths.
    """
    if not models:
        raise ConfigError("predict_ensemble: no model given")
    widths = {m.layers[-1].units for m in models}
    if len(widths) != 1:
        raise ConfigError(f"predict_ensemble: the models give different numbers of outputs {sorted(widths)}")
    return np.mean([predict_chunked(m, x, batch_size=batch_size, bptt=bptt) for m in models], axis=0)


def accuracy(outputs: np.ndarray, y: np.ndarray) -> float:
    """Accuracy of sigmoid (one column) or softmax outputs."""
    pred = (outputs[:, 0] > 0.5).astype(np.int64) if outputs.shape[1] == 1 else outputs.argmax(1)
    return float((pred == np.asarray(y)).mean())


def fine_tune_classifier(model: Sequential, x: np.ndarray, y: np.ndarray, cfg: FineTuneConfig, *,
                         validation: tuple[np.ndarray, np.ndarray] | None = None, verbose: int = 1,
                         print_fn: Callable[[str], Any] = print,
                         on_epoch_end: Callable[[int, dict[str, float]], Any] | None = None) -> dict[str, list[float]]:
    """Fine-tune ``model`` (from :func:`build_classifier`) on pre-padded ids ``x`` and labels ``y``.

    Each stage ``(freeze_to, epochs, lr)`` freezes the first groups, builds AdamW with discriminative
    learning rates from ``lr`` and runs its epochs under the schedule (over the stage's steps).

    Returns:
        The history: ``loss``, ``accuracy`` per epoch (and ``val_accuracy`` with ``validation``).
    """
    from lstmtext.training.progress import Progbar

    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    lengths = real_lengths(x)
    y = np.asarray(y)
    schedule = get_schedule(cfg.schedule)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    epoch_no = 0
    for freeze, epochs, lr in cfg.stages:
        freeze_to(model, freeze)
        groups = param_groups(model, lr, cfg.decay)
        optimizer = torch.optim.AdamW(groups, betas=cfg.betas, weight_decay=cfg.weight_decay)
        params = [p for g in groups for p in g["params"] if p.requires_grad]
        steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
        total, t = steps_per_epoch * epochs, 0
        for _ in range(epochs):
            model.train()
            bar = Progbar(steps_per_epoch, verbose=verbose, stream=sys.stdout) if verbose else None
            t0, loss_sum, correct, seen = time.perf_counter(), 0.0, 0, 0
            for k, rows in enumerate(sortish_batches(lengths, cfg.batch_size, rng)):
                mult = schedule(t, total)
                for g in optimizer.param_groups:
                    g["lr"] = g["base_lr"] * mult
                ids, target = _trim(x, rows, lengths), torch.from_numpy(y[rows])
                out = classifier_forward(model, ids, bptt=cfg.bptt, max_grad_len=cfg.max_grad_len, training=True,
                                         dropout=cfg.dropout)
                loss = _loss(out, target)
                loss.backward()
                if cfg.clip:
                    torch.nn.utils.clip_grad_norm_(params, cfg.clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                t += 1
                loss_sum += float(loss.detach()) * len(rows)
                correct += int(round(accuracy(out.detach().numpy(), y[rows]) * len(rows)))
                seen += len(rows)
                if bar is not None:
                    bar.update(k + 1, {"loss": loss_sum / seen, "accuracy": correct / seen})
            logs = {"loss": loss_sum / seen, "accuracy": correct / seen}
            if validation is not None:
                logs["val_accuracy"] = accuracy(predict_chunked(model, validation[0], bptt=cfg.bptt), validation[1])
            for key, v in logs.items():
                history.setdefault(key, []).append(v)
            epoch_no += 1
            print_fn(f"fine-tune epoch {epoch_no} (freeze_to {freeze}, lr {lr:g}): "
                     + " - ".join(f"{key} {v:.4f}" for key, v in logs.items())
                     + f" - {time.perf_counter() - t0:.0f} s")
            if on_epoch_end is not None:
                on_epoch_end(epoch_no, logs)
    freeze_to(model, 0)
    return history
