"""TextVectorization: raw strings to token ids or bag-of-words vectors, as ``keras.layers.TextVectorization``.

Keras 3 runs this layer on TensorFlow whatever the backend; this one runs on NumPy (``lstmtext.text.vectorize``)
with the same vocabularies and outputs: see that module for the TensorFlow semantics it keeps.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmtext.errors import ConfigError, DataError
from lstmtext.kernels.build import loaded_ops
from lstmtext.layers.base import Layer, Shape, register_layer
from lstmtext.text.vectorize import (
    OOV_TOKEN,
    OUTPUT_MODES,
    TextPipeline,
    TokenCounter,
    VocabularyIndex,
    as_string_array,
    check_token_list,
    normalize_ngrams,
    tf_reduce_mean_float32,
)
from lstmtext.utils.io import atomic_write_json

ASSET_FILE = "text_vectorization.json"
"""The file `TextVectorization.save_assets` writes: the vocabulary (special tokens included) and IDF weights."""


@register_layer
class TextVectorization(Layer):
    """A preprocessing layer which maps text features to integer sequences or dense vectors.

    Each string is standardized (by default lower-cased and stripped of ASCII punctuation), split (by default
    on whitespace), optionally recombined into n-grams, and looked up in a vocabulary learned by `adapt` or
    given as ``vocabulary``. Vocabularies and outputs are Keras's, token for token (ties broken by the
    token's bytes, descending; ``""`` is index 0 and ``[UNK]`` index 1 in ``"int"`` mode).

    Args:
        max_tokens: maximum vocabulary size, special tokens included (so ``max_tokens - 2`` learned tokens in
            ``"int"`` mode, ``max_tokens - 1`` otherwise). None: no limit.
        standardize: None, ``"lower_and_strip_punctuation"`` (default), ``"lower"``, ``"strip_punctuation"``,
            or a callable receiving a NumPy ``str`` array and returning one of the same shape. Lower-casing
            is ASCII-only, as TensorFlow's ``tf.strings.lower``.
        split: None, ``"whitespace"`` (default: runs of ASCII whitespace), ``"character"`` (code points), or a
            callable receiving a 1-D NumPy ``str`` array and returning one list of tokens per element.
        ngrams: None, an integer n (n-grams of widths 1..n) or a tuple of widths.
        output_mode: ``"int"`` (token ids, 0-padded), ``"multi_hot"``, ``"count"`` or ``"tf_idf"``
            (``"binary"`` and ``"tf-idf"`` are accepted as Keras's old names).
        output_sequence_length: ``"int"`` mode only: pad or truncate every row to this length.
        pad_to_max_tokens: dense modes only: make the feature axis ``max_tokens`` wide whatever the vocabulary.
        vocabulary: a list/tuple/array of tokens, or the path of a text file with one token per line; the layer
            then needs no `adapt` (and refuses one).
        idf_weights: ``"tf_idf"`` mode with ``vocabulary``: the inverse document frequencies, one per token.
        sparse: refused (sparse outputs are TensorFlow-only in Keras too).
        ragged: refused (TensorFlow-only in Keras too).
        encoding: the encoding of ``bytes`` inputs.

    Call it on a str, a list of str, or a NumPy str/object array of shape ``(batch,)`` or ``(batch, 1)``.
    Returns a CPU-or-layer-device ``torch`` tensor: ``(batch, T)`` int64 in ``"int"`` mode (T = the longest
    row or ``output_sequence_length``), ``(batch, depth)`` float32 otherwise.

    >>> layer = TextVectorization(max_tokens=5000, output_sequence_length=4)
    >>> layer.adapt(["foo bar", "bar baz", "baz bada boom"])
    >>> layer(["foo qux bar", "qux baz"])
    tensor([[4, 1, 3, 0],
            [1, 2, 0, 0]])
    """

    #: Takes raw strings: a model whose first layer this is gets str/object arrays from fit/predict unchanged.
    string_input: bool = True

    def __init__(
        self,
        max_tokens: int | None = None,
        standardize: str | Callable[[np.ndarray], Any] | None = "lower_and_strip_punctuation",
        split: str | Callable[[np.ndarray], Any] | None = "whitespace",
        ngrams: int | tuple[int, ...] | None = None,
        output_mode: str = "int",
        output_sequence_length: int | None = None,
        pad_to_max_tokens: bool = False,
        vocabulary: Iterable[str] | str | os.PathLike[str] | None = None,
        idf_weights: Iterable[float] | np.ndarray | None = None,
        sparse: bool = False,
        ragged: bool = False,
        encoding: str = "utf-8",
        **kwargs: Any,
    ) -> None:
        # Keras's config records it: the output depth until a vocabulary is set (a .keras file's comes from its
        # assets, after the graph is built); afterwards the vocabulary itself decides it
        declared_size = kwargs.pop("vocabulary_size", None)
        self._declared_vocabulary_size = declared_size if isinstance(declared_size, int) and \
            not isinstance(declared_size, bool) and declared_size > 0 else None
        has_input_vocabulary = kwargs.pop("has_input_vocabulary", vocabulary is not None)
        super().__init__(**kwargs)
        where = f"TextVectorization {self.name!r}"
        if sparse:
            raise ConfigError(f"{where}: sparse=True is not supported (outputs are dense tensors; Keras supports "
                              f"it on the TensorFlow backend only)")
        if ragged:
            raise ConfigError(f"{where}: ragged=True is not supported (int outputs are 0-padded; Keras supports "
                              f"it on the TensorFlow backend only)")
        output_mode = {"binary": "multi_hot", "tf-idf": "tf_idf"}.get(output_mode, output_mode)
        if output_mode not in OUTPUT_MODES:
            raise ConfigError(f"{where}: `output_mode` must be one of {OUTPUT_MODES}; got output_mode={output_mode!r}")
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                       or max_tokens <= (2 if output_mode == "int" else 1)):
            raise ConfigError(f"{where}: `max_tokens` must be None or an integer greater than "
                              f"{2 if output_mode == 'int' else 1} (the special tokens count); got {max_tokens!r}")
        if output_sequence_length is not None:
            if output_mode != "int":
                raise ConfigError(f"{where}: `output_sequence_length` must not be set if `output_mode` is not "
                                  f"'int'; got output_sequence_length={output_sequence_length!r}")
            if isinstance(output_sequence_length, bool) or not isinstance(output_sequence_length, int) \
                    or output_sequence_length < 0:
                raise ConfigError(f"{where}: `output_sequence_length` must be None or a non-negative integer; got "
                                  f"{output_sequence_length!r}")
        if pad_to_max_tokens and output_mode != "int" and max_tokens is None:
            raise ConfigError(f"{where}: pad_to_max_tokens=True needs `max_tokens` (the width to pad to)")
        if idf_weights is not None and output_mode != "tf_idf":
            raise ConfigError(f"{where}: `idf_weights` should only be set if `output_mode` is 'tf_idf'; got "
                              f"output_mode={output_mode!r}")
        if output_mode == "tf_idf" and vocabulary is not None and idf_weights is None:
            raise ConfigError(f"{where}: with a `vocabulary` in 'tf_idf' mode, `idf_weights` must be given too")
        self.max_tokens = max_tokens
        self.output_mode = output_mode
        self.output_sequence_length = output_sequence_length
        self.pad_to_max_tokens = bool(pad_to_max_tokens)
        self.encoding = encoding
        self._standardize = standardize
        self._split = split
        self._ngrams_arg = list(ngrams) if isinstance(ngrams, list) else ngrams
        self._pipeline = TextPipeline(standardize, split, normalize_ngrams(ngrams), where)
        self._has_input_vocabulary = bool(has_input_vocabulary)
        fixed = self._has_input_vocabulary and not isinstance(vocabulary, (str, os.PathLike))
        self._input_vocabulary = check_token_list(vocabulary, where) if fixed and vocabulary is not None else None
        self._input_idf_weights = None if idf_weights is None or not fixed else \
            np.asarray(idf_weights, np.float64).tolist()
        self._index: VocabularyIndex | None = None
        self._counter: TokenCounter | None = None
        self._native: tuple[Any, ...] | None = None  # (index, slots, words, offsets) of the compiled lookup
        # Outputs follow the layer's device (module.to(...) moves this empty buffer; it is never saved).
        self.register_buffer("_device_anchor", torch.empty(0), persistent=False)
        self.built = True
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)

    @property
    def _where(self) -> str:
        return f"TextVectorization {self.name!r}"

    @property
    def _token_start(self) -> int:
        return 2 if self.output_mode == "int" else 1

    # -- vocabulary ---------------------------------------------------------------------------------
    def adapt(self, data: Any, batch_size: int | None = None, steps: int | None = None) -> None:
        """Learn the vocabulary (and IDF weights in ``"tf_idf"`` mode) from ``data``, replacing any earlier one.

        Tokens are ranked by count; ties by the token, descending; ``max_tokens`` keeps the most frequent.

        Args:
            data: a list / tuple / NumPy array of strings (each string one document), or an iterable of batches
                (a generator, a `text_dataset_from_directory` dataset: a ``(texts, labels)`` batch is read
                for its texts).
            batch_size: accepted for Keras compatibility; unused.
            steps: for an iterable, the number of batches to read (all when None).

        Raises:
            ConfigError: if the layer was built with a fixed ``vocabulary``.
            DataError: for data that is not strings.
        """
        if self._has_input_vocabulary:
            raise ConfigError(f"Cannot adapt layer {self.name!r} after setting a static vocabulary via the "
                              "`vocabulary` argument")
        self.reset_state()
        if isinstance(data, (list, tuple, np.ndarray, str, bytes)):
            arr = as_string_array(data, encoding=self.encoding, where=self._where)
            if arr.ndim == 1:
                arr = arr[:, None]
            self.update_state(arr)
        elif hasattr(data, "__iter__"):
            for i, batch in enumerate(data):
                if steps is not None and i >= steps:
                    break
                self.update_state(_texts_of(batch))
        else:
            raise DataError(f"{self._where}: adapt() takes strings or an iterable of batches of strings; got "
                            f"{type(data).__name__}")
        self.finalize_state()

    def update_state(self, data: Any) -> None:
        """Count the tokens of one batch (``adapt`` = `reset_state`, `update_state` per batch, `finalize_state`)."""
        if self._has_input_vocabulary:
            raise ConfigError(f"Cannot adapt layer {self.name!r} after setting a static vocabulary via the "
                              "`vocabulary` argument")
        arr = as_string_array(data, encoding=self.encoding, where=self._where)
        if self._counter is None:
            self._counter = TokenCounter(self.output_mode == "tf_idf")
        pipeline = self._pipeline
        if self.output_mode != "tf_idf" and pipeline.split == "whitespace" and pipeline.ngrams is None:
            # only the counts matter: one split of all the texts (a space between two texts is one more
            # separator) costs less than one list per text
            _, std = pipeline.standardize_for_split(arr)
            self._counter.update([b" ".join(std).split()])
            return
        _, docs, _ = pipeline(arr)
        self._counter.update(docs)

    def finalize_state(self) -> None:
        """Turn the counted tokens into the vocabulary (and IDF weights)."""
        counter, self._counter = self._counter, None
        if counter is None or not counter.counts:
            return  # Keras keeps the previous vocabulary when nothing was counted
        max_learned = None if not self.max_tokens else self.max_tokens - self._token_start
        tokens = counter.ranked_tokens(max_learned)
        idf = None
        if self.output_mode == "tf_idf":
            learned = counter.idf_weights(tokens)
            oov = tf_reduce_mean_float32(learned)
            idf = np.concatenate([np.full(self._token_start, oov, np.float32), learned])
            idf = self._pad_idf(idf)
        self._index = VocabularyIndex(tokens, self.output_mode, idf)

    def reset_state(self) -> None:
        """Forget what `update_state` counted (the vocabulary stays until `finalize_state`)."""
        self._counter = None

    def _pad_idf(self, idf: np.ndarray) -> np.ndarray:
        if self.pad_to_max_tokens and self.max_tokens is not None and len(idf) < self.max_tokens:
            idf = np.concatenate([idf, np.zeros(self.max_tokens - len(idf), np.float32)])
        return idf.astype(np.float32)

    def set_vocabulary(self, vocabulary: Iterable[str] | str | os.PathLike[str],
                       idf_weights: Iterable[float] | np.ndarray | None = None) -> None:
        """Set the vocabulary (and IDF weights in ``"tf_idf"`` mode) directly instead of by `adapt`.

        Args:
            vocabulary: tokens in index order, with or without the leading special tokens (``["", "[UNK]"]`` in
                ``"int"`` mode, ``["[UNK]"]`` otherwise), or the path of a UTF-8 text file with one token per
                line (special tokens excluded).
            idf_weights: ``"tf_idf"`` mode only (and required there): one weight per entry of ``vocabulary``;
                without the special tokens, ``[UNK]`` gets their mean.

        Raises:
            ConfigError: repeated tokens, ``""`` among the tokens, more than ``max_tokens``, a missing or
                mismatched ``idf_weights``, an unreadable file.
        """
        where = self._where
        if self.output_mode == "tf_idf":
            if idf_weights is None:
                raise ConfigError(f"{where}: `idf_weights` must be set if output_mode is 'tf_idf'")
        elif idf_weights is not None:
            raise ConfigError(f"{where}: `idf_weights` should only be set if output_mode is 'tf_idf'; got "
                              f"output_mode={self.output_mode!r}")
        specials = ["", OOV_TOKEN] if self.output_mode == "int" else [OOV_TOKEN]
        if isinstance(vocabulary, (str, os.PathLike)):
            if self.output_mode == "tf_idf":
                raise ConfigError(f"{where}: output_mode 'tf_idf' does not support loading a vocabulary from file")
            words = _read_vocabulary_file(Path(vocabulary), where)
            found_specials = False
        else:
            if isinstance(vocabulary, torch.Tensor):
                raise ConfigError(f"{where}: a vocabulary must be strings, got a torch tensor")
            words = check_token_list(vocabulary, where)
            found_specials = words[:len(specials)] == specials
        if not words:
            raise ConfigError(f"{where}: cannot set an empty vocabulary")
        tokens = words[len(specials):] if found_specials else words
        if len(set(tokens)) != len(tokens):
            seen: set[str] = set()
            repeated = sorted({t for t in tokens if t in seen or seen.add(t)})  # type: ignore[func-returns-value]
            raise ConfigError(f"{where}: the vocabulary has repeated terms: {repeated[:10]}")
        if "" in tokens:
            raise ConfigError(f"{where}: found the reserved mask token '' at vocabulary index {words.index('')}; "
                              f"leave the special tokens out, or put them first in exactly this order: {specials}")
        if self.max_tokens is not None and len(specials) + len(tokens) > self.max_tokens:
            raise ConfigError(f"{where}: attempted to set a vocabulary of {len(specials) + len(tokens)} entries "
                              f"(special tokens included); max_tokens is {self.max_tokens}")
        idf = None
        if idf_weights is not None:
            weights = np.asarray(list(idf_weights) if not isinstance(idf_weights, np.ndarray | torch.Tensor)
                                 else idf_weights, dtype=np.float64)
            if weights.ndim != 1 or len(weights) != len(words):
                raise ConfigError(f"{where}: `idf_weights` must be 1-D with one weight per vocabulary entry "
                                  f"({len(words)}); got shape {weights.shape}")
            if not found_specials:
                weights = np.concatenate([np.full(len(specials), np.average(weights) if len(weights) else 0.0),
                                          weights])
            idf = self._pad_idf(weights.astype(np.float32))
        self._index = VocabularyIndex([t.encode("utf-8") for t in tokens], self.output_mode, idf)

    def get_vocabulary(self, include_special_tokens: bool = True) -> list[str]:
        """The vocabulary in index order (a token's position is its id when ``include_special_tokens``)."""
        if self._index is None:
            specials = ["", OOV_TOKEN] if self.output_mode == "int" else [OOV_TOKEN]
            return specials if include_special_tokens else []
        return self._index.vocabulary(include_special_tokens)

    def vocabulary_size(self) -> int:
        """The vocabulary size, special tokens included."""
        return self._token_start + (len(self._index.tokens) if self._index is not None else 0)

    @property
    def idf_weights(self) -> np.ndarray | None:
        """The IDF weight of every index (``"tf_idf"`` mode), or None."""
        return None if self._index is None or self._index.idf_weights is None else self._index.idf_weights.copy()

    # -- calling ------------------------------------------------------------------------------------
    def forward(self, inputs: Any, mask: torch.Tensor | None = None, training: bool | None = None,
                **kwargs: Any) -> Any:
        # Strings go straight to call(); anything else (a symbolic input of the Functional API, a tensor)
        # takes the base class's path, which ends in call() too (and a clear error for numbers).
        if isinstance(inputs, (str, bytes, list, tuple, np.ndarray)):
            return self.call(inputs)
        return super().forward(inputs, mask=mask, training=training, **kwargs)

    def _call_symbolic(self, inputs: Any, mask: Any, kwargs: dict[str, Any]) -> Any:
        # The Functional API runs a layer on placeholder inputs (empty strings, for two batch sizes) to learn
        # its output shape; empty strings would give 0 tokens. Answer those runs with Keras's symbolic shape
        # instead: (batch, output_sequence_length or unknown) int64, or (batch, depth) float32.
        self._symbolic_probe = True
        try:
            return super()._call_symbolic(inputs, mask, kwargs)  # type: ignore[misc]
        finally:
            self._symbolic_probe = False

    def _symbolic_stand_in(self, inputs: Any) -> torch.Tensor:
        batch = int(np.shape(inputs)[0]) if np.ndim(inputs) else 1
        if self.output_mode == "int":
            # a width that changes with the stand-in batch size reads as an unknown dimension
            width = self.output_sequence_length if self.output_sequence_length is not None else batch + 1
            return torch.zeros((batch, width), dtype=torch.int64)
        depth = self.max_tokens if self.pad_to_max_tokens else (
            self.vocabulary_size() if self._index is not None else self._declared_vocabulary_size or batch + 1)
        return torch.zeros((batch, depth), dtype=torch.float32)

    def call(self, inputs: Any, mask: torch.Tensor | None = None, training: bool = False,
             **kwargs: Any) -> torch.Tensor:
        if getattr(self, "_symbolic_probe", False):
            return self._symbolic_stand_in(inputs)
        if self._index is None:
            raise ConfigError(f"{self._where}: no vocabulary yet; call adapt() on sample texts or pass `vocabulary` "
                              f"before calling the layer")
        out = self.vectorize(inputs)
        tensor = torch.from_numpy(out)
        device = self._device_anchor.device
        return tensor if device.type == "cpu" else tensor.to(device)

    def vectorize(self, inputs: Any) -> np.ndarray:
        """The layer's output as a NumPy array (int64 or float32), without torch."""
        if self._index is None:
            raise ConfigError(f"{self._where}: no vocabulary yet; call adapt() on sample texts or pass `vocabulary` "
                              f"before calling the layer")
        arr = as_string_array(inputs, encoding=self.encoding, where=self._where)
        native = self._native_ids(arr)
        if native is not None:
            lead, ids, lengths = native
            if self.output_mode == "int":
                return self._index.int_from_ids(lead, ids, lengths, self.output_sequence_length)
            return self._index.dense_from_ids(lead, ids, lengths, self._depth)
        lead, docs, scalar = self._pipeline(arr)
        if self.output_mode == "int":
            out = self._index.encode_int(lead, docs, self.output_sequence_length)
            return out.reshape(()) if scalar and out.size == 1 else out
        return self._index.encode_dense(lead, docs, self._depth)

    @property
    def _depth(self) -> int:
        return self.max_tokens if self.pad_to_max_tokens else len(self._index)  # type: ignore[return-value,arg-type]

    def _native_ids(self, arr: np.ndarray) -> tuple[tuple[int, ...], np.ndarray, np.ndarray] | None:
        """Whitespace-split lookups in the compiled kernel, when this process has loaded it (never builds it).

        ``kernels/text_cpu.cpp``'s ``lookup_words`` splits on ASCII whitespace exactly like ``bytes.split()``
        and looks the words up without the GIL: about 5x faster than the Python path on IMDB reviews
        (bench/bench_text.py). Texts are joined with newlines, so a newline inside a text becomes a space
        first (both are whitespace to the split).
        """
        pipeline, index = self._pipeline, self._index
        if pipeline.split != "whitespace" or pipeline.ngrams is not None or index is None or arr.size == 0:
            return None
        ops = loaded_ops()
        if ops is None:
            return None
        lead, std = pipeline.standardize_for_split(arr)
        blob = bytearray(b"\n").join(b.replace(b"\n", b" ") if b"\n" in b else b for b in std)
        native = self._native
        if native is None or native[0] is not index:
            offsets = np.zeros(len(index.tokens) + 1, dtype=np.int64)
            np.cumsum(np.fromiter(map(len, index.tokens), dtype=np.int64, count=len(index.tokens)), out=offsets[1:])
            words = torch.frombuffer(bytearray(b"".join(index.tokens)) or bytearray(1), dtype=torch.uint8)
            words = words[: int(offsets[-1])]
            offsets_t = torch.from_numpy(offsets)
            native = self._native = (index, ops.vocab_slots(words, offsets_t), words, offsets_t)
        _, slots, words, offsets_t = native
        text = torch.frombuffer(blob, dtype=torch.uint8) if blob else torch.zeros(0, dtype=torch.uint8)
        ranks, counts = ops.lookup_words(text, len(std), slots, words, offsets_t)
        ranks = ranks.numpy().astype(np.int64)
        unknown = ranks == len(index.tokens) + 1
        # rank r (1-based position among the learned tokens) is id r + 1 in "int" mode, r otherwise
        ids = ranks + (index.token_start - 1)
        ids[unknown] = index.oov_index
        return lead, ids, counts.numpy()

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        if self.output_mode == "int":
            return (input_shape[0], self.output_sequence_length)
        depth = self.max_tokens if self.pad_to_max_tokens else (
            self.vocabulary_size() if self._index else self._declared_vocabulary_size)
        return (input_shape[0], depth)

    def compute_mask(self, inputs: Any, mask: torch.Tensor | None = None) -> torch.Tensor | None:
        return None

    # -- config and assets --------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Keras's config keys, with the adapted vocabulary (and IDF weights) as ``vocabulary``/``idf_weights``.

        A callable ``standardize``/``split`` is returned as the callable itself (rebuildable in-process only).
        """
        cfg = super().get_config()
        cfg.update({
            "max_tokens": self.max_tokens,
            "standardize": self._standardize,
            "split": self._split,
            "ngrams": list(self._ngrams_arg) if isinstance(self._ngrams_arg, tuple) else self._ngrams_arg,
            "output_mode": self.output_mode,
            "output_sequence_length": self.output_sequence_length,
            "pad_to_max_tokens": self.pad_to_max_tokens,
            "sparse": False,
            "ragged": False,
            "vocabulary": self._input_vocabulary,
            "idf_weights": self._input_idf_weights,
            "encoding": self.encoding,
            "vocabulary_size": self.vocabulary_size(),
        })
        if self._input_vocabulary is None and self._index is not None:
            # An adapted vocabulary travels in the config (Keras keeps it in the .keras file's assets), so a
            # checkpoint's config.json rebuilds the layer ready to use; adapt() stays allowed after loading.
            cfg["vocabulary"] = self.get_vocabulary()
            idf = self.idf_weights
            cfg["idf_weights"] = None if idf is None else [float(w) for w in idf[:self.vocabulary_size()]]
            cfg["has_input_vocabulary"] = False
        return cfg

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> TextVectorization:
        config = dict(config)
        for key in ("standardize", "split"):
            value = config.get(key)
            if value is not None and not isinstance(value, str) and not callable(value):
                raise ConfigError(f"TextVectorization config: {key!r} is {value!r:.80}; only None, a mode name or "
                                  "(in the same process) a callable can be rebuilt; a serialized function is not "
                                  "imported")
        if isinstance(config.get("vocabulary"), str):
            # Keras refuses this in safe mode too: a config (say, a checkpoint's) must not make us read a file
            raise ConfigError("TextVectorization config: 'vocabulary' names a file "
                              f"({config['vocabulary']!r:.80}); a config may only hold the vocabulary itself")
        if isinstance(config.get("ngrams"), list):
            config["ngrams"] = tuple(config["ngrams"])
        return cls(**config)

    def assets(self) -> dict[str, Any]:
        """The adapted state as JSON: ``{"vocabulary": [...], "idf_weights": [...] or None}``."""
        idf = self.idf_weights
        return {"format": "lstmtext.text_vectorization", "version": 1,
                "output_mode": self.output_mode,
                "vocabulary": self.get_vocabulary(include_special_tokens=True) if self._index is not None else None,
                "idf_weights": None if idf is None else [float(w) for w in idf[:self.vocabulary_size()]]}

    def load_assets_dict(self, obj: Any, *, source: str = "TextVectorization assets") -> None:
        """Restore what `assets` returned (a fixed-``vocabulary`` layer keeps its own)."""
        if not isinstance(obj, dict) or obj.get("format") != "lstmtext.text_vectorization":
            raise DataError(f'{source}: not TextVectorization assets (expected "format": '
                            '"lstmtext.text_vectorization")')
        if obj.get("output_mode") != self.output_mode:
            raise DataError(f"{source}: saved for output_mode={obj.get('output_mode')!r}, the layer has "
                            f"{self.output_mode!r}")
        vocab, idf = obj.get("vocabulary"), obj.get("idf_weights")
        if vocab is None:
            return
        if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
            raise DataError(f'{source}: "vocabulary" must be a list of strings')
        if idf is not None and (not isinstance(idf, list) or not all(isinstance(w, int | float) for w in idf)):
            raise DataError(f'{source}: "idf_weights" must be a list of numbers or null')
        try:
            self.set_vocabulary(vocab, idf)
        except ConfigError as e:
            raise DataError(f"{source}: {e}") from e

    def save_assets(self, dir_path: str | os.PathLike[str]) -> None:
        """Write the vocabulary and IDF weights to ``dir_path/text_vectorization.json`` (atomically)."""
        atomic_write_json(Path(dir_path) / ASSET_FILE, self.assets())

    def load_assets(self, dir_path: str | os.PathLike[str]) -> None:
        """Read what `save_assets` wrote into ``dir_path``."""
        path = Path(dir_path) / ASSET_FILE
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{path}: missing (TextVectorization vocabulary)") from None
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not readable JSON: {e}") from e
        self.load_assets_dict(obj, source=str(path))

    def extra_repr(self) -> str:
        return (f"name={self.name!r}, output_mode={self.output_mode!r}, vocabulary_size={self.vocabulary_size()}"
                f"{'' if self._index is not None else ' (not adapted)'}")


def _texts_of(batch: Any) -> Any:
    """The texts of a batch: a ``(texts, labels)`` or ``(texts, labels, weights)`` tuple gives its texts."""
    if isinstance(batch, tuple) and len(batch) in (2, 3) and not isinstance(batch[0], str):
        labels = batch[1]
        if isinstance(labels, np.ndarray | torch.Tensor) and labels.dtype not in (object,) and \
                getattr(labels.dtype, "kind", "f") not in "USO":
            return batch[0]
    return batch


def _read_vocabulary_file(path: Path, where: str) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{where}: vocabulary file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: vocabulary file {str(path)!r} is not readable UTF-8 text: {e}") from e
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]
