"""Items submitted by concurrent requests in, one call of a batch function per group of waiting items out.

Pricing one listing costs little more than pricing several (much of the cost is per call), and a SQLite commit
costs one fsync however many rows it holds. So concurrent requests hand their work to one place that takes
everything waiting at that moment and processes it in one call. Nothing waits for a batch to fill: a lone
request is processed at once, and batches grow only when requests arrive while the previous call runs, which
is exactly when batching pays.

Two flavours:

- `LoopBatcher` runs on the event loop itself, for short CPU work (pricing one listing takes well under a
  millisecond). Requests whose bodies arrived in the same turn of the loop share one call, and no thread
  hand-off is paid: with the GIL a thread would not run the work any sooner.
- `MicroBatcher` runs in its own thread, for blocking I/O such as a commit with fsync, which must not stall
  the event loop. Threads call `submit`; coroutines await `submit_async`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

# Raised when a future was already cancelled: its result is simply dropped.
_SETTLED = (asyncio.InvalidStateError, concurrent.futures.InvalidStateError)

T = TypeVar("T")
R = TypeVar("R")


class BatcherStoppedError(RuntimeError):
    """The batcher was stopped before the item was processed."""


def _settle(
    futures: Sequence[Future[R] | asyncio.Future[R]],
    name: str,
    process: Callable[[list[T]], list[R]],
    items: list[T],
) -> None:
    """Give each future its result of one batch call, or the call's exception (also for a wrong number of
    results, which would otherwise hand results to the wrong requests)."""
    try:
        results = process(items)
    except Exception as exc:  # noqa: BLE001 - handed to every waiting request, which reports it
        _fail(futures, exc)
        return
    if len(results) != len(futures):
        _fail(futures, RuntimeError(f"{name}: {len(results)} results for {len(futures)} items"))
        return
    for future, result in zip(futures, results, strict=True):
        with contextlib.suppress(*_SETTLED):  # a waiting request may have been cancelled
            future.set_result(result)


def _fail(futures: Sequence[Future[R] | asyncio.Future[R]], error: Exception) -> None:
    for future in futures:
        with contextlib.suppress(*_SETTLED):
            future.set_exception(error)


class _Batcher(Generic[T, R]):
    """What both batchers hold: the batch function, the batch size and a name."""

    def __init__(self, process: Callable[[list[T]], list[R]], max_batch: int, name: str) -> None:
        """Set up a batcher.

        Args:
            process: Maps a list of items to one result per item, in order. If it raises, every item of that
                call gets the exception.
            max_batch: Most items in one call.
            name: Shown in errors (and as the thread name of a MicroBatcher).
        """
        self._process = process
        self._max_batch = max_batch
        self._name = name


class LoopBatcher(_Batcher[T, R]):
    """Batches work submitted by coroutines and runs it on the event loop, once per turn of the loop.

    It needs no start or stop: nothing runs between turns of the loop.
    """

    def __init__(self, process: Callable[[list[T]], list[R]], max_batch: int, name: str) -> None:
        """See `_Batcher`."""
        super().__init__(process, max_batch, name)
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []

    def submit(self, item: T) -> asyncio.Future[R]:
        """Queue an item; the returned future resolves at the next turn of the running loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._run)
        self._waiting.append((item, future))
        return future

    def _run(self) -> None:
        waiting, self._waiting = self._waiting, []
        for start in range(0, len(waiting), self._max_batch):
            chunk = waiting[start : start + self._max_batch]
            _settle([future for _, future in chunk], self._name, self._process, [item for item, _ in chunk])


class MicroBatcher(_Batcher[T, R]):
    """A worker thread that applies `process` to all items waiting, in submission order."""

    def __init__(self, process: Callable[[list[T]], list[R]], max_batch: int, name: str) -> None:
        """Create a stopped batcher (see `_Batcher`); call `start`."""
        super().__init__(process, max_batch, name)
        self._queue: queue.SimpleQueue[tuple[T, Future[R]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Process what is queued, then stop the worker thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def submit(self, item: T) -> R:
        """Queue an item and wait for its result (re-raising the batch's exception, if any).

        Raises:
            BatcherStoppedError: The batcher is not running.
        """
        if self._thread is None:
            raise BatcherStoppedError(f"{self._name} is not running")
        future: Future[R] = Future()
        self._queue.put((item, future))
        return future.result()

    async def submit_async(self, item: T) -> R:
        """`submit` for a coroutine: the event loop keeps serving while the item waits for its batch.

        Raises:
            BatcherStoppedError: The batcher is not running.
        """
        if self._thread is None:
            raise BatcherStoppedError(f"{self._name} is not running")
        future: Future[R] = Future()
        future.set_running_or_notify_cancel()  # the work is done even if the awaiting request is cancelled
        self._queue.put((item, future))
        return await asyncio.wrap_future(future)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    waiting = self._queue.get_nowait()
                except queue.Empty:
                    break
                if waiting is None:
                    stopping = True
                    break
                batch.append(waiting)
            self._call(batch)

    def _call(self, batch: list[tuple[T, Future[R]]]) -> None:
        _settle([future for _, future in batch], self._name, self._process, [item for item, _ in batch])
