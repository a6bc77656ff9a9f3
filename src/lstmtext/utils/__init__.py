"""Small shared helpers: seeding, atomic file writes, version reporting, text datasets from folders."""

from lstmtext.utils.io import atomic_write_bytes, atomic_write_json, atomic_write_text, fsync_dir
from lstmtext.utils.seed import set_random_seed
from lstmtext.utils.session import clear_session
from lstmtext.utils.text_dataset import text_dataset_from_directory
from lstmtext.utils.versions import library_versions

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "clear_session",
    "fsync_dir",
    "library_versions",
    "set_random_seed",
    "text_dataset_from_directory",
]
