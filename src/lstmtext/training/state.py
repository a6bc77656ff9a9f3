"""Where a training run stands (saved in checkpoints, restored when resuming)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainState:
    """Where training stands; everything a resumed run needs besides weights, optimizer and RNG states."""

    epoch: int = 0  #: epochs completed
    step_in_epoch: int = 0  #: steps completed in the current epoch
    global_step: int = 0  #: optimizer steps since the first fit
    shuffle_seed: int | None = None  #: seed of the epoch permutations of the current fit
    epochs: int | None = None  #: the ``epochs`` argument of the current fit
    history: dict[str, list[float]] = field(default_factory=dict)
