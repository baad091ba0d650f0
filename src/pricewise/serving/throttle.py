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
    """At most `per_minute` requests per client in any sliding minute, per worker process.

    Each worker keeps its own counts (with N workers a client may get up to N times the allowance), which is
    enough to stop a flood from one address without shared state between processes.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        """Allow `per_minute` requests per client in any 60-second window."""
        self.per_minute = per_minute
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> float | None:
        """Count a request of `client`.

        Returns:
            None when it is allowed, else the seconds until it would be.
        """
        now = self._clock()
        with self._lock:
            times = self._seen.pop(client, None) or deque()
            while times and times[0] <= now - WINDOW_SECONDS:
                times.popleft()
            self._seen[client] = times  # re-inserted last: dict order is recency order
            if len(times) >= self.per_minute:
                return max(times[0] + WINDOW_SECONDS - now, 0.0)
            times.append(now)
            while len(self._seen) > MAX_CLIENTS:
                self._seen.pop(next(iter(self._seen)))
            return None

    def check(self, client: str) -> None:
        """Raise 429 with Retry-After when `client` is over its allowance.

        Raises:
            HTTPException: 429 Too Many Requests.
        """
        wait = self.allow(client)
        if wait is not None:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"too many feedback requests: at most {self.per_minute} per minute",
                headers={"Retry-After": str(max(int(wait) + 1, 1))},
            )
