"""Language-model pretraining in several processes (``torchrun -m lstmtext pretrain``): data parallel over rows.

Every process reads the same BPTT stream and keeps its own block of the rows of each batch (``batch_size``
is the global number of rows, as in ``lstmtext train``); the model is wrapped in ``DistributedDataParallel``,
so the averaged gradient is the gradient of the global batch's mean loss (every rank holds the same number
of rows and tokens). The carried LSTM states are per rank; a checkpoint gathers them on every rank and rank
0 writes the full ``(batch_size, u)`` states, so a run resumes with any number of processes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist

from lstmtext.errors import ConfigError, DistributedError
from lstmtext.lm.model import State
from lstmtext.training import distributed as dist_env


class RowShards:
    """This process's rows of every batch, and the collectives that keep the ranks in step."""

    def __init__(self, batch_size: int) -> None:
        self.rank, self.world_size = dist_env.rank(), dist_env.world_size()
        if batch_size % self.world_size:
            raise ConfigError(f"pretrain: --batch-size is the global number of rows, split evenly over "
                              f"{self.world_size} processes; {batch_size} is not a multiple of {self.world_size}")
        self.per_rank = batch_size // self.world_size
        self.rows = slice(self.rank * self.per_rank, (self.rank + 1) * self.per_rank)

    @classmethod
    def start(cls, distributed: bool | None, batch_size: int) -> RowShards | None:
        """Join the process group when the run is distributed (True, or None under torchrun); else None."""
        if distributed is not None and not isinstance(distributed, bool):
            raise ConfigError(f"fit_language_model: distributed must be True, False or None, got {distributed!r}")
        if distributed is False or (distributed is None and not dist_env.launched_distributed()):
            return None
        dist_env.init_distributed(required=True)
        return cls(batch_size)

    @property
    def main(self) -> bool:
        """Whether this process prints and writes (rank 0)."""
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` in DistributedDataParallel (rank 0's weights broadcast now, gradients averaged each step).

        ``find_unused_parameters``: a tail cluster of the adaptive softmax with no target among one rank's
        rows gets no gradient there.
        """
        from torch.nn.parallel import DistributedDataParallel

        dist_env.decorrelate_rng(self.rank)
        try:
            return DistributedDataParallel(model, find_unused_parameters=True)
        except RuntimeError as e:
            raise DistributedError(
                dist_env.lost_peer_message("wrapping the language model in DistributedDataParallel", e)) from e

    def local(self, rows: np.ndarray) -> np.ndarray:
        """This rank's rows of a ``(batch_size, ...)`` array."""
        return rows[self.rows]

    def step_end(self, loss: float, stop: bool) -> tuple[float, bool]:
        """One collective per step: the loss averaged over the ranks, and whether any rank asks to stop (the
        time budget, read on each rank's clock)."""
        total = dist_env.all_reduce_sum([torch.tensor([loss, float(stop)])], what="ending a training step")[0]
        return float(total[0]) / self.world_size, bool(total[1] > 0)

    def gather_state(self, state: State | None) -> State | None:
        """Every rank's carried states, concatenated in row order (on every rank)."""
        if state is None:
            return None
        flat = torch.cat([t.detach().reshape(-1) for hc in state for t in hc])
        parts = [torch.empty_like(flat) for _ in range(self.world_size)]
        dist_env.run_collective(lambda: dist.all_gather(parts, flat), "gathering the carried states")
        out, at = [], 0
        for h, c in state:
            pair = []
            for t in (h, c):
                pair.append(torch.cat([p[at:at + t.numel()].view_as(t) for p in parts]))
                at += t.numel()
            out.append((pair[0], pair[1]))
        return out

    def local_state(self, state: State | None) -> State | None:
        """This rank's rows of full carried states (a checkpoint's)."""
        if state is None:
            return None
        if state[0][0].shape[0] != self.per_rank * self.world_size:
            raise ConfigError(f"--resume: the checkpoint's carried states hold {state[0][0].shape[0]} rows, "
                              f"not --batch-size {self.per_rank * self.world_size}")
        return [(h[self.rows].clone(), c[self.rows].clone()) for h, c in state]

