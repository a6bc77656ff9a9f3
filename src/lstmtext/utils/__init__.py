"""Small shared helpers: seeding, atomic file writes, version reporting, CPU runtime settings, text datasets
from folders.

Importing this package does not import torch (so :func:`tune_cpu_runtime` can run before it);
:func:`set_random_seed` and :func:`clear_session` load it when first used.
"""

from typing import Any

from lstmtext.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text, fsync_dir
from lstmtext.utils.runtime import tune_cpu_runtime
from lstmtext.utils.text_dataset import text_dataset_from_directory
from lstmtext.utils.versions import library_versions

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "clear_session",
    "fsync_dir",
    "PyDataset",
    "library_versions",
    "pad_sequences",
    "set_random_seed",
    "text_dataset_from_directory",
    "tune_cpu_runtime",
]


def __getattr__(name: str) -> Any:
    # torch-using helpers, imported on first use so that `from lstmtext.utils import tune_cpu_runtime` stays
    # ahead of torch.
    if name == "set_random_seed":
        from lstmtext.utils.seed import set_random_seed

        return set_random_seed
    if name == "pad_sequences":  # keras.utils.pad_sequences
        from lstmtext.data.sequence import pad_sequences

        return pad_sequences
    if name == "PyDataset":
        from lstmtext.training.data import PyDataset

        return PyDataset
    if name == "clear_session":
        from lstmtext.utils.session import clear_session

        return clear_session
    raise AttributeError(f"module 'lstmtext.utils' has no attribute {name!r}")
