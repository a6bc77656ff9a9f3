"""Predictor: raw texts in, labels and probabilities out — the one inference API of the CLI and the service.

A :class:`Predictor` holds a model, the text encoder it was trained with and the padding it was trained
with. :meth:`Predictor.predict` tokenizes, pads exactly as in training (``maxlen``, ``padding``,
``truncating``), runs the model in batches under ``torch.inference_mode`` and turns its output into
:class:`Prediction` objects: a sigmoid output of shape ``(B, 1)`` is a binary classifier, a softmax
output of shape ``(B, C)`` a ``C``-class one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lstmtext.errors import ConfigError, DataError

#: Maps a batch of raw texts to a batch of id lists (the tokenizer + vocabulary used in training).
Encoder = Callable[[Sequence[str]], Sequence[Sequence[int]]]

_PAD_SIDES = ("pre", "post")


@dataclass(frozen=True)
class Prediction:
    """One text's prediction.

    Attributes:
        label: name of the predicted class.
        label_id: index of the predicted class (``0``/``1`` for a binary model).
        probability: the model's probability of ``label``.
        probabilities: probability of every class, in class-index order (two for a binary model).
    """

    label: str
    label_id: int
    probability: float
    probabilities: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"label", "label_id", "probability", "probabilities"}``."""
        return {
            "label": self.label,
            "label_id": self.label_id,
            "probability": self.probability,
            "probabilities": list(self.probabilities),
        }


class Predictor:
    """Batched inference on raw text with the tokenization and padding a model was trained with.

    Args:
        model: a module (e.g. a ``lstmtext.models.Sequential``) mapping int64 ids ``(B, T)`` to
            probabilities ``(B, 1)`` (sigmoid) or ``(B, C)`` (softmax); logits when ``from_logits``.
        encode: maps a list of texts to a list of id lists, as in training.
        maxlen: sequences are padded/truncated to this length (``None``: to the longest of each batch).
        padding: ``"pre"`` (Keras's default) or ``"post"``: where padding goes.
        truncating: ``"pre"`` or ``"post"``: which end of a long sequence is cut.
        pad_value: id used for padding (``0``).
        labels: class names in index order; default ``"0"``, ``"1"``, ...
        from_logits: the model outputs logits; a sigmoid/softmax is applied here.
        batch_size: most texts per model call (bounds memory for long inputs).
        metadata: facts reported by :attr:`metadata` (config, vocabulary size, metrics, versions).
        version: an identifier of these weights (a checkpoint's manifest hash).

    >>> p = Predictor(model, encode, maxlen=300)          # doctest: +SKIP
    >>> p.predict(["a wonderful film", "dull"])[0].label   # doctest: +SKIP
    '1'
    """

    def __init__(
        self,
        model: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
        encode: Encoder,
        *,
        maxlen: int | None,
        padding: str = "pre",
        truncating: str = "pre",
        pad_value: int = 0,
        labels: Sequence[str] | None = None,
        from_logits: bool = False,
        batch_size: int = 512,
        metadata: Mapping[str, Any] | None = None,
        version: str = "unversioned",
    ) -> None:
        if maxlen is not None and (not isinstance(maxlen, int) or isinstance(maxlen, bool) or maxlen <= 0):
            raise ConfigError(f"Predictor: maxlen must be a positive integer or None, got {maxlen!r}")
        for name, side in (("padding", padding), ("truncating", truncating)):
            if side not in _PAD_SIDES:
                raise ConfigError(f"Predictor: {name} must be one of {_PAD_SIDES}, got {side!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ConfigError(f"Predictor: batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(model, torch.nn.Module):
            model.eval()
        self.model = model
        self.encode = encode
        self.maxlen = maxlen
        self.padding, self.truncating, self.pad_value = padding, truncating, int(pad_value)
        self.labels = tuple(str(x) for x in labels) if labels is not None else None
        self.from_logits = bool(from_logits)
        self.batch_size = batch_size
        self.version = str(version)
        self._metadata = dict(metadata or {})

    @property
    def device(self) -> torch.device:
        """The device the model's weights live on (CPU for a callable without parameters)."""
        if isinstance(self.model, torch.nn.Module):
            for p in self.model.parameters():
                return p.device
        return torch.device("cpu")

    @property
    def metadata(self) -> dict[str, Any]:
        """Config, vocabulary size, metrics and versions of the model, plus the padding used here."""
        out = dict(self._metadata)
        out.update(version=self.version, maxlen=self.maxlen, padding=self.padding, truncating=self.truncating,
                   labels=list(self.labels) if self.labels is not None else None, from_logits=self.from_logits)
        return out

    def pad(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Pad/truncate id lists as in training. Returns int64 ``(len(sequences), maxlen)``."""
        width = self.maxlen if self.maxlen is not None else max((len(s) for s in sequences), default=0)
        width = max(width, 1)  # an all-empty batch still needs one step for the model to run
        out = np.full((len(sequences), width), self.pad_value, dtype=np.int64)
        for i, seq in enumerate(sequences):
            n = min(len(seq), width)
            if n == 0:
                continue
            kept = seq[-n:] if self.truncating == "pre" else seq[:n]
            if self.padding == "pre":
                out[i, width - n:] = kept
            else:
                out[i, :n] = kept
        return out

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities of each text.

        Args:
            texts: raw texts.

        Returns:
            float32 array ``(len(texts), C)``: ``C = 2`` for a binary model (``[1 - p, p]``).
        """
        texts = _check_texts(texts)
        chunks = [self._predict_chunk(texts[i:i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        if not chunks:
            return np.zeros((0, len(self.labels) if self.labels else 2), dtype=np.float32)
        return np.concatenate(chunks, axis=0)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Labels and probabilities of each text.

        Args:
            texts: raw texts (any length; each is tokenized and padded as in training).

        Returns:
            One :class:`Prediction` per text, in order.

        >>> predictor.predict(["a wonderful film"])  # doctest: +SKIP
        [Prediction(label='1', label_id=1, probability=0.93, probabilities=(0.07, 0.93))]
        """
        return self.to_predictions(self.predict_proba(texts))

    def to_predictions(self, probs: np.ndarray) -> list[Prediction]:
        """Turn a ``(N, C)`` probability array into Predictions (argmax; a binary tie goes to class 0)."""
        names = self.labels or tuple(str(i) for i in range(probs.shape[1]))
        ids = probs.argmax(axis=1)
        rows = probs.tolist()
        return [Prediction(names[k], int(k), float(row[k]), tuple(row)) for k, row in zip(ids.tolist(), rows)]

    def _predict_chunk(self, texts: Sequence[str]) -> np.ndarray:
        ids = self.pad(self.encode(texts))
        with torch.inference_mode():
            out = self.model(torch.from_numpy(ids).to(self.device))
        out = torch.as_tensor(out).detach().to("cpu", torch.float32)
        if out.ndim == 1:
            out = out[:, None]
        if out.ndim != 2 or out.shape[0] != len(texts):
            raise ConfigError(f"Predictor: the model returned shape {tuple(out.shape)} for {len(texts)} texts; "
                              f"expected (batch, 1) for a binary or (batch, classes) for a multi-class model")
        if out.shape[1] == 1:
            p = torch.sigmoid(out) if self.from_logits else out
            # argmax of [1 - p, p] picks class 1 only when p > 0.5, as Keras's binary accuracy does
            probs = torch.cat([1.0 - p, p], dim=1)
        else:
            probs = torch.softmax(out, dim=1) if self.from_logits else out
        if self.labels is not None and probs.shape[1] != len(self.labels):
            raise ConfigError(f"Predictor: {len(self.labels)} labels {list(self.labels)} for a model with "
                              f"{probs.shape[1]} output classes")
        return probs.numpy()


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise DataError("Predictor.predict: texts must be a list of strings, got a single string; wrap it in a list")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise DataError(f"Predictor.predict: texts[{i}] must be a string, got {type(t).__name__}")
    return out


def finite_probabilities(probs: np.ndarray) -> bool:
    """True when every probability is a finite number in [0, 1] and each row sums to 1 (smoke check)."""
    if probs.size == 0:
        return True
    if not np.all(np.isfinite(probs)) or probs.min() < 0.0 or probs.max() > 1.0:
        return False
    return bool(np.all(np.abs(probs.sum(axis=1) - 1.0) <= 1e-3 * max(1.0, math.sqrt(probs.shape[1]))))
