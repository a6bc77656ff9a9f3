"""Nested Python state (optimizer ``state_dict()``, trainer state, RNG states) to JSON + tensors, and back.

JSON alone cannot hold a torch optimizer's state exactly: it has integer dict keys, tuples
(``betas``), tensors (``exp_avg``, ``step``) and sometimes non-finite floats. :func:`encode_tree`
turns such a value into a JSON tree in which each tensor is replaced by ``{"__tensor__": name}`` (the
tensor itself goes to a safetensors file) and the other non-JSON values get a one-key marker object;
:func:`decode_tree` inverts it exactly, so an optimizer restored from a checkpoint continues bit for
bit. A dict whose keys are all strings (and that is not itself a one-key marker) is written as a plain
JSON object, so ordinary state stays readable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from lstmtext.checkpoint.errors import CheckpointError, CorruptFileError

TENSOR, TUPLE, DICT, FLOAT = "__tensor__", "__tuple__", "__dict__", "__float__"
_MARKERS = (TENSOR, TUPLE, DICT, FLOAT)
_SPECIAL_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _float(x: float) -> Any:
    if math.isfinite(x):
        return x
    return {FLOAT: "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")}


def encode_tree(obj: Any, tensors: dict[str, torch.Tensor] | None = None, *, prefix: str = "") -> Any:
    """Encode ``obj`` as a JSON-able tree, moving tensors into ``tensors``.

    Args:
        obj: None, bool, int, float, str, tensors, NumPy scalars, and lists, tuples and dicts of them.
        tensors: receives ``{name: tensor}``; names are the path of the value (``state/0/exp_avg``)
            after ``prefix``. None: tensors are refused.
        prefix: prepended to tensor names so several trees can share one file.

    Returns:
        A value ``json.dumps(..., allow_nan=False)`` accepts.

    Raises:
        CheckpointError: a value of another type, or a tensor where ``tensors`` is None, naming its path.

    >>> encode_tree({"betas": (0.9, 0.999), 3: float("inf")})
    {'__dict__': [['betas', {'__tuple__': [0.9, 0.999]}], [3, {'__float__': 'inf'}]]}
    """
    return _encode(obj, tensors, prefix, [])


def _encode(obj: Any, tensors: dict[str, torch.Tensor] | None, prefix: str, path: list[str]) -> Any:
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return _float(float(obj))
    if isinstance(obj, np.generic) and obj.shape == () and obj.dtype.kind in "biuf":
        return _encode(obj.item(), tensors, prefix, path)
    if isinstance(obj, torch.Tensor):
        if tensors is None:
            raise CheckpointError(f"cannot store a tensor at {'/'.join(path) or '<root>'} here (JSON only)")
        name = prefix + ("/".join(path) or "root")
        while name in tensors:  # a path segment containing '/' could collide; keep names unique
            name += "'"
        tensors[name] = obj
        return {TENSOR: name}
    if isinstance(obj, (list, tuple)):
        items = [_encode(v, tensors, prefix, [*path, str(i)]) for i, v in enumerate(obj)]
        return {TUPLE: items} if isinstance(obj, tuple) else items
    if isinstance(obj, Mapping):
        plain = all(isinstance(k, str) for k in obj) and not (len(obj) == 1 and next(iter(obj)) in _MARKERS)
        if plain:
            return {k: _encode(v, tensors, prefix, [*path, k]) for k, v in obj.items()}
        pairs = []
        for k, v in obj.items():
            if not (k is None or isinstance(k, (bool, int, float, str, tuple))):
                raise CheckpointError(f"cannot store dict key {k!r} of type {type(k).__name__} at "
                                      f"{'/'.join(path) or '<root>'}")
            pairs.append([_encode(k, None, prefix, path), _encode(v, tensors, prefix, [*path, str(k)])])
        return {DICT: pairs}
    raise CheckpointError(f"cannot store a {type(obj).__name__} at {'/'.join(path) or '<root>'} "
                          "(only None, bool, int, float, str, tensors, lists, tuples and dicts)")


def decode_tree(tree: Any, tensors: Mapping[str, torch.Tensor] | None = None, *,
                file: str | os.PathLike[str] = "<json>") -> Any:
    """Invert :func:`encode_tree` exactly.

    Args:
        tree: the parsed JSON.
        tensors: the tensors its ``__tensor__`` markers name.
        file: the file name used in error messages.

    Returns:
        The original value (tuples, integer keys, non-finite floats and tensors restored).

    Raises:
        CorruptFileError: a malformed marker, or a marker naming a tensor that is not in ``tensors``.
    """
    return _decode(tree, tensors or {}, file)


def _decode(node: Any, tensors: Mapping[str, torch.Tensor], file: Any) -> Any:
    # Recursion depth is bounded by the JSON depth limit enforced when the file was parsed.
    if isinstance(node, list):
        return [_decode(v, tensors, file) for v in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, value),) = node.items()
        if key == TENSOR:
            if not isinstance(value, str) or value not in tensors:
                raise CorruptFileError(file, f"refers to tensor {value!r}, which the tensor file does not hold")
            return tensors[value]
        if key == TUPLE:
            if not isinstance(value, list):
                raise CorruptFileError(file, f"{TUPLE} must hold a list, got {type(value).__name__}")
            return tuple(_decode(v, tensors, file) for v in value)
        if key == FLOAT:
            if not isinstance(value, str) or value not in _SPECIAL_FLOATS:
                raise CorruptFileError(file, f"{FLOAT} must be one of {sorted(_SPECIAL_FLOATS)}, got {value!r}")
            return _SPECIAL_FLOATS[value]
        if key == DICT:
            if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 2 for p in value):
                raise CorruptFileError(file, f"{DICT} must hold a list of [key, value] pairs")
            out = {}
            for k, v in value:
                k = _decode(k, tensors, file)
                try:
                    hash(k)
                except TypeError:
                    raise CorruptFileError(file, f"dict key {k!r} is not hashable") from None
                out[k] = _decode(v, tensors, file)
            return out
    return {k: _decode(v, tensors, file) for k, v in node.items()}


def flatten_optimizer_state(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], Any]:
    """Split a torch optimizer's ``state_dict()`` into tensors (for safetensors) and a JSON tree.

    Args:
        state: ``optimizer.state_dict()`` (or any nested state of tensors and scalars).

    Returns:
        ``(tensors, tree)``; :func:`unflatten_optimizer_state` rebuilds an equal state dict.

    >>> opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))])
    >>> tensors, tree = flatten_optimizer_state(opt.state_dict())
    >>> opt.load_state_dict(unflatten_optimizer_state(tensors, tree))
    """
    tensors: dict[str, torch.Tensor] = {}
    tree = encode_tree(dict(state), tensors, prefix="optimizer/")
    return tensors, tree


def unflatten_optimizer_state(tensors: Mapping[str, torch.Tensor], tree: Any, *,
                              file: str | os.PathLike[str] = "trainer.json") -> dict[str, Any]:
    """Rebuild the state dict :func:`flatten_optimizer_state` split; ready for ``load_state_dict``.

    Raises:
        CorruptFileError: the tree is malformed or refers to missing tensors.
    """
    state = decode_tree(tree, tensors, file=file)
    if not isinstance(state, dict):
        raise CorruptFileError(file, f"optimizer state must be an object, got {type(state).__name__}")
    return state
