"""Dynamic micro-batching: concurrent requests share one model call, run on one worker thread.

Requests are queued by the event loop; a single worker thread takes the oldest request, waits at most
``window_s`` (from that request's arrival) for others to join, and runs the model once on up to
``max_batch_size`` texts. While the model runs, new requests pile up and form the next batch, so batches
grow with load and throughput with them. The queue is bounded (in texts): when it is full
:meth:`MicroBatcher.predict` raises :class:`Overloaded` immediately instead of queueing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from lstmtext.errors import LstmtextError
from lstmtext.predictor import Prediction, Predictor


class Overloaded(LstmtextError):
    """The queue is full (or the batcher is stopped): the request was not accepted; retry later."""


class RequestTimeout(LstmtextError):
    """The request was not answered within its timeout."""


@dataclass
class _Item:
    texts: list[str]
    future: asyncio.Future[tuple[list[Prediction], str]]
    loop: asyncio.AbstractEventLoop
    enqueued: float
    deadline: float


#: Called after each model call with (number of texts, number of requests, seconds the call took).
BatchObserver = Callable[[int, int, float], None]


def _resolve(fut: asyncio.Future, value: object, error: BaseException | None) -> None:
    if fut.done():  # timed out or cancelled meanwhile
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)


def _resolve_all(answers: list[tuple[asyncio.Future, object, BaseException | None]]) -> None:
    # One loop wake-up per batch (call_soon_threadsafe writes to the loop's self-pipe), not one per request.
    for fut, value, error in answers:
        _resolve(fut, value, error)


def _expire(fut: asyncio.Future, timeout: float) -> None:
    if not fut.done():
        fut.set_exception(RequestTimeout(f"no prediction within the request timeout of {timeout:g} s"))


class MicroBatcher:
    """Batches concurrent prediction requests into model calls on one worker thread.

    Args:
        predictor: the model to serve (None until loaded); swap it later with :meth:`swap`.
        max_batch_size: most texts per model call.
        window_s: how long a batch waits for more requests after its first one arrived.
        max_queue_texts: most texts waiting; beyond it requests are refused with :class:`Overloaded`.
        torch_threads: intra-op threads for the model calls.
        on_batch: optional observer of each model call (metrics).
    """

    def __init__(
        self,
        predictor: Predictor | None,
        *,
        max_batch_size: int = 64,
        window_s: float = 0.002,
        max_queue_texts: int = 1024,
        torch_threads: int = 1,
        on_batch: BatchObserver | None = None,
    ) -> None:
        self._predictor = predictor
        self.max_batch_size = max_batch_size
        self.window_s = window_s
        self.max_queue_texts = max_queue_texts
        self.torch_threads = torch_threads
        self.on_batch = on_batch
        self._queue: deque[_Item] = deque()
        self._queued_texts = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def predictor(self) -> Predictor | None:
        """The predictor the next batch will use."""
        return self._predictor

    @property
    def running(self) -> bool:
        """Whether the worker thread is started."""
        return self._thread is not None

    def swap(self, predictor: Predictor) -> Predictor | None:
        """Atomically replace the predictor; batches already running finish on the old one. Returns the old."""
        with self._cond:
            old, self._predictor = self._predictor, predictor
        return old

    @property
    def queued_texts(self) -> int:
        """Texts waiting for a model call (the queue depth)."""
        return self._queued_texts

    def start(self) -> None:
        """Start the worker thread (idempotent)."""
        if self._thread is not None:
            return
        if self._predictor is None:
            raise RuntimeError("MicroBatcher.start: no predictor to serve yet")
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="lstmtext-batcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = 30.0) -> None:
        """Refuse new requests, answer every queued one, then end the worker thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    async def predict(self, texts: Sequence[str], timeout: float) -> tuple[list[Prediction], str]:
        """Queue ``texts`` for the next batch and wait for their predictions.

        Returns:
            The predictions, in order, and the version of the model that made them.

        Raises:
            Overloaded: the queue is full or the batcher is stopping (nothing was queued).
            RequestTimeout: no answer within ``timeout`` seconds.
        """
        texts = list(texts)
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        item = _Item(texts, loop.create_future(), loop, now, now + timeout)
        with self._cond:
            if self._stopping or self._thread is None:
                raise Overloaded("the prediction worker is not running (starting up or shutting down)")
            if self._queued_texts + len(texts) > self.max_queue_texts:
                raise Overloaded(f"the prediction queue is full ({self._queued_texts} texts waiting, "
                                 f"limit max_queue_texts={self.max_queue_texts})")
            self._queue.append(item)
            self._queued_texts += len(texts)
            self._cond.notify()
        # A timer that fails the future (rather than asyncio.wait_for, which adds a second future, a callback and
        # a task switch to every request); the worker skips futures that are already done.
        timer = loop.call_later(timeout, _expire, item.future, timeout)
        try:
            return await item.future
        finally:
            timer.cancel()

    def _take_batch(self) -> tuple[list[_Item], Predictor | None] | None:
        """Block until a batch is due; pop and return it (None when stopped and drained)."""
        with self._cond:
            while not self._queue:
                if self._stopping:
                    return None
                self._cond.wait()
            # Wait for the window (from the oldest request's arrival) unless the batch is already full.
            due = self._queue[0].enqueued + self.window_s
            while self._queued_texts < self.max_batch_size and not self._stopping:
                left = due - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            batch: list[_Item] = []
            n = 0
            now = time.monotonic()
            while self._queue and (not batch or n + len(self._queue[0].texts) <= self.max_batch_size):
                item = self._queue.popleft()
                self._queued_texts -= len(item.texts)
                if item.future.done() or item.deadline <= now:
                    continue  # its caller gave up: do not spend model time on it
                batch.append(item)
                n += len(item.texts)
            return batch, self._predictor

    def _run(self) -> None:
        torch.set_num_threads(self.torch_threads)
        while True:
            taken = self._take_batch()
            if taken is None:
                return
            batch, predictor = taken
            if not batch or predictor is None:
                continue
            texts = [t for item in batch for t in item.texts]
            t0 = time.perf_counter()
            try:
                preds = predictor.predict(texts)
                error = None
            except Exception as e:  # delivered to every waiting request, which answers 500
                preds, error = [], e
            seconds = time.perf_counter() - t0
            start = 0
            by_loop: dict[asyncio.AbstractEventLoop, list] = {}
            for item in batch:
                part = (preds[start:start + len(item.texts)], predictor.version) if error is None else None
                start += len(item.texts)
                by_loop.setdefault(item.loop, []).append((item.future, part, error))
            for loop, answers in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_resolve_all, answers)
                except RuntimeError:  # that event loop is closed: nobody is waiting
                    pass
            if self.on_batch is not None:
                self.on_batch(len(texts), len(batch), seconds)
