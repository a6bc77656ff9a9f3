"""`lstmtext predict` and `lstmtext serve` end to end on a small real checkpoint."""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
import torch

from lstmtext.cli import main
from lstmtext.layers import LSTM, Dense, Embedding
from lstmtext.models import Sequential
from lstmtext.predictor import Predictor
from lstmtext.text import Tokenizer, Vocab

TEXTS = ["A good film, a GOOD plot.", "bad acting", "", "🎬 the end"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    m = Sequential([Embedding(30, 6), LSTM(4), Dense(1, activation="sigmoid")])
    m(torch.zeros(1, 8, dtype=torch.long))
    tok = Tokenizer(Vocab.build([["a", "good", "film", "plot"], ["bad", "acting", "the", "end"]]), num_words=30)
    path = tmp_path_factory.mktemp("cli") / "ckpt"
    Predictor(m, tok, maxlen=8, labels=["neg", "pos"]).save(path)
    return path


def _run(argv, capsys, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_predict_arguments_and_files_equal_predictor(ckpt, tmp_path, capsys, monkeypatch):
    want = [p.to_dict() for p in Predictor.from_checkpoint(ckpt).predict(TEXTS)]
    rc, out, err = _run(["predict", str(ckpt), *TEXTS, "--format", "jsonl"], capsys)
    assert rc == 0 and [json.loads(x) for x in out.splitlines()] == [{"index": i, **w} for i, w in enumerate(want)]
    assert "4 texts in" in err

    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    (tmp_path / "in.jsonl").write_text("\n".join(json.dumps({"review": t}) for t in TEXTS) + "\n", encoding="utf-8")
    for argv in (["--input", str(tmp_path / "in.txt")], ["--input", str(tmp_path / "in.jsonl"), "--field", "review"]):
        rc, out, _ = _run(["predict", str(ckpt), *argv, "--format", "jsonl"], capsys)
        assert rc == 0 and [json.loads(x)["probabilities"] for x in out.splitlines()] == [
            w["probabilities"] for w in want]
    rc, out, _ = _run(["predict", str(ckpt), "--input", "-"], capsys, stdin="\n".join(TEXTS), monkeypatch=monkeypatch)
    lines = out.splitlines()
    assert rc == 0 and lines[0].split() == ["#", "label", "prob", "text"] and len(lines) == 5
    assert lines[1].split()[:3] == ["0", want[0]["label"], f"{want[0]['probability']:.4f}"]


@pytest.mark.parametrize(("argv", "message"), [
    (["predict", "{ckpt}", "--input", "{empty}"], "no texts in it (the file is empty)"),
    (["predict", "{missing}", "some text"], "checkpoint folder not found"),
    (["predict", "{ckpt}"], "give the texts either as arguments or with --input"),
    (["predict", "{ckpt}", "--input", "{badjson}"], "line 2: not valid JSON"),
    (["predict", "{ckpt}", "--input", "{nofile}"], "cannot open"),
    (["serve", "{missing}", "--port", "0"], "checkpoint folder not found"),
    (["serve", "{ckpt}", "--max-texts", "0"], "ServiceConfig.max_texts: expected a positive integer, got 0"),
])
def test_bad_inputs_give_a_message_and_exit_1(ckpt, tmp_path, capsys, argv, message):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "bad.jsonl").write_text('{"text": "ok"}\n{"text": \n')
    paths = {"ckpt": ckpt, "empty": tmp_path / "empty.txt", "missing": tmp_path / "missing",
             "badjson": tmp_path / "bad.jsonl", "nofile": tmp_path / "nofile.txt"}
    rc, _, err = _run([a.format(**paths) for a in argv], capsys)
    assert rc == 1 and message in err and err.startswith(f"lstmtext {argv[0]}: error: ")


def test_help_and_bad_flag(capsys):
    for cmd in ("predict", "serve"):
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0 and f"usage: lstmtext {cmd}" in capsys.readouterr().out
        with pytest.raises(SystemExit) as e:
            main([cmd, "x", "--no-such-flag"])
        assert e.value.code == 2 and "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


def test_serve_subprocess_answers_like_predictor(ckpt, server_process):
    sp = server_process(["-m", "lstmtext", "serve", str(ckpt), "--port", "{port}", "--shutdown-delay-s", "0"])
    sp.wait_ready(timeout=120)
    want = Predictor.from_checkpoint(ckpt)
    with httpx.Client(base_url=sp.url, timeout=10) as c:
        got = c.post("/v1/predict", json={"texts": TEXTS}).json()
        info = c.get("/v1/model").json()
    assert got == {"predictions": [p.to_dict() for p in want.predict(TEXTS)], "model_version": want.version}
    assert info["labels"] == ["neg", "pos"] and "source" not in info and str(ckpt) not in json.dumps(info)
    rc, out, err = sp.stop()
    assert rc in (0, -signal.SIGTERM), err
    assert any(json.loads(x)["path"] == "/v1/predict" for x in out.splitlines() if x.startswith("{"))


def test_console_script_entry_point(ckpt):
    r = subprocess.run([sys.executable, "-m", "lstmtext", "predict", str(ckpt), "good film", "--format", "jsonl"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout)["label"] in ("neg", "pos")


def test_serve_with_two_workers_applies_the_connection_limits(ckpt, server_process):
    # Each worker process builds its guarded protocol from the environment (uvicorn pickles its config to them)
    sp = server_process(["-m", "lstmtext", "serve", str(ckpt), "--port", "{port}", "--workers", "2",
                         "--max-header-bytes", "4096", "--max-url-bytes", "1024", "--idle-timeout-s", "0.5"])
    sp.wait_ready(timeout=120)
    for _ in range(4):  # connections land on either worker
        with httpx.Client(base_url=sp.url, timeout=10) as c:
            assert c.post("/v1/predict", json={"texts": TEXTS}).status_code == 200
        with socket.create_connection(("127.0.0.1", sp.port)) as s:
            s.sendall(b"GET /livez HTTP/1.1\r\nx-big: " + b"a" * 5000 + b"\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 431 ")
        with socket.create_connection(("127.0.0.1", sp.port)) as s:
            s.settimeout(5)
            t0 = time.perf_counter()
            assert s.recv(100) == b"" and time.perf_counter() - t0 < 2.5  # idle connection closed
    rc, _, err = sp.stop()
    assert rc in (0, -signal.SIGTERM) and "died" not in err, err[-2000:]
