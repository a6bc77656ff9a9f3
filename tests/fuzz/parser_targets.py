"""Fuzz targets and input strategies for the parsers of untrusted input outside the checkpoint reader.

Targets: the tokenizer (raw text of any kind, and tokenizer/vocabulary files), ``pad_sequences``, the
model config parser (``lstmtext.layers.deserialize`` / ``Sequential.from_config``), the TOML run config
and the service's ``/v1/predict`` body. Each target feeds one input to the package and returns normally,
or raises an exception its contract allows (:data:`ALLOWED`); anything else escaping is a bug. On a
normal return the target also checks properties of the result a user relies on.

Used by ``test_fuzz_parsers.py`` (a short deterministic run in every test run) and
``bench/bench_fuzz.py`` (a long run whose counts SECURITY.md cites). The checkpoint reader has its own
targets in ``tests/checkpoint/fuzz_targets.py``.
"""

from __future__ import annotations

import atexit
import json
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

import lstmtext.models  # noqa: F401  (registers Sequential before the layer configs are built)
from lstmtext.errors import ConfigError, DataError
from lstmtext.kernels import build
from lstmtext.layers import deserialize, registered_layers, serialize
from lstmtext.models import Sequential
from lstmtext.preprocessing.sequence import pad_sequences
from lstmtext.run.config import resolve_run_config
from lstmtext.text import Tokenizer, Vocab, tokenize
from lstmtext.text.tokenizer import normalize_bytes

#: Exceptions each target may raise: the contract its callers rely on.
#: - tokenizer, tokenizer file, model config, run config: the typed lstmtext errors of their docstrings
#:   only (DataError / ConfigError, both also ValueErrors).
#: - pad_sequences follows keras.utils.pad_sequences, errors included: ValueError (lstmtext's own
#:   checks raise ConfigError/DataError, which are ValueErrors), TypeError (numpy refusing a dtype or a
#:   value of the wrong kind, as in Keras) and OverflowError (numpy refusing a number that does not fit
#:   the dtype, as in Keras). IndexError, KeyError, AttributeError, RecursionError, MemoryError and
#:   the rest are bugs.
ALLOWED: dict[str, tuple[type[BaseException], ...]] = {
    "tokenizer": (DataError, ConfigError),
    "tokenizer file": (DataError,),
    "pad_sequences": (ValueError, TypeError, OverflowError),
    "model config": (ConfigError,),
    "run config (TOML)": (ConfigError,),
}

COUNTS: dict[str, int] = {}


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


def _allowed(name: str, error: BaseException) -> bool:
    return isinstance(error, ALLOWED[name])


class UnexpectedError(AssertionError):
    """A target raised something outside its contract (the original is chained)."""


def _guard(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Call ``fn``; return its result, or None when it raised an allowed error; raise UnexpectedError otherwise."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        if _allowed(name, e):
            return None
        raise UnexpectedError(f"{name}: {type(e).__name__}: {e}") from e


# --- shared value strategies ------------------------------------------------------------------------------

_json_scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
                 | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
json_values = st.recursive(
    _json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=16)


def nested(depth: int, kind: str = "list") -> Any:
    """A value ``depth`` levels deep, built without recursion."""
    value: Any = 0
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


# --- tokenizer -------------------------------------------------------------------------------------------

VOCAB_WORDS = ["the", "a", "and", "of", "film", "movie", "don't", "it's", "good", "bad", "o'clock", "k"]
_IMDB_BITS = ["<br />", "<BR />", "'", "''", "don't", " ", "\t", "\n", "\r\n", "The", "FILM", "movie's",
              "\u212a", "\u0130", "\u00df", "\ufb00", "\u0000", "\x7f", "\u200b", "\ufeff", "\ud800", "\udfff",
              "\U0001f3ac", "e\u0301", "\u2019", "10/10", "..."]

# Any code point, lone surrogates (category Cs) and control characters included.
any_text = st.text(st.characters(exclude_categories=()), max_size=64)
imdb_like = st.lists(st.sampled_from(_IMDB_BITS + VOCAB_WORDS), max_size=24).map("".join)
huge_text = st.builds(lambda s, n: s * n, st.text(st.characters(exclude_categories=()), min_size=1, max_size=8)
                      | st.sampled_from(["the film ", "<br />", "'", "a" * 7]), st.integers(1_000, 200_000))
texts = st.lists(any_text | imdb_like | huge_text, max_size=6)
_not_text = st.sampled_from([None, b"bytes", 3, 2.5, ["nested"], {"a": 1}])

_option = st.none() | st.integers(-2, 40) | st.sampled_from([True, 1.5, "3", np.int64(4), 2**31 - 1, 2**31, 2**64])
tokenizer_options = st.fixed_dictionaries({}, optional={
    "num_words": _option, "skip_top": _option, "start_char": _option, "oov_char": _option, "index_from": _option})

tokenizer_inputs = st.tuples(
    tokenizer_options,
    texts | st.lists(any_text | _not_text, min_size=1, max_size=4) | st.sampled_from(["a single string", b"b"]))

_WORD_RE = re.compile(r"[a-z']+")


def reference_tokenize(text: str) -> list[str]:
    """The documented rule written the slow, obvious way (module docstring of lstmtext.text.tokenizer)."""
    words = (w.strip("'") for w in _WORD_RE.findall(text.lower().replace("<br />", " ")))
    return [w for w in words if w]


def encode_text(data: tuple[dict[str, Any], Any]) -> None:
    """Target: build a Tokenizer with fuzzed options and encode fuzzed texts; check the ids."""
    _count("tokenizer")
    options, items = data
    tok = _guard("tokenizer", Tokenizer, {w: i + 1 for i, w in enumerate(VOCAB_WORDS)}, **options)
    if tok is None:
        return
    out = _guard("tokenizer", tok.texts_to_sequences, items)
    if out is None:
        return
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        raise UnexpectedError(f"tokenizer: accepted non-text input {items!r:.80}")
    if len(out) != len(items):
        raise UnexpectedError(f"tokenizer: {len(out)} sequences for {len(items)} texts")
    allowed_ids = {tok.start_char, tok.oov_char} - {None}
    start = len(tok._start())
    for text, seq in zip(items, out):
        words = reference_tokenize(text)
        if tok.oov_char is not None and len(seq) != start + len(words):
            raise UnexpectedError(f"tokenizer: {len(seq)} ids for {len(words)} words of {text[:60]!r}")
        if any(type(i) is not int or i < 0 or (i >= tok._limit() and i not in allowed_ids) for i in seq):
            raise UnexpectedError(f"tokenizer: out-of-range id in {seq[:20]}")
        if tokenize(text) != words:
            raise UnexpectedError(f"tokenizer: tokenize({text[:60]!r}) differs from the documented rule")
    if items and tok.texts_to_sequences(items[-1:]) != out[-1:]:
        raise UnexpectedError("tokenizer: a text encodes differently alone and in a batch")
    if build.load_ops() is not None:  # the compiled word lookups give what the Python ones give
        normalized = [normalize_bytes(t) for t in items]
        got = tok.vocab.encode_normalized(normalized, build.load_ops())
        want = tok.vocab.encode_token_lists([t.split() for t in normalized])
        if not (np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])):
            raise UnexpectedError(f"tokenizer: compiled word lookups differ from Python's on {items!r:.80}")


def _valid_tokenizer_json() -> dict[str, Any]:
    return Tokenizer(Vocab(VOCAB_WORDS, list(range(len(VOCAB_WORDS), 0, -1))), num_words=10).to_json_dict()


_TOKENIZER_JSON = _valid_tokenizer_json()


def _slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) of a JSON tree, so one can be replaced."""
    out, stack = [], [node]
    while stack:
        current = stack.pop()
        items = current.items() if isinstance(current, dict) else enumerate(current) if isinstance(current, list) \
            else ()
        for key, value in items:
            out.append((current, key))
            stack.append(value)
    return out


@st.composite
def mutated_json(draw, base: Any, extra: st.SearchStrategy[Any] | None = None) -> Any:
    """``base`` with one to four values (anywhere in the tree) replaced by fuzzed ones."""
    tree = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 4))):
        slots = _slots(tree)
        if not slots:
            break
        container, key = slots[draw(st.integers(0, len(slots) - 1))]
        value = draw(json_values if extra is None else json_values | extra)
        container[key] = json.loads(json.dumps(value))  # never share a drawn template
    return tree


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


def deep_json_text(depth: int, kind: str, inner: str = "0") -> str:
    """JSON text nested ``depth`` levels deep (json.dumps itself would recurse)."""
    return ("[" * depth + inner + "]" * depth) if kind == "list" else ('{"a": ' * depth + inner + "}" * depth)


deep_json = st.builds(lambda d, k: deep_json_text(d, k).encode(), st.sampled_from([50, 999, 5_000, 100_000]),
                      st.sampled_from(["list", "dict"]))
tokenizer_file_inputs = (st.binary(max_size=128) | deep_json
                         | mutated_json(_TOKENIZER_JSON, st.sampled_from(["lstmtext.tokenizer", 1, -1, 2**64]))
                         .map(_json_bytes)
                         | st.dictionaries(st.text(max_size=8), json_values, max_size=6).map(_json_bytes))

_SCRATCH = Path(tempfile.mkdtemp(prefix="lstmtext-fuzz-"))  # one small file, rewritten per input
atexit.register(shutil.rmtree, _SCRATCH, True)


def load_tokenizer_file(data: bytes) -> None:
    """Target: read fuzzed bytes as a tokenizer file and as a vocabulary file."""
    _count("tokenizer file")
    path = _SCRATCH / "tokenizer.json"
    path.write_bytes(data)
    tok = _guard("tokenizer file", Tokenizer.load, path)
    if tok is not None:
        _guard("tokenizer", tok.texts_to_sequences, ["the good film", "o'clock k"])
    _guard("tokenizer file", Vocab.load, path)


# --- pad_sequences -----------------------------------------------------------------------------------------

_numbers = (st.integers(-(2**40), 2**40) | st.floats() | st.booleans()
            | st.sampled_from([2**63, -(2**64), 1e300, np.float32(1.5), np.int8(-3), complex(1, 2)]))
_items = _numbers | st.text(max_size=3) | st.none() | st.binary(max_size=2)
_sequence = (st.lists(_items, max_size=12) | st.lists(_numbers, max_size=12).map(tuple)
             | st.lists(st.integers(-1000, 1000), max_size=12).map(np.asarray)
             | st.lists(st.lists(_numbers, min_size=2, max_size=2), max_size=4)  # sequences of vectors
             | st.builds(np.zeros, st.tuples(st.integers(0, 3), st.integers(0, 3)))
             | _items | st.text(max_size=4))
pad_inputs = st.fixed_dictionaries(
    {"sequences": st.lists(_sequence, max_size=6) | st.lists(_sequence, max_size=6).map(tuple) | _items},
    optional={
        "maxlen": st.none() | st.integers(-2, 40) | st.sampled_from([True, 2.0, "3", np.int32(5)]),
        "dtype": st.sampled_from(["int32", "int64", "float32", "float16", "uint8", "bool", "object", "<U4", "S2",
                                  "complex64", object, float, "foo", "", "int32,int32", None, 3]),
        "padding": st.sampled_from(["pre", "post", "PRE", "", None, 1]),
        "truncating": st.sampled_from(["pre", "post", "middle", None]),
        "value": _items,
    })


def pad(kwargs: dict[str, Any]) -> None:
    """Target: pad fuzzed sequences with fuzzed options; check the result's shape."""
    _count("pad_sequences")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy warns on lossy casts (nan to int, complex to real), as in Keras
        out = _guard("pad_sequences", pad_sequences, **kwargs)
    if out is None:
        return
    seqs = kwargs["sequences"]
    if not isinstance(out, np.ndarray) or out.ndim < 2 or out.shape[0] != len(seqs):
        raise UnexpectedError(f"pad_sequences: got {type(out).__name__} of shape {getattr(out, 'shape', None)} "
                              f"for {len(seqs)} sequences")
    maxlen = kwargs.get("maxlen")
    want = int(maxlen) if maxlen is not None else max(len(s) for s in seqs)
    if out.shape[1] != want:
        raise UnexpectedError(f"pad_sequences: length {out.shape[1]}, expected {want}")


def _outcome(fn: Any, kwargs: dict[str, Any]) -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(**kwargs)
    except Exception as e:  # compared below
        return e


def pad_like_keras(kwargs: dict[str, Any], keras_pad: Any) -> None:
    """Target: ``pad_sequences`` and ``keras.utils.pad_sequences`` agree on fuzzed input.

    Same array (dtype, shape, values) when Keras returns one; an error when Keras raises one (which
    error may differ: lstmtext checks ``padding``/``truncating`` before converting anything). The one
    documented difference: a bad ``padding``/``truncating`` raises even when Keras never looks at it.
    """
    _count("pad_sequences vs Keras")
    ours, theirs = _outcome(pad_sequences, kwargs), _outcome(keras_pad, kwargs)
    if isinstance(ours, Exception) and not _allowed("pad_sequences", ours):
        raise UnexpectedError(f"pad_sequences: {type(ours).__name__}: {ours}") from ours
    if isinstance(theirs, Exception):
        if not isinstance(ours, Exception):
            raise UnexpectedError(f"pad_sequences returned an array where Keras raised {theirs!r}")
        return
    if isinstance(ours, Exception):
        bad_option = any(kwargs.get(k, "pre") not in ("pre", "post") for k in ("padding", "truncating"))
        if not bad_option:
            raise UnexpectedError(f"pad_sequences raised {ours!r} where Keras returned an array")
        return
    same = ours.dtype == theirs.dtype and ours.shape == theirs.shape and (
        np.array_equal(ours, theirs, equal_nan=ours.dtype.kind in "fc") if ours.dtype.kind not in "OUSV"
        else bool((ours == theirs).all()))
    if not same:
        raise UnexpectedError(f"pad_sequences differs from Keras: {ours!r:.200} vs {theirs!r:.200}")


# --- model config ------------------------------------------------------------------------------------------


def _layer_configs() -> list[dict[str, Any]]:
    out = []
    for name, cls in sorted(registered_layers().items()):
        if name == "Sequential":
            continue
        for args in ((3,), (10, 3), ()):
            try:
                layer = cls(*args)
            except Exception:
                continue  # try the next argument shape
            out.append(serialize(layer))
            break
    return out


_LAYER_CONFIGS = _layer_configs()  # once: automatic layer names change with every construction
_SEQUENTIAL = {"name": "seq", "trainable": True, "layers": _LAYER_CONFIGS[:3], "build_input_shape": [None, 5]}

_class_names = st.sampled_from([*registered_layers(), "Lambda", "os.system", "builtins.eval", "__import__",
                                "Module", "Layer", "", "Functional", "keras.layers.Dense"])


@st.composite
def layer_specs(draw) -> Any:
    base = draw(st.sampled_from(_LAYER_CONFIGS))
    spec = draw(mutated_json(base, _class_names | st.sampled_from(_LAYER_CONFIGS))) if draw(st.booleans()) \
        else json.loads(json.dumps(base))
    if isinstance(spec, dict) and draw(st.integers(0, 3)) == 0:
        spec["class_name"] = draw(_class_names)
    return spec


model_config_inputs = st.tuples(
    st.sampled_from(["layer", "sequential"]),
    layer_specs() | mutated_json(_SEQUENTIAL, st.sampled_from(_LAYER_CONFIGS)) | json_values
    | st.builds(nested, st.sampled_from([64, 1_000, 20_000]), st.sampled_from(["list", "dict"])))


def build_from_config(data: tuple[str, Any]) -> None:
    """Target: build a layer (``deserialize``) or a model (``Sequential.from_config``) from a fuzzed config."""
    _count("model config")
    kind, config = data
    if kind == "layer":
        layer = _guard("model config", deserialize, config)
        if layer is not None and type(layer).__name__ != config.get("class_name"):
            raise UnexpectedError(f"model config: {config.get('class_name')!r} built a {type(layer).__name__}")
    else:
        _guard("model config", Sequential.from_config, config)


# --- TOML run config -----------------------------------------------------------------------------------------

_VALID_TOML = """preset = "keras-imdb"
name = "fuzz"

[data]
num_words = 100
maxlen = 20
padding = "post"
text_column = "review"

[model]
vocab_size = 100
lstm_sizes = [8, 4]
dropout = 0.25

[train]
epochs = 2
batch_size = 16
optimizer = "adam"
learning_rate = 0.001
seed = 3

[run]
out = "runs/fuzz"
verbose = 2
"""
_TOML_KEYS = ["preset", "name", "data", "model", "train", "run", "num_words", "maxlen", "padding", "truncating",
              "vocab_size", "embedding_dim", "lstm_sizes", "dropout", "epochs", "batch_size", "optimizer",
              "learning_rate", "seed", "validation_split", "out", "resume", "overwrite", "verbose", "archive"]


def _toml_scalar(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a TOML basic string
    if isinstance(v, float):
        return repr(v) if np.isfinite(v) else ("nan" if v != v else "inf" if v > 0 else "-inf")
    if isinstance(v, list):
        return "[" + ", ".join(_toml_scalar(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_scalar(x)}" for k, x in v.items()) + "}"
    return str(v)


_toml_values = st.recursive(st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(max_size=8),
                            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.sampled_from(_TOML_KEYS), c,
                                                                                  max_size=3), max_leaves=8)


@st.composite
def toml_documents(draw) -> bytes:
    """A TOML document: the valid one with lines replaced, dropped or added, keys and values fuzzed."""
    lines = _VALID_TOML.splitlines()
    for _ in range(draw(st.integers(1, 5))):
        i = draw(st.integers(0, len(lines)))
        kind = draw(st.sampled_from(["set", "set", "drop", "section", "raw"]))
        if kind == "set":
            line = f"{draw(st.sampled_from(_TOML_KEYS))} = {_toml_scalar(draw(_toml_values))}"
        elif kind == "section":
            line = f"[{draw(st.sampled_from(_TOML_KEYS + ['data.x', 'train.seed']))}]"
        elif kind == "raw":
            line = draw(st.text(max_size=20))
        else:
            line = None
        if line is None:
            if i < len(lines):
                del lines[i]
        elif i < len(lines) and kind == "set" and "=" in lines[i]:
            lines[i] = line
        else:
            lines.insert(i, line)
    return "\n".join(lines).encode("utf-8", "surrogatepass")


deep_toml = st.builds(lambda d, k: (f"a = {'[' * d}{']' * d}" if k == "array" else f"a = {'{b=' * d}1{'}' * d}")
                      .encode(), st.sampled_from([50, 999, 5_000, 100_000]), st.sampled_from(["array", "table"]))
toml_inputs = st.binary(max_size=128) | toml_documents() | deep_toml


def load_run_config(data: bytes) -> None:
    """Target: resolve a run config from a fuzzed TOML file; check that what resolves is what the file says."""
    _count("run config (TOML)")
    path = _SCRATCH / "run.toml"
    path.write_bytes(data)
    cfg = _guard("run config (TOML)", resolve_run_config, None, path)
    if cfg is not None and cfg.to_dict()["run"]["verbose"] not in (0, 1, 2):
        raise UnexpectedError(f"run config: verbose {cfg.output.verbose!r} accepted")


# --- service request body ---------------------------------------------------------------------------------------

_TEXTS_OK = st.lists(any_text | imdb_like, max_size=5)
service_bodies = (st.binary(max_size=256)
                  | st.builds(lambda t: _json_bytes({"texts": t}), _TEXTS_OK)
                  | mutated_json({"texts": ["a good film", "bad"]}).map(_json_bytes)
                  | st.builds(lambda t: json.dumps({"texts": t}, ensure_ascii=False).encode("utf-8", "surrogatepass"),
                              _TEXTS_OK)
                  | st.builds(lambda d, k: ('{"texts": ' + deep_json_text(d, k, '"a"') + "}").encode(),
                              st.sampled_from([50, 3_000, 200_000]), st.sampled_from(["list", "dict"])))


def post_body(client: Any, body: bytes) -> None:
    """Target: POST fuzzed bytes to ``/v1/predict``: 200 with one prediction per text, else 413/422 with a message."""
    _count("service request body")
    r = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    if r.status_code == 200:
        texts = json.loads(body)["texts"]
        if len(r.json()["predictions"]) != len(texts):
            raise UnexpectedError(f"service: {len(r.json()['predictions'])} predictions for {len(texts)} texts")
    elif r.status_code not in (413, 422) or not (r.json().get("message") or r.json().get("detail")):
        raise UnexpectedError(f"service: {r.status_code} {r.text[:200]}")


__all__ = ["ALLOWED", "COUNTS", "UnexpectedError"]
