"""Real reviews for the text tests: the IMDB training reviews named in tests/golden/text_golden.json.

Read once per test process from the shared archive (the tests that use them skip without it).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import tarfile
from pathlib import Path

GOLDEN_PATH = Path(__file__).resolve().parent / "golden" / "text_golden.json"
MEMBER = re.compile(r"^aclImdb/train/(pos|neg)/\d+_\d+\.txt$")


@functools.cache
def golden() -> dict:
    return json.loads(GOLDEN_PATH.read_text("utf-8"))


@functools.cache
def imdb_sample(archive: Path) -> tuple[str, ...] | None:
    """The golden file's reviews read from ``archive``; None if the archive holds other texts."""
    members = golden()["imdb"]["members"]
    wanted, found = set(members), {}
    with tarfile.open(archive) as tf:
        for m in tf:
            if m.name in wanted:
                found[m.name] = tf.extractfile(m).read().decode("utf-8")
                if len(found) == len(wanted):
                    break
    if len(found) != len(wanted):
        return None
    texts = tuple(found[n] for n in members)
    if hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest() != golden()["imdb"]["sha256"]:
        return None
    return texts


def generated_reviews() -> list[str]:
    """The suite's generated train reviews (tests/helpers.py) plus the golden file's edge-case strings."""
    from helpers import tiny_imdb_files

    files = tiny_imdb_files(n_per_class=20, seed=0)
    return [files[n].decode("utf-8") for n in sorted(files) if MEMBER.match(n)] + golden()["generated"]["edge_texts"]
