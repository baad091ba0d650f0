"""A clock and a client's events in; whether the client is over its allowance in a sliding minute (and for how
long) out."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from pricewise.serving.throttle import ClientRateLimit


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_counted_events_refuse_the_client_for_the_rest_of_the_minute_and_only_that_client() -> None:
    clock = Clock()
    limit = ClientRateLimit(5, clock=clock, what="wrong admin tokens")
    for _ in range(5):
        limit.refuse_if_over("10.0.0.1")  # under the limit: nothing raised
        limit.count("10.0.0.1")
        clock.now += 1
    with pytest.raises(HTTPException) as refused:
        limit.refuse_if_over("10.0.0.1")
    assert refused.value.status_code == 429
    assert "wrong admin tokens" in refused.value.detail
    assert "5 per minute" in refused.value.detail
    assert refused.value.headers is not None
    assert int(refused.value.headers["Retry-After"]) == 56  # the first event (t=1000) ends its minute at 1060
    limit.refuse_if_over("10.0.0.2")  # another client is not affected
    clock.now = 1060.5  # the oldest event is over a minute old: one more is allowed
    limit.refuse_if_over("10.0.0.1")


def test_refuse_if_over_counts_nothing_and_allow_counts_requests() -> None:
    clock = Clock()
    limit = ClientRateLimit(2, clock=clock)
    for _ in range(10):
        limit.refuse_if_over("a")
    assert limit.wait("a") is None
    assert limit.allow("a") is None
    assert limit.allow("a") is None
    wait = limit.allow("a")
    assert wait == pytest.approx(60.0)
    clock.now += 30
    assert limit.wait("a") == pytest.approx(30.0)
