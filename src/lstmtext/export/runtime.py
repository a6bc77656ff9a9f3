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

__all__ = ["OnnxModel", "make_session", "onnx_predictor", "text_layer_from_record"]


def text_layer_from_record(record: Any, *, source: str) -> Any:
    """The ``TextVectorization`` described by an export's ``text_vectorization`` record (settings + vocabulary).

    Raises:
        ExportError: naming ``source``, for a record that does not describe a valid layer.
    """
    from lstmtext.errors import LstmtextError
    from lstmtext.layers import TextVectorization

    if not isinstance(record, dict) or not isinstance(record.get("vocabulary"), list):
        raise ExportError(f"{source}: text_vectorization must be an object with a vocabulary list")
    cfg = {k: record.get(k) for k in ("max_tokens", "standardize", "split", "ngrams", "output_mode",
                                      "output_sequence_length", "pad_to_max_tokens", "encoding") if k in record}
    for key in ("standardize", "split"):
        if cfg.get(key) is not None and not isinstance(cfg[key], str):
            raise ExportError(f"{source}: text_vectorization.{key} must be a mode name or null, got {cfg[key]!r:.80}")
    try:
        return TextVectorization(**cfg, vocabulary=record["vocabulary"], idf_weights=record.get("idf_weights"))
    except (LstmtextError, TypeError, ValueError) as e:
        raise ExportError(f"{source}: text_vectorization does not describe a TextVectorization layer: {e}") from e


class OnnxModel:
    """An exported model run by onnxruntime, called like the PyTorch model: ``model(ids) -> outputs``.

    Args:
        source: a ``.onnx`` file or the serialized graph (bytes).
        threads: onnxruntime intra-op threads (default: one per core).

    Call: ``model(inputs)`` with a tensor or array of int64 ids ``(B, T)`` (or float32 features
    ``(B, T, F)``) returns a CPU float32 tensor, e.g. ``(B, 1)``. A model exported with a
    ``TextVectorization`` first also takes raw texts (a list or a str/object array), encoded by that layer
    rebuilt from the file's metadata.

    >>> OnnxModel("imdb.onnx")(torch.zeros(2, 300, dtype=torch.long)).shape  # doctest: +SKIP
    torch.Size([2, 1])
    """

    def __init__(self, source: bytes | str | os.PathLike[str], *, threads: int | None = None) -> None:
        self.session = make_session(source, threads=threads)
        inp = self.session.get_inputs()[0]
        self.input_name, self.output_name = inp.name, self.session.get_outputs()[0].name
        self._dtype = np.int64 if "int64" in inp.type else np.float32
        self.custom_metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

        record = self.inference_record()
        tv = (record or {}).get("text_vectorization")
        #: the TextVectorization rebuilt from the metadata, for a model exported with one first (else None)
        self.text_layer = text_layer_from_record(tv, source=str(source) if not isinstance(source, bytes)
                                                 else "ONNX graph") if tv is not None else None

    def takes_strings(self) -> bool:
        """Whether the model takes raw texts (it was exported with a ``TextVectorization`` first)."""
        return self.text_layer is not None

    def __call__(self, inputs: Any) -> torch.Tensor:
        if self.text_layer is not None and not isinstance(inputs, torch.Tensor):
            arr = np.asarray(inputs, dtype=object) if not isinstance(inputs, np.ndarray) else inputs
            if arr.dtype.kind in "OUS":
                inputs = self.text_layer.vectorize(arr)
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
        from lstmtext.export.metadata import normalize_record, text_vectorization_record
        from lstmtext.export.model_graph import plan_export
        from lstmtext.export.onnx import build_onnx, verify_onnx

        predictor = Predictor.from_checkpoint(source, batch_size=batch_size, maxlen=maxlen)
        text_layer = plan_export(predictor.model).text_layer
        meta = {} if text_layer is None else {METADATA_KEY: json.dumps(normalize_record(
            {"text_vectorization": text_vectorization_record(text_layer)}, predictor.model))}
        proto = build_onnx(predictor.model, metadata=meta)
        verify_onnx(predictor.model, proto)
        predictor.model = OnnxModel(proto.SerializeToString(), threads=threads)
        predictor._metadata["backend"] = "onnxruntime"
        return predictor
    if not source.is_file():
        raise ExportError(f"{source}: no such file or folder (expected a .onnx file or a checkpoint folder)")
    onnx_model = OnnxModel(source, threads=threads)
    inputs = [i.name for i in onnx_model.session.get_inputs()]
    if len(inputs) != 1:
        raise ExportError(f"{source}: the graph has {len(inputs)} inputs {inputs}; a predictor scores models with one "
                          "text input (run the others with OnnxModel(...).session)")
    record = onnx_model.inference_record()
    if record is None or (record.get("tokenizer") is None and onnx_model.text_layer is None):
        raise ExportError(f"{source}: has no tokenizer record ({METADATA_KEY}), so raw text cannot be encoded; "
                          "export it from a checkpoint folder with a vocab.json, or pass inference= to to_onnx")
    if onnx_model.text_layer is not None:
        tv = onnx_model.text_layer
        meta = {"source": str(source), "backend": "onnxruntime", "vocab_size": tv.vocabulary_size(),
                "text_vectorization": {k: v for k, v in record["text_vectorization"].items()
                                       if k not in ("vocabulary", "idf_weights")},
                "format": onnx_model.custom_metadata.get(FORMAT_KEY)}
        return Predictor(onnx_model, None, maxlen=None, labels=record.get("labels"),
                         from_logits=bool(record.get("from_logits", False)), batch_size=batch_size, metadata=meta,
                         version=f"onnx:{source.name}")
    tokenizer = Tokenizer.from_json_dict(record["tokenizer"], source=str(source))
    seq = record.get("sequence", {})
    meta = {"source": str(source), "backend": "onnxruntime", "vocab_size": len(tokenizer.vocab),
            "tokenizer": tokenizer.get_config(), "format": onnx_model.custom_metadata.get(FORMAT_KEY)}
    return Predictor(onnx_model, tokenizer, maxlen=maxlen or seq.get("maxlen"),
                     padding=seq.get("padding", "pre"), truncating=seq.get("truncating", "pre"),
                     pad_value=seq.get("value", 0), labels=record.get("labels"),
                     from_logits=bool(record.get("from_logits", False)), batch_size=batch_size, metadata=meta,
                     version=f"onnx:{source.name}")
