"""Tests of the micro-batcher: calls never overlap, waiting items share a call, each gets its own result."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pricewise.serving.batching import BatcherStoppedError, MicroBatcher


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
