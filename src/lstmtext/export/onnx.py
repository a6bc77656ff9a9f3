"""Export a model (or a checkpoint folder) to ONNX, checked against onnxruntime on export.

The graph is written operator by operator (:mod:`lstmtext.export.layers`); LSTMs become ONNX's native
``LSTM`` operator, masks included (:mod:`lstmtext.export.lstm`). Batch and sequence axes are dynamic.
The tokenizer, padding and class names travel inside the file (``metadata_props``) and in a sidecar
JSON next to it, so raw text can be scored without lstmtext (see :mod:`lstmtext.export.runtime`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmtext.errors import ConfigError, ExportError
from lstmtext.export.graph import DEFAULT_OPSET, MIN_OPSET, GraphBuilder, tensor_type
from lstmtext.export.layers import Flow
from lstmtext.export.metadata import FORMAT, FORMAT_KEY, METADATA_KEY, inference_record_from_checkpoint, sidecar
from lstmtext.export.model_graph import INPUT_NAME, OUTPUT_NAME, lower_graph, new_cache, plan_export
from lstmtext.export.session import make_session
from lstmtext.utils.io import atomic_write_bytes, atomic_write_json

__all__ = ["INPUT_NAME", "OUTPUT_NAME", "ExportResult", "build_onnx", "check_cases", "to_onnx", "verify_onnx"]


@dataclass(frozen=True)
class ExportResult:
    """What :func:`to_onnx` wrote.

    Attributes:
        path: the ``.onnx`` file.
        sidecar: the JSON file with the tokenizer and padding next to it (None without a tokenizer).
        opset: the ONNX opset of the graph.
        max_abs_diff: the largest difference between onnxruntime's and PyTorch's outputs on the check
            inputs (None when the check was skipped).
    """

    path: Path
    sidecar: Path | None
    opset: int
    max_abs_diff: float | None


def build_onnx(model: Any, *, opset: int = DEFAULT_OPSET, metadata: dict[str, str] | None = None) -> Any:
    """Write ``model`` as an in-memory ONNX graph (not checked; see :func:`to_onnx`).

    Args:
        model: a built Sequential or Functional model (its layer graph is written node by node; a model
            whose text input goes to a ``TextVectorization`` is written from that layer's output on).
        opset: ONNX opset, at least 13.
        metadata: extra ``metadata_props`` (string to string).

    Returns:
        An ``onnx.ModelProto``. A model with one input and one output has input ``"inputs"`` (int64 ids
        ``(batch, sequence)``, or float32 ``(batch, sequence, features)``; a ``TextVectorization``'s ids or
        rows for a text model) and output ``"outputs"``; otherwise the inputs are named after the ``Input``
        layers and the outputs after ``model.output_names``.

    Raises:
        ExportError: naming the layer and the reason, for layers or options ONNX cannot express.
    """
    import onnx
    from onnx import helper

    _check_opset(opset)
    plan = plan_export(model)
    g = GraphBuilder(opset)
    for name in [x.name for x in plan.inputs] + plan.output_names:
        g.name(name)  # reserved: layer names become tensor names too
    cache = new_cache()
    feeds = {id(x.tensor): Flow(x.name, None, len(x.dims), cache) for x in plan.inputs}
    flows = lower_graph(g, plan.graph, feeds, plan.skip)
    single = len(plan.inputs) == 1
    outputs = []
    for f, name, tensor in zip(flows, plan.output_names, plan.graph.outputs):
        g.nodes.append(helper.make_node("Identity", [f.x], [name], name=g.name(f"{name}_node")))
        dims: list[Any] = ["batch"] + [d if d is not None else ("sequence" if i == 1 and single else None)
                                       for i, d in enumerate(tensor.shape[1:], start=1)]
        outputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, dims))
    graph = helper.make_graph(
        g.nodes, f"{model.name}",
        [helper.make_tensor_value_info(x.name, tensor_type(x.dtype), x.dims) for x in plan.inputs],
        outputs,
        g.used_initializers(),
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="lstmtext",
                              producer_version=_version())
    proto.ir_version = helper.find_min_ir_version_for([helper.make_opsetid("", opset)])
    props = {FORMAT_KEY: FORMAT, "lstmtext.model_config": json.dumps(_model_config(model))}
    props.update(metadata or {})
    helper.set_model_props(proto, props)
    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as e:  # a translation bug, not bad user input: say so plainly
        raise ExportError(f"the ONNX graph of {model.name!r} failed onnx.checker: {e}") from e
    return proto


def _check_opset(opset: Any) -> None:
    import onnx

    newest = onnx.defs.onnx_opset_version()
    if not isinstance(opset, int) or isinstance(opset, bool) or not MIN_OPSET <= opset <= newest:
        raise ConfigError(f"opset must be an integer from {MIN_OPSET} to {newest} (this onnx package's newest), "
                          f"got {opset!r}")


def _version() -> str:
    from lstmtext import __version__

    return __version__


def _model_config(model: Any) -> dict[str, Any]:
    from lstmtext.layers import serialize

    try:
        return serialize(model)
    except ConfigError as e:
        raise ExportError(f"model {model.name!r} cannot be exported: its config cannot be serialized ({e})") from e


# -- checking against onnxruntime ---------------------------------------------------------------------------
CheckCase = tuple[str, dict[str, np.ndarray], list[Any]]


def _has_flatten(graph: Any) -> bool:
    return any(type(n.layer).__name__ == "Flatten" or (getattr(n.layer, "_graph", None) is not None
                                                        and _has_flatten(n.layer._graph)) for n in graph.nodes)


def check_cases(model: Any, seed: int = 0) -> list[CheckCase]:
    """The inputs of the export check: ``(label, ONNX feeds by input name, the model's inputs)``.

    Padded batches (no padding, left and right padding, a fully padded row, a single real step, a gap) at
    two sequence lengths, one step, and an unpadded batch. Padding is id 0 for ids, the mask value of a
    ``Masking`` layer for features; a text input gets texts of those lengths from the layer's vocabulary
    (with an unknown word and an empty text), and the feeds are the ``TextVectorization``'s outputs.
    """
    plan = plan_export(model)
    rng = np.random.default_rng(seed)
    declared = [x.source.shape[1] if len(x.source.shape) > 1 and isinstance(x.source.shape[1], int)
                and x.text_layer is None else None for x in plan.inputs]
    fixed = next((d for d in declared if d is not None), None)
    if _has_flatten(plan.graph) and fixed is not None:  # Flatten fixes the length: only the declared one runs
        plans = [(f"padded batch, {fixed} steps", fixed, 6, True)]
    else:
        plans = [("padded batch, 9 steps", 9, 6, True), ("padded batch, 4 steps", 4, 6, True),
                 ("one step", 1, 2, False), ("random batch, 17 steps", 17, 3, False)]
        if fixed is not None and fixed not in (9, 4, 1, 17):
            plans.insert(0, (f"padded batch, {fixed} steps", fixed, 6, True))
    cases: list[CheckCase] = []
    for label, steps, batch, padded in plans:
        feeds: dict[str, np.ndarray] = {}
        model_inputs: list[Any] = []
        for x, own in zip(plan.inputs, declared):
            t = own if own is not None else steps
            if x.text_layer is not None:
                texts = _check_texts(x.text_layer, rng, t, batch)
                arr = np.array(texts, dtype=object)
                model_inputs.append(arr.reshape(-1, 1) if len(x.source.shape) == 2 else arr)
                feeds[x.name] = np.asarray(x.text_layer.vectorize(arr), dtype=x.dtype)
                continue
            feeds[x.name] = arr = _draw(x, rng, t, batch, padded)
            model_inputs.append(arr)
        cases.append((label, feeds, model_inputs))
    return cases


def _draw(x: Any, rng: np.random.Generator, steps: int, batch: int, padded: bool) -> np.ndarray:
    fixed = [d if isinstance(d, int) else 1 for d in x.dims[2:]]
    shape = (batch, steps, *fixed) if len(x.dims) >= 2 else (batch,)
    if len(x.dims) == 2 and x.dtype != np.int64 and isinstance(x.dims[1], int):
        shape = (batch, x.dims[1])  # (batch, features): no time axis to pad
        padded = False
    if x.dtype == np.int64:
        high = int(x.ids_high or 2)
        arr = rng.integers(min(1, high - 1), high, size=shape, dtype=np.int64)
    else:
        arr = rng.standard_normal(shape).astype(np.float32)
    if padded and arr.ndim >= 2 and arr.shape[0] >= 6:
        pad = x.pad if x.dtype != np.int64 else 0
        cut = max(1, steps // 3)
        arr[1, :cut] = pad  # left padding (pad_sequences' default)
        arr[2, steps - cut:] = pad  # right padding
        arr[3] = pad  # nothing real
        arr[4, :-1] = pad  # one real step, the last
        if steps >= 3:
            arr[5, 1:steps - 1] = pad  # a gap between two real steps
    return arr


def _check_texts(layer: Any, rng: np.random.Generator, steps: int, batch: int) -> list[str]:
    vocab = [t for t in layer.get_vocabulary() if t not in ("", "[UNK]")] or ["a"]
    sep = "" if layer._split == "character" else " "
    unknown = "\u2603" if layer._split == "character" else "qzxjunknownword"

    def text(n: int, with_unknown: bool = False) -> str:
        if layer._split is None:  # the whole text is one token
            return vocab[int(rng.integers(len(vocab)))] if n else ""
        words = [vocab[i] for i in rng.integers(0, len(vocab), size=n)]
        if with_unknown and n >= 2:
            words[n // 2] = unknown
        return sep.join(words)

    rows = [text(steps, True), text(max(1, steps // 3)), text(0), text(1), text(steps), text(2, True)]
    return rows[:batch] if batch <= len(rows) else rows + [text(steps) for _ in range(batch - len(rows))]


def torch_outputs(model: Any, inputs: list[Any]) -> list[np.ndarray]:
    """``model``'s inference outputs for one value per model input, as float32 numpy (in the graph's order)."""
    from lstmtext.layers.symbolic import flatten

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    values = [torch.from_numpy(v).to(device) if isinstance(v, np.ndarray) and v.dtype != object else v
              for v in inputs]
    with torch.inference_mode():
        y = model(values[0] if len(values) == 1 else values, training=False)
    return [t.detach().to("cpu", torch.float32).numpy() for t in flatten(y)]


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest ``|a - b|``; NaN where both are NaN counts as equal, NaN in one only as infinite."""
    both_nan = np.isnan(a) & np.isnan(b)
    diff = np.abs(np.where(both_nan, 0.0, a.astype(np.float64) - b.astype(np.float64)))
    return float(np.nan_to_num(diff, nan=np.inf).max()) if diff.size else 0.0


def verify_onnx(model: Any, proto: Any, *, atol: float = 1e-5) -> float:
    """Run the check inputs (:func:`check_cases`) through onnxruntime and PyTorch; return the largest difference.

    Raises:
        ExportError: onnxruntime rejects the graph, or an output differs by more than ``atol``.
    """
    session = make_session(proto.SerializeToString())
    names = [o.name for o in session.get_outputs()]
    worst = 0.0
    for label, feeds, model_inputs in check_cases(model):
        expected = torch_outputs(model, model_inputs)
        try:
            got = session.run(names, feeds)
        except Exception as e:
            raise ExportError(f"onnxruntime failed on the exported graph of {model.name!r} ({label}): {e}") from e
        for name, a, b in zip(names, got, expected):
            what = "" if len(names) == 1 else f" (output {name!r})"
            if a.shape != b.shape:
                raise ExportError(f"exported graph of {model.name!r} gives shape {a.shape}{what} on the {label}, "
                                  f"PyTorch gives {b.shape}")
            diff = max_abs_diff(a, b)
            if not diff <= atol:
                raise ExportError(f"exported graph of {model.name!r} differs from PyTorch by {diff:.3g}{what} (more "
                                  f"than atol={atol}) on the {label}")
            worst = max(worst, diff)
    return worst


# -- the public entry point ---------------------------------------------------------------------------------
def _load_source(source: Any) -> tuple[Any, dict[str, Any] | None, Path | None]:
    if isinstance(source, (str, os.PathLike)):
        from lstmtext.checkpoint import load_checkpoint
        from lstmtext.checkpoint.manifest import MANIFEST
        from lstmtext.models import load_model

        folder = Path(source)
        if not folder.is_dir():
            raise ExportError(f"{folder}: not a checkpoint folder (expected a folder with config.json and "
                              "model.safetensors)")
        ckpt = load_checkpoint(folder, verify=(folder / MANIFEST).exists(), load_training_state=False)
        model = load_model(ckpt, compile=False)
        return model, inference_record_from_checkpoint(ckpt, model), folder
    if isinstance(source, torch.nn.Module):
        return source, None, None
    raise ConfigError(f"to_onnx: model_or_dir must be a lstmtext model or a checkpoint folder, got "
                      f"{type(source).__name__}")


def to_onnx(
    model_or_dir: Any,
    path: str | os.PathLike[str] | None = None,
    *,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    atol: float = 1e-5,
    inference: dict[str, Any] | None = None,
) -> ExportResult:
    """Export a model or checkpoint folder to an ONNX file, checked against onnxruntime.

    Args:
        model_or_dir: a built Sequential or Functional model, or a checkpoint folder (whose ``vocab.json``
            gives the tokenizer and padding that travel with the export). For a model whose text input
            goes to a ``TextVectorization``, the graph starts at that layer's output and the layer's settings
            and vocabulary travel instead (``"text_vectorization"`` in the metadata and the sidecar).
        path: the ``.onnx`` file to write (default: ``model.onnx`` in the checkpoint folder).
        opset: ONNX opset (default 17, at least 13).
        check: run :func:`verify_onnx` before writing (onnxruntime vs PyTorch on padded inputs).
        atol: the tolerance of that check.
        inference: for a model, the tokenizer/padding record to embed: ``{"tokenizer": Tokenizer or its
            JSON dict, "sequence": {"maxlen", "padding", "truncating", "value"}, "labels": [...]}``.

    Returns:
        An :class:`ExportResult` (file, sidecar JSON, opset, measured difference).

    Raises:
        ExportError: a layer or option ONNX cannot express (naming the layer and why), or a failed check.

    >>> to_onnx(model, "imdb.onnx").max_abs_diff < 1e-5  # doctest: +SKIP
    True
    """
    from lstmtext.export.metadata import normalize_record, text_vectorization_record

    model, record, folder = _load_source(model_or_dir)
    if inference is not None:
        record = dict(inference)
    text_layer = plan_export(model).text_layer
    if text_layer is not None:
        # the model takes raw text: its TextVectorization's settings and vocabulary travel instead of a tokenizer
        given = record or {}
        if given.get("tokenizer") is not None and given.get("text_vectorization") is None:
            raise ExportError(f"model {model.name!r} starts with TextVectorization layer {text_layer.name!r}, which "
                              "encodes raw text itself; give no tokenizer")
        record = {"text_vectorization": text_vectorization_record(text_layer), "labels": given.get("labels")}
        if "from_logits" in given:
            record["from_logits"] = given["from_logits"]
    if record is not None:
        record = normalize_record(record, model)
    if path is None:
        if folder is None:
            raise ConfigError("to_onnx: give path= when exporting a model object")
        path = folder / "model.onnx"
    path = Path(path)
    was_training = model.training
    model.eval()
    try:
        meta = {METADATA_KEY: json.dumps(record)} if record is not None else {}
        proto = build_onnx(model, opset=opset, metadata=meta)
        diff = verify_onnx(model, proto, atol=atol) if check else None
    finally:
        model.train(was_training)
    atomic_write_bytes(path, proto.SerializeToString())
    side = None
    if record is not None:
        side = path.with_name(path.name + ".json")
        atomic_write_json(side, sidecar(record, path.name, INPUT_NAME, OUTPUT_NAME))
    return ExportResult(path=path, sidecar=side, opset=opset, max_abs_diff=diff)
