"""What ``fit`` does differently when it runs in several processes: DDP, shards, exact loss scaling, synced metrics.

``Trainer.fit`` calls :meth:`DistributedFit.start` first; when it returns an object (``distributed=True``,
or ``WORLD_SIZE > 1`` under torchrun), the loop hands it four jobs:

* the model is wrapped in ``DistributedDataParallel`` (rank 0's weights are broadcast at the start, the
  gradients averaged over ranks at every step);
* each global batch of ``batch_size`` samples is split over the ranks (:meth:`batches`);
* each rank's loss is rescaled so that the averaged gradient is exactly the gradient of the global batch's
  loss, last uneven batch included (:meth:`scale_loss`);
* metric updates are summed over ranks at every step (:meth:`update_metrics`), so every rank holds the
  one-process values: logs, ``History``, ``EarlyStopping`` decisions and checkpoints agree everywhere.

Only rank 0 prints, shows progress bars and runs the callbacks that write files (``ModelCheckpoint``,
``CSVLogger``, or any callback with ``main_process_only = True``). Checkpoints hold the global step, the
full weights and optimizer state, so they resume with any number of processes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from lstmtext.errors import ConfigError, DistributedError
from lstmtext.training import distributed as dist_env
from lstmtext.training.callbacks import Callback, CSVLogger, ModelCheckpoint
from lstmtext.training.data import nest_map

if TYPE_CHECKING:
    from lstmtext.training.data import ArrayData
    from lstmtext.training.state import TrainState

#: Callbacks that only rank 0 runs: they write files or print.
MAIN_PROCESS_CALLBACKS: tuple[type[Callback], ...] = (ModelCheckpoint, CSVLogger)
_BATCH_HOOKS = ("on_train_batch_begin", "on_train_batch_end")

Batch = tuple[torch.Tensor, "torch.Tensor | None", "torch.Tensor | None"]


def _overrides(callback: Callback, hook: str) -> bool:
    return getattr(getattr(callback, hook), "__func__", None) is not getattr(Callback, hook)


class DistributedFit:
    """The distributed side of one ``fit`` call (created by :meth:`start`, used by the trainer's loop)."""

    def __init__(self) -> None:
        self.rank, self.world_size = dist_env.rank(), dist_env.world_size()
        self.device = torch.device("cpu")
        self.global_count = 0  #: samples in the current global batch (all ranks)
        self.local_count = 0  #: of which this rank's (0: it computes on one placeholder sample)
        self.sync_stop_each_step = False
        self._state: TrainState | None = None

    # -- set-up ---------------------------------------------------------------------------------
    @classmethod
    def start(cls, distributed: bool | None) -> DistributedFit | None:
        """Join the process group if this ``fit`` is distributed; None for a one-process ``fit``.

        Args:
            distributed: True (required: fails outside torchrun), None (when ``WORLD_SIZE > 1`` or a
                process group is up), False (never: each process trains on its own).
        """
        if distributed is not None and not isinstance(distributed, bool):
            raise ConfigError(f"fit: distributed must be True, False or None, got {distributed!r}")
        if distributed is False or (distributed is None and not dist_env.launched_distributed()):
            return None
        dist_env.init_distributed(required=True)
        return cls()

    def begin(self, model: Any, device: torch.device, state: TrainState, batch_size: int, verbose: int,
              callbacks: Sequence[Callback] | None) -> tuple[int, list[Callback]]:
        """Wrap ``model`` in DDP and agree on the shuffle seed; returns this rank's ``(verbose, callbacks)``."""
        from torch.nn.parallel import DistributedDataParallel

        self.device, self._state = device, state
        if batch_size < self.world_size:
            raise ConfigError(
                f"fit: batch_size is the global batch (Keras's meaning), split over {self.world_size} processes; "
                f"it must be at least {self.world_size}, got {batch_size}"
            )
        callbacks = list(callbacks or [])
        # Decided on the full list (the same on every rank), before rank > 0 drops the writers.
        self.sync_stop_each_step = any(_overrides(c, h) for c in callbacks for h in _BATCH_HOOKS)
        ids = None
        if device.type == "cuda":
            ids = [device.index if device.index is not None else torch.cuda.current_device()]
        try:
            ddp = DistributedDataParallel(model, device_ids=ids)
        except RuntimeError as e:
            raise DistributedError(
                dist_env.lost_peer_message("wrapping the model in DistributedDataParallel", e)) from e
        ddp.register_comm_hook(self, _allreduce_hook)
        # Not as a submodule (nn.Module.__setattr__ would register it: a cycle, and its weights in state_dict).
        object.__setattr__(model, "_forward_module", ddp)
        state.shuffle_seed = dist_env.broadcast_int(state.shuffle_seed or 0, device,
                                                    what="agreeing on the shuffle seed")
        self._decorrelate_dropout()
        model._distributed = self
        if self.rank != 0:
            return 0, [c for c in callbacks
                       if not isinstance(c, MAIN_PROCESS_CALLBACKS) and not getattr(c, "main_process_only", False)]
        if verbose:
            backend = dist_env.dist.get_backend()
            print(f"Distributed: {self.world_size} processes ({backend}), global batch {batch_size} "
                  f"= {batch_size // self.world_size}"
                  f"{'+' if batch_size % self.world_size else ''} samples per process and step", flush=True)
        return verbose, callbacks

    def _decorrelate_dropout(self) -> None:
        dist_env.decorrelate_rng(self.rank)

    @property
    def step(self) -> str:
        """Where training is, for messages: ``"3 (epoch 2)"``, 1-based."""
        st = self._state
        return "?" if st is None else f"{st.global_step + 1} (epoch {st.epoch + 1})"

    def end(self, model: Any) -> None:
        """Unwrap ``model`` after ``fit``: ``evaluate``/``predict`` outside ``fit`` are local again."""
        model._forward_module = None
        model._distributed = None

    # -- per step -------------------------------------------------------------------------------
    def batches(self, data: ArrayData, batch_size: int, order: torch.Tensor | None = None, start: int = 0,
                stop: int | None = None) -> Iterator[Batch]:
        """This rank's part of global batches ``start .. stop-1`` (``ArrayData.batches``'s signature).

        A rank whose share of a short last batch is empty computes on the batch's first sample with a
        loss scale of 0 and no metric update, so that every rank joins the gradient all-reduce.
        """
        for lo, hi in dist_env.global_batches(len(data), batch_size, start, stop):
            a, b = dist_env.shard_bounds(hi - lo, self.world_size, self.rank)
            self.global_count, self.local_count = hi - lo, b - a
            if a == b:
                a, b = 0, 1
            if order is None:
                yield _rows(data.x, slice(lo + a, lo + b)), _rows(data.y, slice(lo + a, lo + b)), \
                    _rows(data.sample_weight, slice(lo + a, lo + b))
            else:
                idx = order[lo + a:lo + b]
                yield _rows(data.x, idx), _rows(data.y, idx), _rows(data.sample_weight, idx)

    def scale_loss(self, model: Any, loss: torch.Tensor, sample_weight: torch.Tensor | None) -> torch.Tensor:
        """This rank's loss times ``c`` such that the rank-average of the scaled losses is the global loss.

        DDP averages gradients over the ``W`` ranks. With Keras's default reduction each rank's loss is a
        mean over its ``b`` samples, so ``c = W * b / B`` (``B``: global batch) makes the average the mean
        over all ``B`` samples, uneven shards included; weight and activity regularization terms come out
        once. ``reduction="sum"`` uses ``c = W``, ``"mean_with_sample_weight"`` the share of the weights.
        """
        b, big_b, w = self.local_count, self.global_count, self.world_size
        reduction = getattr(model.loss, "reduction", "sum_over_batch_size")
        c: float | torch.Tensor
        if reduction == "mean_with_sample_weight" and sample_weight is not None:
            # A collective: every rank joins, the one with an empty share too.
            local = sample_weight[:b].to(torch.float64).sum()
            total = dist_env.all_reduce_sum([local], f"summing the sample weights of step {self.step}")[0]
            c = torch.where(total != 0, w * local / torch.where(total != 0, total, 1.0), 0.0).to(loss.dtype)
        elif reduction == "sum":
            c = float(w)
        else:
            c = w * b / big_b
        if b == 0:
            return loss * 0.0
        k = w * b / big_b
        if isinstance(c, float) and c == k:
            return loss * k
        # Regularization terms sit in the loss once per rank; they must count with weight k, not c.
        reg = model.losses
        if not reg:
            return loss * c
        return loss * c + (k - c) * torch.stack([r.to(loss.dtype) for r in reg]).sum()

    def update_metrics(self, model: Any, loss: torch.Tensor, y: torch.Tensor, y_pred: torch.Tensor,
                       sample_weight: torch.Tensor | None) -> None:
        """Add this step's metric updates of all ranks to every rank's metric state (one all-reduce)."""
        metrics = model._all_metrics()
        for m in metrics:
            m.build_state(y_pred.device)
        before = [v.clone() for m in metrics for v in m.variables]
        for m in metrics:
            m.reset_state()
        b, big_b = self.local_count, self.global_count
        # The tracker weighs each batch's loss by its size: rank shares of B*loss sum to B*(global loss).
        value = loss * (big_b / (self.world_size * b)) if b else torch.zeros_like(loss)
        model._update_local_metrics(value, y[:b], y_pred[:b], None if sample_weight is None else sample_weight[:b])
        after = [v for m in metrics for v in m.variables]
        if len(after) != len(before):
            raise DistributedError("a metric changed its number of state tensors during an update")
        summed = dist_env.all_reduce_sum(after, "summing the metrics of the step")
        with torch.no_grad():
            for v, old, delta in zip(after, before, summed):
                v.copy_(old + delta)

    def agree_on_stop(self, model: Any, step_level: bool = False) -> None:
        """Make ``model.stop_training`` True everywhere if any rank set it (at a step only when a callback
        with batch hooks could have set it)."""
        if step_level and not self.sync_stop_each_step:
            return
        model.stop_training = dist_env.any_rank(model.stop_training, self.device, "agreeing on stop_training")


def _rows(t: Any, idx: slice | torch.Tensor) -> Any:
    """Rows ``idx`` of a tensor, or of each array in a list / dict of them (a model with several inputs or
    outputs; text inputs stay NumPy arrays)."""
    def take(a: Any) -> Any:
        if isinstance(a, np.ndarray) and isinstance(idx, torch.Tensor):
            return a[idx.cpu().numpy()]
        return a[idx]

    return None if t is None else nest_map(take, t)


def _allreduce_hook(state, bucket):
    """DDP's default gradient averaging (``GradBucket`` in, ``Future[Tensor]`` out), with a failure
    reported as what it is: a lost process. Unannotated: DDP checks annotations, and ours are strings."""
    buffer = bucket.buffer()
    fut = dist_env.dist.all_reduce(buffer.div_(state.world_size), async_op=True).get_future()

    def unpack(f: torch.futures.Future[list[torch.Tensor]]) -> torch.Tensor:
        try:
            return f.value()[0]
        except RuntimeError as e:
            raise DistributedError(
                dist_env.lost_peer_message(f"the gradient all-reduce of step {state.step}", e)) from e
    return fut.then(unpack)
