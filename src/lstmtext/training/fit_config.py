"""The resolved configuration of a ``fit`` call, printed before training starts (and kept with checkpoints)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from lstmtext.errors import ConfigError

if TYPE_CHECKING:
    from lstmtext.training.data import ArrayData


def check_positive_int(arg: str, value: Any) -> int:
    """``value`` if it is a positive integer, else a :class:`ConfigError` naming ``arg``."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{arg} must be a positive integer, got {value!r}")
    return value


def resolve_verbose(verbose: int | str) -> int:
    """Keras's ``verbose``: ``"auto"`` means 1 (a progress bar)."""
    if verbose == "auto":
        return 1
    if isinstance(verbose, bool):  # Keras code passes verbose=False
        return int(verbose)
    if verbose not in (0, 1, 2):
        raise ConfigError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return int(verbose)


@dataclass(frozen=True)
class FitConfig:
    """Everything that decides what a ``fit`` call computes, after defaults are filled in."""

    epochs: int
    """Index of the last epoch (Keras's meaning, with ``initial_epoch``)."""
    initial_epoch: int
    """Epoch the run starts (or resumes) at."""
    batch_size: int
    """Samples per optimizer step."""
    steps_per_epoch: int
    """Optimizer steps per epoch (the last batch may be smaller)."""
    train_samples: int
    """Samples trained on per epoch."""
    validation_samples: int
    """Samples evaluated after each epoch (0: no validation)."""
    validation_split: float
    """Fraction held out from the end of the data (before shuffling)."""
    shuffle: bool
    """Reshuffle the training samples every epoch."""
    shuffle_seed: int | None
    """Seed of the per-epoch permutations (drawn from the global generator)."""
    optimizer: dict[str, Any]
    """The optimizer's class and config."""
    loss: dict[str, Any]
    """The loss's class and config."""
    metrics: list[str]
    """Names of the compiled metrics."""
    class_weight: dict[str, float] | None
    """Per-class loss weights."""
    parameters: int
    """Number of trainable scalars."""
    device: str
    """Where training runs."""
    torch_threads: int
    """Intra-op CPU threads."""

    @classmethod
    def resolve(cls, model: Any, data: ArrayData, val: ArrayData | None, batch_size: int, epochs: int,
                initial_epoch: int, steps: int, shuffle: bool, shuffle_seed: int | None,
                class_weight: Any, validation_split: float, device: torch.device) -> FitConfig:
        loss = model.loss
        try:
            from lstmtext.training.losses import serialize as serialize_loss

            loss_cfg = serialize_loss(loss)
        except ConfigError:
            loss_cfg = {"class_name": "function", "config": {"name": loss.name}}
        return cls(
            epochs=epochs, initial_epoch=initial_epoch, batch_size=batch_size, steps_per_epoch=steps,
            train_samples=len(data), validation_samples=0 if val is None else len(val),
            validation_split=float(validation_split or 0.0) if val is not None else 0.0,
            shuffle=bool(shuffle), shuffle_seed=shuffle_seed,
            optimizer={"class_name": type(model.optimizer).__name__, "config": model.optimizer.get_config()},
            loss=loss_cfg, metrics=[m.name for m in model.compiled_metrics + model._weighted_metrics],
            class_weight=None if class_weight is None else {str(k): float(v) for k, v in class_weight.items()},
            parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
            device=str(device), torch_threads=torch.get_num_threads(),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def format(self) -> str:
        """A readable block: one ``name: value`` line per field."""
        lines = ["Training configuration:"]
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            lines.append(f"  {f.name}: {json.dumps(v) if isinstance(v, (dict, list)) else v}")
        return "\n".join(lines)
