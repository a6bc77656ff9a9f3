"""Zip and gzip bombs and lying array headers: refused from the declared sizes, before anything is inflated
or allocated, with a typed error naming the file and member, fast and in memory bounded by the file.

The attacks vary the compression ratio (a real 1,000x deflate stream, a member just past the size cap at
ratio 1), the declared shape (10^13 items, 10^6 x 10^6, an object array claiming 10^9 lists) and the
archive kind (``.keras``, ``imdb.npz``, the cache ``.npz``, ``.tar.gz`` with a huge member, a huge pax
header, a huge review).
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmtext.checkpoint import CorruptFileError
from lstmtext.cli import main
from lstmtext.data import archive, keras_npz
from lstmtext.data.archive import read_archive
from lstmtext.data.corpus import RankedCorpus
from lstmtext.data.keras_npz import read_keras_imdb_npz
from lstmtext.errors import DataError
from lstmtext.utils.archives import MemberLimit

MiB = 1 << 20


def refused(fn, error, *words, max_seconds=1.0, max_peak=16 * MiB):
    """Run ``fn``: it must raise ``error`` with every word in the message, in time and memory."""
    tracemalloc.start()
    start = time.process_time()  # CPU seconds: what the refusal costs, whatever else runs on the machine
    try:
        with pytest.raises(error) as info:
            fn()
    finally:
        elapsed = time.process_time() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    for word in words:
        assert word in str(info.value), str(info.value)
    assert elapsed < max_seconds, f"took {elapsed:.2f} s of CPU"
    assert peak < max_peak, f"peak Python allocation {peak / MiB:.0f} MiB"
    return str(info.value)


def zeros_member(zf: zipfile.ZipFile, name: str, mib: int) -> None:
    """A member of ``mib`` MiB of zeros, deflated (about 1,000x) without holding it in memory."""
    info = zipfile.ZipInfo(name)
    info.compress_type, info._compresslevel = zipfile.ZIP_DEFLATED, 9  # zipfile has no public setter
    with zf.open(info, "w", force_zip64=True) as f:
        chunk = bytes(MiB)
        for _ in range(mib):
            f.write(chunk)


def npy(shape, dtype="<i8", body: bytes = b"") -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
    return f.getvalue() + body


def object_npy(*lists) -> bytes:
    arr = np.empty(len(lists), dtype=object)
    arr[:] = [list(x) for x in lists]
    f = io.BytesIO()
    np.save(f, arr, allow_pickle=True)
    return f.getvalue()


def imdb_npz(path: Path, **members: bytes) -> Path:
    good = {"x_train": object_npy([1, 2]), "y_train": npy((1,), "<i8", bytes(8)),
            "x_test": object_npy([3]), "y_test": npy((1,), "<i8", bytes(8))}
    good.update(members)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in good.items():
            zf.writestr(name + ".npy", data)
    return path


# -- .keras ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def good_keras(tmp_path_factory) -> Path:
    from lstmtext.interop.keras import save_keras_model
    from lstmtext.layers import LSTM, Dense, Embedding

    layers = [Embedding(50, 4), LSTM(2), Dense(1, activation="sigmoid")]
    x = torch.zeros(1, 6, dtype=torch.long)
    for layer in layers:
        x = layer(x)
    return save_keras_model(layers, tmp_path_factory.mktemp("keras") / "good.keras", input_shape=(6,),
                            input_dtype="int32")


def keras_with(good: Path, dst: Path, weights_mib: int | None = None, weights: bytes | None = None) -> Path:
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED,
                                                          compresslevel=1) as zf:
        for name in src.namelist():
            if name != "model.weights.h5":
                zf.writestr(name, src.read(name))
            elif weights_mib is not None:
                zeros_member(zf, name, weights_mib)
            else:
                zf.writestr(name, weights)
    return dst


@pytest.mark.parametrize("mib", [24, 256])
def test_keras_weights_bomb_is_refused_before_inflating(good_keras, tmp_path, mib):
    from lstmtext.interop.keras import load_keras_layers

    path = keras_with(good_keras, tmp_path / "bomb.keras", weights_mib=mib)
    assert path.stat().st_size < mib * MiB / 500  # a real 1,000x bomb
    refused(lambda: load_keras_layers(path), CorruptFileError, str(path), "model.weights.h5 claims",
            f"{mib * MiB} bytes uncompressed", "ratio limit of 20")


def test_keras_weights_past_the_size_cap_at_ratio_one(good_keras, tmp_path, monkeypatch):
    from lstmtext.interop import keras as keras_interop
    from lstmtext.interop.keras import load_keras_layers

    monkeypatch.setitem(keras_interop.MEMBER_LIMITS, "model.weights.h5", MemberLimit(4 * MiB, max_ratio=20.0))
    path = keras_with(good_keras, tmp_path / "big.keras", weights=os.urandom(4 * MiB + 1))
    refused(lambda: load_keras_layers(path), CorruptFileError, "model.weights.h5 claims 4194305 bytes",
            "more than the 4194304-byte limit")
    # At the cap it is read (bounded by the file) and refused as what it is: not HDF5.
    path = keras_with(good_keras, tmp_path / "at-cap.keras", weights=os.urandom(4 * MiB))
    refused(lambda: load_keras_layers(path), CorruptFileError, "HDF5", max_peak=24 * MiB)


# -- imdb.npz and the cache .npz -----------------------------------------------------------------------------

@pytest.mark.parametrize("shape, dtype", [((10**13,), "<i8"), ((10**6, 10**6), "<f4"), ((2**62,), "|u1"),
                                          ((10**9,), "|O")])
def test_npy_header_claiming_a_huge_shape_allocates_nothing(tmp_path, shape, dtype):
    body = b"\x80\x04]\x94." if dtype == "|O" else bytes(64)
    path = imdb_npz(tmp_path / "imdb.npz", y_train=npy(shape, dtype, body)) if dtype != "|O" else \
        imdb_npz(tmp_path / "imdb.npz", x_train=npy(shape, dtype, body))
    assert path.stat().st_size < 2048
    refused(lambda: read_keras_imdb_npz(path), DataError, "imdb.npz", "declares shape", str(shape[0]),
            max_peak=2 * MiB)


def test_npy_header_and_bytes_must_agree_both_ways(tmp_path):
    path = imdb_npz(tmp_path / "short.npz", y_train=npy((3,), "<i8", bytes(16)))
    refused(lambda: read_keras_imdb_npz(path), DataError, "array y_train", "(24 bytes), but 16 bytes follow")
    path = imdb_npz(tmp_path / "long.npz", y_train=npy((1,), "<i8", bytes(800)))
    refused(lambda: read_keras_imdb_npz(path), DataError, "array y_train", "(8 bytes), but 800 bytes follow")


@pytest.mark.parametrize("mib", [8, 200])
def test_npz_member_bomb_is_refused_before_inflating(tmp_path, mib):
    path = tmp_path / "imdb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zeros_member(zf, "x_train.npy", mib)
        for name in ("y_train", "x_test", "y_test"):
            zf.writestr(name + ".npy", npy((0,), "<i8"))
    refused(lambda: read_keras_imdb_npz(path), DataError, "array x_train: member x_train.npy claims",
            "ratio limit of 100")


def test_npz_member_past_the_size_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(keras_npz, "NPY_MEMBER_LIMIT", MemberLimit(2 * MiB))
    path = imdb_npz(tmp_path / "imdb.npz", y_train=npy((MiB // 4,), "<i8", os.urandom(2 * MiB)))
    refused(lambda: read_keras_imdb_npz(path), DataError, "y_train.npy claims 2097280 bytes",
            "more than the 2097152-byte limit")


def test_cache_npz_with_a_lying_header_is_a_data_error(tmp_path):
    path = tmp_path / "corpus.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train_ranks.npy", npy((10**12,), "<i4", bytes(40)))
    refused(lambda: RankedCorpus.load(path), DataError, "cache file", "train_ranks", "declares shape")


# -- .tar.gz -----------------------------------------------------------------------------------------------

def _tar_gz(path: Path, blocks) -> Path:
    """Write a gzip of the tar blocks ``blocks`` yields (bytes), streaming."""
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0) as gz:
        for block in blocks:
            gz.write(block)
    return path


def _header(name: str, size: int, kind: bytes = tarfile.REGTYPE) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type = size, kind
    return info.tobuf(format=tarfile.GNU_FORMAT)


def _zeros(mib: int):
    chunk = bytes(MiB)
    for _ in range(mib):
        yield chunk


@pytest.mark.parametrize("declared", [10**10, 200 * MiB])
def test_tar_member_declaring_more_than_the_archive_can_inflate(tmp_path, declared):
    # A member aclImdb does not need (it would be skipped, but skipping inflates it too).
    path = _tar_gz(tmp_path / "bomb.tar.gz", [_header("aclImdb/imdb.vocab", declared), *_zeros(4)])
    refused(lambda: read_archive(path), DataError, "bomb.tar.gz", "member 'aclImdb/imdb.vocab' ends at byte",
            "a gzip bomb")


def test_tar_pax_header_bomb_stops_at_the_inflate_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(archive, "INFLATE_SLACK_BYTES", 16 * MiB)
    # A pax header tarfile would read whole, in one go: 96 MiB of zeros from about 100 KB.
    path = _tar_gz(tmp_path / "pax.tar.gz", [_header("././@PaxHeader", 96 * MiB, tarfile.XHDTYPE), *_zeros(96)])
    assert path.stat().st_size < 200_000
    refused(lambda: read_archive(path), DataError, "pax.tar.gz' inflates to more than", "a gzip bomb",
            max_peak=16 * MiB + 20 * path.stat().st_size + 8 * MiB)


def test_a_huge_review_is_refused(tmp_path):
    review = b"word " * (MiB // 5 + 1)
    path = _tar_gz(tmp_path / "big.tar.gz", [_header("aclImdb/train/pos/1_10.txt", len(review)), review,
                                               bytes(-len(review) % 512), bytes(1024)])
    refused(lambda: read_archive(path), DataError, "aclImdb/train/pos/1_10.txt", "more than the 1,048,576-byte")


def test_the_cli_names_the_bomb_and_exits_1(tmp_path, capsys):
    path = _tar_gz(tmp_path / "bomb.tar.gz", [_header("aclImdb/imdb.vocab", 10**10), *_zeros(1)])
    assert main(["stats", "--data", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lstmtext stats: error: IMDB archive") and "a gzip bomb" in err, err
