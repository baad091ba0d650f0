"""A client address and the clock in; whether its request fits its per-minute allowance (else 429) out."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from fastapi import HTTPException, status

WINDOW_SECONDS = 60.0
MAX_CLIENTS = 100_000  # a bound on memory: beyond it the oldest clients are forgotten


class ClientRateLimit:
    """At most `per_minute` counted events per client in any sliding minute, per worker process.

    The events are requests (`allow`, `check`) or only some outcomes of them, such as wrong tokens
    (`count` after the fact, `refuse_if_over` before). Each worker keeps its own counts (with N workers a client
    may get up to N times the allowance), which is enough to stop a flood from one address without shared state
    between processes.
    """

    def __init__(
        self,
        per_minute: int,
        clock: Callable[[], float] = time.monotonic,
        what: str = "feedback requests",
    ) -> None:
        """Allow `per_minute` events per client in any 60-second window; `what` names them in the 429."""
        self.per_minute = per_minute
        self.what = what
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        """The client's events of the last window (call with the lock held)."""
        times = self._seen.pop(client, None) or deque()
        while times and times[0] <= now - WINDOW_SECONDS:
            times.popleft()
        self._seen[client] = times  # re-inserted last: dict order is recency order
        while len(self._seen) > MAX_CLIENTS:
            self._seen.pop(next(iter(self._seen)))
        return times

    def allow(self, client: str) -> float | None:
        """Count a request of `client`, unless it is over its allowance.

        Returns:
            None when it is allowed (and counted), else the seconds until it would be.
        """
        now = self._clock()
        with self._lock:
            times = self._recent(client, now)
            if len(times) >= self.per_minute:
                return max(times[0] + WINDOW_SECONDS - now, 0.0)
            times.append(now)
            return None

    def wait(self, client: str) -> float | None:
        """Seconds until `client` is under its allowance again, or None when it is; counts nothing."""
        now = self._clock()
        with self._lock:
            times = self._recent(client, now)
            if len(times) >= self.per_minute:
                return max(times[0] + WINDOW_SECONDS - now, 0.0)
            return None

    def count(self, client: str) -> None:
        """Count one event of `client` (e.g. a wrong token), whatever its allowance."""
        now = self._clock()
        with self._lock:
            self._recent(client, now).append(now)

    def _too_many(self, wait: float) -> HTTPException:
        return HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"too many {self.what}: at most {self.per_minute} per minute",
            headers={"Retry-After": str(max(int(wait) + 1, 1))},
        )

    def check(self, client: str) -> None:
        """Count a request of `client`; raise 429 with Retry-After when it is over its allowance.

        Raises:
            HTTPException: 429 Too Many Requests.
        """
        wait = self.allow(client)
        if wait is not None:
            raise self._too_many(wait)

    def refuse_if_over(self, client: str) -> None:
        """Raise 429 with Retry-After while `client` is over its allowance; counts nothing.

        Raises:
            HTTPException: 429 Too Many Requests.
        """
        wait = self.wait(client)
        if wait is not None:
            raise self._too_many(wait)
