"""Hostile or broken inputs of the language-model commands: bounded reads, a checked config.json, locked --out.

The pretraining documents come through the bounded tar stream of the labelled-data path (a gzip bomb is
refused before it is inflated, naming the archive), every other document kind through a per-document
bound; ``--resume`` reads ``config.json`` with the counted reader and schema of the checkpoint files; and
``pretrain`` / ``train --init-from`` refuse an ``--out`` another run is writing, as ``lstmtext train`` does.
"""

from __future__ import annotations

import gzip
import json
import tarfile
import time
from pathlib import Path

import pytest

from lstmtext.cli import main
from lstmtext.errors import DataError
from lstmtext.lm import documents
from lstmtext.lm.documents import iter_documents
from lstmtext.utils.lock import FolderLock

MiB = 1 << 20


def _tar_gz(path: Path, blocks) -> Path:
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0) as gz:
        for block in blocks:
            gz.write(block)
    return path


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(format=tarfile.GNU_FORMAT)


def test_a_gzip_bomb_archive_is_refused_before_it_is_inflated(tmp_path):
    # An unsup member declaring 10 GB: refused from its header, in well under a second.
    path = _tar_gz(tmp_path / "bomb.tar.gz", [_header("aclImdb/train/unsup/1_0.txt", 10**10), bytes(MiB)])
    start = time.process_time()
    with pytest.raises(DataError) as info:
        list(iter_documents(path))
    assert time.process_time() - start < 1.0
    assert "bomb.tar.gz" in str(info.value) and "a gzip bomb" in str(info.value)


def test_a_huge_review_in_the_archive_or_folder_is_refused(tmp_path):
    review = b"word " * (MiB // 5 + 1)
    path = _tar_gz(tmp_path / "big.tar.gz", [_header("aclImdb/train/unsup/7_0.txt", len(review)), review,
                                               bytes(-len(review) % 512), bytes(1024)])
    with pytest.raises(DataError, match=r"aclImdb/train/unsup/7_0\.txt.*1,048,576-byte"):
        list(iter_documents(path))
    root = tmp_path / "aclImdb"
    for sub in ("train/pos", "train/neg", "train/unsup", "test/pos", "test/neg"):
        (root / sub).mkdir(parents=True)
    (root / "train/pos/1_9.txt").write_text("a fine film")
    (root / "train/unsup/2_0.txt").write_bytes(review)
    with pytest.raises(DataError, match=r"2_0\.txt.*1,048,576-byte limit"):
        list(iter_documents(tmp_path))


def test_documents_longer_than_the_limit_are_refused_naming_file_and_line(tmp_path, monkeypatch):
    monkeypatch.setattr(documents, "MAX_DOCUMENT_CHARS", 1000)
    lines = tmp_path / "docs.txt"
    lines.write_text("a short one\n" + "x" * 5000 + "\n")
    with pytest.raises(DataError, match=r"docs\.txt.*line 2.*1,000-character limit"):
        list(iter_documents(lines))
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text(json.dumps({"text": "ok"}) + "\n" + json.dumps({"text": "y" * 5000}) + "\n")
    with pytest.raises(DataError, match=r"docs\.jsonl.*line 2"):
        list(iter_documents(jsonl))
    table = tmp_path / "docs.csv"
    table.write_text("text\nfine\n\"" + "z" * 5000 + "\"\n")
    with pytest.raises(DataError, match=r"docs\.csv.*1,000 characters"):
        list(iter_documents(table))
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_text("b" * 5000)
    with pytest.raises(DataError, match=r"a\.txt.*1,000-byte limit"):
        list(iter_documents(folder))
    # Within the limit, every kind still reads.
    monkeypatch.setattr(documents, "MAX_DOCUMENT_CHARS", 10_000)
    assert [len(d) for d in iter_documents(lines)] == [12, 5001]
    assert len(list(iter_documents(table))) == 2


@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000, '{"class_name": "LanguageModel", "config": {}, '
                                  '"evil": 1}', "x" * 100])
def test_resume_reads_config_json_bounded_and_checked(tmp_path, capsys, body):
    out = tmp_path / "lm"
    out.mkdir()
    (out / "config.json").write_text(body)
    docs = tmp_path / "docs.txt"
    docs.write_text("the cat sat on the mat\n" * 50)
    assert main(["pretrain", "--data", str(docs), "--out", str(out), "--preset", "tiny", "--resume"]) == 1
    err = capsys.readouterr().err
    assert "config.json" in err and "Traceback" not in err, err


def test_pretrain_and_finetune_refuse_an_out_folder_being_written(tmp_path, tiny_imdb_archive, capsys):
    out = tmp_path / "busy"
    with FolderLock(out):
        assert main(["pretrain", "--data", str(tiny_imdb_archive), "--out", str(out), "--preset", "tiny"]) == 1
        err = capsys.readouterr().err
        assert "--out" in err and "being written by another run" in err, err
        assert main(["train", "--data", str(tiny_imdb_archive), "--out", str(out), "--init-from",
                     str(tmp_path / "anything")]) == 1
        err = capsys.readouterr().err
        assert "being written by another run" in err, err
    assert not out.exists()  # refused before anything was written
