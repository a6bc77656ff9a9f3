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
from lstmtext.export.layers import Flow, lower_layer
from lstmtext.export.metadata import FORMAT, FORMAT_KEY, METADATA_KEY, inference_record_from_checkpoint, sidecar
from lstmtext.export.session import make_session
from lstmtext.utils.io import atomic_write_bytes, atomic_write_json

INPUT_NAME, OUTPUT_NAME = "inputs", "outputs"


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


def _input_spec(model: Any) -> tuple[str, np.dtype, list[Any]]:
    if getattr(model, "_graph", None) is not None and not hasattr(model, "build_input_shape"):
        raise ExportError(f"model {model.name!r} cannot be exported: ONNX export covers Sequential models; a "
                          "Functional model can be saved as a checkpoint or a .keras file")
    shape = getattr(model, "build_input_shape", None)
    if not getattr(model, "built", False) or shape is None:
        raise ExportError(f"model {getattr(model, 'name', '?')!r} cannot be exported: it is not built yet (give "
                          "it an Input(shape), call build((None, maxlen)) or fit/predict it once)")
    first = model.layers[0] if len(model.layers) else None
    ids = type(first).__name__ == "Embedding"
    dims: list[Any] = ["batch", "sequence"] + [d if d is not None else f"dim_{i}" for i, d in
                                               enumerate(shape[2:], start=2)]
    if not ids and (len(shape) != 3 or shape[2] is None):
        raise ExportError(f"model {model.name!r} cannot be exported: without an Embedding first, the input must be "
                          f"(batch, timesteps, features) with known features, got {tuple(shape)}")
    return INPUT_NAME, np.dtype(np.int64 if ids else np.float32), dims[:len(shape)]


def build_onnx(model: Any, *, opset: int = DEFAULT_OPSET, metadata: dict[str, str] | None = None) -> Any:
    """Write ``model`` as an in-memory ONNX graph (not checked; see :func:`to_onnx`).

    Args:
        model: a built :class:`~lstmtext.models.Sequential`.
        opset: ONNX opset, at least 13.
        metadata: extra ``metadata_props`` (string to string).

    Returns:
        An ``onnx.ModelProto`` with input ``"inputs"`` (int64 ids ``(batch, sequence)``, or float32
        ``(batch, sequence, features)``) and output ``"outputs"``.

    Raises:
        ExportError: naming the layer and the reason, for layers or options ONNX cannot express.
    """
    import onnx
    from onnx import helper

    _check_opset(opset)
    if type(model).__name__ != "Sequential":
        raise ExportError(f"cannot export {type(model).__name__}: expected a lstmtext Sequential model")
    name, dtype, dims = _input_spec(model)
    g = GraphBuilder(opset)
    g.name(INPUT_NAME), g.name(OUTPUT_NAME)  # reserved: layer names become tensor names too
    f = Flow(name, None, len(dims))
    for layer in model.layers:
        f = lower_layer(g, layer, f)
    out = OUTPUT_NAME
    g.nodes.append(helper.make_node("Identity", [f.x], [out], name=g.name("outputs_node")))
    out_dims: list[Any] = ["batch", "sequence", *([None] * max(0, f.rank - 2))][:f.rank]
    graph = helper.make_graph(
        g.nodes, f"{model.name}",
        [helper.make_tensor_value_info(name, tensor_type(dtype), dims)],
        [helper.make_tensor_value_info(out, onnx.TensorProto.FLOAT, out_dims)],
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
def check_inputs(model: Any, seed: int = 0) -> list[tuple[str, np.ndarray]]:
    """Named test inputs for the export check: no padding, left and right padding, a fully padded row,
    a single real step and a gap, at two sequence lengths (and one step).

    Padding is id 0 for an Embedding model, the mask value of a leading Masking layer otherwise.
    """
    _, dtype, dims = _input_spec(model)
    rng = np.random.default_rng(seed)
    first = model.layers[0]
    pad: float = 0.0
    if dtype == np.int64:
        high = int(first.input_dim)

        def draw(shape: tuple[int, ...]) -> np.ndarray:
            return rng.integers(min(1, high - 1), high, size=shape, dtype=np.int64)
    else:
        features = int(model.build_input_shape[2])
        pad = float(first.mask_value) if type(first).__name__ == "Masking" else 0.0

        def draw(shape: tuple[int, ...]) -> np.ndarray:
            return rng.standard_normal((*shape, features)).astype(np.float32)

    def padded(steps: int) -> np.ndarray:
        x = draw((6, steps))
        cut = max(1, steps // 3)
        x[1, :cut] = pad  # left padding (pad_sequences' default)
        x[2, steps - cut:] = pad  # right padding
        x[3] = pad  # nothing real
        x[4, :-1] = pad  # one real step, the last
        if steps >= 3:
            x[5, 1:steps - 1] = pad  # a gap between two real steps
        return x

    declared = model.build_input_shape[1]
    if any(type(la).__name__ == "Flatten" for la in model.layers) and isinstance(declared, int):
        # Flatten fixes the length: only the declared one can run
        return [(f"padded batch, {declared} steps", padded(declared))]
    cases = [("padded batch, 9 steps", padded(9)), ("padded batch, 4 steps", padded(4)),
             ("one step", draw((2, 1))), ("random batch, 17 steps", draw((3, 17)))]
    if isinstance(declared, int) and declared not in (9, 4, 1, 17):
        cases.insert(0, (f"padded batch, {declared} steps", padded(declared)))
    return cases


def torch_outputs(model: Any, x: np.ndarray) -> np.ndarray:
    """``model``'s inference output for ``x``, as float32 numpy (on the model's device)."""
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.inference_mode():
        y = model(torch.from_numpy(x).to(device), training=False)
    return y.detach().to("cpu", torch.float32).numpy()


def max_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest ``|a - b|``; NaN where both are NaN counts as equal, NaN in one only as infinite."""
    both_nan = np.isnan(a) & np.isnan(b)
    diff = np.abs(np.where(both_nan, 0.0, a.astype(np.float64) - b.astype(np.float64)))
    return float(np.nan_to_num(diff, nan=np.inf).max()) if diff.size else 0.0


def verify_onnx(model: Any, proto: Any, *, atol: float = 1e-5) -> float:
    """Run the check inputs through onnxruntime and PyTorch; return the largest difference.

    Raises:
        ExportError: onnxruntime rejects the graph, or an output differs by more than ``atol``.
    """
    session = make_session(proto.SerializeToString())
    worst = 0.0
    for label, x in check_inputs(model):
        expected = torch_outputs(model, x)
        try:
            got = session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        except Exception as e:
            raise ExportError(f"onnxruntime failed on the exported graph of {model.name!r} ({label}): {e}") from e
        if got.shape != expected.shape:
            raise ExportError(f"exported graph of {model.name!r} gives shape {got.shape} on the {label}, PyTorch "
                              f"gives {expected.shape}")
        diff = max_abs_diff(got, expected)
        if not diff <= atol:
            raise ExportError(f"exported graph of {model.name!r} differs from PyTorch by {diff:.3g} (more than "
                              f"atol={atol}) on the {label}")
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
        model_or_dir: a built :class:`~lstmtext.models.Sequential`, or a checkpoint folder (whose
            ``vocab.json`` gives the tokenizer and padding that travel with the export).
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
    model, record, folder = _load_source(model_or_dir)
    if inference is not None:
        from lstmtext.export.metadata import normalize_record

        record = normalize_record(inference, model)
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
