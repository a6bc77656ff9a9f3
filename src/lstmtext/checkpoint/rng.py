"""Capture and restore every random generator a training run draws from, exactly, as JSON.

Bit-identical resume needs the generators to continue where they stopped: Python's ``random``,
NumPy's global generator, torch's CPU generator, every CUDA device's generator when CUDA is present,
and any ``torch.Generator`` the trainer owns (e.g. the one that shuffles batches). The captured state
is plain JSON (torch's byte states as base64), so it lives in ``trainer.json``; restoring validates
every field first and raises :class:`CorruptFileError` rather than corrupting a generator.
"""

from __future__ import annotations

import base64
import binascii
import os
import random
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from lstmtext.checkpoint.errors import CheckpointWarning, CorruptFileError

_MT_WORDS = 624  # Mersenne Twister state words (Python's and NumPy's MT19937)


def _b64(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode("ascii")


def capture_rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Snapshot every global random generator, plus ``generators``, as a JSON-able dict.

    Args:
        generators: named ``torch.Generator`` objects owned by the caller (e.g. ``{"shuffle": g}``).

    Returns:
        A dict for :func:`restore_rng_state`, with keys ``python``, ``numpy``, ``torch_cpu``,
        ``torch_cuda`` (a list, empty without CUDA) and ``generators``.

    >>> state = capture_rng_state()
    >>> a = torch.rand(1); restore_rng_state(state); bool(torch.rand(1) == a)
    True
    """
    version, internal, gauss_next = random.getstate()
    np_state = np.random.get_state(legacy=True)
    cuda = [_b64(s) for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []
    return {
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "numpy": {
            "bit_generator": np_state[0],
            "key": [int(x) for x in np_state[1]],
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch_cpu": _b64(torch.get_rng_state()),
        "torch_cuda": cuda,
        "generators": {name: {"device": str(g.device), "state": _b64(g.get_state())}
                       for name, g in (generators or {}).items()},
    }


class _Checker:
    def __init__(self, file: str | os.PathLike[str]) -> None:
        self.file = file

    def fail(self, field: str, problem: str) -> CorruptFileError:
        return CorruptFileError(self.file, f"RNG state {field}: {problem}")

    def get(self, obj: Any, key: str, kind: type | tuple[type, ...], field: str) -> Any:
        if not isinstance(obj, dict) or key not in obj:
            raise self.fail(field, "missing")
        value = obj[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple)
                                                                                  else (kind,))):
            raise self.fail(field, f"expected {getattr(kind, '__name__', kind)}, got {type(value).__name__}")
        return value

    def words(self, values: Any, n: int, field: str) -> list[int]:
        if (not isinstance(values, list) or len(values) != n
                or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32 for v in values)):
            raise self.fail(field, f"expected {n} integers in [0, 2**32)")
        return values

    def byte_state(self, text: Any, like: torch.Tensor, field: str) -> torch.Tensor:
        if not isinstance(text, str):
            raise self.fail(field, f"expected a base64 string, got {type(text).__name__}")
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise self.fail(field, "not valid base64") from None
        if len(raw) != like.numel():
            raise self.fail(field, f"{len(raw)} bytes, expected {like.numel()}")
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8)


def restore_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None, *,
                      file: str | os.PathLike[str] = "trainer.json") -> None:
    """Put every generator back in the state :func:`capture_rng_state` recorded.

    Everything is validated before any generator is touched. CUDA states are restored when the
    number of devices matches; otherwise they are skipped with a :class:`CheckpointWarning` (a run
    moved between CPU and GPU cannot repeat its random numbers anyway).

    Args:
        state: the recorded dict (e.g. parsed from ``trainer.json``).
        generators: the caller's named generators; each must have a recorded state.
        file: the file name used in error messages.

    Raises:
        CorruptFileError: a field is missing, of the wrong type or size, or a named generator has no state.
    """
    c = _Checker(file)
    if not isinstance(state, Mapping):
        raise c.fail("<root>", f"expected an object, got {type(state).__name__}")
    state = dict(state)
    py = c.get(state, "python", dict, "python")
    version = c.get(py, "version", int, "python.version")
    if version != random.getstate()[0]:
        raise c.fail("python.version", f"{version} is not this Python's random state version {random.getstate()[0]}")
    internal = c.words(c.get(py, "internal", list, "python.internal"), _MT_WORDS + 1, "python.internal")
    if internal[-1] > _MT_WORDS:
        raise c.fail("python.internal", f"position {internal[-1]} is past {_MT_WORDS}")
    gauss = py.get("gauss_next")
    if gauss is not None and (isinstance(gauss, bool) or not isinstance(gauss, (int, float))):
        raise c.fail("python.gauss_next", f"expected a number or null, got {type(gauss).__name__}")

    npy = c.get(state, "numpy", dict, "numpy")
    if npy.get("bit_generator") != "MT19937":
        raise c.fail("numpy.bit_generator", f"expected 'MT19937', got {npy.get('bit_generator')!r}")
    key = c.words(c.get(npy, "key", list, "numpy.key"), _MT_WORDS, "numpy.key")
    pos = c.get(npy, "pos", int, "numpy.pos")
    if not 0 <= pos <= _MT_WORDS:
        raise c.fail("numpy.pos", f"{pos} is not in [0, {_MT_WORDS}]")
    has_gauss = c.get(npy, "has_gauss", int, "numpy.has_gauss")
    if has_gauss not in (0, 1):
        raise c.fail("numpy.has_gauss", f"expected 0 or 1, got {has_gauss}")
    cached = c.get(npy, "cached_gaussian", (int, float), "numpy.cached_gaussian")

    cpu = c.byte_state(c.get(state, "torch_cpu", str, "torch_cpu"), torch.get_rng_state(), "torch_cpu")
    cuda_texts = c.get(state, "torch_cuda", list, "torch_cuda")
    saved = c.get(state, "generators", dict, "generators")
    gen_states = {}
    for name, gen in (generators or {}).items():
        entry = c.get(saved, name, dict, f"generators.{name}")
        gen_states[name] = c.byte_state(c.get(entry, "state", str, f"generators.{name}.state"), gen.get_state(),
                                        f"generators.{name}.state")
    cuda_states = None
    if cuda_texts and torch.cuda.is_available() and len(cuda_texts) == torch.cuda.device_count():
        current = torch.cuda.get_rng_state_all()
        cuda_states = [c.byte_state(t, cur, f"torch_cuda[{i}]") for i, (t, cur) in enumerate(zip(cuda_texts, current))]
    elif cuda_texts:
        warnings.warn(f"{os.fspath(file)}: {len(cuda_texts)} CUDA generator state(s) recorded, but this machine has "
                      f"{torch.cuda.device_count() if torch.cuda.is_available() else 0} CUDA device(s); "
                      "CUDA random numbers will differ from the original run", CheckpointWarning, stacklevel=2)

    # Everything validated: now mutate.
    random.setstate((version, tuple(internal), None if gauss is None else float(gauss)))
    np.random.set_state(("MT19937", np.array(key, dtype=np.uint32), pos, has_gauss, float(cached)))
    torch.set_rng_state(cpu)
    if cuda_states is not None:
        torch.cuda.set_rng_state_all(cuda_states)
    for name, gen in (generators or {}).items():
        gen.set_state(gen_states[name])
