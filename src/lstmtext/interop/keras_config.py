"""Keras 3 layer configs <-> lstmtext layer configs, for the layers both support.

A Keras config names a class and gives its constructor arguments, plus bookkeeping (``module``,
``registered_name``, ``build_config``, dtype policies) that lstmtext does not need. Translating it
is a whitelist: only Embedding, LSTM, Bidirectional(LSTM), Dense, Dropout and Masking are accepted,
and an argument lstmtext does not have is dropped only when it is neutral (null/false); anything else
is refused with an error naming the layer. ``Lambda`` layers and custom registered classes are refused
before anything is built: they are code, and code is never loaded (Keras CVE-2024-3660, CVE-2025-1550).
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from lstmtext.checkpoint.errors import CheckpointConfigError
from lstmtext.layers import registered_layers
from lstmtext.layers.base import Layer

#: Keras classes lstmtext imports, and the h5 group name Keras derives from each (snake case).
SUPPORTED = {"Embedding": "embedding", "LSTM": "lstm", "Bidirectional": "bidirectional", "Dense": "dense",
             "Dropout": "dropout", "Masking": "masking"}
#: More classes a Functional model may hold (their h5 group names are their snake-case class names).
FUNCTIONAL_SUPPORTED = {
    **SUPPORTED, "InputLayer": "input_layer", "Concatenate": "concatenate", "Add": "add", "Average": "average",
    "Multiply": "multiply", "Subtract": "subtract", "Maximum": "maximum", "Minimum": "minimum", "Dot": "dot",
    "RepeatVector": "repeat_vector", "SpatialDropout1D": "spatial_dropout1d", "Activation": "activation",
    "Attention": "attention", "AdditiveAttention": "additive_attention", "Flatten": "flatten",
    "GlobalAveragePooling1D": "global_average_pooling1d", "GlobalMaxPooling1D": "global_max_pooling1d",
    "Functional": "functional", "TextVectorization": "text_vectorization",
}
_BOOKKEEPING = ("module", "registered_name", "build_config", "shared_object_id", "compile_config")
_CODE_LAYERS = {"Lambda", "TFOpLambda", "SlicingOpLambda"}


def _describe(spec: Any, index: int) -> str:
    config = spec.get("config") if isinstance(spec, dict) else None
    name = config.get("name") if isinstance(config, dict) else None
    cls = spec.get("class_name") if isinstance(spec, dict) else None
    return f"layer {index} {name!r} ({cls})" if name else f"layer {index} ({cls})"


def _accepted(cls: type) -> set[str]:
    params: set[str] = set()
    for klass in cls.__mro__:
        if klass is object or "__init__" not in vars(klass):
            continue
        params |= {p.name for p in inspect.signature(klass.__init__).parameters.values()
                   if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"self"}
        if klass is Layer:
            break
    return params


def _plain(value: Any) -> Any:
    """Drop Keras bookkeeping keys and turn dtype policies into their dtype name."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if not isinstance(value, dict):
        return value
    if value.get("class_name") in ("DTypePolicy", "FloatDTypePolicy") and isinstance(value.get("config"), dict):
        return value["config"].get("name")
    out = {k: _plain(v) for k, v in value.items() if k not in _BOOKKEEPING}
    if isinstance(out.get("config"), dict) and "class_name" in out:  # initializer/regularizer/constraint
        out["config"] = {k: v for k, v in out["config"].items() if v is not None}  # Keras 3.15's input_axes=None ...
    return out


def check_not_code(spec: Any, *, file: str | os.PathLike[str], where: str) -> None:
    """Refuse ``Lambda`` layers and custom classes anywhere in a Keras config, naming the innermost layer."""
    stack = [(spec, where)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, list):
            stack.extend((v, where) for v in node)
            continue
        if not isinstance(node, dict):
            continue
        cls = node.get("class_name")
        cls = cls if isinstance(cls, str) else None
        config = node.get("config")
        if cls and isinstance(config, dict) and isinstance(config.get("name"), str):
            where = f"layer {config['name']!r} ({cls})"
        module = node.get("module")
        if cls in _CODE_LAYERS:
            raise CheckpointConfigError(file, f"{where}: {cls} layers hold Python code, which lstmtext never loads")
        if cls == "function" or (isinstance(module, str) and module.split(".")[0] not in ("keras", "builtins")):
            raise CheckpointConfigError(file, f"{where}: refers to custom code ({module}.{config or cls}); "
                                              "only built-in Keras objects can be imported")
        registered = node.get("registered_name")
        if isinstance(registered, str) and registered != cls and "class_name" in node:
            raise CheckpointConfigError(file, f"{where}: custom registered class {registered!r} is not supported")
        stack.extend((v, where) for v in node.values())


def keras_to_lstmtext(spec: Any, *, file: str | os.PathLike[str], index: int,
                      classes: dict[str, str] = SUPPORTED) -> dict[str, Any]:
    """Translate one Keras layer spec into an lstmtext ``{"class_name", "config"}``.

    Args:
        spec: a Keras ``{"module", "class_name", "config", ...}`` layer entry.
        file: the archive, named in errors.
        index: the layer's position, named in errors.

    Returns:
        A spec :func:`lstmtext.layers.deserialize` accepts.

    Raises:
        CheckpointConfigError: a Lambda or custom class, a layer lstmtext does not import, or an
            argument lstmtext does not support with a non-neutral value; naming the layer.
    """
    where = _describe(spec, index)
    check_not_code(spec, file=file, where=where)
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise CheckpointConfigError(file, f"{where}: a layer entry must be an object with a 'config' object")
    cls_name = spec.get("class_name")
    if not isinstance(cls_name, str) or cls_name not in classes:
        raise CheckpointConfigError(file, f"{where}: layer class {cls_name!r} is not supported; lstmtext imports "
                                          f"{', '.join(classes)}")
    cls = registered_layers()[cls_name]
    accepted = _accepted(cls)
    config: dict[str, Any] = {}
    for key, value in _plain(spec["config"]).items():
        if key in ("layer", "backward_layer") and cls_name == "Bidirectional":
            if value is not None:
                inner = keras_to_lstmtext(value, file=file, index=index)
                if inner["class_name"] != "LSTM":
                    raise CheckpointConfigError(file, f"{where}: only Bidirectional(LSTM) is supported, "
                                                      f"got Bidirectional({inner['class_name']})")
                config[key] = inner
        elif key in accepted:
            config[key] = value
        elif cls_name == "TextVectorization" and key == "vocabulary_size":
            config[key] = value  # the output depth before the assets give the vocabulary (Keras's use of it)
        elif value is None or value is False or (key == "unroll" and not value):
            continue  # a Keras feature lstmtext lacks, switched off: same numbers without it
        else:
            raise CheckpointConfigError(file, f"{where}: argument {key}={value!r} is not supported by lstmtext")
    if config.get("dtype") not in (None, "float32", "float64"):
        raise CheckpointConfigError(file, f"{where}: dtype {config['dtype']!r} is not supported "
                                          "(float32 or float64)")
    return {"class_name": cls_name, "config": config}


#: lstmtext arguments Keras 3 does not have, with the value that makes them mean nothing.
_LSTMTEXT_ONLY = {"time_major": False, "batch_input_shape": None}


def lstmtext_to_keras(layer: Layer, classes: dict[str, str] = SUPPORTED) -> dict[str, Any]:
    """A Keras 3 layer spec (``module``/``class_name``/``config``/``registered_name``) for an lstmtext layer.

    Raises:
        CheckpointConfigError: the layer is not one Keras can rebuild, or uses an lstmtext-only option.
    """
    from lstmtext.layers import serialize

    return _to_keras(serialize(layer), where=f"layer {layer.name!r} ({type(layer).__name__})", classes=classes)


def _to_keras(spec: dict[str, Any], *, where: str, classes: dict[str, str] = SUPPORTED) -> dict[str, Any]:
    cls_name = spec["class_name"]
    if cls_name not in classes:
        raise CheckpointConfigError("<export>", f"{where}: {cls_name} has no Keras equivalent to export to")
    config: dict[str, Any] = {}
    spec_config = dict(spec["config"])
    if cls_name == "TextVectorization" and not spec_config.pop("has_input_vocabulary", True):
        # an adapted vocabulary goes to the archive's assets, as Keras writes it (vocabulary: null)
        spec_config["vocabulary"] = spec_config["idf_weights"] = None
    for key, value in spec_config.items():
        if key in _LSTMTEXT_ONLY:
            if value != _LSTMTEXT_ONLY[key]:
                raise CheckpointConfigError("<export>", f"{where}: {key}={value!r} has no Keras 3 equivalent")
            continue
        if key in ("layer", "backward_layer") and isinstance(value, dict):
            value = _to_keras(value, where=where, classes=classes)
        elif isinstance(value, dict) and "class_name" in value:  # initializer / regularizer / constraint
            value = {"module": _module_of(key), "class_name": value["class_name"], "config": value.get("config", {}),
                     "registered_name": None}
        config[key] = value
    return {"module": "keras.layers", "class_name": cls_name, "config": config, "registered_name": None}


def _module_of(key: str) -> str:
    for suffix in ("initializer", "regularizer", "constraint"):
        if key.endswith(suffix):
            return f"keras.{suffix}s"
    return "keras"
