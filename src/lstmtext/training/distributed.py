"""Multi-process training on PyTorch's own engine: the process group, ranks, sharding and collectives.

A distributed run is started by ``torchrun`` (or ``python -m torch.distributed.run``), which starts
one process per slot and gives each one ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``. :func:`init_distributed` joins the process group from those variables (``gloo`` on
CPU, ``nccl`` on CUDA) with a bounded timeout, so a rank that stops answering fails the run instead of
hanging it; ``fit`` calls it for you when ``WORLD_SIZE > 1`` or ``distributed=True``.

``batch_size`` keeps Keras's ``tf.distribute`` meaning: it is the *global* batch. Every optimizer step
consumes the same ``batch_size`` samples of the same ``(seed, epoch)`` permutation as a one-process run,
split into contiguous shards, one per rank (:func:`shard_bounds`, :class:`DistributedBatchSampler`).

>>> from lstmtext.training.distributed import init_distributed, is_main_process, rank, world_size
>>> init_distributed()  # False outside torchrun: a one-process run
False
>>> rank(), world_size(), is_main_process()
(0, 1, True)
"""

from __future__ import annotations

import atexit
import datetime
import hashlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from lstmtext.errors import ConfigError, DistributedError

#: Seconds a collective may wait for the other ranks before the run fails (env ``LSTMTEXT_DIST_TIMEOUT``).
DEFAULT_TIMEOUT_S = 300.0
_ENV_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
_owned_group = False  # True when init_distributed created the process group (and so tears it down)
_failed = False  # a collective failed: another rank is gone or stuck


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as e:
        raise ConfigError(f"environment variable {name} must be an integer, got {value!r}") from e


def is_initialized() -> bool:
    """True when this process is part of an initialized ``torch.distributed`` process group."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes in the run: the process group's size, else ``WORLD_SIZE`` (1 outside torchrun)."""
    return dist.get_world_size() if is_initialized() else _env_int("WORLD_SIZE", 1)


def rank() -> int:
    """This process's global rank (0 .. world_size-1): the process group's, else ``RANK`` (0)."""
    return dist.get_rank() if is_initialized() else _env_int("RANK", 0)


def local_rank() -> int:
    """This process's rank on its machine (``LOCAL_RANK``, 0 outside torchrun): picks its GPU."""
    return _env_int("LOCAL_RANK", 0)


def is_main_process() -> bool:
    """True on rank 0, the process that writes checkpoints, logs and progress bars.

    >>> if is_main_process():  # doctest: +SKIP
    ...     model.save("final")
    """
    return rank() == 0


def launched_distributed() -> bool:
    """True when the environment asks for a multi-process run (``WORLD_SIZE > 1``) or a group is up."""
    return (is_initialized() and dist.get_world_size() > 1) or _env_int("WORLD_SIZE", 1) > 1


def default_backend() -> str:
    """``"nccl"`` when CUDA is present (and the build has NCCL), else ``"gloo"``."""
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "nccl"
    return "gloo"


def default_timeout() -> datetime.timedelta:
    """The collective timeout: ``LSTMTEXT_DIST_TIMEOUT`` seconds if set, else :data:`DEFAULT_TIMEOUT_S`."""
    raw = os.environ.get("LSTMTEXT_DIST_TIMEOUT")
    if raw is None or raw == "":
        return datetime.timedelta(seconds=DEFAULT_TIMEOUT_S)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"environment variable LSTMTEXT_DIST_TIMEOUT must be a positive number of seconds, "
                          f"got {raw!r}")
    return datetime.timedelta(seconds=seconds)


def init_distributed(backend: str | None = None, timeout: float | datetime.timedelta | None = None,
                     required: bool = False) -> bool:
    """Join the process group described by torchrun's environment variables.

    Does nothing (and returns whether a group is up) if one is already initialized, e.g. by your own
    ``torch.distributed.init_process_group`` call. On CUDA, selects the GPU ``LOCAL_RANK`` first.
    The group is destroyed at interpreter exit (or by :func:`shutdown_distributed`).

    Args:
        backend: ``"gloo"`` or ``"nccl"`` (default: :func:`default_backend`).
        timeout: seconds (or a timedelta) a collective waits for the other ranks before failing
            (default: :func:`default_timeout`).
        required: raise instead of returning False when the environment is not a torchrun one.

    Returns:
        True when a process group is up, False for a plain one-process run.

    Raises:
        ConfigError: ``required`` and torchrun's variables are missing, or a bad backend/timeout.
        DistributedError: the rendezvous with the other processes failed or timed out.
    """
    global _owned_group
    if is_initialized():
        return True
    missing = [v for v in _ENV_VARS if not os.environ.get(v)]
    if missing:
        if required:
            raise ConfigError(
                f"distributed training needs the environment torchrun sets up, but {', '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} not set: launch with e.g. "
                "`torchrun --standalone --nproc-per-node 2 train.py` "
                "(see README, 'Multi-machine training')"
            )
        return False
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed support")
    backend = backend or default_backend()
    if backend not in ("gloo", "nccl"):
        raise ConfigError(f"init_distributed: backend must be 'gloo' or 'nccl', got {backend!r}")
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise ConfigError("init_distributed: backend 'nccl' needs CUDA, which is not available; use 'gloo'")
        torch.cuda.set_device(local_rank())
    if timeout is None:
        timeout = default_timeout()
    elif not isinstance(timeout, datetime.timedelta):
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise ConfigError(f"init_distributed: timeout must be a positive number of seconds, got {timeout!r}")
        timeout = datetime.timedelta(seconds=float(timeout))
    try:
        dist.init_process_group(backend=backend, timeout=timeout)
    except (RuntimeError, ValueError, OSError) as e:  # DistStoreError and friends are RuntimeErrors
        raise DistributedError(
            f"rank {os.environ.get('RANK')}: could not join the process group at "
            f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')} ({backend}): {e}"
        ) from e
    _owned_group = True
    atexit.register(shutdown_distributed)
    return True


def shutdown_distributed() -> None:
    """Destroy the process group :func:`init_distributed` created (no-op otherwise; safe to call twice)."""
    global _owned_group
    if _owned_group and is_initialized():
        # After a clean run, leave together: a rank that tears its gloo connections down while a peer still
        # uses them can make gloo's threads abort that peer at exit. After a failure (ours, or an uncaught
        # exception: sys.last_value), leave at once: the peers may be gone or stuck in another collective.
        if not _failed and getattr(sys, "last_value", None) is None and dist.get_backend() == "gloo":
            try:
                dist.monitored_barrier(timeout=default_timeout())
            except (RuntimeError, dist.DistBackendError):
                pass
        dist.destroy_process_group()
    _owned_group = False


def shard_bounds(count: int, world: int, rank: int) -> tuple[int, int]:
    """``[lo, hi)`` of ``rank``'s contiguous share of ``count`` items split over ``world`` ranks.

    The first ``count % world`` ranks get one item more; a rank gets nothing when ``count < world``.

    >>> [shard_bounds(10, 3, r) for r in range(3)]
    [(0, 4), (4, 7), (7, 10)]
    """
    base, extra = divmod(count, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


class DistributedBatchSampler(Sampler[list[int]]):
    """This rank's share of every global batch of an epoch, shuffled deterministically from ``(seed, epoch)``.

    The equivalent of ``torch.utils.data.DistributedSampler`` for Keras's global ``batch_size``: step
    ``k`` of an epoch covers samples ``order[k*batch_size:(k+1)*batch_size]`` of the epoch's permutation
    (the same one a one-process ``fit`` uses), split by :func:`shard_bounds`. Every rank computes the same
    permutation, so nothing is communicated. Usable as a ``DataLoader``'s ``batch_sampler``.

    Args:
        num_samples: samples in the dataset.
        batch_size: the global batch size (all ranks together).
        shuffle: a fresh permutation every epoch (else the natural order).
        seed: the shuffle seed (the same on every rank).
        rank, world_size: this process's place (default: from the process group / torchrun).

    >>> s = DistributedBatchSampler(10, batch_size=4, seed=0, rank=1, world_size=2)
    >>> s.set_epoch(0)
    >>> [len(b) for b in s]
    [2, 2, 1]
    """

    def __init__(self, num_samples: int, batch_size: int, shuffle: bool = True, seed: int = 0,
                 rank: int | None = None, world_size: int | None = None) -> None:
        for arg, value in (("num_samples", num_samples), ("batch_size", batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"DistributedBatchSampler: {arg} must be a positive integer, got {value!r}")
        self.num_samples, self.batch_size, self.shuffle, self.seed = num_samples, batch_size, bool(shuffle), int(seed)
        self.world_size = _current_world_size() if world_size is None else _check_index("world_size", world_size)
        self.rank = _current_rank() if rank is None else _check_index("rank", rank)
        if self.world_size == 0:
            raise ConfigError("DistributedBatchSampler: world_size must be positive, got 0")
        if not 0 <= self.rank < self.world_size:
            raise ConfigError(f"DistributedBatchSampler: rank must be in [0, {self.world_size}), got {self.rank}")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` (call before iterating, like ``DistributedSampler``)."""
        self.epoch = int(epoch)

    def order(self) -> torch.Tensor:
        """The epoch's global sample order (identical on every rank)."""
        from lstmtext.training.data import epoch_permutation

        if not self.shuffle:
            return torch.arange(self.num_samples)
        return epoch_permutation(self.seed, self.epoch, self.num_samples)

    def __len__(self) -> int:
        return -(-self.num_samples // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = self.order()
        for lo, hi in global_batches(self.num_samples, self.batch_size):
            a, b = shard_bounds(hi - lo, self.world_size, self.rank)
            yield order[lo + a:lo + b].tolist()


def global_batches(num_samples: int, batch_size: int, start: int = 0, stop: int | None = None
                   ) -> Iterator[tuple[int, int]]:
    """``(lo, hi)`` positions in the epoch order of global batches ``start .. stop-1``."""
    n_batches = -(-num_samples // batch_size)
    for k in range(start, n_batches if stop is None else min(stop, n_batches)):
        yield k * batch_size, min((k + 1) * batch_size, num_samples)


_current_rank, _current_world_size = rank, world_size  # the parameters of DistributedBatchSampler shadow them


def _check_index(arg: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"DistributedBatchSampler: {arg} must be a non-negative integer, got {value!r}")
    return value


def all_reduce_sum(tensors: Sequence[torch.Tensor], what: str = "all_reduce") -> list[torch.Tensor]:
    """Sum each tensor over all ranks (one collective for all of them, in float64); returns new tensors.

    Raises:
        DistributedError: another rank died or did not answer within the timeout.
    """
    if not tensors:
        return []
    flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in tensors])
    run_collective(lambda: dist.all_reduce(flat, op=dist.ReduceOp.SUM), what)
    out, at = [], 0
    for t in tensors:
        out.append(flat[at:at + t.numel()].reshape(t.shape).to(t.dtype))
        at += t.numel()
    return out


def any_rank(flag: bool, device: torch.device | str = "cpu", what: str = "agreeing on a flag") -> bool:
    """True on every rank when ``flag`` is True on at least one (a MAX all-reduce)."""
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    run_collective(lambda: dist.all_reduce(t, op=dist.ReduceOp.MAX), what)
    return bool(t.item())


def broadcast_int(value: int, device: torch.device | str = "cpu", src: int = 0, what: str = "broadcast") -> int:
    """Rank ``src``'s ``value`` on every rank."""
    t = torch.tensor([int(value)], dtype=torch.int64, device=device)
    run_collective(lambda: dist.broadcast(t, src=src), what)
    return int(t.item())


def run_collective(op: Callable[[], Any], what: str) -> None:
    """Run a collective ``op``; a lost or silent peer raises :class:`DistributedError` saying ``what`` failed."""
    try:
        op()
    except (RuntimeError, dist.DistBackendError) as e:
        raise DistributedError(lost_peer_message(what, e)) from e



def decorrelate_rng(rank_: int) -> None:
    """Move rank ``rank_`` > 0 to a generator stream derived from the current state and the rank.

    Every rank starts from rank 0's generator state (fresh seed or checkpoint); ranks > 0 then draw other
    dropout masks than their peers, yet reproducibly from rank 0's state alone, whatever the world size.
    """
    if rank_ == 0:
        return
    digest = hashlib.sha256(torch.get_rng_state().numpy().tobytes() + rank_.to_bytes(4, "little")).digest()
    torch.manual_seed(int.from_bytes(digest[:8], "little") % (2**63))


def lost_peer_message(what: str, error: BaseException) -> str:
    """The message of a failed collective: which rank, doing what, and what to look at (marks the run failed)."""
    global _failed
    _failed = True
    return (
        f"rank {rank()} of {world_size()}: {what} failed: another process of the distributed run died, was "
        f"killed or stopped answering (timeout {default_timeout().total_seconds():.0f} s, set "
        f"LSTMTEXT_DIST_TIMEOUT to change it); see torchrun's summary for the first failed rank. Resume from "
        f"the last checkpoint with fit(resume_from=...). Cause: {error}"
    )
