"""Two runs writing the same ``--out``: the second is refused at once with a clear message while the first
holds the folder; no result is lost, nothing crashes, no ``.old`` / ``.staging`` folder is left, and the
lock goes away with its process however it ends (SIGKILL included).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from lstmtext.cli import main
from lstmtext.utils.lock import FolderLock, FolderLockedError, lock_path

from .conftest import FAST

SRC = Path(__file__).resolve().parents[2] / "src"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}

HOLDER = """
import sys, time
from lstmtext.utils.lock import FolderLock
FolderLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


def _train_argv(archive: Path, out: Path, seed: int) -> list[str]:
    return ["train", "--preset", "keras-imdb", "--data", str(archive), "--out", str(out), "--seed", str(seed),
            "--overwrite", *FAST]


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_a_second_writer_is_refused_while_the_first_holds_the_folder(tmp_path, tiny_imdb_archive, trained_tiny,
                                                                      capsys):
    out = tmp_path / "run"
    shutil.copytree(trained_tiny, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, env=ENV, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.process_time()  # CPU seconds, whatever else runs on the machine
        assert main(_train_argv(tiny_imdb_archive, out, 2)) == 1
        elapsed = time.process_time() - start
        err = capsys.readouterr().err
        assert err.startswith(f"lstmtext train: error: --out '{out}' is being written by another run (process "
                              f"{holder.pid}, started "), err
        assert "wait for it to finish or choose another folder" in err and elapsed < 1.0, (err, elapsed)
        assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
        # The holder dies the hardest way: the OS releases its lock, the next run goes ahead.
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
        holder.stdout.close()
    assert main(_train_argv(tiny_imdb_archive, out, 3)) == 0
    assert json.loads((out / "run.json").read_text())["seed"] == 3
    assert _leftovers(tmp_path) == []  # the lock file goes with its last holder; no .old or .staging


def test_the_lock_is_exclusive_within_a_process_and_reusable(tmp_path):
    folder = tmp_path / "x"
    with FolderLock(folder) as first:
        assert lock_path(folder).is_file() and "process" in lock_path(folder).read_text()
        try:
            FolderLock(folder).acquire()  # another open file description: flock refuses it too
        except FolderLockedError as e:
            assert f"process {os.getpid()}" in str(e)
        else:
            raise AssertionError("a second lock on the same folder was granted")
        assert first.path == lock_path(folder)
    assert not lock_path(folder).exists()
    with FolderLock(folder):
        pass


def test_two_runs_started_together_never_lose_a_result(tmp_path, tiny_imdb_archive):
    out = tmp_path / "race"
    procs = [subprocess.Popen([sys.executable, "-m", "lstmtext", *_train_argv(tiny_imdb_archive, out, seed)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV, text=True)
             for seed in (11, 12)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    winners = [seed for seed, (code, _, _) in zip((11, 12), results) if code == 0]
    for code, stdout, stderr in results:
        assert "Traceback" not in stderr, stderr
        assert code in (0, 1)
        if code == 1:
            assert "is being written by another run" in stderr and "saved" not in stdout, stderr
        else:
            assert f"saved {out}" in stdout
    assert winners, results
    # The folder holds a complete checkpoint of a run that said "saved" (both did if they ran one after
    # the other, each with --overwrite).
    assert json.loads((out / "run.json").read_text())["seed"] in winners
    assert main(["predict", str(out), "a fine film"]) == 0
    assert _leftovers(tmp_path) == []
