"""An Authorization header, a scope's token and its wrong-token limit in; nothing or the refusing HTTP error out."""

from __future__ import annotations

import pytest
from fastapi import HTTPException

from pricewise.serving import bearer
from pricewise.serving.throttle import ClientRateLimit

TOKEN = "right-token"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _status(authorization: str | None, failures: ClientRateLimit, client: str = "10.0.0.9") -> int:
    try:
        bearer.require(authorization, TOKEN, "wrong token", failures=failures, client=client)
    except HTTPException as exc:
        return exc.status_code
    return 200


def test_the_sixth_wrong_token_in_a_minute_is_refused_and_then_the_right_one_too_until_the_minute_ends() -> (
    None
):
    clock = Clock()
    failures = ClientRateLimit(5, clock=clock, what="wrong admin tokens")
    assert _status(f"Bearer {TOKEN}", failures) == 200
    assert [_status(f"Bearer guess-{i}", failures) for i in range(5)] == [403] * 5
    assert _status("Bearer guess-6", failures) == 429
    assert _status(f"Bearer {TOKEN}", failures) == 429, (
        "over the limit no guess is answered, not even a right one"
    )
    assert _status(f"Bearer {TOKEN}", failures, client="10.0.0.10") == 200, "other clients are not refused"
    clock.now += 60.5
    assert _status(f"Bearer {TOKEN}", failures) == 200


def test_requests_without_a_token_are_not_counted_as_guesses() -> None:
    failures = ClientRateLimit(2, clock=Clock())
    assert [_status(None, failures) for _ in range(5)] == [401] * 5
    assert _status("Basic abc", failures) == 401
    assert _status(f"Bearer {TOKEN}", failures) == 200


def test_a_scope_without_a_token_is_404_before_any_limit() -> None:
    with pytest.raises(HTTPException) as off:
        bearer.require(f"Bearer {TOKEN}", None, "wrong token", failures=ClientRateLimit(1))
    assert off.value.status_code == 404
