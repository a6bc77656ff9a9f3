"""Named language-model presets: architecture (:class:`LMConfig` fields) and training (:class:`PretrainConfig`).

* ``awd-lstm``: Merity et al.'s AWD-LSTM as ULMFiT uses it (400-d embeddings, 1152-unit LSTMs, 60k ids).
  Its LSTMs alone cost about 120 MFLOP per token forward and backward: on a 2-core CPU that is about
  1,000 tokens/s, so one epoch of the IMDB texts takes days there; it is the GPU preset.
* ``imdb-cpu``: sized from measured throughput so pretraining on the IMDB train + unsup texts and the
  fine-tuning fit in about three hours on a 2-core CPU (``bench/bench_lm_imdb.py``).
* ``tiny``: for smoke tests and examples (seconds).
"""

from __future__ import annotations

import copy
from typing import Any

from lstmtext.errors import ConfigError

LM_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "awd-lstm": {
        "model": {"num_words": 60000, "embedding_dim": 400, "hidden_units": (1152, 1152),
                  "cutoffs": (2000, 10000, 30000)},
        "train": {"batch_size": 64, "bptt": 70, "epochs": 10, "lr": 2e-3},
    },
    "imdb-cpu": {
        "model": {"num_words": 30000, "embedding_dim": 200, "hidden_units": (512,), "cutoffs": (2000, 10000),
                  "embed_dropout": 0.05, "input_dropout": 0.15, "hidden_dropout": 0.1, "weight_dropout": 0.1,
                  "output_dropout": 0.05},
        "train": {"batch_size": 64, "bptt": 70, "epochs": 1, "lr": 3e-3},
    },
    "tiny": {
        "model": {"num_words": 2000, "embedding_dim": 16, "hidden_units": (32,), "cutoffs": (200,)},
        "train": {"batch_size": 8, "bptt": 20, "epochs": 1, "lr": 1e-2},
    },
}


def get_lm_preset(name: str) -> dict[str, dict[str, Any]]:
    """A copy of the preset ``name`` (``{"model": {...}, "train": {...}}``)."""
    if name not in LM_PRESETS:
        raise ConfigError(f"--preset {name!r}: unknown language-model preset; expected one of {sorted(LM_PRESETS)}")
    return copy.deepcopy(LM_PRESETS[name])
