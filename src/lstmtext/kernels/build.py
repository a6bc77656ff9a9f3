"""Builds and loads the compiled CPU LSTM kernel at first use (never at install time).

The C++ sources ship with the package (``lstm_cpu.cpp``: the LSTM recurrence; ``ops_cpu.cpp``: embedding,
dropout and Adam; ``text_cpu.cpp``: the tokenizer's word lookups). On first use it is compiled with
``torch.utils.cpp_extension.load`` into a per-user cache folder keyed by a hash of the source, the torch
version, the compiler flags and the CPU's instruction-set flags (it is built with ``-march=native``), so a
later process loads the cached library in milliseconds. A file lock (``fcntl.flock``, released by the OS if
the process dies) makes concurrent first builds from several processes safe; a thread lock does the same
within a process.

Environment:
    ``LSTMTEXT_DISABLE_KERNEL=1``: never build or load the kernel; the pure-PyTorch path is used.
    ``LSTMTEXT_CACHE_DIR``: cache root (default ``$XDG_CACHE_HOME/lstmtext`` or ``~/.cache/lstmtext``).
    ``LSTMTEXT_KERNEL_DIR``: where compiled kernels live (default ``<cache root>/kernels``); lets data caches
    be per-project or per-test while one build serves every process.
    ``LSTMTEXT_KERNEL_MARCH``: the ``-march`` target (default ``native``). ``haswell`` builds the AVX2 + FMA
    code paths and ``x86-64`` the plain C++ loops, so that an AVX-512 machine can run the tests of every ISA
    path (each target is its own cached build).

Any build or load failure gives one warning and the pure-PyTorch fallback, never an exception.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

from lstmtext.utils.cache import cache_root  # the per-user folder; kernels live in its kernels/

SOURCES = [Path(__file__).with_name(n) for n in ("lstm_cpu.cpp", "ops_cpu.cpp", "text_cpu.cpp")]
HEADERS = [Path(__file__).with_name(n)
           for n in ("small_gemm.h", "simd.h", "simd_lanes.h", "vector_math.h", "lstm_args.h", "lstm_lanes.h",
                     "workspace.h")]
_CFLAGS = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
_LDFLAGS = ["-fopenmp"]
_MARCH_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")

_lock = threading.Lock()
_state: dict[str, object] = {}  # "ops" once loaded, "failed" once a build failed in this process


def kernel_disabled() -> bool:
    """Whether ``LSTMTEXT_DISABLE_KERNEL`` asks for the pure-PyTorch path."""
    return os.environ.get("LSTMTEXT_DISABLE_KERNEL", "").strip().lower() not in ("", "0", "false", "no")


def kernel_dir() -> Path:
    """The folder holding compiled kernels, one sub-folder per build key."""
    env = os.environ.get("LSTMTEXT_KERNEL_DIR")
    return Path(env) if env else cache_root() / "kernels"


def compiler_flags() -> list[str]:
    """The C++ flags of the build: ``_CFLAGS`` and ``-march`` from ``LSTMTEXT_KERNEL_MARCH`` (default native).

    Raises:
        ValueError: ``LSTMTEXT_KERNEL_MARCH`` is not a plain target name (letters, digits, ``-``, ``_``, ``.``).
    """
    march = os.environ.get("LSTMTEXT_KERNEL_MARCH", "").strip() or "native"
    if not set(march) <= _MARCH_CHARS:
        raise ValueError(f"LSTMTEXT_KERNEL_MARCH={march!r}: expected a -march target name such as native, "
                         "haswell or x86-64")
    return [*_CFLAGS, f"-march={march}"]


def _cpu_flags() -> str:
    # -march=native code must not be reused on a CPU with fewer instruction sets (shared home folders).
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def build_key() -> str:
    """Hash of everything the compiled library depends on."""
    h = hashlib.sha256()
    sources = [src.read_bytes() for src in SOURCES + HEADERS]
    for part in (*sources, torch.__version__.encode(), " ".join(compiler_flags()).encode(), _cpu_flags().encode(),
                 sys.version.encode()):
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()[:16]


@contextmanager
def _file_lock(path: Path):
    import fcntl  # POSIX only; the caller turns an ImportError into the fallback

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _ninja_on_path() -> str:
    # ``ninja`` is a Python dependency, but its executable is only on PATH when the venv is activated.
    dirs = [os.path.dirname(sys.executable)]
    try:
        import ninja

        dirs.insert(0, ninja.BIN_DIR)
    except (ImportError, AttributeError):
        pass
    return os.pathsep.join([*dirs, os.environ.get("PATH", "")])


def build_seconds() -> float:
    """Seconds this process has spent compiling the kernel (0.0 when it was loaded from the cache).

    A progress bar subtracts it so that a first-use build does not inflate its per-step time and ETA.
    """
    return float(_state.get("build_seconds", 0.0))


def _build(name: str, build_dir: Path) -> Path:
    from torch.utils import cpp_extension

    # One line before the pause (tens of seconds on first use only), so that nobody takes it for a hang.
    print("lstmtext: compiling the CPU LSTM kernel for this machine (first use only, about 20-60 s)...",
          file=sys.stderr, flush=True)
    started = time.perf_counter()

    build_dir.mkdir(parents=True, exist_ok=True)
    stale = build_dir / "lock"  # torch's own build baton, left behind if a build was killed
    if stale.exists():
        stale.unlink()
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = _ninja_on_path()
    try:
        cpp_extension.load(
            name=name,
            sources=[str(src) for src in SOURCES],
            extra_cflags=compiler_flags(),
            extra_ldflags=_LDFLAGS,
            build_directory=str(build_dir),
            with_cuda=False,
            is_python_module=False,
            verbose=False,
        )
    finally:
        os.environ["PATH"] = old_path
        _state["build_seconds"] = build_seconds() + time.perf_counter() - started
    return build_dir / f"{name}.so"


def loaded_ops():
    """``torch.ops.lstmtext_kernels`` if this process has already loaded the kernel, else ``None``.

    For optional speed-ups (the tokenizer's word lookups) that must never trigger a first build themselves.
    """
    return _state.get("ops")


def load_ops():
    """Returns ``torch.ops.lstmtext_kernels`` with the compiled kernel loaded, or ``None`` (fallback).

    Builds on first use (tens of seconds), then loads from the cache. Thread- and process-safe.
    """
    if kernel_disabled():
        return None
    if "ops" in _state:
        return _state["ops"]
    if "failed" in _state:
        return None
    with _lock:
        if "ops" in _state or "failed" in _state:
            return _state.get("ops")
        try:
            key = build_key()
            name = f"lstmtext_lstm_cpu_{key}"
            build_dir = kernel_dir() / name
            library = build_dir / f"{name}.so"
            done = build_dir / "built.ok"
            if not done.exists():
                with _file_lock(build_dir.parent / f"{name}.lock"):
                    if not done.exists():
                        if build_dir.exists():
                            shutil.rmtree(build_dir)  # a half-finished build
                        library = _build(name, build_dir)
                        done.write_text(torch.__version__ + "\n", encoding="utf-8")
            if not hasattr(torch.ops.lstmtext_kernels, "lstm_forward"):
                torch.ops.load_library(str(library))
            ops = torch.ops.lstmtext_kernels
            ops.lstm_forward  # noqa: B018  (raises if the library did not register the ops)
        except Exception as exc:  # any compiler, linker or loader problem: fall back, once, loudly
            _state["failed"] = True
            detail = str(exc).strip()
            if len(detail) > 1200:  # compiler errors come last in torch's message
                detail = detail[:300] + " ... " + detail[-900:]
            warnings.warn(
                f"lstmtext: could not build or load the compiled CPU LSTM kernel ({type(exc).__name__}: "
                f"{detail}); using the slower pure-PyTorch LSTM loop instead. "
                "Set LSTMTEXT_DISABLE_KERNEL=1 to silence this.",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        _state["ops"] = ops
        return ops
