"""A configured secret and a request's Authorization header in; nothing, or the HTTP error that refuses it, out.

One check for every bearer-token scope of the API (admin, outcomes), so they answer alike: 404 when the scope is
off, 401 without a bearer token, 403 with the wrong one (compared in constant time), and, for a scope that
limits wrong tokens, 429 to a client that sent too many of them.

A client over that limit is refused whatever it sends, the right token included, until its oldest wrong token
is a minute old: otherwise the limit would still answer each guess (429 for a wrong one, 200 for the right
one) and stop nothing. Only wrong tokens count; a request without one is not a guess.
"""

from __future__ import annotations

import secrets

from fastapi import HTTPException, status
from pydantic import SecretStr

from pricewise.serving.throttle import ClientRateLimit


def configured(secret: SecretStr | None) -> str | None:
    """The token of a scope, or None when unset or blank (the scope's endpoints are off)."""
    token = secret.get_secret_value().strip() if secret else ""
    return token or None


def require(
    authorization: str | None,
    token: str | None,
    wrong: str,
    failures: ClientRateLimit | None = None,
    client: str = "unknown",
) -> None:
    """Refuse a request whose Authorization header does not carry `token`.

    Args:
        authorization: The request's Authorization header, if any.
        token: The scope's token; None means the scope is off (its router is only mounted with a token).
        wrong: The 403 detail for a wrong token.
        failures: The scope's limit on wrong tokens per client, if it has one.
        client: The client's address, which `failures` counts by.

    Raises:
        HTTPException: 404 for a scope that is off, 429 for a client over its wrong-token limit, 401 without a
            bearer token, 403 for a wrong token.
    """
    if token is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Not Found")
    if failures is not None:
        failures.refuse_if_over(client)
    if not authorization or not authorization.startswith("Bearer "):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "bearer token required", headers={"WWW-Authenticate": "Bearer"}
        )
    if not secrets.compare_digest(authorization.removeprefix("Bearer ").encode(), token.encode()):
        if failures is not None:
            failures.count(client)
        raise HTTPException(status.HTTP_403_FORBIDDEN, wrong)
