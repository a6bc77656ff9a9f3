"""Running an exported model with onnxruntime: :class:`OnnxModel` and :func:`onnx_predictor`.

``OnnxModel`` is a drop-in for the PyTorch model inside a :class:`~lstmtext.predictor.Predictor` (ids in,
outputs out), so the ONNX backend shares the Predictor's tokenization, padding, batching and labels.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmtext.errors import ExportError
from lstmtext.export.metadata import FORMAT_KEY, METADATA_KEY
from lstmtext.export.session import make_session

__all__ = ["OnnxModel", "make_session", "onnx_predictor"]


class OnnxModel:
    """An exported model run by onnxruntime, called like the PyTorch model: ``model(ids) -> outputs``.

    Args:
        source: a ``.onnx`` file or the serialized graph (bytes).
        threads: onnxruntime intra-op threads (default: one per core).

    Call: ``model(inputs)`` with a tensor or array of int64 ids ``(B, T)`` (or float32 features
    ``(B, T, F)``) returns a CPU float32 tensor, e.g. ``(B, 1)``.

    >>> OnnxModel("imdb.onnx")(torch.zeros(2, 300, dtype=torch.long)).shape  # doctest: +SKIP
    torch.Size([2, 1])
    """

    def __init__(self, source: bytes | str | os.PathLike[str], *, threads: int | None = None) -> None:
        self.session = make_session(source, threads=threads)
        inp = self.session.get_inputs()[0]
        self.input_name, self.output_name = inp.name, self.session.get_outputs()[0].name
        self._dtype = np.int64 if "int64" in inp.type else np.float32
        self.custom_metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, inputs: Any) -> torch.Tensor:
        x = inputs.detach().cpu().numpy() if isinstance(inputs, torch.Tensor) else np.asarray(inputs)
        out = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(x, dtype=self._dtype)})[0]
        return torch.from_numpy(out)

    def inference_record(self) -> dict[str, Any] | None:
        """The tokenizer/padding record embedded at export (None when the export had none)."""
        raw = self.custom_metadata.get(METADATA_KEY)
        return None if raw is None else json.loads(raw)


def onnx_predictor(path: str | os.PathLike[str], *, batch_size: int = 512, threads: int | None = None,
                   maxlen: int | None = None) -> Any:
    """A :class:`~lstmtext.predictor.Predictor` that runs the model with onnxruntime.

    Args:
        path: an exported ``.onnx`` file (tokenizer and padding from its metadata), or a checkpoint
            folder (read by ``Predictor.from_checkpoint``, exported in memory and checked against PyTorch).
        batch_size: most texts per onnxruntime call.
        threads: onnxruntime intra-op threads.
        maxlen: overrides the sequence length recorded with the model.

    Returns:
        A Predictor whose ``predict``/``predict_proba`` give the PyTorch path's results.

    Raises:
        ExportError: the file has no lstmtext tokenizer record, or the checkpoint cannot be exported.
        CheckpointError: the checkpoint folder is missing files, uncommitted or corrupt.

    >>> onnx_predictor("runs/imdb/model.onnx").predict(["a moving, beautiful film"])  # doctest: +SKIP
    """
    from lstmtext.predictor import Predictor
    from lstmtext.text import Tokenizer

    source = Path(path)
    if source.is_dir():
        # The PyTorch predictor gives tokenizer, padding, labels and version; only the model is swapped.
        from lstmtext.export.onnx import build_onnx, verify_onnx

        predictor = Predictor.from_checkpoint(source, batch_size=batch_size, maxlen=maxlen)
        proto = build_onnx(predictor.model)
        verify_onnx(predictor.model, proto)
        predictor.model = OnnxModel(proto.SerializeToString(), threads=threads)
        predictor._metadata["backend"] = "onnxruntime"
        return predictor
    if not source.is_file():
        raise ExportError(f"{source}: no such file or folder (expected a .onnx file or a checkpoint folder)")
    onnx_model = OnnxModel(source, threads=threads)
    record = onnx_model.inference_record()
    if record is None or record.get("tokenizer") is None:
        raise ExportError(f"{source}: has no tokenizer record ({METADATA_KEY}), so raw text cannot be encoded; "
                          "export it from a checkpoint folder with a vocab.json, or pass inference= to to_onnx")
    tokenizer = Tokenizer.from_json_dict(record["tokenizer"], source=str(source))
    seq = record.get("sequence", {})
    meta = {"source": str(source), "backend": "onnxruntime", "vocab_size": len(tokenizer.vocab),
            "tokenizer": tokenizer.get_config(), "format": onnx_model.custom_metadata.get(FORMAT_KEY)}
    return Predictor(onnx_model, tokenizer, maxlen=maxlen or seq.get("maxlen"),
                     padding=seq.get("padding", "pre"), truncating=seq.get("truncating", "pre"),
                     pad_value=seq.get("value", 0), labels=record.get("labels"),
                     from_logits=bool(record.get("from_logits", False)), batch_size=batch_size, metadata=meta,
                     version=f"onnx:{source.name}")
