"""Predictor: raw texts in, labels and probabilities out — the one inference API of the CLI and the service.

A :class:`Predictor` holds a model, the text encoder it was trained with and the padding it was trained
with. :meth:`Predictor.predict` tokenizes, pads exactly as in training (``maxlen``, ``padding``,
``truncating``), runs the model in batches under ``torch.inference_mode`` and turns its output into
:class:`Prediction` objects: a sigmoid output of shape ``(B, 1)`` is a binary classifier, a softmax
output of shape ``(B, C)`` a ``C``-class one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmtext.checkpoint import load_checkpoint
from lstmtext.data.sequence import pad_flat
from lstmtext.errors import CheckpointError, ConfigError, DataError
from lstmtext.kernels import bfloat16_matmuls
from lstmtext.kernels.build import load_ops, loaded_ops
from lstmtext.kernels.strategies import bfloat16_supported
from lstmtext.models.saving import load_model
from lstmtext.preprocessing.sequence import pad_sequences
from lstmtext.text import Tokenizer

#: Maps a batch of raw texts to a batch of id lists (the tokenizer + vocabulary used in training).
Encoder = Callable[[Sequence[str]], Sequence[Sequence[int]]]

_PAD_SIDES = ("pre", "post")
#: ``vocab.json`` of a checkpoint written by :meth:`Predictor.save`: tokenizer + padding + class names.
INFERENCE_FORMAT = "lstmtext.inference"
#: Longest sequence length a checkpoint may ask for: every prediction allocates (texts, maxlen) ids and runs
#: maxlen LSTM steps, so a hostile vocab.json asking for 10**9 would exhaust memory at the first (warm-up) call.
MAX_CHECKPOINT_MAXLEN = 100_000


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
        encode: the :class:`~lstmtext.text.Tokenizer` used in training, or any function mapping a list of
            texts to a list of id lists.
        maxlen: sequences are padded/truncated to this length (``None``: to the longest of each batch).
        padding: ``"pre"`` (Keras's default) or ``"post"``: where padding goes.
        truncating: ``"pre"`` or ``"post"``: which end of a long sequence is cut.
        pad_value: id used for padding (``0``).
        labels: class names in index order; default ``"0"``, ``"1"``, ...
        from_logits: the model outputs logits; a sigmoid/softmax is applied here.
        batch_size: most texts per model call (bounds memory for long inputs).
        metadata: facts reported by :attr:`metadata` (config, vocabulary size, metrics, versions).
        version: an identifier of these weights (a checkpoint's manifest hash).
        bfloat16: run the model inside :func:`lstmtext.kernels.bfloat16_matmuls` (opt-in reduced precision:
            the large LSTMs' per-step products in bfloat16 on CPUs with native bfloat16 products; on the
            stacked IMDB model 0.69x the float32 ``predict`` time with every test label unchanged,
            bench/RESULTS.md).

    >>> p = Predictor(model, tokenizer, maxlen=300)       # doctest: +SKIP
    >>> p.predict(["a wonderful film", "dull"])[0].label   # doctest: +SKIP
    '1'
    """

    def __init__(
        self,
        model: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
        encode: Tokenizer | Encoder | None,
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
        bfloat16: bool = False,
    ) -> None:
        if maxlen is not None and (not isinstance(maxlen, int) or isinstance(maxlen, bool) or maxlen <= 0):
            raise ConfigError(f"Predictor: maxlen must be a positive integer or None, got {maxlen!r}")
        for name, side in (("padding", padding), ("truncating", truncating)):
            if side not in _PAD_SIDES:
                raise ConfigError(f"Predictor: {name} must be one of {_PAD_SIDES}, got {side!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ConfigError(f"Predictor: batch_size must be a positive integer, got {batch_size!r}")
        if bfloat16 and not bfloat16_supported():
            raise ConfigError("Predictor: bfloat16=True needs a CPU with native bfloat16 matrix products "
                              "(AVX512_BF16 or AMX); this one has none")
        self.bfloat16 = bool(bfloat16)
        if isinstance(model, torch.nn.Module):
            model.eval()
        self.model = model
        # A model whose first layer takes raw strings (TextVectorization) gets the texts themselves.
        self.takes_strings = bool(getattr(model, "takes_strings", lambda: False)())
        if encode is None and not self.takes_strings:
            raise ConfigError("Predictor: needs a tokenizer (encode=) unless the model's first layer takes strings")
        self.tokenizer = encode if isinstance(encode, Tokenizer) else None
        self.encode: Encoder = encode.texts_to_sequences if isinstance(encode, Tokenizer) else encode
        self.maxlen = maxlen
        self.padding, self.truncating, self.pad_value = padding, truncating, int(pad_value)
        self.labels = tuple(str(x) for x in labels) if labels is not None else None
        self.from_logits = bool(from_logits)
        self.batch_size = batch_size
        self.version = str(version)
        self._metadata = dict(metadata or {})

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike[str], *, batch_size: int = 512,
                        device: str | torch.device | None = None, maxlen: int | None = None,
                        bfloat16: bool = False) -> Predictor:
        """Load a checkpoint folder, verified file by file against its ``manifest.json``.

        The model is rebuilt from ``config.json`` (registered lstmtext classes only) and given the
        weights of ``model.safetensors``; ``vocab.json`` gives the tokenizer, and, when written by
        :meth:`save`, the padding/truncation the model was trained with and the class names. A bare
        tokenizer ``vocab.json`` gets Keras's defaults (``"pre"``/``"pre"``) and the length of the
        model's declared input (``Input(shape=(300,))`` or ``Embedding(input_length=300)``).

        Args:
            path: the checkpoint folder.
            batch_size: most texts per model call.
            device: where to run the model (default: CPU).
            maxlen: overrides the sequence length found in the checkpoint.
            bfloat16: see the class (opt-in bfloat16 products).

        Returns:
            A Predictor whose ``version`` is a hash of the verified manifest.

        Raises:
            CheckpointError: missing, uncommitted, corrupt or hostile files, or weights that do not fit
                the config; the message names the file.

        >>> Predictor.from_checkpoint("runs/imdb").predict(["a moving, beautiful film"])  # doctest: +SKIP
        """
        folder = Path(path)
        ckpt = load_checkpoint(folder, device=device or "cpu", load_training_state=False)
        model = load_model(ckpt, compile=False)
        if ckpt.vocab is None and getattr(model, "takes_strings", lambda: False)():
            # the vocabulary is the model's own (TextVectorization's, in config.json)
            run = ckpt.run_info or {}
            version = hashlib.sha256(json.dumps(ckpt.manifest, sort_keys=True).encode()).hexdigest()[:16]
            metadata = {"source": str(folder), "config": ckpt.config, "metrics": run.get("metrics"),
                        "versions": run.get("library_versions", {})}
            return cls(model, None, maxlen=None, from_logits=_outputs_logits(ckpt.config), batch_size=batch_size,
                       metadata=metadata, version=version, bfloat16=bfloat16)
        record = _inference_record(ckpt.vocab, folder / "vocab.json")
        seq = record.get("sequence", {})
        length = maxlen if maxlen is not None else seq.get("maxlen", _declared_length(model))
        if maxlen is None and isinstance(length, int) and length > MAX_CHECKPOINT_MAXLEN:
            raise CheckpointError(f"{folder / 'vocab.json'}: sequence maxlen {length} is larger than "
                                  f"{MAX_CHECKPOINT_MAXLEN} (pass maxlen= to override)")
        run = ckpt.run_info or {}
        version = hashlib.sha256(json.dumps(ckpt.manifest, sort_keys=True).encode()).hexdigest()[:16]
        tokenizer = record["tokenizer"]
        metadata = {
            "source": str(folder),
            "config": ckpt.config,
            "vocab_size": len(tokenizer.vocab),
            "tokenizer": tokenizer.get_config(),
            "metrics": run.get("metrics"),
            "run": {k: run[k] for k in ("seed", "saved_at", "device", "command") if k in run},
            "versions": run.get("library_versions", {}),
        }
        try:
            return cls(model, tokenizer, maxlen=length, padding=seq.get("padding", "pre"),
                       truncating=seq.get("truncating", "pre"), pad_value=seq.get("value", 0),
                       labels=record.get("labels"), from_logits=_outputs_logits(ckpt.config),
                       batch_size=batch_size, metadata=metadata, version=version, bfloat16=bfloat16)
        except ConfigError as e:
            raise CheckpointError(f"{folder / 'vocab.json'}: {e}") from None

    def save(self, path: str | os.PathLike[str], *, run_info: Mapping[str, Any] | None = None) -> Path:
        """Write model, tokenizer, padding and class names as a checkpoint folder :meth:`from_checkpoint` reads.

        Args:
            path: the folder (written atomically, committed by its manifest).
            run_info: the ``run.json`` record (default: command line, versions and no metrics).

        Returns:
            The folder.
        """
        from lstmtext.checkpoint import make_run_info, save_checkpoint
        from lstmtext.layers import serialize

        if self.tokenizer is None or not hasattr(self.model, "get_config"):
            raise ConfigError("Predictor.save: needs an lstmtext model and a lstmtext.text.Tokenizer "
                              f"(got {type(self.model).__name__} and an encode function)")
        record = inference_record(self.tokenizer, maxlen=self.maxlen, padding=self.padding,
                                  truncating=self.truncating, pad_value=self.pad_value, labels=self.labels)
        return save_checkpoint(path, config=serialize(self.model), weights=self.model.state_dict(), vocab=record,
                               run_info=run_info if run_info is not None else make_run_info())

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

    def encode_padded(self, texts: Sequence[str]) -> np.ndarray:
        """Texts -> the padded int64 ids ``(N, maxlen)`` the model is given (``pad(encode(texts))``).

        With a :class:`~lstmtext.text.Tokenizer` and a ``maxlen`` the ids never become Python lists, and the
        word lookups run in the compiled kernel without the GIL (loaded here for a model on CPU, which uses it
        anyway; on another device only if something else loaded it), which leaves the GIL to the service's
        event loop.
        """
        if self.takes_strings:
            return np.array(list(texts), dtype=object)
        if self.tokenizer is None or self.maxlen is None:
            return self.pad(self.encode(texts))
        ops = load_ops() if self.device.type == "cpu" else loaded_ops()
        ids, offsets = self.tokenizer.texts_to_flat(texts, caller="Predictor", ops=ops)
        return pad_flat(ids, offsets, self.maxlen, dtype=np.int64, padding=self.padding, truncating=self.truncating,
                        value=self.pad_value)

    def pad(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Pad/truncate id lists as in training (Keras ``pad_sequences``). Returns int64 ``(N, maxlen)``."""
        if self.maxlen is None and not any(len(seq) for seq in sequences):
            return np.full((len(sequences), 1), self.pad_value, dtype=np.int64)  # the model needs one step
        return pad_sequences(sequences, maxlen=self.maxlen, dtype="int64", padding=self.padding,
                             truncating=self.truncating, value=self.pad_value)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities of each text.

        Texts go through in chunks of ``batch_size``; with several chunks, the model runs chunk ``k`` on a
        worker thread while this thread tokenizes chunk ``k + 1`` (tokenizing holds the GIL, the model's
        kernels release it), so the two overlap.

        Args:
            texts: raw texts.

        Returns:
            float32 array ``(len(texts), C)``: ``C = 2`` for a binary model (``[1 - p, p]``).
        """
        texts = _check_texts(texts)
        chunks = [texts[i:i + self.batch_size] for i in range(0, len(texts), self.batch_size)]
        if not chunks:
            return np.zeros((0, len(self.labels) if self.labels else 2), dtype=np.float32)
        if len(chunks) == 1:
            return self._run(self.encode_padded(chunks[0]))
        outs: list[Future[np.ndarray]] = []
        with ThreadPoolExecutor(1, thread_name_prefix="lstmtext-predict") as pool:
            for i, chunk in enumerate(chunks):
                ids = self.encode_padded(chunk)
                if i >= 2:
                    outs[i - 2].result()  # at most two chunks waiting: memory stays bounded
                outs.append(pool.submit(self._run, ids))
            return np.concatenate([f.result() for f in outs], axis=0)

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

    def _run(self, ids: np.ndarray) -> np.ndarray:
        """The model on padded ids ``(B, T)`` -> probabilities ``(B, C)``."""
        # The precision context is per thread: set here, in the thread that runs the model.
        with torch.inference_mode(), bfloat16_matmuls(self.bfloat16):
            out = self.model(ids if ids.dtype == object else torch.from_numpy(ids).to(self.device))
        out = torch.as_tensor(out).detach().to("cpu", torch.float32)
        if out.ndim == 1:
            out = out[:, None]
        if out.ndim != 2 or out.shape[0] != len(ids):
            raise ConfigError(f"Predictor: the model returned shape {tuple(out.shape)} for {len(ids)} texts; "
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


def inference_record(tokenizer: Tokenizer, *, maxlen: int | None, padding: str = "pre", truncating: str = "pre",
                     pad_value: int = 0, labels: Sequence[str] | None = None) -> dict[str, Any]:
    """The ``vocab.json`` of a checkpoint :meth:`Predictor.from_checkpoint` reads: tokenizer, padding, class names.

    Pass it as ``model.save(path, vocab=...)``'s ``vocab`` to make any checkpoint predict on raw text.
    """
    return {
        "format": INFERENCE_FORMAT,
        "version": 1,
        "tokenizer": tokenizer.to_json_dict(),
        "sequence": {"maxlen": maxlen, "padding": padding, "truncating": truncating, "value": int(pad_value)},
        "labels": [str(x) for x in labels] if labels is not None else None,
    }


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


def _inference_record(vocab: Any, file: Path) -> dict[str, Any]:
    """``{"tokenizer": Tokenizer, "sequence": {...}, "labels": [...] | None}`` from a checkpoint's vocab.json."""
    if vocab is None:
        raise CheckpointError(f"{file}: missing; a checkpoint needs its tokenizer to predict on raw text")
    if not isinstance(vocab, dict):
        raise CheckpointError(f"{file}: expected a JSON object, got {type(vocab).__name__}")
    try:
        if vocab.get("format") == INFERENCE_FORMAT:
            if vocab.get("version") != 1:
                raise CheckpointError(f"{file}: {INFERENCE_FORMAT} version {vocab.get('version')!r} is not "
                                      "supported (this lstmtext reads version 1)")
            unknown = sorted(set(vocab) - {"format", "version", "tokenizer", "sequence", "labels"})
            if unknown:
                raise CheckpointError(f"{file}: unknown field(s) {[k[:40] for k in unknown[:3]]} in an "
                                      f"{INFERENCE_FORMAT} record")
            seq, labels = vocab.get("sequence", {}), vocab.get("labels")
            if not isinstance(seq, dict) or not set(seq) <= {"maxlen", "padding", "truncating", "value"}:
                raise CheckpointError(f'{file}: "sequence" must be an object with maxlen, padding, truncating, value')
            if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
                raise CheckpointError(f'{file}: "labels" must be a list of strings or null')
            tokenizer = Tokenizer.from_json_dict(vocab.get("tokenizer"), source=str(file))
            return {"tokenizer": tokenizer, "sequence": seq, "labels": labels}
        return {"tokenizer": Tokenizer.from_json_dict(vocab, source=str(file)), "sequence": {}, "labels": None}
    except DataError as e:
        raise CheckpointError(str(e)) from None


def _declared_length(model: Any) -> int | None:
    """The time axis of the model's declared input shape, when it is fixed (``(None, 300)`` -> 300)."""
    graph = getattr(model, "_graph", None)
    if graph is not None and len(graph.inputs) == 1 and not hasattr(model, "build_input_shape"):
        shape = graph.inputs[0].shape  # a Functional model's Input
        return shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None
    for attr in ("build_input_shape", "batch_input_shape"):
        shape = getattr(model, attr, None)
        if shape is not None and len(shape) == 2 and isinstance(shape[1], int):
            return shape[1]
    return None


def _outputs_logits(config: Mapping[str, Any]) -> bool:
    """Whether the last layer of a Sequential config has no squashing activation (its outputs are logits)."""
    layers = config.get("config", {}).get("layers", []) if config.get("class_name") in ("Sequential",
                                                                                        "Functional") else [config]
    if config.get("class_name") == "Functional":  # the layer of the (first) output
        outputs = config.get("config", {}).get("output_layers")
        first = outputs[0] if isinstance(outputs, list) and outputs and isinstance(outputs[0], list) else outputs
        name = first[0] if isinstance(first, list) and first else None
        layers = [la for la in layers if isinstance(la, dict) and la.get("name") == name] or layers
    last = layers[-1].get("config", {}) if layers and isinstance(layers[-1], dict) else {}
    activation = last.get("activation", "linear")
    if isinstance(activation, dict):
        activation = activation.get("config", {}).get("name", activation.get("class_name"))
    return activation in (None, "linear")
