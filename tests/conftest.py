"""Shared fixtures: an isolated cache folder per test, tiny generated IMDB data, the shared archive."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import make_tiny_imdb_archive, make_tiny_imdb_folder, shared_imdb_archive_path

from lstmtext.kernels.build import kernel_dir
from lstmtext.utils import clear_session

# Data caches are per test (below), but the compiled LSTM kernel is built once and shared by every test
# and every subprocess a test starts (a build takes tens of seconds).
os.environ.setdefault("LSTMTEXT_KERNEL_DIR", str(kernel_dir()))


@pytest.fixture(autouse=True)
def _isolated_lstmtext_env(tmp_path_factory, monkeypatch):
    """Every test gets its own empty cache folder and never falls back to downloading the real archive."""
    monkeypatch.setenv("LSTMTEXT_CACHE_DIR", str(tmp_path_factory.mktemp("lstmtext-cache")))
    monkeypatch.delenv("LSTMTEXT_IMDB_ARCHIVE", raising=False)
    clear_session()  # automatic layer names (lstm, lstm_1 ...) do not depend on which tests ran before


@pytest.fixture(scope="session")
def tiny_imdb_archive(tmp_path_factory) -> Path:
    """A tiny aclImdb_v1.tar.gz (20 reviews per split and class), built once per session."""
    return make_tiny_imdb_archive(tmp_path_factory.mktemp("tiny-imdb") / "aclImdb_v1.tar.gz", n_per_class=20, seed=0)


@pytest.fixture(scope="session")
def tiny_imdb_folder(tmp_path_factory) -> Path:
    """The same tiny dataset as `tiny_imdb_archive`, extracted (the returned path is the aclImdb/ folder)."""
    return make_tiny_imdb_folder(tmp_path_factory.mktemp("tiny-imdb-folder"), n_per_class=20, seed=0)


_SHARED = shared_imdb_archive_path()  # read before the autouse fixture clears the variable


@pytest.fixture(scope="session")
def shared_imdb_archive() -> Path:
    """The real 56 MB aclImdb_v1.tar.gz; the test is skipped when it is not there."""
    if _SHARED is None:
        pytest.skip("the IMDB archive is not available: set LSTMTEXT_IMDB_ARCHIVE or put it at ../shared/datasets/")
    return _SHARED
