"""Settings in; the admin token the admin routes accept (none, so no admin routes, when it is blank) out."""

from __future__ import annotations

import pytest

from pricewise.serving.routes import admin_token
from pricewise.settings import Settings


@pytest.mark.parametrize(
    ("value", "expected"), [(None, None), ("", None), ("  ", None), ("s3cret", "s3cret")]
)
def test_a_blank_admin_token_turns_admin_off(value: str | None, expected: str | None) -> None:
    assert admin_token(Settings(admin_token=value)) == expected
