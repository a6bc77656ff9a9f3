"""A tiny trained run shared by the command-line tests."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from lstmtext.cli import main

# Small enough for about a second per run; the tiny archive's vocabulary has under 100 words.
FAST = ["--num-words", "200", "--maxlen", "40", "--batch-size", "16", "--epochs", "1", "--verbose", "0"]


@pytest.fixture(scope="session")
def tiny_run(tiny_imdb_archive, tmp_path_factory) -> tuple[Path, str]:
    """``lstmtext train`` on the tiny archive, once per session: (checkpoint folder, what it printed)."""
    out = tmp_path_factory.mktemp("run") / "imdb"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):  # capsys is per test; this fixture is per session
        code = main(["train", "--preset", "keras-imdb", "--data", str(tiny_imdb_archive), "--out", str(out),
                     "--seed", "7", *FAST])
    assert code == 0
    return out, buf.getvalue()


@pytest.fixture()
def trained_tiny(tiny_run) -> Path:
    """The checkpoint folder of `tiny_run`."""
    return tiny_run[0]
