"""Tests of the batchers: calls never overlap, waiting items share a call, each gets its own result."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pricewise.serving.batching import BatcherStoppedError, LoopBatcher, MicroBatcher


def test_calls_never_overlap_and_every_item_gets_its_own_result() -> None:
    active = 0
    most_active = 0
    sizes: list[int] = []
    lock = threading.Lock()

    def square(items: list[int]) -> list[int]:
        nonlocal active, most_active
        with lock:
            active += 1
            most_active = max(most_active, active)
        time.sleep(0.002)
        with lock:
            active -= 1
            sizes.append(len(items))
        return [i * i for i in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(square, max_batch=4, name="test")
    batcher.start()
    try:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(batcher.submit, range(400)))
    finally:
        batcher.stop()
    assert results == [i * i for i in range(400)]
    assert most_active == 1
    assert max(sizes) <= 4
    assert len(sizes) < 400, "items that waited were processed together"


def test_a_wrong_number_of_results_fails_the_items_of_that_call() -> None:
    def short(items: list[int]) -> list[int]:
        return items[1:]

    batcher: MicroBatcher[int, int] = MicroBatcher(short, max_batch=10, name="test")
    batcher.start()
    try:
        with pytest.raises(RuntimeError, match="0 results for 1 items"):
            batcher.submit(1)
    finally:
        batcher.stop()


def test_a_stopped_batcher_refuses_items() -> None:
    batcher: MicroBatcher[int, int] = MicroBatcher(lambda items: items, max_batch=10, name="test")
    batcher.start()
    assert batcher.submit(5) == 5
    batcher.stop()
    with pytest.raises(BatcherStoppedError):
        batcher.submit(5)


def test_loop_batcher_shares_one_call_per_loop_turn_and_keeps_order() -> None:
    calls: list[list[int]] = []

    def square(items: list[int]) -> list[int]:
        calls.append(list(items))
        return [i * i for i in items]

    async def scenario() -> tuple[list[int], int]:
        batcher: LoopBatcher[int, int] = LoopBatcher(square, max_batch=3, name="test")
        together = await asyncio.gather(*(batcher.submit(i) for i in range(7)))  # one loop turn
        alone = await batcher.submit(9)
        return list(together), alone

    together, alone = asyncio.run(scenario())
    assert together == [i * i for i in range(7)]
    assert alone == 81
    assert calls == [[0, 1, 2], [3, 4, 5], [6], [9]], "one call per max_batch items of a turn, in order"


def test_loop_batcher_hands_a_failure_to_every_item_of_the_call_and_drops_cancelled_results() -> None:
    def explode(items: list[int]) -> list[int]:
        raise ValueError(f"cannot price {items}")

    async def scenario() -> list[BaseException | int]:
        batcher: LoopBatcher[int, int] = LoopBatcher(explode, max_batch=10, name="test")
        cancelled = batcher.submit(0)
        cancelled.cancel()  # a request whose client went away: its result is dropped, not an error
        results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
        short: LoopBatcher[int, int] = LoopBatcher(lambda items: items[1:], max_batch=10, name="short")
        results += await asyncio.gather(short.submit(3), return_exceptions=True)
        return results

    first, second, mismatch = asyncio.run(scenario())
    assert isinstance(first, ValueError)
    assert "cannot price [0, 1, 2]" in str(first)
    assert isinstance(second, ValueError)
    assert isinstance(mismatch, RuntimeError)
    assert "0 results for 1 items" in str(mismatch)


def test_micro_batcher_serves_coroutines_and_finishes_work_whose_waiter_was_cancelled() -> None:
    processed: list[int] = []
    release = threading.Event()

    def slow_record(items: list[int]) -> list[int]:
        release.wait(5)
        processed.extend(items)
        return items

    batcher: MicroBatcher[int, int] = MicroBatcher(slow_record, max_batch=10, name="test")
    batcher.start()

    async def scenario() -> int:
        waiter = asyncio.ensure_future(batcher.submit_async(1))
        await asyncio.sleep(0.05)
        waiter.cancel()  # the request is gone, but what it handed over is still written
        release.set()
        return await batcher.submit_async(2)

    try:
        assert asyncio.run(scenario()) == 2
    finally:
        batcher.stop()
    assert processed == [1, 2]
    with pytest.raises(BatcherStoppedError):
        asyncio.run(batcher.submit_async(3))


def test_micro_batcher_groups_waiting_items_and_keeps_order() -> None:
    calls: list[list[int]] = []
    gate = threading.Event()

    def double(items: list[int]) -> list[int]:
        gate.wait(5)
        calls.append(items)
        return [2 * i for i in items]

    batcher: MicroBatcher[int, int] = MicroBatcher(double, max_batch=100, name="test")
    batcher.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(batcher.submit, i) for i in range(8)]
            time.sleep(0.2)  # all eight queue up behind the first call, which waits on the gate
            gate.set()
            results = [f.result(timeout=5) for f in futures]
    finally:
        batcher.stop()
    assert results == [2 * i for i in range(8)]
    assert sum(len(c) for c in calls) == 8
    assert len(calls) < 8, "waiting items were processed together"


def test_micro_batcher_hands_a_failure_to_every_item_of_the_call() -> None:
    def broken(items: list[int]) -> list[int]:
        raise ValueError("model exploded")

    batcher: MicroBatcher[int, int] = MicroBatcher(broken, max_batch=10, name="test")
    with pytest.raises(BatcherStoppedError):
        batcher.submit(1)
    batcher.start()
    try:
        with pytest.raises(ValueError, match="model exploded"):
            batcher.submit(1)
    finally:
        batcher.stop()
