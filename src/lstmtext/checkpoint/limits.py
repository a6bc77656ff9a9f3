"""The limits of each file of a checkpoint, and the schema checks that go with them.

Every JSON file of a checkpoint is checked against its :class:`~lstmtext.checkpoint.safejson.JsonLimits`
*before* it is parsed (size, then the number of objects + arrays and of values, counted on the bytes),
then against its schema (unknown fields refused where the format is closed, the number of layers of a
model config bounded). The values come from what real checkpoints hold, with a wide margin: a
5,000-word IMDB run writes a 5 KB ``config.json``, a 2 KB ``trainer.json`` and a 1.6 MB ``vocab.json``
(88,000 words). With these limits any file up to its cap is parsed, or refused, in well under a second
and in memory a small multiple of its size (``tests/checkpoint/test_checkpoint_limits.py``).

To load a checkpoint beyond a limit, replace the entry before loading, e.g. for a vocabulary of 5
million words::

    from dataclasses import replace
    from lstmtext.checkpoint import limits
    limits.JSON_LIMITS["vocab.json"] = replace(limits.JSON_LIMITS["vocab.json"], max_bytes=256 << 20,
                                               max_values=12_000_000)
"""

from __future__ import annotations

import os
from typing import Any

from lstmtext.checkpoint.errors import CheckpointConfigError
from lstmtext.checkpoint.safejson import JsonLimits

#: Size, depth and count limits of each JSON file of a checkpoint folder, by file name.
JSON_LIMITS: dict[str, JsonLimits] = {
    # ~1.2 KB and 8 objects per LSTM layer: 4 MiB is thousands of layers.
    "config.json": JsonLimits(max_bytes=4 << 20, max_depth=64, max_containers=50_000, max_values=500_000),
    # Epoch, step, per-epoch history, RNG states (625 + 624 integers), optimizer scalars and one small
    # object per optimizer tensor.
    "trainer.json": JsonLimits(max_bytes=16 << 20, max_depth=64, max_containers=200_000, max_values=2_000_000),
    # The tokenizer: words and their counts, two values a word: 1.2 million words.
    "vocab.json": JsonLimits(max_bytes=32 << 20, max_depth=32, max_containers=10_000, max_values=2_500_000),
    # Command line, versions, resolved config, per-epoch metrics.
    "run.json": JsonLimits(max_bytes=4 << 20, max_depth=64, max_containers=50_000, max_values=500_000),
    # Seven files at most, each {"sha256", "size"}.
    "manifest.json": JsonLimits(max_bytes=64 << 10, max_depth=3, max_containers=100, max_values=1_000),
    # report/report.json: the history, and per test example its label and score (1.5 MB for IMDB's 25,000).
    "report.json": JsonLimits(max_bytes=32 << 20, max_depth=16, max_containers=500_000, max_values=2_500_000),
    # The JSON header of a .safetensors file: three containers per tensor ({"dtype", "shape": [..],
    # "data_offsets": [..]}), 50,000 tensors.
    "safetensors header": JsonLimits(max_bytes=16 << 20, max_depth=3, max_containers=150_000, max_values=1_000_000),
    # metadata.json of a .keras archive: the Keras version and a date.
    "keras metadata.json": JsonLimits(max_bytes=1 << 20, max_depth=8, max_containers=1_000, max_values=10_000),
}

#: The most layers a model config may describe (nested models and wrapped layers count): building a
#: Sequential of n layers costs about O(n^2) here (1,000 Dense layers: 0.2 s; 10,000: 42 s).
MAX_LAYERS = 1_000

#: The top-level fields of ``config.json``: Keras's envelope (``module`` and ``registered_name`` are
#: read by Keras, ignored here: they never select code) and ``subclassed`` (a subclassed model's folder
#: needs its class to be rebuilt; ``load_model`` says so by name).
CONFIG_FIELDS = frozenset({"class_name", "config", "module", "registered_name", "build_config", "compile_config",
                           "subclassed"})

#: Keys under which a model config nests layers: ``layers`` (a list), ``layer`` / ``backward_layer``
#: (wrappers such as ``Bidirectional``).
_LAYER_KEYS = ("layers", "layer", "backward_layer")


def count_layers(config: Any) -> int:
    """The number of layer configs in a model config (itself, nested models and wrapped layers), iteratively."""
    count, stack = 0, [config]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        count += 1
        inner = node.get("config")
        if not isinstance(inner, dict):
            continue
        for key in _LAYER_KEYS:
            value = inner.get(key)
            if isinstance(value, list):
                stack.extend(value)
            elif isinstance(value, dict):
                stack.append(value)
    return count


def check_config_schema(config: dict[str, Any], *, file: str | os.PathLike[str]) -> None:
    """Refuse unknown top-level fields and more than :data:`MAX_LAYERS` layers in a model config.

    Raises:
        CheckpointConfigError: naming ``file``, the field or the count, and the limit.
    """
    unknown = sorted(k for k in config if k not in CONFIG_FIELDS)
    if unknown:
        raise CheckpointConfigError(file, f"unknown top-level field(s) {[k[:40] for k in unknown[:3]]}; a model "
                                          f"config holds only {sorted(CONFIG_FIELDS)}")
    n = count_layers(config)
    if n > MAX_LAYERS:
        raise CheckpointConfigError(file, f"describes {n} layers, more than the limit of {MAX_LAYERS} "
                                          "(lstmtext.checkpoint.limits.MAX_LAYERS)")


__all__ = ["CONFIG_FIELDS", "JSON_LIMITS", "MAX_LAYERS", "check_config_schema", "count_layers"]
