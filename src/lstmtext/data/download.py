"""Downloads into the lstmtext cache: sha256-checked, resumable (HTTP ``Range``), atomic, with a progress bar.

A download is written to ``<dest>.part``; an interrupted one is resumed from where it stopped on the next
call (``Range: bytes=N-``; a server that ignores ranges makes it start over). Only a complete file whose
sha256 matches is renamed to ``dest``, so ``dest`` is never a half-written or unverified file.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from lstmtext.errors import ChecksumError, DataError
from lstmtext.utils.cache import cache_root
from lstmtext.utils.io import fsync_dir

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
"""The public Large Movie Review Dataset v1.0 archive (Maas et al., ACL 2011)."""

IMDB_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
"""sha256 of the archive served at `IMDB_URL`."""

_CHUNK = 1 << 20

resolve_cache_dir = cache_root
"""The cache folder (`lstmtext.utils.cache.cache_root`), where downloads and parsed datasets go."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(_CHUNK), b""):
                h.update(block)
    except FileNotFoundError as e:
        raise DataError(f"file {os.fspath(path)!r} does not exist") from e
    return h.hexdigest()


@contextlib.contextmanager
def _open_at(url: str, offset: int, timeout: float) -> Iterator[tuple[BinaryIO, int, int | None]]:
    """Open ``url`` for reading from byte ``offset``; yields (stream, actual start, total size or None)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        local = urllib.request.url2pathname(parts.path)
        try:
            f = open(local, "rb")  # closed by the with below
        except OSError as e:
            raise DataError(f"cannot download {url!r}: {e.strerror or e}") from e
        with f:
            total = os.fstat(f.fileno()).st_size
            start = offset if offset <= total else 0
            f.seek(start)
            yield f, start, total
        return
    if parts.scheme not in ("http", "https"):
        raise DataError(f"cannot download {url!r}: expected an http://, https:// or file:// URL")
    headers = {"User-Agent": "lstmtext", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # our partial file is at least as long as the resource: start over
            with _open_at(url, 0, timeout) as opened:
                yield opened
            return
        raise DataError(f"cannot download {url!r}: HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DataError(f"cannot download {url!r}: {reason}") from e
    with resp:
        length = resp.headers.get("Content-Length")
        if resp.status == 206:
            start = offset
            content_range = resp.headers.get("Content-Range", "")  # "bytes 100-999/1000"
            if not content_range.startswith(f"bytes {offset}-"):
                raise DataError(f"cannot resume {url!r}: server answered Content-Range {content_range!r}")
            total = int(content_range.rsplit("/", 1)[1]) if content_range.rsplit("/", 1)[1].isdigit() else None
        else:  # 200: whole file (the server ignored or was not sent a Range)
            start = 0
            total = int(length) if length and length.isdigit() else None
        yield resp, start, total


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is already there.

    Args:
        url: an ``http://``, ``https://`` or ``file://`` URL.
        dest: the final file path; its folder is created if needed.
        sha256: expected hex sha256 of the file; None skips the check (not recommended).
        progress: show a tqdm progress bar on stderr.
        timeout: seconds to wait for the server on connect and on each read.

    Returns:
        ``dest`` as a `Path`.

    Raises:
        ChecksumError: the downloaded file's sha256 is not ``sha256`` (the bad file is deleted).
        DataError: the URL cannot be read, or the transfer ended early (run again to resume).

    >>> download(IMDB_URL, resolve_cache_dir() / "aclImdb_v1.tar.gz", sha256=IMDB_SHA256)  # doctest: +SKIP
    """
    dest = Path(dest)
    expected = sha256.lower() if sha256 else None
    if dest.exists() and (expected is None or sha256_file(dest) == expected):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    with _open_at(url, offset, timeout) as (stream, start, total):
        with (
            open(part, "ab" if start else "wb") as out,
            tqdm(
                total=total,
                initial=start,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=f"Downloading {dest.name}",
                disable=not progress,
            ) as bar,
        ):
            out.truncate(start)
            try:
                for block in iter(lambda: stream.read(_CHUNK), b""):
                    out.write(block)
                    bar.update(len(block))
            except http.client.IncompleteRead as e:  # the connection closed early: keep what came
                out.write(e.partial)
            except (OSError, http.client.HTTPException) as e:
                out.flush()
                raise DataError(
                    f"download of {url!r} was interrupted ({type(e).__name__}: {e}); the partial file "
                    f"{str(part)!r} is kept, run again to resume"
                ) from e
            finally:
                out.flush()
                os.fsync(out.fileno())
    size = part.stat().st_size
    if total is not None and size != total:
        raise DataError(
            f"download of {url!r} stopped at {size} of {total} bytes; the partial file {str(part)!r} is kept, "
            "run again to resume"
        )
    if expected is not None:
        got = sha256_file(part)
        if got != expected:
            part.unlink()
            raise ChecksumError(
                f"checksum mismatch for {url!r} (saved as {str(dest)!r}): expected sha256 {expected}, got {got}; "
                "the file was deleted"
            )
    os.replace(part, dest)
    fsync_dir(dest.parent)
    return dest
