"""Datasets from real sources: the IMDB archive (Keras ``imdb`` semantics), your own files, padding.

- `lstmtext.data.imdb`: ``load_data`` / ``get_word_index`` / ``get_tokenizer`` for the aclImdb reviews;
- `lstmtext.data.loader`: ``load_dataset`` for a ``<label>/*.txt`` folder, a CSV or a JSON-lines file;
- `lstmtext.data.sequence`: ``pad_sequences``;
- `lstmtext.data.download`: checked, resumable downloads into the cache folder.
"""

from lstmtext.data.download import download, resolve_cache_dir, sha256_file
from lstmtext.data.imdb import get_tokenizer, get_word_index, load_data
from lstmtext.data.sequence import pad_sequences

__all__ = [
    "download",
    "get_tokenizer",
    "get_word_index",
    "load_data",
    "pad_sequences",
    "resolve_cache_dir",
    "sha256_file",
]
