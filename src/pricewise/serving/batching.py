"""Items submitted from many request threads in, one call of a batch function per group of waiting items out.

Pricing one listing costs about as much as pricing ten (the cost is per call: feature hashing, the model's
fixed overhead), and a SQLite commit costs one fsync however many rows it holds. So concurrent requests hand
their work to one thread that takes everything waiting at that moment and processes it in one call. Nothing
waits for a batch to fill: a lone request is processed at once, and batches grow only when requests arrive
while the previous call runs, which is exactly when batching pays.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class BatcherStoppedError(RuntimeError):
    """The batcher was stopped before the item was processed."""


class MicroBatcher(Generic[T, R]):
    """A worker thread that applies `process` to all items waiting, in submission order."""

    def __init__(self, process: Callable[[list[T]], list[R]], max_batch: int, name: str) -> None:
        """Create a stopped batcher; call `start`.

        Args:
            process: Maps a list of items to one result per item, in order. If it raises, every item of that
                call gets the exception.
            max_batch: Most items in one call.
            name: Thread name (shows in logs and stack dumps).
        """
        self._process = process
        self._max_batch = max_batch
        self._name = name
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
        try:
            results = self._process([item for item, _ in batch])
        except Exception as exc:  # noqa: BLE001 - handed to every waiting request, which reports it
            for _, future in batch:
                future.set_exception(exc)
            return
        if len(results) != len(batch):
            mismatch = RuntimeError(f"{self._name}: {len(results)} results for {len(batch)} items")
            for _, future in batch:
                future.set_exception(mismatch)
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
