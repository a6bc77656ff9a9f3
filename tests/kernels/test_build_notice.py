"""First use of the compiled kernel: one line says it is being built, and progress times leave the build out."""

from __future__ import annotations

import io

import pytest

from lstmtext.kernels import build
from lstmtext.training import progress


def test_build_prints_one_line_and_counts_its_time(monkeypatch, tmp_path, capsys):
    from torch.utils import cpp_extension

    calls = []
    monkeypatch.setattr(cpp_extension, "load", lambda **kw: calls.append(kw["name"]))
    before = build.build_seconds()
    build._build("lstmtext_test_notice", tmp_path / "b")
    err = capsys.readouterr().err
    assert calls == ["lstmtext_test_notice"]
    assert err.count("\n") == 1 and err.startswith("lstmtext: compiling the CPU LSTM kernel")
    assert build.build_seconds() >= before


def test_progress_bar_leaves_the_build_out_of_step_time_and_eta(monkeypatch):
    clock = {"now": 100.0, "built": 0.0}
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock["now"])
    monkeypatch.setattr(progress, "build_seconds", lambda: clock["built"])
    out = io.StringIO()
    bar = progress.Progbar(10, verbose=1, stream=out, interval=0.0)
    clock["now"] += 31.0  # step 1: a 30 s build and 1 s of work
    clock["built"] = 30.0
    bar.update(1)
    line = out.getvalue().strip().splitlines()[-1]
    assert " 9s 1s/step" in line, line  # ETA 9 steps x 1 s, not x 31 s


def test_the_march_target_comes_from_the_environment_and_keys_the_build(monkeypatch):
    monkeypatch.delenv("LSTMTEXT_KERNEL_MARCH", raising=False)
    assert build.compiler_flags()[-1] == "-march=native"
    native_key = build.build_key()
    monkeypatch.setenv("LSTMTEXT_KERNEL_MARCH", "haswell")  # the AVX2 + FMA paths, runnable on AVX-512 CPUs
    assert build.compiler_flags()[-1] == "-march=haswell"
    assert build.build_key() != native_key  # its own cached build
    monkeypatch.setenv("LSTMTEXT_KERNEL_MARCH", "native -fplugin=x.so")
    with pytest.raises(ValueError, match="LSTMTEXT_KERNEL_MARCH='native -fplugin=x.so': expected a -march target"):
        build.compiler_flags()
