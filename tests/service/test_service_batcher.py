"""MicroBatcher: concurrent requests share model calls, answers go to the right caller, bounded queue, timeouts."""

from __future__ import annotations

import asyncio
import time

import pytest
from svc_tiny import assert_same_predictions, tiny_predictor

from lstmtext.service.batcher import MicroBatcher, Overloaded, RequestTimeout

TEXTS = [f"the {a} film was {b}" for a in ("good", "bad", "long", "short") for b in ("fun", "dull", "sad", "great")]


def _batcher(predictor=None, **kw):
    seen: list[tuple[int, int]] = []
    b = MicroBatcher(predictor or tiny_predictor(), on_batch=lambda n, r, s: seen.append((n, r)), **kw)
    return b, seen


def test_concurrent_requests_are_batched_and_routed():
    b, seen = _batcher(max_batch_size=64, window_s=0.05)
    b.start()
    try:
        async def main():
            return await asyncio.gather(*(b.predict([t], timeout=10) for t in TEXTS))

        results = asyncio.run(main())
    finally:
        b.stop()
    want = b.predictor.predict(TEXTS)
    assert_same_predictions([r[0][0] for r in results], want)  # each caller got its own text's prediction
    assert all(r[1] == "tiny-0" for r in results)
    assert sum(n for n, _ in seen) == len(TEXTS)
    assert max(n for n, _ in seen) >= len(TEXTS) // 2  # requests were grouped into few model calls
    assert len(seen) < len(TEXTS) // 2


def test_batch_never_exceeds_max_batch_size():
    b, seen = _batcher(max_batch_size=5, window_s=0.05)
    b.start()
    try:
        async def main():
            return await asyncio.gather(*(b.predict(TEXTS[i:i + 2], timeout=10) for i in range(0, 16, 2)))

        results = asyncio.run(main())
    finally:
        b.stop()
    assert_same_predictions([p for r in results for p in r[0]], b.predictor.predict(TEXTS))
    assert max(n for n, _ in seen) <= 5


def test_full_queue_refuses_at_once():
    b, _ = _batcher(tiny_predictor(delay_s=0.3), max_batch_size=2, window_s=0.0, max_queue_texts=4)
    b.start()
    try:
        async def main():
            first = [asyncio.create_task(b.predict([t], timeout=10)) for t in TEXTS[:2]]
            await asyncio.sleep(0.05)  # the worker took these 2 texts and is busy with them
            first += [asyncio.create_task(b.predict([t], timeout=10)) for t in TEXTS[2:6]]
            await asyncio.sleep(0.01)  # 4 texts wait: the queue is full
            t0 = time.perf_counter()
            with pytest.raises(Overloaded, match="max_queue_texts=4"):
                await b.predict(["one more"], timeout=10)
            refused_in = time.perf_counter() - t0
            return refused_in, await asyncio.gather(*first)

        refused_in, accepted = asyncio.run(main())
    finally:
        b.stop()
    assert refused_in < 0.010
    assert len(accepted) == 6 and all(len(r[0]) == 1 for r in accepted)  # accepted requests still answered
    assert b.queued_texts == 0


def test_timeout_and_expired_requests_are_skipped():
    b, seen = _batcher(tiny_predictor(delay_s=0.3), max_batch_size=1, window_s=0.0)
    b.start()
    try:
        async def main():
            slow = asyncio.create_task(b.predict(["first"], timeout=10))
            await asyncio.sleep(0.05)
            with pytest.raises(RequestTimeout, match="request timeout of 0.1 s"):
                await b.predict(["second"], timeout=0.1)
            return await slow

        first = asyncio.run(main())
        time.sleep(0.4)
    finally:
        b.stop()
    assert len(first[0]) == 1
    assert seen == [(1, 1)]  # the timed-out text never reached the model


def test_stop_answers_queued_requests_then_refuses():
    b, _ = _batcher(tiny_predictor(delay_s=0.05), max_batch_size=2, window_s=0.0)
    b.start()

    async def main():
        tasks = [asyncio.create_task(b.predict([t], timeout=10)) for t in TEXTS[:8]]
        await asyncio.sleep(0.01)
        await asyncio.to_thread(b.stop)
        done = await asyncio.gather(*tasks)
        with pytest.raises(Overloaded, match="not running"):
            await b.predict(["late"], timeout=1)
        return done

    done = asyncio.run(main())
    assert len(done) == 8 and all(len(r[0]) == 1 for r in done)


def test_model_error_reaches_every_caller_of_the_batch():
    class Broken:
        version = "broken"

        def predict(self, texts):
            raise ValueError("boom")

    b = MicroBatcher(Broken(), max_batch_size=8, window_s=0.02)  # type: ignore[arg-type]
    b.start()
    try:
        async def main():
            return await asyncio.gather(*(b.predict([t], timeout=5) for t in TEXTS[:3]), return_exceptions=True)

        out = asyncio.run(main())
    finally:
        b.stop()
    assert all(isinstance(e, ValueError) and str(e) == "boom" for e in out)


def test_swap_changes_the_model_of_later_batches():
    b, _ = _batcher(max_batch_size=4, window_s=0.0)
    b.start()
    try:
        before = asyncio.run(b.predict(["good fun"], timeout=5))
        old = b.swap(tiny_predictor(seed=1))
        after = asyncio.run(b.predict(["good fun"], timeout=5))
    finally:
        b.stop()
    assert old.version == "tiny-0" and before[1] == "tiny-0" and after[1] == "tiny-1"
    assert before[0] != after[0]
