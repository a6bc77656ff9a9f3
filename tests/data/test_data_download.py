"""Downloads against a local HTTP server on 127.0.0.1 and file:// URLs (never the internet):
checksums, resume with Range, atomic rename, and the default IMDB source."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import lstmtext.data.imdb as imdb_module
from lstmtext.data.download import download, resolve_cache_dir, sha256_file
from lstmtext.datasets import imdb
from lstmtext.errors import ChecksumError, DataError
from lstmtext.kernels.build import cache_root as kernel_cache_root

PAYLOAD = bytes(range(256)) * 4000  # 1,024,000 bytes: several 1 MiB-chunk boundaries are not needed
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Server(ThreadingHTTPServer):
    payload = PAYLOAD
    honor_range = True
    cut_after: int | None = None  # send only this many body bytes, then close
    status = 200

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.range_headers: list[str | None] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/aclImdb_v1.tar.gz"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        srv = self.server
        srv.range_headers.append(self.headers.get("Range"))
        if srv.status != 200:
            self.send_error(srv.status)
            return
        data, start = srv.payload, 0
        requested = self.headers.get("Range")
        if requested and srv.honor_range:
            start = int(requested.removeprefix("bytes=").rstrip("-"))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if srv.cut_after is None else body[: srv.cut_after])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def test_download_verifies_and_renames(server, tmp_path):
    dest = tmp_path / "sub" / "archive.tar.gz"
    assert download(server.url, dest, sha256=PAYLOAD_SHA, progress=False) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_name(dest.name + ".part").exists()
    # Already there and verified: no second request.
    download(server.url, dest, sha256=PAYLOAD_SHA, progress=False)
    assert server.range_headers == [None]


def test_checksum_mismatch_names_url_file_and_both_hashes(server, tmp_path):
    dest = tmp_path / "archive.tar.gz"
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        download(server.url, dest, sha256=wrong, progress=False)
    message = str(info.value)
    assert server.url in message and str(dest) in message and wrong in message and PAYLOAD_SHA in message
    assert not dest.exists() and not dest.with_name(dest.name + ".part").exists()


def test_interrupted_download_leaves_no_final_file_and_resumes_with_range(server, tmp_path):
    dest = tmp_path / "archive.tar.gz"
    part = dest.with_name(dest.name + ".part")
    server.cut_after = 300_000
    with pytest.raises(DataError, match=r"stopped at 300000 of 1024000 bytes.*run again to resume"):
        download(server.url, dest, sha256=PAYLOAD_SHA, progress=False)
    assert not dest.exists() and part.stat().st_size == 300_000
    server.cut_after = None
    download(server.url, dest, sha256=PAYLOAD_SHA, progress=False)
    assert server.range_headers == [None, "bytes=300000-"]
    assert dest.read_bytes() == PAYLOAD and not part.exists()


def test_server_that_ignores_range_restarts_cleanly(server, tmp_path):
    dest = tmp_path / "archive.tar.gz"
    dest.with_name(dest.name + ".part").write_bytes(b"garbage that must not stay in front")
    server.honor_range = False
    download(server.url, dest, sha256=PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD


def test_oversized_partial_file_starts_over(server, tmp_path):
    dest = tmp_path / "archive.tar.gz"
    dest.with_name(dest.name + ".part").write_bytes(PAYLOAD + b"extra")
    download(server.url, dest, sha256=PAYLOAD_SHA, progress=False)
    assert server.range_headers == [f"bytes={len(PAYLOAD) + 5}-", None]  # 416, then a plain GET
    assert dest.read_bytes() == PAYLOAD


def test_stale_file_at_destination_is_replaced(server, tmp_path):
    dest = tmp_path / "archive.tar.gz"
    dest.write_bytes(b"an older, different file")
    download(server.url, dest, sha256=PAYLOAD_SHA, progress=False)
    assert sha256_file(dest) == PAYLOAD_SHA


def test_http_error_is_a_clear_error(server, tmp_path):
    server.status = 404
    with pytest.raises(DataError, match=r"cannot download 'http://127\.0\.0\.1:\d+/aclImdb_v1\.tar\.gz': HTTP 404"):
        download(server.url, tmp_path / "x", progress=False)


def test_unreachable_server_is_a_clear_error(tmp_path):
    srv = _Server()  # bound but never serving: take its port, then close it
    url = srv.url
    srv.server_close()
    with pytest.raises(DataError, match=r"cannot download 'http://127\.0\.0\.1:\d+/"):
        download(url, tmp_path / "x", progress=False, timeout=5)


def test_file_url_download_resume_and_checksum(tmp_path):
    source = tmp_path / "source.bin"
    source.write_bytes(PAYLOAD)
    dest = tmp_path / "out" / "copy.bin"
    dest.parent.mkdir()
    dest.with_name("copy.bin.part").write_bytes(PAYLOAD[:1000])  # resumed from byte 1000
    download(source.as_uri(), dest, sha256=PAYLOAD_SHA, progress=False)
    assert dest.read_bytes() == PAYLOAD
    with pytest.raises(ChecksumError, match=r"checksum mismatch for 'file://.*source\.bin'"):
        download(source.as_uri(), tmp_path / "other.bin", sha256="f" * 64, progress=False)
    with pytest.raises(DataError, match=r"cannot download 'file://.*missing\.bin'"):
        download((tmp_path / "missing.bin").as_uri(), tmp_path / "y", progress=False)
    with pytest.raises(DataError, match="expected an http://, https:// or file:// URL"):
        download("ftp://example.invalid/x", tmp_path / "z", progress=False)


def test_default_source_downloads_the_archive_into_the_cache(tiny_imdb_archive, monkeypatch, tmp_path):
    monkeypatch.setattr(imdb_module, "IMDB_URL", tiny_imdb_archive.as_uri())
    monkeypatch.setattr(imdb_module, "IMDB_SHA256", sha256_file(tiny_imdb_archive))
    cache = tmp_path / "cache"
    (x_train, _), _ = imdb.load_data(cache_dir=cache, progress=False)
    assert (cache / "aclImdb_v1.tar.gz").read_bytes() == tiny_imdb_archive.read_bytes()
    want, _ = imdb.load_data(tiny_imdb_archive, cache_dir=cache)
    assert [list(s) for s in x_train] == [list(s) for s in want[0]]


def test_cache_folder_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("LSTMTEXT_CACHE_DIR", str(tmp_path / "env"))
    assert resolve_cache_dir() == tmp_path / "env"
    assert resolve_cache_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.delenv("LSTMTEXT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_cache_dir() == tmp_path / "xdg" / "lstmtext" == kernel_cache_root()  # one folder for everything
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert resolve_cache_dir() == Path("~/.cache/lstmtext").expanduser()
