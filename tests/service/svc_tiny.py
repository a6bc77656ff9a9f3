"""A tiny real torch classifier + word encoder, built identically in the test process and in server subprocesses."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import torch
from torch import nn

from lstmtext.predictor import Predictor

WORDS = ("the a and of to is it this film movie good great bad awful wonderful boring dull plot acting "
         "story love hate best worst fun long short funny sad").split()
_WORD_RE = re.compile(r"[a-z']+")
VOCAB = {w: i + 3 for i, w in enumerate(WORDS)}  # 0 pad, 1 start, 2 out-of-vocabulary, as Keras's IMDB


def encode(texts: Sequence[str]) -> list[list[int]]:
    """Lowercase words -> ids with a start id; unknown words -> 2."""
    return [[1] + [VOCAB.get(w, 2) for w in _WORD_RE.findall(t.lower())] for t in texts]


class TinyClassifier(nn.Module):
    """Embedding -> LSTM -> Linear -> sigmoid (classes == 1) or softmax; optional delay per call (slow model)."""

    def __init__(self, classes: int = 1, seed: int = 0, delay_s: float = 0.0, logits: bool = False) -> None:
        super().__init__()
        self.emb = nn.Embedding(len(WORDS) + 3, 8)
        self.lstm = nn.LSTM(8, 6, batch_first=True)
        self.out = nn.Linear(6, classes)
        self.classes, self.delay_s, self.logits = classes, delay_s, logits
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.8)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.delay_s:
            time.sleep(self.delay_s)
        y = self.out(self.lstm(self.emb(ids))[0][:, -1])  # (B, classes)
        if self.logits:
            return y
        return torch.sigmoid(y) if self.classes == 1 else torch.softmax(y, dim=1)


def tiny_predictor(seed: int = 0, delay_s: float = 0.0, classes: int = 1, maxlen: int | None = 20,
                   version: str | None = None, **kw) -> Predictor:
    """A Predictor over :class:`TinyClassifier` (version defaults to ``tiny-<seed>``)."""
    model = TinyClassifier(classes=classes, seed=seed, delay_s=delay_s, logits=kw.pop("from_logits", False))
    meta = {"vocab_size": len(VOCAB) + 3, "config": {"name": "tiny"}}
    return Predictor(model, encode, maxlen=maxlen, version=version or f"tiny-{seed}", from_logits=model.logits,
                     metadata=meta, **kw)


def assert_same_predictions(got: Sequence, want: Sequence, atol: float = 1e-6) -> None:
    """Same labels, probabilities equal to float32 rounding: a batch's composition changes the summation
    order inside torch's LSTM/GEMM kernels, so a text scored beside others can move in the last bit."""
    assert [(p.label, p.label_id) for p in got] == [(p.label, p.label_id) for p in want]
    for g, w in zip(got, want, strict=True):
        assert abs(g.probability - w.probability) <= atol, (g, w)
        assert len(g.probabilities) == len(w.probabilities)
        assert all(abs(a - b) <= atol for a, b in zip(g.probabilities, w.probabilities)), (g, w)
