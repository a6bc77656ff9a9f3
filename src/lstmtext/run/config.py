"""The configuration of a training run: a preset, a TOML file and command-line flags, merged in that order.

A run is an :class:`~lstmtext.config.ExperimentConfig` (``[data]``, ``[model]``, ``[train]``) plus an
:class:`OutputConfig` (``[run]``: where the checkpoint goes). :func:`resolve_run_config` starts from a
named preset, applies a TOML file, then the flags; a later source wins field by field. The flags of
``lstmtext train`` are generated from the same dataclasses (:func:`add_config_flags`), so ``--help``
shows the field docstrings of :mod:`lstmtext.config`.

A TOML file may name its preset and override any field::

    preset = "keras-imdb"

    [data]
    archive = "reviews.csv"
    text_column = "review"
    label_column = "sentiment"

    [train]
    epochs = 3
    seed = 1

    [run]
    out = "runs/reviews"

>>> cfg = resolve_run_config("keras-imdb", overrides={"train": {"epochs": 1}})
>>> cfg.experiment.train.epochs, cfg.experiment.model.lstm_sizes
(1, (10,))
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import os
import re
import stat
import textwrap
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstmtext.config import PRESETS, DataConfig, ExperimentConfig, ModelConfig, TrainConfig, get_preset
from lstmtext.errors import ConfigError

DEFAULT_PRESET = "keras-imdb"
#: Largest run config file read (a real one is well under 10 kB).
MAX_TOML_BYTES = 1 << 20


@dataclass
class OutputConfig:
    """Where a run writes its checkpoint, and how it reports progress."""

    out: str | None = None
    """Checkpoint folder, rewritten after every epoch and at the end with the test metrics (default: runs/<preset>)."""
    resume: bool = False
    """Continue the interrupted run whose checkpoint is in ``out`` (weights, optimizer, epoch, RNG state)."""
    overwrite: bool = False
    """Replace a checkpoint already in ``out`` by a new run (without it, the run refuses to start)."""
    verbose: int = 1
    """Progress output: 1 a progress bar, 2 one line per epoch, 0 only the config and the results."""

    def __post_init__(self) -> None:
        if self.verbose not in (0, 1, 2) or isinstance(self.verbose, bool):
            raise ConfigError(f"OutputConfig.verbose: expected 0, 1 or 2, got {self.verbose!r}")
        if self.resume and self.overwrite:
            raise ConfigError("OutputConfig: resume and overwrite exclude each other (continue the run, or replace it)")


@dataclass
class RunConfig:
    """A whole training run: the experiment (data, model, training) and its output."""

    experiment: ExperimentConfig = field(default_factory=lambda: get_preset(DEFAULT_PRESET))
    output: OutputConfig = field(default_factory=OutputConfig)

    @property
    def out(self) -> Path:
        """The checkpoint folder (``runs/<experiment name>`` when not set)."""
        return Path(self.output.out if self.output.out is not None else os.path.join("runs", self.experiment.name))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: ``{"name", "data", "model", "train", "run"}`` (the TOML file's layout)."""
        return {**self.experiment.to_dict(), "run": dataclasses.asdict(self.output)}

    def format(self) -> str:
        """The resolved config as TOML-like text, one ``[section]`` per dataclass (printed at the start of a run)."""
        lines = [f"name = {_toml_value(self.experiment.name)}"]
        for section, obj in (("data", self.experiment.data), ("model", self.experiment.model),
                             ("train", self.experiment.train), ("run", self.output)):
            lines.append(f"\n[{section}]")
            for f in dataclasses.fields(obj):
                value = getattr(obj, f.name)
                lines.append(f"# {f.name} = (not set)" if value is None else f"{f.name} = {_toml_value(value)}")
        return "\n".join(lines)


#: TOML section -> the dataclass holding its fields.
SECTIONS: dict[str, type] = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig, "run": OutputConfig}


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(v)


def field_docs(cls: type) -> dict[str, str]:
    """``{field name: its docstring}`` of a dataclass whose fields carry a string literal below them."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for stmt, nxt in zip(body, body[1:]):
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and isinstance(nxt, ast.Expr) \
                and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str):
            docs[stmt.target.id] = " ".join(nxt.value.value.replace("``", "").split())
    return docs


def read_toml(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a run config file: ``{"preset"?, "name"?, "data"?, "model"?, "train"?, "run"?}``.

    Raises:
        ConfigError: the file is missing, not a regular file, larger than :data:`MAX_TOML_BYTES`, not TOML
            (nesting deeper than the parser's recursion allows included), or has an unknown section or
            field (naming it).
    """
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or never end
            raise ConfigError(f"--config {os.fspath(path)!r}: not a regular file")
        if st.st_size > MAX_TOML_BYTES:
            raise ConfigError(f"--config {os.fspath(path)!r}: {st.st_size} bytes, larger than the "
                              f"{MAX_TOML_BYTES}-byte limit of a run config")
        with open(path, "rb") as f:
            raw = tomllib.loads(f.read(MAX_TOML_BYTES + 1).decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--config {os.fspath(path)!r}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--config {os.fspath(path)!r}: cannot read it ({e})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config {os.fspath(path)!r}: not valid TOML ({e})") from None
    except RecursionError:
        # tomllib recurses once per level of nested arrays / inline tables
        raise ConfigError(f"--config {os.fspath(path)!r}: not valid TOML (arrays or tables nested too deeply)") \
            from None
    unknown = sorted(set(raw) - {"preset", "name", *SECTIONS})
    if unknown:
        raise ConfigError(f"--config {os.fspath(path)!r}: unknown key(s) {unknown}; expected preset, name and "
                          f"the sections {sorted(SECTIONS)}")
    for section, cls in SECTIONS.items():
        values = raw.get(section, {})
        if not isinstance(values, dict):
            raise ConfigError(f"--config {os.fspath(path)!r}: [{section}] must be a table, got {values!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(values) - known)
        if bad:
            raise ConfigError(f"--config {os.fspath(path)!r}: [{section}] has unknown field(s) {bad}; "
                              f"known: {sorted(known)}")
    for key in ("preset", "name"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"--config {os.fspath(path)!r}: {key} must be a string, got {raw[key]!r}")
    return raw


def resolve_run_config(preset: str | None = None, config_file: str | os.PathLike[str] | None = None,
                       overrides: dict[str, dict[str, Any]] | None = None,
                       base: dict[str, Any] | None = None) -> RunConfig:
    """Merge a preset, a TOML file and flag overrides (later wins) into a validated :class:`RunConfig`.

    When ``data.num_words`` is changed but ``model.vocab_size`` is not, the embedding follows the
    vocabulary (``vocab_size = num_words``), so ``--num-words 10000`` alone is a valid change.

    Args:
        preset: a name from :data:`lstmtext.config.PRESETS`; None: the file's ``preset``, else ``keras-imdb``.
        config_file: a TOML file (see the module docstring).
        overrides: ``{section: {field: value}}`` from the command line.
        base: a recorded config (:meth:`RunConfig.to_dict`, e.g. from a checkpoint's ``run.json``) to
            start from instead of the preset.

    Returns:
        The resolved config (every dataclass validated).

    Raises:
        ConfigError: an unknown preset, section or field, or a value a dataclass refuses (naming the field).
    """
    file = read_toml(config_file) if config_file is not None else {}
    name = preset or file.get("preset") or DEFAULT_PRESET
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    merged: dict[str, Any] = get_preset(name).to_dict()
    merged["run"] = dataclasses.asdict(OutputConfig())
    if base is not None:
        for key in ("name", *SECTIONS):
            if key in base:
                merged[key] = dict(base[key]) if key in SECTIONS else base[key]
        # How the recorded run was started is not part of what it is.
        merged["run"].update(resume=False, overwrite=False)
    changed: dict[str, set[str]] = {s: set() for s in SECTIONS}
    for layer in (file, overrides or {}):
        if "name" in layer:
            merged["name"] = layer["name"]
        for section in SECTIONS:
            values = layer.get(section) or {}
            merged[section].update(values)
            changed[section] |= set(values)
    if "num_words" in changed["data"] and "vocab_size" not in changed["model"]:
        merged["model"]["vocab_size"] = merged["data"]["num_words"]
    run = merged.pop("run")
    try:
        return RunConfig(ExperimentConfig.from_dict(merged), OutputConfig(**run))
    except TypeError as e:  # a value of the wrong kind that a __post_init__ compared or iterated
        raise ConfigError(f"invalid config value: {e}") from None


# -- command-line flags ---------------------------------------------------------------------------

#: Fields whose flag is not ``--<field-name>``.
_FLAG_NAMES = {("data", "archive"): "--data"}
#: Fields set by the CLI in its own way, not as generated flags.
_NO_FLAG = {("run", "out"), ("run", "resume"), ("run", "overwrite"), ("run", "verbose")}


_METAVARS = {int: "N", float: "X", str: "NAME"}
#: What ``lstmtext train`` adds to a field's docstring.
_CLI_NOTES = {("train", "seed"): "lstmtext train draws one when not set and records it in run.json."}


def _flag_kwargs(hint: Any) -> dict[str, Any]:
    """argparse keyword arguments for a field of type ``hint``."""
    args = typing.get_args(hint)
    if hint is bool:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(hint) is tuple:
        return {"nargs": "+", "type": args[0], "metavar": _METAVARS[args[0]]}
    if type(None) in args:  # X | None
        (hint,) = [a for a in args if a is not type(None)]
    return {"type": hint, "metavar": _METAVARS.get(hint, "VALUE")}


def _plain(text: str) -> str:
    """A docstring line without reStructuredText markup (for ``--help``)."""
    return re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "")


def add_config_flags(parser: argparse.ArgumentParser, preset: str = DEFAULT_PRESET) -> None:
    """Add one flag per config field (``--num-words``, ``--lstm-sizes 128 64`` ...), help from the field docs.

    Flags default to "not given" (:data:`argparse.SUPPRESS`), so only what the user typed overrides the
    preset and the config file; :func:`overrides_from_args` collects them.
    """
    base = get_preset(preset)
    for section, cls in SECTIONS.items():
        title = _plain((cls.__doc__ or "").splitlines()[0].rstrip("."))
        group = parser.add_argument_group(f"[{section}] options ({title})")
        docs = field_docs(cls)
        hints = typing.get_type_hints(cls)
        obj = getattr(base, section, None) if section != "run" else OutputConfig()
        for f in dataclasses.fields(cls):
            if (section, f.name) in _NO_FLAG:
                continue
            flag = _FLAG_NAMES.get((section, f.name), "--" + f.name.replace("_", "-"))
            value = getattr(obj, f.name)
            shown = "not set" if value is None else " ".join(map(str, value)) if isinstance(value, tuple) else value
            text = " ".join(filter(None, [_plain(docs.get(f.name, "")), _CLI_NOTES.get((section, f.name))]))
            kwargs = _flag_kwargs(hints[f.name])
            if flag == "--data":
                kwargs["metavar"] = "PATH"
            group.add_argument(flag, dest=f"{section}.{f.name}", default=argparse.SUPPRESS,
                               help=f"{text} ({preset}: {shown})".replace("%", "%%"), **kwargs)


def overrides_from_args(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """``{section: {field: value}}`` of the config flags given on the command line."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in vars(args).items():
        section, _, name = key.partition(".")
        if name and section in SECTIONS:
            out.setdefault(section, {})[name] = value
    return out
