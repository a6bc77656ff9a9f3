"""What travels with an exported model so raw text can be scored: tokenizer, padding, class names.

The *inference record* is one JSON object::

    {"tokenizer": {...lstmtext.tokenizer JSON...} | null,
     "sequence": {"maxlen": 300, "padding": "pre", "truncating": "pre", "value": 0},
     "labels": ["neg", "pos"] | null,
     "from_logits": false}

A model whose first layer is a ``TextVectorization`` has ``"text_vectorization"`` instead of a tokenizer
and padding: the layer's settings and vocabulary (:func:`text_vectorization_record`); the ONNX graph then
takes that layer's output.

It is stored in the ONNX file's ``metadata_props`` under ``"lstmtext.inference"`` and, with a plain
description of the input and output, in a sidecar ``<file>.onnx.json`` that needs no ONNX library to read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lstmtext.errors import DataError, ExportError

FORMAT_KEY, FORMAT = "lstmtext.format", "lstmtext.onnx/1"
METADATA_KEY = "lstmtext.inference"
SIDECAR_FORMAT = "lstmtext.onnx-sidecar"
_SIDES = ("pre", "post")

TOKENIZATION_RULE = (
    "lower-case the text; replace every '<br />' with a space; a word is a maximal run of the characters a-z "
    "and the apostrophe, with leading and trailing apostrophes stripped (runs of apostrophes only are dropped); "
    "everything else separates words. The word of rank r (1-based, in tokenizer.vocab.words) has id "
    "r + index_from; ids outside [skip_top, num_words) become oov_char (dropped when it is null); unknown words "
    "have rank len(words) + 1; start_char, when not null, is put first and goes through the same cut."
)


TEXT_VECTORIZATION_RULE = (
    "Texts are UTF-8. standardize 'lower_and_strip_punctuation': map the ASCII letters A-Z to a-z (every other "
    "character unchanged) and delete the 32 ASCII characters !\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~' ; 'lower': "
    "the lower-casing only; 'strip_punctuation': the deletion only; null: unchanged. split 'whitespace': split "
    "on runs of ASCII whitespace (space, \\t, \\n, \\v, \\f, \\r; not U+00A0), no empty tokens; "
    "'character': one token per Unicode code point; null: the text is one token. ngrams (a list of widths, or "
    "null): the tokens become, for each width n in order, every run of n consecutive tokens joined by one "
    "space. A token's id is its index in vocabulary; a token not in it gets the index of '[UNK]'. output_mode "
    "'int': the ids of each text, padded with 0 at the end or cut to output_sequence_length (to the longest "
    "text of the batch when null); 'multi_hot': a float32 row of depth = len(vocabulary) (max_tokens when "
    "pad_to_max_tokens) with 1 at each id present; 'count': how many times each id occurs; 'tf_idf': the "
    "count times idf_weights[id]. The outputs are the graph's input."
)

#: The TextVectorization settings a sidecar can describe to code outside Python (a callable cannot be).
SIDECAR_STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation", None)
SIDECAR_SPLIT = ("whitespace", "character", None)
_TEXT_KEYS = ("standardize", "split", "ngrams", "output_mode", "output_sequence_length", "pad_to_max_tokens",
              "max_tokens", "vocabulary", "idf_weights", "encoding")


def text_vectorization_record(layer: Any) -> dict[str, Any]:
    """A ``TextVectorization`` layer's settings and vocabulary, for the metadata and the sidecar."""
    cfg = layer.get_config()
    record = {key: cfg.get(key) for key in _TEXT_KEYS}
    record["vocabulary"] = layer.get_vocabulary(include_special_tokens=True)
    idf = layer.idf_weights
    record["idf_weights"] = None if idf is None else [float(w) for w in idf]
    return record


def _check_text_record(tv: Any, source: str) -> dict[str, Any]:
    if not isinstance(tv, Mapping):
        raise ExportError(f"{source}: text_vectorization must be an object, got {type(tv).__name__}")
    unknown = set(tv) - set(_TEXT_KEYS)
    if unknown:
        raise ExportError(f"{source}: unknown text_vectorization settings {sorted(unknown)}; expected "
                          f"{list(_TEXT_KEYS)}")
    if tv.get("standardize") not in SIDECAR_STANDARDIZE or tv.get("split") not in SIDECAR_SPLIT:
        raise ExportError(f"{source}: text_vectorization standardize/split must be one of {SIDECAR_STANDARDIZE} / "
                          f"{SIDECAR_SPLIT}, got {tv.get('standardize')!r} / {tv.get('split')!r}")
    vocab = tv.get("vocabulary")
    if not isinstance(vocab, list) or not vocab or not all(isinstance(t, str) for t in vocab):
        raise ExportError(f"{source}: text_vectorization.vocabulary must be a non-empty list of strings")
    return dict(tv)


def declared_length(model: Any) -> int | None:
    """The model's fixed sequence length (``Input(shape=(300,))``, ``Embedding(input_length=300)``), or None."""
    shape = getattr(model, "build_input_shape", None)
    if shape is not None and len(shape) >= 2 and isinstance(shape[1], int):
        return shape[1]
    return None


def outputs_logits(model: Any) -> bool:
    """Whether the model's last layer has no squashing activation (its outputs are logits)."""
    from lstmtext.export.graph import activation_name

    layers = list(getattr(model, "layers", []))
    act = getattr(layers[-1], "activation", None) if layers else None
    return act is not None and activation_name(act) in ("linear", None)


def normalize_record(record: Mapping[str, Any], model: Any, source: str = "inference") -> dict[str, Any]:
    """Check an inference record and fill in defaults (Keras's ``pre``/``pre`` padding, the model's length).

    ``record["tokenizer"]`` may be a :class:`~lstmtext.text.Tokenizer` or its JSON dict.

    Raises:
        ExportError: naming ``source`` and the field that is wrong.
    """
    from lstmtext.text import Tokenizer

    if not isinstance(record, Mapping):
        raise ExportError(f"{source}: expected an object with tokenizer/sequence/labels, got {type(record).__name__}")
    labels = _labels(record.get("labels"), source)
    from_logits = bool(record.get("from_logits", outputs_logits(model)))
    if record.get("text_vectorization") is not None:
        if record.get("tokenizer") is not None:
            raise ExportError(f"{source}: a model whose first layer is TextVectorization takes raw text; give no "
                              "tokenizer")
        return {"tokenizer": None, "text_vectorization": _check_text_record(record["text_vectorization"], source),
                "sequence": None, "labels": labels, "from_logits": from_logits}
    tok = record.get("tokenizer")
    if isinstance(tok, Tokenizer):
        tok = tok.to_json_dict()
    if tok is not None:
        try:
            Tokenizer.from_json_dict(tok, source=source)
        except DataError as e:
            raise ExportError(str(e)) from None
    seq = dict(record.get("sequence") or {})
    unknown = set(seq) - {"maxlen", "padding", "truncating", "value"}
    if unknown:
        raise ExportError(f"{source}: unknown sequence settings {sorted(unknown)}; expected maxlen, padding, "
                          "truncating, value")
    seq.setdefault("maxlen", declared_length(model))
    seq.setdefault("padding", "pre")
    seq.setdefault("truncating", "pre")
    seq.setdefault("value", 0)
    maxlen = seq["maxlen"]
    if maxlen is not None and (not isinstance(maxlen, int) or isinstance(maxlen, bool) or maxlen <= 0):
        raise ExportError(f"{source}: sequence.maxlen must be a positive integer or null, got {maxlen!r}")
    for key in ("padding", "truncating"):
        if seq[key] not in _SIDES:
            raise ExportError(f"{source}: sequence.{key} must be 'pre' or 'post', got {seq[key]!r}")
    if not isinstance(seq["value"], int) or isinstance(seq["value"], bool):
        raise ExportError(f"{source}: sequence.value must be an integer id, got {seq['value']!r}")
    return {"tokenizer": tok, "sequence": seq, "labels": labels, "from_logits": from_logits}


def _labels(labels: Any, source: str) -> list[str] | None:
    if labels is None:
        return None
    if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels):
        raise ExportError(f"{source}: labels must be a list of strings or null, got {labels!r}")
    return list(labels)


def inference_record_from_checkpoint(ckpt: Any, model: Any) -> dict[str, Any] | None:
    """The inference record of a loaded checkpoint: from its ``vocab.json`` (a bare tokenizer, or the
    ``lstmtext.inference`` record with padding and class names); None when it has no vocabulary."""
    vocab = ckpt.vocab
    source = str(ckpt.path / "vocab.json")
    if vocab is None:
        return None
    if not isinstance(vocab, dict):
        raise ExportError(f"{source}: expected a JSON object, got {type(vocab).__name__}")
    if vocab.get("format") == "lstmtext.inference":
        record = {k: vocab.get(k) for k in ("tokenizer", "sequence", "labels")}
    else:
        record = {"tokenizer": vocab}
    return normalize_record(record, model, source)


def sidecar(record: Mapping[str, Any], model_file: str, input_name: str, output_name: str) -> dict[str, Any]:
    """The sidecar JSON: the inference record plus how to feed the graph, readable without lstmtext."""
    tv = record.get("text_vectorization")
    if tv is not None:
        ids = tv.get("output_mode") == "int"
        return {
            "format": SIDECAR_FORMAT,
            "version": 1,
            "model": model_file,
            "input": {"name": input_name, "dtype": "int64" if ids else "float32",
                      "shape": ["batch", "sequence" if ids else "depth"],
                      "description": "the text_vectorization outputs of the texts (see text_vectorization_rule)"},
            "output": {"name": output_name, "dtype": "float32",
                       "description": "(batch, 1): probability of class 1 (sigmoid), or (batch, classes) "
                                      "(softmax); logits when from_logits"},
            "text_vectorization_rule": TEXT_VECTORIZATION_RULE,
            **dict(record),
        }
    return {
        "format": SIDECAR_FORMAT,
        "version": 1,
        "model": model_file,
        "input": {"name": input_name, "dtype": "int64", "shape": ["batch", "sequence"],
                  "description": "token ids, padded with sequence.value to sequence.maxlen on the sequence.padding "
                                 "side, long texts cut on the sequence.truncating side"},
        "output": {"name": output_name, "dtype": "float32",
                   "description": "(batch, 1): probability of class 1 (sigmoid), or (batch, classes) "
                                  "(softmax); logits when from_logits"},
        "tokenization_rule": TOKENIZATION_RULE,
        **dict(record),
    }
