"""Loading never runs code: no module of the package may reach a deserializer that can execute code.

The scan parses every ``src/`` module (so a docstring saying "never torch.load" is not a hit) and
flags imports of pickle-family modules, ``torch.load``/``torch.jit.load``, ``np.load(allow_pickle=True)``,
any ``weights_only=False``, ``eval``/``exec``, unsafe ``yaml.load`` and Keras's own model loading.
"""

from __future__ import annotations

import ast
from pathlib import Path

import lstmtext

SRC = Path(lstmtext.__file__).resolve().parent
FORBIDDEN_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "marshal", "shelve",
                     "torch.package", "keras.saving", "keras.src.saving"}
FORBIDDEN_ATTRS = {"torch.load", "torch.jit.load", "torch.serialization.load", "keras.models.load_model",
                   "keras.saving.load_model", "yaml.load", "yaml.unsafe_load"}
FORBIDDEN_CALLS = {"eval", "exec", "__import__"}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def scan(source: str, filename: str = "<src>") -> list[str]:
    """Every forbidden construct in ``source``, as ``file:line: what``."""
    hits = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            hits += [f"{where}: import {a.name}" for a in node.names
                     if any(a.name == m or a.name.startswith(m + ".") for m in FORBIDDEN_MODULES)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names]
            if any(node.module == m or node.module.startswith(m + ".") for m in FORBIDDEN_MODULES) or any(
                    n in FORBIDDEN_ATTRS or n.split(".")[-1] == "load_model" and "keras" in n for n in names):
                hits.append(f"{where}: from {node.module} import {', '.join(a.name for a in node.names)}")
        elif isinstance(node, ast.Attribute):
            name = _dotted(node)
            if name in FORBIDDEN_ATTRS or name.replace("numpy.", "np.", 1) in FORBIDDEN_ATTRS:
                hits.append(f"{where}: {name}")
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id in FORBIDDEN_CALLS:
                hits.append(f"{where}: {node.func.id}()")
            for kw in node.keywords:
                value = kw.value.value if isinstance(kw.value, ast.Constant) else None
                if (kw.arg, value) in {("allow_pickle", True), ("weights_only", False)}:
                    hits.append(f"{where}: {kw.arg}={value}")
    return hits


def test_package_source_never_reaches_a_code_executing_loader():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 10
    hits = [h for f in files for h in scan(f.read_text(encoding="utf-8"), str(f.relative_to(SRC.parent)))]
    assert hits == []


def test_the_scan_catches_each_forbidden_construct():
    planted = {
        "import pickle": "import pickle",
        "import dill as d": "import dill",
        "from pickle import loads": "from pickle import",
        "from keras.saving import load_model": "from keras.saving",
        "from keras.models import load_model": "from keras.models import load_model",
        "import torch\ntorch.load('x')": "torch.load",
        "import torch\nf = torch.jit.load": "torch.jit.load",
        "import numpy as np\nnp.load('x', allow_pickle=True)": "allow_pickle=True",
        "import torch\ntorch.serialization.load('x', weights_only=False)": "weights_only=False",
        "eval('1')": "eval()",
        "exec('1')": "exec()",
        "__import__('os')": "__import__()",
        "import yaml\nyaml.load(s)": "yaml.load",
    }
    for source, what in planted.items():
        hits = scan(source)
        assert any(what in h for h in hits), (source, hits)
    harmless = '"""never torch.load or pickle here"""\nimport numpy as np\nnp.load("a.npy")\nx = "eval(1)"'
    assert scan(harmless) == []
