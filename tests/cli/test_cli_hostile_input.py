"""The command line's error contract under hostile input: every failure is one ``lstmtext CMD: error: ...`` line
naming the file, the line and the value, exit status 1, fast, never a traceback; and ``lstmtext predict``
shows any text safely (no raw escape sequences, lone surrogates, lines split only at newlines).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lstmtext.cli import main
from lstmtext.data.loader import MIN_CLASS_BOUND, encode_labels

from .conftest import FAST

SRC = Path(__file__).resolve().parents[2] / "src"


def _csv(path: Path, labels: list[str]) -> Path:
    rows = [f"text number {i} with words {'abc'[i % 3]},{label}" for i, label in enumerate(labels)]
    path.write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _fails(capsys, argv: list[str], *words: str, max_seconds: float = 2.0) -> str:
    start = time.process_time()  # CPU seconds, whatever else runs on the machine
    assert main(argv) == 1
    elapsed = time.process_time() - start
    err = capsys.readouterr().err
    assert err.startswith(f"lstmtext {argv[0]}: error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, err
    assert elapsed < max_seconds, f"took {elapsed:.2f} s of CPU"
    return err


LABELS = [("99999999999", "100,000,000,000"), ("10000000", "10,000,001"),
          (str(MIN_CLASS_BOUND), f"{MIN_CLASS_BOUND + 1:,}"), ("9" * 5000, "more than 10^18")]


@pytest.mark.parametrize("command, label, classes", [("stats", *x) for x in LABELS] + [("train", *LABELS[0])])
def test_a_huge_numeric_label_is_an_error_naming_its_line(tmp_path, capsys, command, label, classes):
    path = _csv(tmp_path / "d.csv", ["0", "1"] * 5 + [label] + ["1", "0"])
    argv = [command, "--data", str(path)] + (["--out", str(tmp_path / "run"), *FAST] if command == "train" else [])
    err = _fails(capsys, argv, "d.csv', line 12: label", f"would make {classes} classes",
                 "13 examples allow at most 1,000")
    assert len(err) < 400  # the 5,000-digit label is shown cut


def test_the_class_bound_grows_with_the_examples():
    labels = [str(i % 1500) for i in range(1500)]
    _, _, names = encode_labels(labels[:1200], labels[1200:])
    assert len(names) == 1500  # 1,500 examples may use 1,500 classes
    with pytest.raises(ValueError, match="example 1499: label '1500' would make 1,501 classes"):
        encode_labels(labels[:1200], labels[1200:-1] + ["1500"])


def test_non_ascii_digits_are_names_not_indices(tmp_path, capsys):
    path = _csv(tmp_path / "d.csv", ["²", "1", "٣", "1", "²", "٣"] * 3)
    assert main(["stats", "--data", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["class_names"] == ["1", "²", "٣"]


def _jsonl(path: Path, bad: str) -> Path:
    good = [json.dumps({"text": f"text {i} {'abc'[i % 3]}", "label": i % 2}) for i in range(12)]
    path.write_text("\n".join(good[:7] + [bad] + good[7:]) + "\n", encoding="utf-8")
    return path


HOSTILE_LINES = {
    "nested value": ('{"text": "a", "label": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
    "5,000-digit label": ('{"text": "a", "label": ' + "7" * 5000 + "}", "Exceeds the limit (4300 digits)"),
    "list label": ('{"text": "a", "label": [[1], {"x": 2}]}', "'label' must be a string, number or boolean"),
    "truncated": ('{"text": "a", "lab', "JSON ("),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_LINES))
@pytest.mark.parametrize("command", ["train", "stats", "predict"])
def test_hostile_json_lines_are_errors_naming_file_and_line(tmp_path, capsys, trained_tiny, command, case):
    line, words = HOSTILE_LINES[case]
    path = _jsonl(tmp_path / "d.jsonl", line)
    if command == "predict":
        if case == "list label":
            line = '{"text": ' + json.dumps([[1], {"x": 2}]) + "}"
            path = _jsonl(tmp_path / "d.jsonl", line)
            words = "expected a string or an object with a string 'text' field"
        argv = ["predict", str(trained_tiny), "--input", str(path)]
        where = "d.jsonl' line 8"
    else:
        argv = [command, "--data", str(path)] + (["--out", str(tmp_path / "run"), *FAST] if command == "train" else [])
        where = "d.jsonl', line 8"
    err = _fails(capsys, argv, where, words)
    assert len(err) < 500


def _no_traceback_run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "lstmtext", *args], env=env, timeout=300, **kwargs)


def test_a_full_disk_is_an_error_naming_the_file_and_the_checkpoint_stays(tmp_path, tiny_imdb_archive):
    out = tmp_path / "run"
    argv = ["train", "--preset", "keras-imdb", "--data", str(tiny_imdb_archive), "--out", str(out), "--seed", "3",
            *FAST]
    assert main(argv) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def small_files_only():  # the kernel refuses writes past 16 KiB (EFBIG), as a full disk refuses (ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, 16 << 10))

    r = _no_traceback_run([*argv, "--overwrite", "--seed", "4"], preexec_fn=small_files_only)
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert "Traceback" not in err and err.startswith("lstmtext train: error: ") and err.count("\n") == 1, err
    assert "File too large" in err and str(tmp_path) in err, err  # names the file it was writing
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert main(["predict", str(out), "a fine film"]) == 0


def test_predict_table_shows_hostile_texts_safely(tmp_path, trained_tiny, capsys):
    texts = ["red \x1b[31mALERT\x1b[0m \x1b]0;owned\x07 done", "lone \ud800 surrogate", "right\u202eto-left",
             "line with a \r carriage return", "tab\tand\x00nul"]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="ascii")
    assert main(["predict", str(trained_tiny), "--input", str(path)]) == 0
    out = capsys.readouterr().out
    out.encode("utf-8")  # strict: no lone surrogate reaches the terminal (it used to raise UnicodeEncodeError)
    assert "\x1b" not in out and "\x07" not in out and "\x00" not in out and "\u202e" not in out
    assert "\\x1b[31mALERT\\x1b[0m" in out and "\\ud800" in out and "\\u202e" in out
    rows = out.splitlines()
    assert len(rows) == 1 + len(texts) and out.endswith("\n")
    assert rows[4].endswith("line with a carriage return")  # whitespace, \r included, shown as one space


def test_a_carriage_return_does_not_split_a_txt_line(tmp_path, trained_tiny, capsys):
    path = tmp_path / "in.txt"
    path.write_bytes(b"first text\rstill the first\nsecond text\r\nthird\n")
    assert main(["predict", str(trained_tiny), "--input", str(path), "--format", "jsonl"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_the_timing_line_never_joins_the_table(trained_tiny):
    """stdout and stderr on one pipe (a terminal, ``2>&1``): the table's rows, then the timing line."""
    r = _no_traceback_run(["predict", str(trained_tiny), "A wonderful film.", "A waste of time."],
                          stderr=subprocess.STDOUT)
    lines = r.stdout.decode().splitlines()
    assert r.returncode == 0 and len(lines) == 4, lines
    assert lines[2].endswith("A waste of time.") and lines[3].startswith("2 texts in ")


def test_an_unknown_field_in_the_inference_record_is_refused(tmp_path, trained_tiny, capsys):
    from lstmtext.checkpoint import manifest as mf

    folder = tmp_path / "ck"
    shutil.copytree(trained_tiny, folder)
    record = json.loads((folder / "vocab.json").read_text())
    record["extra"] = [0] * 1000
    (folder / "vocab.json").write_text(json.dumps(record))
    mf.write_manifest(folder, {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()
                               and p.name != mf.MANIFEST})  # forged, as an attacker would
    _fails(capsys, ["predict", str(folder), "a text"], "vocab.json: unknown field(s) ['extra']")
