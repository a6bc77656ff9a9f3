"""Hostile files and inputs against the command line, each in a fresh process: time to the typed error, peak
resident memory, exit status and message (issue 18, classes 4-7).

Usage (from the repository root):
    PYTHONPATH=src python bench/bench_hostile_files.py [--work DIR] [--races 10] [--only PREFIX]

Every attack runs ``lstmtext ...`` (or, for ``.keras`` files, which have no command, a one-line Python
call with the CLI's error handling) in a new process; the peak RSS is the child's ``ru_maxrss`` from
``wait4``, next to the same command on a clean input (the baseline: the interpreter, torch and the model).
Class 6 starts two ``lstmtext train`` runs on one ``--out`` at the same moment, ``--races`` times, and
counts refusals, saves, lost results, crashes and leftovers. Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
MiB = 1 << 20
FAST = ["--num-words", "200", "--maxlen", "40", "--batch-size", "16", "--epochs", "1", "--verbose", "0"]
KERAS_LOAD = ("import sys\nfrom lstmtext.errors import LstmtextError\nfrom lstmtext.interop.keras import "
              "load_keras_layers\ntry:\n    load_keras_layers(sys.argv[1])\nexcept LstmtextError as e:\n"
              "    print('load_keras_layers: error:', e, file=sys.stderr)\n    sys.exit(1)\n")


# The child imports what the commands use first, then times the command alone (the figure is the time from
# the command's start to its exit, imports excluded: they cost the same for good and bad input), and
# reports its own peak RSS (VmHWM: the high-water mark of this process, not inherited from the parent).
PEAK = """
import runpy, sys, time
import torch, lstmtext.cli, lstmtext.predictor, lstmtext.checkpoint, lstmtext.data.loader, lstmtext.interop.keras
target, sys.argv = sys.argv[1], sys.argv[1:]
code, t0, c0 = 0, time.perf_counter(), time.process_time()
try:
    if target == "lstmtext":
        code = lstmtext.cli.main(sys.argv[1:])
    else:
        runpy.run_path(target, run_name="__main__")
except SystemExit as e:
    code = e.code if isinstance(e.code, int) else 1
seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0].split()[1]
print(f"measured seconds={seconds:.4f} cpu={cpu:.4f} peak_rss_kib={hwm}", file=sys.stderr)
sys.exit(code)
"""


def attack(argv: list[str], *, preexec=None, script: str | None = None) -> dict:
    """Run ``lstmtext argv`` (or the Python ``script`` with ``argv``) in a fresh process: the command's time
    (imports excluded), peak RSS (MiB), exit status, the last stderr line, and whether a traceback came out."""
    target = "lstmtext" if script is None else _script_file(script)
    proc = subprocess.run([sys.executable, "-c", PEAK, target, *argv], capture_output=True, env=ENV,
                          preexec_fn=preexec, timeout=600)
    lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    measured = [dict(kv.split("=") for kv in line.split()[1:]) for line in lines if line.startswith("measured ")]
    lines = [line for line in lines if not line.startswith("measured ")]
    m = measured[0] if measured else {"seconds": "nan", "cpu": "nan", "peak_rss_kib": "nan"}
    return {"seconds": float(m["seconds"]), "cpu": float(m["cpu"]), "rss": float(m["peak_rss_kib"]) / 1024,
            "code": proc.returncode, "message": lines[-1] if lines else "",
            "traceback": any("Traceback" in line for line in lines)}


_SCRIPTS: dict[str, str] = {}


def _script_file(text: str) -> str:
    if text not in _SCRIPTS:
        fd, path = tempfile.mkstemp(suffix=".py")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        _SCRIPTS[text] = path
    return _SCRIPTS[text]


# -- inputs ----------------------------------------------------------------------------------------------

def tiny_csv(path: Path, labels: list[str] | None = None, n: int = 60) -> Path:
    words = "good bad film plot actor boring great awful fine waste".split()
    rng = np.random.RandomState(0)
    labels = labels or [str(i % 2) for i in range(n)]
    rows = [" ".join(rng.choice(words, 12)) + f",{label}" for label in labels]
    path.write_text("text,label\n" + "\n".join(rows) + "\n")
    return path


def commit(folder: Path) -> None:
    from lstmtext.checkpoint import manifest as mf

    files = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != mf.MANIFEST}
    mf.write_manifest(folder, files)


def planted(base: Path, work: Path, name: str, content: bytes) -> Path:
    folder = work / f"ckpt-{name}-{len(content)}"
    shutil.copytree(base, folder)
    (folder / name).write_bytes(content)
    commit(folder)
    return folder


def fill(unit: bytes, size: int) -> bytes:
    """``[unit,unit,...,unit]`` of at most ``size`` bytes."""
    n = max(1, (size - 2) // (len(unit) + 1))
    return b"[" + (unit + b",") * (n - 1) + unit + b"]"


def pairs(size: int) -> bytes:
    """``{"0":{},"1":{},...}`` of at most ``size`` bytes: distinct keys, an empty object each."""
    out, total, i = [b"{"], 2, 0
    while True:
        item = b'"%x":{},' % i
        if total + len(item) > size:
            break
        out.append(item)
        total += len(item)
        i += 1
    return b"".join(out)[:-1] + b"}"


def zeros_zip_member(zf: zipfile.ZipFile, name: str, mib: int) -> None:
    info = zipfile.ZipInfo(name)
    info.compress_type, info._compresslevel = zipfile.ZIP_DEFLATED, 9
    with zf.open(info, "w", force_zip64=True) as f:
        for _ in range(mib):
            f.write(bytes(MiB))


def keras_bomb(good: Path, dst: Path, mib: int) -> Path:
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in src.namelist():
            if name == "model.weights.h5":
                zeros_zip_member(zf, name, mib)
            else:
                zf.writestr(name, src.read(name))
    return dst


def npy_header(shape, dtype="<i8") -> bytes:
    f = io.BytesIO()
    np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
    return f.getvalue()


def npz(path: Path, members: dict[str, bytes], bomb: tuple[str, int] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)
        if bomb:
            zeros_zip_member(zf, bomb[0] + ".npy", bomb[1])
    return path


def tar_gz(path: Path, name: str, declared: int, zeros_mib: int, kind=tarfile.REGTYPE) -> Path:
    info = tarfile.TarInfo(name)
    info.size, info.type = declared, kind
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(info.tobuf(format=tarfile.GNU_FORMAT))
        for _ in range(zeros_mib):
            gz.write(bytes(MiB))
    return path


# -- the attacks -------------------------------------------------------------------------------------------

def class4(work: Path, base: Path, rows: list) -> None:
    from lstmtext.checkpoint.limits import JSON_LIMITS

    rows.append(("4", "baseline: predict on the clean checkpoint", attack(["predict", str(base), "a fine film"])))
    cap = {name: JSON_LIMITS[name].max_bytes for name in ("config.json", "vocab.json", "run.json", "trainer.json")}
    cases = [  # (file, what, content maker): made one at a time, so the bench itself stays small
        ("config.json", "16 MiB of {} (the issue's file; over the 4 MiB cap)", lambda: fill(b"{}", 16 * MiB)),
        ("config.json", "4 MiB (its cap) of {}", lambda: fill(b"{}", cap["config.json"])),
        ("config.json", "4 MiB of {\"k\":{}} pairs", lambda: pairs(cap["config.json"])),
        ("config.json", "1 MiB of {}", lambda: fill(b"{}", MiB)),
        ("config.json", "1,001 real Dense layers (49 KB)", lambda: json.dumps(
            {"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": {"units": 1}}]
                                                     * 1001}}).encode()),
        ("vocab.json", "128 MiB of \"\" (the issue's size; over the 32 MiB cap)", lambda: fill(b'""', 128 * MiB)),
        ("vocab.json", "32 MiB (its cap) of []", lambda: fill(b"[]", cap["vocab.json"])),
        ("vocab.json", "32 MiB of {\"k\":{}} pairs", lambda: pairs(cap["vocab.json"])),
        ("vocab.json", "32 MiB of 0", lambda: fill(b"0", cap["vocab.json"])),
        ("vocab.json", "32 MiB of \"\"", lambda: fill(b'""', cap["vocab.json"])),
        ("vocab.json", "32 MiB: one string full of { [ , (counted exactly: passes, refused by the schema)",
         lambda: b'["' + b"{[," * (cap["vocab.json"] // 3 - 2) + b'"]'),
        ("vocab.json", "8 MiB of {}", lambda: fill(b"{}", 8 * MiB)),
        ("run.json", "4 MiB (its cap) of {}", lambda: fill(b"{}", cap["run.json"])),
    ]
    for name, what, make in cases:
        folder = planted(base, work, name, make())
        r = attack(["predict", str(folder), "a fine film"])
        rows.append(("4", f"{name}: {what}", r))
        shutil.rmtree(folder)
    folder = planted(base, work, "trainer.json", fill(b"{}", JSON_LIMITS["trainer.json"].max_bytes))
    rows.append(("4", "trainer.json: 16 MiB (cap) of {} (report)", attack(["report", str(folder)])))
    shutil.rmtree(folder)


def class5(work: Path, rows: list) -> None:
    import torch

    from lstmtext.interop.keras import save_keras_model
    from lstmtext.layers import LSTM, Dense, Embedding

    layers = [Embedding(50, 4), LSTM(2), Dense(1, activation="sigmoid")]
    x = torch.zeros(1, 6, dtype=torch.long)
    for layer in layers:
        x = layer(x)
    good = save_keras_model(layers, work / "good.keras", input_shape=(6,), input_dtype="int32")
    rows.append(("5", "baseline: load a good .keras", attack([str(good)], script=KERAS_LOAD)))
    for mib in (2048, 256):
        path = keras_bomb(good, work / f"bomb{mib}.keras", mib)
        rows.append(("5", f".keras: weights member inflating to {mib} MiB from {path.stat().st_size / MiB:.1f} MB",
                     attack([str(path)], script=KERAS_LOAD)))
        path.unlink()
    obj = io.BytesIO()
    arr = np.empty(1, dtype=object)
    arr[0] = [1, 2]
    np.save(obj, arr, allow_pickle=True)
    good_members = {"x_train": obj.getvalue(), "y_train": npy_header((1,)) + bytes(8), "x_test": obj.getvalue(),
                    "y_test": npy_header((1,)) + bytes(8)}
    for shape in ((10**13,), (10**6, 10**6)):
        path = npz(work / "imdb.npz", {**good_members, "y_train": npy_header(shape) + bytes(64)})
        rows.append(("5", f"imdb.npz of {path.stat().st_size} bytes, y_train header claims shape {shape}",
                     attack(["stats", "--data", str(path)])))
    path = npz(work / "imdb.npz", {k: v for k, v in good_members.items() if k != "x_train"}, bomb=("x_train", 2048))
    rows.append(("5", f"imdb.npz: x_train inflating to 2 GiB from {path.stat().st_size / MiB:.1f} MB",
                 attack(["stats", "--data", str(path)])))
    path = tar_gz(work / "bomb.tar.gz", "aclImdb/imdb.vocab", 10**10, 64)
    rows.append(("5", f"tar.gz of {path.stat().st_size / MiB:.2f} MB, a member declaring 10 GB",
                 attack(["stats", "--data", str(path)])))
    path = tar_gz(work / "pax.tar.gz", "././@PaxHeader", 1 << 30, 1024, kind=tarfile.XHDTYPE)
    rows.append(("5", f"tar.gz of {path.stat().st_size / MiB:.2f} MB, a 1 GiB pax header of zeros",
                 attack(["stats", "--data", str(path)])))
    path.unlink()


def class6(work: Path, races: int, rows: list) -> dict:
    data = tiny_csv(work / "race.csv", n=200)
    out = work / "race" / "out"
    tally = {"races": races, "saved": 0, "refused": 0, "crashed": 0, "lost": 0, "leftovers": 0}
    for k in range(races):
        seeds = (100 + 2 * k, 101 + 2 * k)
        procs = [subprocess.Popen([sys.executable, "-m", "lstmtext", "train", "--data", str(data), "--out", str(out),
                                   "--seed", str(s), "--overwrite", *FAST], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=ENV, text=True) for s in seeds]
        results = [(p.wait(timeout=600), *p.communicate()) for p in procs]
        winners = []
        for seed, (code, stdout, stderr) in zip(seeds, results):
            if code == 0 and "saved" in stdout:
                tally["saved"] += 1
                winners.append(seed)
            elif code == 1 and "is being written by another run" in stderr:
                tally["refused"] += 1
            else:
                tally["crashed"] += 1
        recorded = json.loads((out / "run.json").read_text())["seed"] if (out / "run.json").is_file() else None
        tally["lost"] += int(recorded not in winners)
        tally["leftovers"] += len([p for p in out.parent.iterdir() if p.name.startswith(".")])
    return tally


def class7(work: Path, rows: list) -> None:
    for label, n in (("99999999999", 13), ("10000000", 13), ("1001", 13), ("9" * 5000, 13)):
        path = tiny_csv(work / "labels.csv", ["0", "1"] * ((n - 1) // 2) + [label])
        rows.append(("7", f"train: CSV label {label[:12]}{'...' if len(label) > 12 else ''} in {n} rows",
                     attack(["train", "--data", str(path), "--out", str(work / "l-out"), *FAST])))
    good = [json.dumps({"text": f"text {i}", "label": i % 2}) for i in range(20)]
    for what, line in (("nested 100,000 deep", '{"text": "a", "label": ' + "[" * 100_000 + "]" * 100_000 + "}"),
                       ("a 5,000-digit label", '{"text": "a", "label": ' + "7" * 5000 + "}")):
        path = work / "d.jsonl"
        path.write_text("\n".join(good[:10] + [line] + good[10:]) + "\n")
        for command in ("train", "stats"):
            extra = ["--out", str(work / "j-out"), *FAST] if command == "train" else []
            rows.append(("7", f"{command}: JSON-lines value {what}", attack([command, "--data", str(path), *extra])))
    data = tiny_csv(work / "disk.csv")
    out = work / "disk-out"
    subprocess.run([sys.executable, "-m", "lstmtext", "train", "--data", str(data), "--out", str(out), "--seed", "1",
                    *FAST], env=ENV, check=True, capture_output=True)

    def full_disk():  # writes past 16 KiB fail (EFBIG), as on a full disk (ENOSPC)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 10, 16 << 10))

    r = attack(["train", "--data", str(data), "--out", str(out), "--seed", "2", "--overwrite", *FAST],
               preexec=full_disk)
    from lstmtext.predictor import Predictor

    Predictor.from_checkpoint(out)  # the previous checkpoint still loads
    rows.append(("7", "train: disk full while saving (checkpoint before still loads)", r))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument("--races", type=int, default=10, help="class 6: races of two runs (default: 10)")
    parser.add_argument("--only", default="", help="run only the classes whose number starts with this")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="hostile-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list = []
    base = work / "base"
    if not args.only or args.only in "47":
        subprocess.run([sys.executable, "-m", "lstmtext", "train", "--data", str(tiny_csv(work / "base.csv")),
                        "--out", str(base), "--seed", "1", *FAST], env=ENV, check=True, capture_output=True)
    if not args.only or args.only == "4":
        class4(work, base, rows)
    if not args.only or args.only == "5":
        class5(work, rows)
    if not args.only or args.only == "7":
        class7(work, rows)
    print("| Class | Attack | Time to the error (CPU) | Peak RSS | Exit | Message |")
    print("|---|---|---:|---:|---:|---|")
    for cls, what, r in rows:
        message = r["message"][:160].replace("|", "\\|").replace(str(work), "WORK")
        flag = " (TRACEBACK)" if r["traceback"] else ""
        print(f"| {cls} | {what} | {r['seconds']:.2f} s ({r['cpu']:.2f} s) | {r['rss']:.0f} MiB | {r['code']}{flag} "
              f"| {message} |")
    if not args.only or args.only == "6":
        tally = class6(work, args.races, rows)
        print(f"\nclass 6: {tally}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
