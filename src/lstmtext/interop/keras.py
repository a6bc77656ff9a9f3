"""Reading and writing Keras 3 model files (``.keras`` archives and ``.weights.h5``) without Keras.

A ``.keras`` file is a zip of ``metadata.json``, ``config.json`` (the model's architecture) and
``model.weights.h5`` (weights in HDF5, grouped as ``layers/<snake_case class>[_n]/.../vars/<i>``).
This module reads them with ``zipfile``, the strict JSON reader of :mod:`lstmtext.checkpoint` and
``h5py`` - never with ``keras.saving``, which can deserialize code. Only Sequential models of
Embedding, LSTM, Bidirectional(LSTM), Dense, Dropout and Masking are imported; ``Lambda`` layers,
custom classes and anything else are refused with an error naming the layer, before any layer is
built. Weight shapes are checked against the config and the file's size before anything is allocated.

>>> layers, spec = load_keras_layers("imdb.keras")  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import os
import stat
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmtext.checkpoint.errors import CheckpointConfigError, CheckpointNotFoundError, CorruptFileError
from lstmtext.checkpoint.limits import JSON_LIMITS, check_config_schema
from lstmtext.checkpoint.safejson import parse_json
from lstmtext.errors import ConfigError
from lstmtext.interop.keras_config import (
    FUNCTIONAL_SUPPORTED,
    SUPPORTED,
    check_not_code,
    keras_to_lstmtext,
    lstmtext_to_keras,
)
from lstmtext.layers import deserialize
from lstmtext.layers.base import Layer, weight_budget
from lstmtext.layers.input_layer import InputLayer
from lstmtext.models.model import Functional
from lstmtext.utils.archives import MemberLimit, read_zip_member
from lstmtext.utils.io import atomic_write_bytes

CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
#: Bounds of each member, checked on its declared sizes before it is inflated (a 2 MB archive whose weights
#: inflate to 2 GiB is refused at once): the configs as a checkpoint's, the weights at 4 GiB (an
#: Embedding(1,000,000, 1,000) in float32) and 20x compression (float weights compress about 1.1x).
#: Replace an entry to change one.
#: ``ASSETS`` bounds every member under ``assets/`` (a layer's files, e.g. a ``TextVectorization``'s
#: ``vocabulary.txt``: 64 MiB holds millions of tokens; text compresses 3-5x).
ASSETS = "assets/"
MEMBER_LIMITS = {
    CONFIG: MemberLimit(JSON_LIMITS["config.json"].max_bytes),
    METADATA: MemberLimit(JSON_LIMITS["keras metadata.json"].max_bytes),
    WEIGHTS: MemberLimit(4 << 30, max_ratio=20.0),
    ASSETS: MemberLimit(64 << 20, max_ratio=100.0),
}
#: Most members under ``assets/`` and their total declared size (each one is also bounded by ``MEMBER_LIMITS``).
MAX_ASSET_MEMBERS = 1024
MAX_ASSET_BYTES = 256 << 20
#: The asset files lstmtext reads (others are checked against the limits but never inflated).
VOCABULARY_ASSET = "vocabulary.txt"
#: Characters at which Python's ``str.splitlines`` (what Keras's ``load_assets`` uses) ends a line: a token
#: holding one cannot be written to ``vocabulary.txt`` and read back whole.
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
#: What ``keras.saving`` would call the Keras version writing an exported archive.
EXPORT_KERAS_VERSION = "3.5.0"


@dataclass
class KerasModelSpec:
    """What a Keras Sequential archive describes, translated to lstmtext.

    Attributes:
        layer_specs: lstmtext ``{"class_name", "config"}`` per layer, in order.
        input_shape: the model's input shape without the batch axis (``None`` for a free time axis).
        input_dtype: the input dtype Keras recorded (``"int32"`` for token ids, ...).
        keras_version: from ``metadata.json``.
        name: the Keras model's name.
    """

    layer_specs: list[dict[str, Any]]
    input_shape: tuple[int | None, ...]
    input_dtype: str
    keras_version: str
    name: str


def _h5py():
    try:
        import h5py
    except ImportError as e:  # an optional extra
        raise ImportError("reading Keras weights needs h5py: pip install 'lstmtext[keras]'") from e
    return h5py


def _read_archive(path: Path) -> dict[str, bytes]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CheckpointNotFoundError(path, "file not found") from None
    if not stat.S_ISREG(st.st_mode):
        raise CorruptFileError(path, "not a regular file")
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise CorruptFileError(path, "zip archive holds the same member name twice")
            out = {}
            assets = [i for i in infos if i.filename.startswith(ASSETS) and not i.is_dir()]
            if len(assets) > MAX_ASSET_MEMBERS:
                raise CorruptFileError(path, f"{len(assets)} members under {ASSETS}, more than the limit of "
                                             f"{MAX_ASSET_MEMBERS}")
            total = sum(i.file_size for i in assets)
            if total > MAX_ASSET_BYTES:
                raise CorruptFileError(path, f"the members under {ASSETS} claim {total} bytes in all, more than the "
                                             f"{MAX_ASSET_BYTES}-byte limit")
            for info in assets:  # every asset bounded by its declared sizes; only vocabularies are read
                problem = MEMBER_LIMITS[ASSETS].problem(info.file_size, info.compress_size)
                if problem is not None:
                    raise CorruptFileError(path, f"{info.filename} {problem}")
                if info.filename.endswith("/" + VOCABULARY_ASSET):
                    out[info.filename] = read_zip_member(zf, info, MEMBER_LIMITS[ASSETS],
                                                         lambda problem: CorruptFileError(path, problem))
            for info in infos:
                if info.filename.startswith(ASSETS) or info.is_dir():
                    continue
                if info.filename not in MEMBER_LIMITS:
                    raise CorruptFileError(path, f"unexpected member {info.filename!r} (a .keras archive holds "
                                                 f"{', '.join(MEMBER_LIMITS)}...)")
                out[info.filename] = read_zip_member(zf, info, MEMBER_LIMITS[info.filename],
                                                     lambda problem: CorruptFileError(path, problem))
    except zipfile.BadZipFile as e:
        raise CorruptFileError(path, f"not a valid .keras (zip) archive: {e}") from None
    except (RuntimeError, NotImplementedError, EOFError, OSError) as e:  # encrypted, odd compression, truncated
        raise CorruptFileError(path, f"cannot read the archive: {e}") from None
    for name in (CONFIG, WEIGHTS):
        if name not in out:
            raise CorruptFileError(path, f"not a Keras 3 archive: no {name}")
    return out


def parse_keras_config(config: Any, *, file: str | os.PathLike[str], keras_version: str = "") -> KerasModelSpec:
    """Translate a Keras 3 Sequential ``config.json`` (parsed) into a :class:`KerasModelSpec`.

    Raises:
        CheckpointConfigError: not a Sequential model, or a layer lstmtext does not import (named).
    """
    if not isinstance(config, dict):
        raise CheckpointConfigError(file, "config.json must be a JSON object")
    check_not_code(config, file=file, where="model")
    if config.get("class_name") != "Sequential" or not isinstance(config.get("config"), dict):
        raise CheckpointConfigError(file, f"only Sequential models are imported, got {config.get('class_name')!r}")
    entries = config["config"].get("layers")
    if not isinstance(entries, list):
        raise CheckpointConfigError(file, "Sequential config has no 'layers' list")
    input_shape: tuple[int | None, ...] | None = None
    input_dtype = "float32"
    specs = []
    for index, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get("class_name") == "InputLayer":
            cfg = entry.get("config") if isinstance(entry.get("config"), dict) else {}
            shape = cfg.get("batch_shape", cfg.get("batch_input_shape"))
            if not isinstance(shape, list) or not all(d is None or (isinstance(d, int) and d > 0) for d in shape):
                raise CheckpointConfigError(file, f"layer {index} (InputLayer): bad batch_shape {shape!r}")
            input_shape, input_dtype = tuple(shape[1:]), str(cfg.get("dtype") or "float32")
            continue
        specs.append(keras_to_lstmtext(entry, file=file, index=index))
    if input_shape is None:
        shape = config["config"].get("build_input_shape")
        if isinstance(shape, list) and shape:
            input_shape = tuple(shape[1:])
    if input_shape is None:
        raise CheckpointConfigError(file, "the model has no input shape (InputLayer or build_input_shape)")
    return KerasModelSpec(specs, input_shape, input_dtype, keras_version, str(config["config"].get("name", "")))


def _group_names(specs: Sequence[dict[str, Any]]) -> list[str]:
    """Keras's h5 group of each layer: snake-case class name, ``_1``, ``_2`` ... for repeats."""
    used: dict[str, int] = {}
    names = []
    for spec in specs:
        base = SUPPORTED[spec["class_name"]]
        if base in used:
            used[base] += 1
            names.append(f"{base}_{used[base]}")
        else:
            used[base] = 0
            names.append(base)
    return names


def _datasets(group: Any, cls_name: str, file: Any, where: str) -> list[Any]:
    h5py = _h5py()
    if cls_name == "Bidirectional":
        return [*_datasets(_sub(group, "forward_layer", file, where), "LSTM", file, where),
                *_datasets(_sub(group, "backward_layer", file, where), "LSTM", file, where)]
    if cls_name == "LSTM":
        group = _sub(group, "cell", file, where)
    vars_ = group.get("vars") if isinstance(group, h5py.Group) else None
    if vars_ is None:
        return []
    keys = sorted(vars_.keys(), key=lambda k: int(k) if k.isdigit() else -1)
    if keys != [str(i) for i in range(len(keys))]:
        raise CorruptFileError(file, f"{where}: weight names {keys} are not 0..{len(keys) - 1}")
    out = [vars_[k] for k in keys]
    for d in out:
        if not isinstance(d, h5py.Dataset) or d.dtype.kind != "f" or d.ndim > 2 or d.compression is not None:
            raise CorruptFileError(file, f"{where}: {d.name} is not an uncompressed float array of rank <= 2")
    return out


def _sub(group: Any, name: str, file: Any, where: str) -> Any:
    if name not in group:
        raise CorruptFileError(file, f"{where}: weights group {group.name}/{name} is missing")
    return group[name]


def _check_config_against_shapes(spec: dict[str, Any], shapes: list[tuple[int, ...]], file: Any, where: str) -> None:
    """Config sizes must equal the stored weights' (bounded by the file) before a layer is built."""
    cfg, cls_name = spec["config"], spec["class_name"]
    expect: list[tuple[int, tuple[int, ...]]] = []
    if cls_name == "Embedding":
        expect = [(0, (cfg.get("input_dim"), cfg.get("output_dim")))]
    elif cls_name == "Dense" and shapes:
        expect = [(0, (shapes[0][0], cfg.get("units")))]
    elif cls_name == "LSTM" and len(shapes) >= 2:
        u = cfg.get("units")
        expect = [(1, (u, 4 * u if isinstance(u, int) else u))]
    elif cls_name == "Bidirectional":
        half = len(shapes) // 2
        _check_config_against_shapes(spec["config"]["layer"], shapes[:half], file, where)
        _check_config_against_shapes(spec["config"].get("backward_layer") or spec["config"]["layer"],
                                     shapes[half:], file, where)
    for i, want in expect:
        if i >= len(shapes) or shapes[i] != want:
            raise CheckpointConfigError(file, f"{where}: config implies weight {i} of shape {want}, the weights "
                                              f"file has {shapes[i] if i < len(shapes) else 'none'}")


def _build_layers(spec: KerasModelSpec, h5: Any, file: Any, data_len: int) -> list[Layer]:
    groups = _group_names(spec.layer_specs)
    root = h5.get("layers")
    per_layer, total = [], 0
    for i, (layer_spec, group) in enumerate(zip(spec.layer_specs, groups)):
        where = f"layer {i} {layer_spec['config'].get('name')!r} ({layer_spec['class_name']})"
        node = root.get(group) if root is not None else None
        datasets = _datasets(node, layer_spec["class_name"], file, where) if node is not None else []
        shapes = [tuple(int(d) for d in ds.shape) for ds in datasets]
        total += sum(int(np.prod(s)) * ds.dtype.itemsize for s, ds in zip(shapes, datasets))
        _check_config_against_shapes(layer_spec, shapes, file, where)
        per_layer.append((where, datasets, shapes))
    if total > data_len:
        raise CorruptFileError(file, f"weights declare {total} bytes, more than the {data_len}-byte weights file")
    layers = []
    for layer_spec, (where, _, _) in zip(spec.layer_specs, per_layer):
        try:
            layers.append(deserialize(layer_spec))
        except Exception as e:
            raise CheckpointConfigError(file, f"{where}: {e}") from None
    x = torch.zeros((1, *[d or 2 for d in spec.input_shape]),
                    dtype=torch.long if spec.input_dtype.startswith(("int", "uint")) else torch.float32)
    run_layers(layers, x)  # builds every layer's weights from the input shape
    for layer, (where, datasets, shapes) in zip(layers, per_layer):
        own = [tuple(w.shape) for w in layer.get_weights()]
        if own != shapes:
            raise CheckpointConfigError(file, f"{where}: the layer has weights of shapes {own}, the file {shapes}")
        layer.set_weights([np.asarray(ds[()], dtype=np.float32) for ds in datasets])
    return layers


def run_layers(layers: Sequence[Layer], x: torch.Tensor, training: bool = False) -> torch.Tensor:
    """Apply layers in order, passing each one's output mask on (what a Sequential model does)."""
    mask = None
    for layer in layers:
        y = layer(x, mask=mask, training=training)
        mask = layer.compute_mask(x, mask)
        x = y
    return x


def load_keras_layers(path: str | os.PathLike[str]) -> tuple[list[Layer], KerasModelSpec]:
    """Read a Keras 3 ``.keras`` archive into built lstmtext layers holding its weights.

    Args:
        path: the ``.keras`` file.

    Returns:
        ``(layers, spec)``: the layers in order (apply them with :func:`run_layers`, or pass them to
        ``Sequential``) and what the archive describes.

    Raises:
        CorruptFileError: not a readable Keras 3 archive, or malformed weights.
        CheckpointConfigError: not a Sequential model, or an unsupported, ``Lambda`` or custom layer
            (named), or weights that do not fit the config.
    """
    path = Path(path)
    members = _read_archive(path)
    meta = (parse_json(members[METADATA], file=f"{path}:{METADATA}", limits=JSON_LIMITS["keras metadata.json"])
            if METADATA in members else {})
    version = str(meta.get("keras_version", "")) if isinstance(meta, dict) else ""
    config = parse_json(members[CONFIG], file=f"{path}:{CONFIG}", limits=JSON_LIMITS["config.json"])
    if isinstance(config, dict):
        check_config_schema(config, file=f"{path}:{CONFIG}")  # unknown fields, too many layers
    spec = parse_keras_config(config, file=path, keras_version=version)
    layers = _load_weights_bytes(spec, members[WEIGHTS], f"{path}:{WEIGHTS}")
    return layers, spec


def _load_weights_bytes(spec: KerasModelSpec, data: bytes, file: str) -> list[Layer]:
    h5py = _h5py()
    try:
        with h5py.File(io.BytesIO(data), "r") as h5:
            return _build_layers(spec, h5, file, len(data))
    except (CorruptFileError, CheckpointConfigError):
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:  # HDF5 refusing the bytes
        raise CorruptFileError(file, f"not a readable HDF5 weights file: {e}") from None


def load_keras_weights(spec: KerasModelSpec, path: str | os.PathLike[str]) -> list[Layer]:
    """Read a Keras ``.weights.h5`` file (``model.save_weights``) for the model ``spec`` describes.

    Args:
        spec: the architecture, e.g. from :func:`parse_keras_config` or an earlier :func:`load_keras_layers`.
        path: the ``.weights.h5`` file.

    Returns:
        Built lstmtext layers holding the weights.
    """
    path = Path(path)
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise CheckpointNotFoundError(path, "file not found") from None
    if size > MEMBER_LIMITS[WEIGHTS].max_bytes:
        raise CorruptFileError(path, f"{size} bytes, more than the {MEMBER_LIMITS[WEIGHTS].max_bytes}-byte limit")
    return _load_weights_bytes(spec, path.read_bytes(), str(path))


def _keras_model_config(layers: Sequence[Layer], input_shape: Sequence[int | None], input_dtype: str,
                        name: str) -> dict[str, Any]:
    batch_shape = [None, *input_shape]
    entries = [{"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                "config": {"batch_shape": batch_shape, "dtype": input_dtype, "sparse": False, "name": "input_layer"}}]
    entries += [lstmtext_to_keras(layer, FUNCTIONAL_SUPPORTED) for layer in layers]
    return {"module": "keras", "class_name": "Sequential", "registered_name": None,
            "config": {"name": name, "trainable": True, "dtype": "float32", "layers": entries,
                       "build_input_shape": batch_shape},
            "build_config": {"input_shape": batch_shape}}


def load_keras_model(path: str | os.PathLike[str]) -> Any:
    """Read a Keras 3 ``.keras`` archive as an lstmtext ``Sequential`` model (uncompiled) with its weights.

    Args:
        path: the ``.keras`` file (Embedding, LSTM, Bidirectional(LSTM), Dense, Dropout, Masking layers).

    Returns:
        The model; ``model.predict(x)`` gives Keras's predictions.

    Raises:
        CorruptFileError, CheckpointConfigError: see :func:`load_keras_layers`.

    >>> model = load_keras_model("imdb.keras")  # doctest: +SKIP
    """
    from lstmtext.models import Input, Sequential

    path = Path(path)
    members = _read_archive(path)
    config = parse_json(members[CONFIG], file=f"{path}:{CONFIG}", limits=JSON_LIMITS["config.json"])
    if isinstance(config, dict):
        check_config_schema(config, file=f"{path}:{CONFIG}")  # unknown fields, too many layers
    assets = {k: v for k, v in members.items() if k.startswith(ASSETS)}
    if isinstance(config, dict) and config.get("class_name") in ("Functional", "Model"):
        return _load_functional(config, members[WEIGHTS], path, assets)
    if isinstance(config, dict) and _needs_graph_layers(config):
        return _load_sequential_of_graph_layers(config, members[WEIGHTS], path, assets)
    layers, spec = load_keras_layers(path)
    return Sequential([Input(shape=spec.input_shape, dtype=spec.input_dtype), *layers], name=spec.name or None)


def save_keras_model(model: Any, path: str | os.PathLike[str], *, input_shape: Sequence[int | None] | None = None,
                     input_dtype: str | None = None, name: str | None = None) -> Path:
    """Write an lstmtext model (or built layers) as a Keras 3 ``.keras`` archive (atomically) that Keras loads.

    Args:
        model: a built ``Sequential``, or its layers in order (built: weights are written).
        path: the ``.keras`` file to write.
        input_shape: the input shape without the batch axis, e.g. ``(300,)``; default: the model's.
        input_dtype: the input dtype Keras will expect; default: the model's Input dtype, else
            ``"int32"`` when the first layer is an Embedding and ``"float32"`` otherwise.
        name: the Keras model's name; default: the model's.

    Returns:
        The path written.

    Raises:
        CheckpointConfigError: a layer Keras has no equivalent for, or an lstmtext-only option.

    >>> save_keras_model(model, "imdb.keras")  # doctest: +SKIP
    """
    if isinstance(model, Functional):
        return _save_functional(model, path)
    if isinstance(model, Layer) and hasattr(model, "layers"):
        layers = list(model.layers)
        if input_shape is None and getattr(model, "build_input_shape", None) is not None:
            input_shape = tuple(model.build_input_shape[1:])
        input_layer = getattr(model, "_input_layer", None)
        if input_dtype is None and input_layer is not None:
            input_dtype = input_layer.input_dtype
        name = name or model.name
    else:
        layers = list(model)
    if input_shape is None:
        raise CheckpointConfigError(path, "input_shape is unknown: build the model or pass input_shape=")
    first = type(layers[0]).__name__ if layers else None
    if input_dtype is None:
        input_dtype = {"Embedding": "int32", "TextVectorization": "string"}.get(first or "", "float32")
    name = name or "sequential"
    h5py = _h5py()
    config = _keras_model_config(layers, input_shape, input_dtype, name)
    assets: dict[str, bytes] = {}
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        h5.create_group("vars").attrs["name"] = name
        root = h5.create_group("layers")
        for layer, group_name in zip(layers, _group_names_of(layers)):
            group = root.create_group(group_name)
            _write_layer(group, layer)
            if type(layer).__name__ == "TextVectorization":
                assets.update(_text_vectorization_assets(layer, group, f"layers/{group_name}"))
    meta = {"keras_version": EXPORT_KERAS_VERSION, "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S")}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(METADATA, json.dumps(meta))
        zf.writestr(CONFIG, json.dumps(config))
        zf.writestr(WEIGHTS, buf.getvalue())
        for member, data in assets.items():
            zf.writestr(member, data)
    return atomic_write_bytes(path, out.getvalue())


def _write_layer(group: Any, layer: Layer) -> None:
    cls_name = type(layer).__name__
    if cls_name == "Bidirectional":
        group.create_group("vars").attrs["name"] = layer.name
        for side, sub in (("forward_layer", layer.forward_layer), ("backward_layer", layer.backward_layer)):
            _write_layer(group.create_group(side), sub)
        return
    vars_ = group.create_group("vars")
    vars_.attrs["name"] = layer.name
    if cls_name == "LSTM":
        vars_ = group.create_group("cell").create_group("vars")
        vars_.attrs["name"] = "lstm_cell"
    for i, w in enumerate(layer.get_weights()):
        vars_.create_dataset(str(i), data=np.asarray(w, dtype=np.float32))


# -- Functional models ------------------------------------------------------------------------------------
def _is_op(entry: dict[str, Any]) -> bool:
    # Keras 3 records the masks it computes (Embedding(mask_zero=True)'s ``inputs != 0``, conversions) as
    # operations of ``keras.src.ops``; lstmtext computes masks from the layers themselves, so these nodes and
    # the ``mask`` arguments that use them are dropped. An operation used as data is refused by name.
    module = entry.get("module")
    return isinstance(module, str) and module.startswith("keras.src.ops")


def _references(value: Any) -> list[str]:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        history = (value.get("config") or {}).get("keras_history")
        return [history[0]] if isinstance(history, list) and history and isinstance(history[0], str) else []
    if isinstance(value, dict):
        return [r for v in value.values() for r in _references(v)]
    if isinstance(value, list):
        return [r for v in value for r in _references(v)]
    return []


def functional_from_keras(config: Any, *, file: str | os.PathLike[str]) -> dict[str, Any]:
    """Translate a Keras 3 Functional ``config.json`` (parsed) into an lstmtext Functional ``{"class_name", "config"}``.

    Raises:
        CheckpointConfigError: a Lambda, custom or unsupported layer (named), or a malformed graph.
    """
    check_not_code(config, file=file, where="model")
    cfg = config.get("config") if isinstance(config, dict) else None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        raise CheckpointConfigError(file, "Functional config has no 'layers' list")
    layers = []
    ops = {e.get("name"): e.get("class_name") for e in cfg["layers"] if isinstance(e, dict) and _is_op(e)}
    for index, entry in enumerate(cfg["layers"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            raise CheckpointConfigError(file, f"layer {index}: a layer entry must be an object with a 'config'")
        cls, name = entry.get("class_name"), entry.get("name", entry["config"].get("name"))
        if name in ops:
            continue
        if cls == "InputLayer":
            c = entry["config"]
            spec = {"class_name": "InputLayer", "config": {"batch_shape": c.get("batch_shape",
                                                                                c.get("batch_input_shape")),
                                                           "dtype": c.get("dtype") or "float32", "name": name}}
        elif cls in ("Functional", "Model"):
            spec = functional_from_keras(entry, file=file)
        else:
            spec = keras_to_lstmtext(entry, file=file, index=index, classes=FUNCTIONAL_SUPPORTED)
        nodes = []
        for node in entry.get("inbound_nodes") or []:
            if isinstance(node, dict):
                kwargs = node.get("kwargs") if isinstance(node.get("kwargs"), dict) else {}
                node = {"args": node.get("args", []),
                        "kwargs": {k: v for k, v in kwargs.items() if k not in ("mask", "training")}}
            for ref in _references(node):
                if ref in ops:
                    raise CheckpointConfigError(file, f"layer {name!r} ({cls}) takes the output of the Keras "
                                                      f"operation {ref!r} ({ops[ref]}), which lstmtext does not import")
            nodes.append(node)
        layers.append({**spec, "name": name, "inbound_nodes": nodes})
    return {"class_name": "Functional", "config": {
        "name": cfg.get("name"), "trainable": cfg.get("trainable", True), "layers": layers,
        "input_layers": cfg.get("input_layers"), "output_layers": cfg.get("output_layers")}}


def _group_names_of(layers: Sequence[Layer]) -> list[str]:
    """Keras's h5 group of each of a model's layers: snake-case class name, ``_1``, ``_2`` ... for repeats."""
    used: dict[str, int] = {}
    names = []
    for layer in layers:
        base = FUNCTIONAL_SUPPORTED.get(type(layer).__name__, type(layer).__name__.lower())
        used[base] = used.get(base, -1) + 1
        names.append(base if used[base] == 0 else f"{base}_{used[base]}")
    return names


def _set_functional_weights(model: Functional, root: Any, file: Any, assets: dict[str, bytes] | None = None,
                            prefix: str = "layers/") -> None:
    for layer, group_name in zip(model.layers, _group_names_of(list(model.layers))):
        where = f"layer {layer.name!r} ({type(layer).__name__})"
        group = root.get(group_name) if root is not None else None
        if isinstance(layer, Functional):
            if group is None:
                raise CorruptFileError(file, f"{where}: weights group layers/{group_name} is missing")
            _set_functional_weights(layer, group.get("layers"), file, assets, f"{prefix}{group_name}/layers/")
            continue
        if type(layer).__name__ == "TextVectorization":
            _load_text_vectorization(layer, group, assets or {}, f"{prefix}{group_name}", file, where)
            continue
        datasets = _datasets(group, type(layer).__name__, file, where) if group is not None else []
        shapes = [tuple(int(d) for d in ds.shape) for ds in datasets]
        own = [tuple(w.shape) for w in layer.get_weights()]
        if own != shapes:
            raise CheckpointConfigError(file, f"{where}: the layer has weights of shapes {own}, the file {shapes}")
        if datasets:
            layer.set_weights([np.asarray(ds[()], dtype=np.float32) for ds in datasets])


def _load_text_vectorization(layer: Any, group: Any, assets: dict[str, bytes], inner: str, file: Any,
                             where: str) -> None:
    """Keras's ``IndexLookup.load_assets``: the vocabulary from ``assets/<inner>/vocabulary.txt`` (lines, as
    ``str.splitlines`` cuts them, trailing empty lines dropped) and, in ``tf_idf`` mode, the weights from the
    layer's ``vars/idf_weights``. A layer whose config holds its vocabulary has no assets (Keras's rule)."""
    if layer._has_input_vocabulary:
        return
    name = f"{ASSETS}{inner}/{VOCABULARY_ASSET}"
    raw = assets.get(name)
    if raw is None:
        raise CorruptFileError(file, f"{where}: its vocabulary {name} is missing from the archive")
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise CorruptFileError(file, f"{where}: {name} is not UTF-8 text: {e}") from None
    while lines and lines[-1] == "":
        lines.pop()
    idf = None
    if layer.output_mode == "tf_idf":
        h5py = _h5py()
        vars_ = group.get("vars") if isinstance(group, h5py.Group) else None
        ds = vars_.get("idf_weights") if vars_ is not None else None
        if not isinstance(ds, h5py.Dataset) or ds.dtype.kind != "f" or ds.ndim != 1 or ds.compression is not None:
            raise CorruptFileError(file, f"{where}: tf_idf weights vars/idf_weights are missing or not an "
                                         "uncompressed float vector")
        if ds.shape[0] < len(lines):
            raise CorruptFileError(file, f"{where}: {ds.shape[0]} idf_weights for a vocabulary of {len(lines)}")
        idf = np.asarray(ds[: len(lines)], dtype=np.float64)  # pad_to_max_tokens pads them: the rest are zeros
    try:
        layer.set_vocabulary(lines, idf)
    except ConfigError as e:
        raise CorruptFileError(file, f"{where}: {name}: {e}") from None


def _text_vectorization_assets(layer: Any, group: Any, inner: str) -> dict[str, bytes]:
    """Keras's ``save_assets`` (and ``save_own_variables`` for ``tf_idf``) of a TextVectorization and of the
    ``_lookup_layer`` inside it, as Keras 3 writes both: ``{archive member: bytes}``."""
    lookup = group.create_group("_lookup_layer").create_group("vars")
    lookup.attrs["name"] = "string_lookup"
    idf = layer.idf_weights if layer.output_mode == "tf_idf" else None
    if idf is not None:
        for vars_ in (group["vars"], lookup):
            vars_.create_dataset("idf_weights", data=np.asarray(idf, dtype=np.float32))
    if layer._has_input_vocabulary or layer._index is None:
        return {}  # Keras keeps a given vocabulary in the config (and an unadapted layer has none)
    vocabulary = layer.get_vocabulary(include_special_tokens=True)
    for token in vocabulary:
        if _LINE_BREAKS.intersection(token):
            raise CheckpointConfigError("<export>", f"layer {layer.name!r} (TextVectorization): token {token!r:.60} "
                                                    "holds a line break, which Keras's vocabulary.txt cannot keep")
    text = "\n".join(vocabulary).encode("utf-8")
    return {f"{ASSETS}{inner}/{VOCABULARY_ASSET}": text,
            f"{ASSETS}{inner}/_lookup_layer/{VOCABULARY_ASSET}": text}


def _load_functional(config: dict[str, Any], weights: bytes, path: Path,
                     assets: dict[str, bytes] | None = None) -> Functional:
    spec = functional_from_keras(config, file=path)
    return _build_with_weights(lambda: deserialize(spec), "Functional", weights, path, assets)


def _build_with_weights(build: Callable[[], Any], kind: str, weights: bytes, path: Path,
                        assets: dict[str, bytes] | None) -> Any:
    """``build()`` the model within a weight budget of the file's size, then set its weights from ``weights``
    (the Keras ``model.weights.h5``) and ``assets``, every failure raised as a typed error naming ``path``."""
    try:
        with weight_budget(len(weights) + (1 << 20)):  # a config asking for more weights than the file holds
            model = build()
    except (CheckpointConfigError, CorruptFileError):
        raise
    except Exception as e:
        raise CheckpointConfigError(path, f"cannot build the {kind} model: {e}") from None
    h5py = _h5py()
    try:
        with h5py.File(io.BytesIO(weights), "r") as h5:
            _set_functional_weights(model, h5.get("layers"), f"{path}:{WEIGHTS}", assets)  # type: ignore[arg-type]
    except (CorruptFileError, CheckpointConfigError):
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise CorruptFileError(f"{path}:{WEIGHTS}", f"not a readable HDF5 weights file: {e}") from None
    return model


def _needs_graph_layers(config: dict[str, Any]) -> bool:
    """Whether a Keras Sequential config holds layers beyond the Sequential importer's (e.g. TextVectorization)."""
    cfg = config.get("config")
    entries = cfg.get("layers") if isinstance(cfg, dict) else None
    return config.get("class_name") == "Sequential" and isinstance(entries, list) and any(
        isinstance(e, dict) and e.get("class_name") in FUNCTIONAL_SUPPORTED and e.get("class_name") not in SUPPORTED
        and e.get("class_name") != "InputLayer" for e in entries)


def _load_sequential_of_graph_layers(config: dict[str, Any], weights: bytes, path: Path,
                                     assets: dict[str, bytes]) -> Any:
    """A Keras Sequential model with a layer of the Functional importer (a TextVectorization first, as in the
    TensorFlow text tutorials): its layers translated as a Functional model's, weights and assets read alike."""
    from lstmtext.models import Input, Sequential

    check_not_code(config, file=path, where="model")
    cfg = config["config"]
    specs, shape, dtype = [], None, None
    for index, entry in enumerate(cfg["layers"]):
        if isinstance(entry, dict) and entry.get("class_name") == "InputLayer":
            c = entry.get("config") if isinstance(entry.get("config"), dict) else {}
            shape, dtype = c.get("batch_shape", c.get("batch_input_shape")), c.get("dtype")
            continue
        specs.append(keras_to_lstmtext(entry, file=path, index=index, classes=FUNCTIONAL_SUPPORTED))
    if shape is None:
        shape = cfg.get("build_input_shape")
    if not isinstance(shape, list) or not shape or not all(d is None or (isinstance(d, int) and d > 0) for d in shape):
        raise CheckpointConfigError(path, f"the Sequential model has no valid input shape (got {shape!r})")
    if dtype is None:
        dtype = "string" if specs and specs[0]["class_name"] == "TextVectorization" else "float32"
    return _build_with_weights(
        lambda: Sequential([Input(shape=tuple(shape[1:]), dtype=dtype), *(deserialize(sp) for sp in specs)],
                           name=cfg.get("name") or None),
        "Sequential", weights, path, assets)


def functional_to_keras(model: Functional) -> dict[str, Any]:
    """The Keras 3 ``config.json`` entry of an lstmtext Functional model (Keras rebuilds it with ``load_model``).

    Raises:
        CheckpointConfigError: a layer Keras has no equivalent for (named).
    """
    ours = model.get_config()
    layers = []
    for layer, entry in zip(model.layers, ours["layers"]):
        if isinstance(layer, InputLayer):
            spec = {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None,
                    "config": {"batch_shape": list(layer.batch_shape), "dtype": layer.input_dtype, "sparse": False,
                               "name": layer.name}}
        elif isinstance(layer, Functional):
            spec = functional_to_keras(layer)
        else:
            spec = lstmtext_to_keras(layer, FUNCTIONAL_SUPPORTED)
        layers.append({**spec, "name": layer.name, "inbound_nodes": entry["inbound_nodes"]})
    return {"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
            "config": {"name": model.name, "trainable": model.trainable, "layers": layers,
                       "input_layers": ours["input_layers"], "output_layers": ours["output_layers"]}}


def _write_functional(root: Any, model: Functional, prefix: str = "layers/") -> dict[str, bytes]:
    """Write the weights of ``model``'s layers under ``root``; returns the asset files ``{member: bytes}``."""
    assets: dict[str, bytes] = {}
    for layer, group_name in zip(model.layers, _group_names_of(list(model.layers))):
        group = root.create_group(group_name)
        if isinstance(layer, Functional):
            group.create_group("vars").attrs["name"] = layer.name
            assets.update(_write_functional(group.create_group("layers"), layer, f"{prefix}{group_name}/layers/"))
        else:
            _write_layer(group, layer)
            if type(layer).__name__ == "TextVectorization":
                assets.update(_text_vectorization_assets(layer, group, f"{prefix}{group_name}"))
    return assets


def _save_functional(model: Functional, path: str | os.PathLike[str]) -> Path:
    config = functional_to_keras(model)
    h5py = _h5py()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as h5:
        h5.create_group("vars").attrs["name"] = model.name
        assets = _write_functional(h5.create_group("layers"), model)
    meta = {"keras_version": EXPORT_KERAS_VERSION, "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S")}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(METADATA, json.dumps(meta))
        zf.writestr(CONFIG, json.dumps(config))
        zf.writestr(WEIGHTS, buf.getvalue())
        for name, data in assets.items():
            zf.writestr(name, data)
    return atomic_write_bytes(path, out.getvalue())
