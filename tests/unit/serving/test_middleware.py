"""ASGI requests in chunks, with or without Content-Length, in; the body passed whole, or 413/400, out."""

from __future__ import annotations

import asyncio
from typing import Any

from pricewise.serving.middleware import BodySizeLimit


def _run_limit(body_chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        seen["body"] = message["body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(body_chunks) - 1}
        for i, chunk in enumerate(body_chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "headers": headers}
    asyncio.run(BodySizeLimit(app, max_bytes=10)(scope, receive, send))
    return int(sent[0]["status"]), seen.get("body", b"")


def test_body_limit_passes_small_bodies_whole_and_stops_large_ones() -> None:
    assert _run_limit([b"12345", b"678"], []) == (200, b"12345678")
    assert _run_limit([b"123456", b"789012"], [])[0] == 413
    assert _run_limit([b"1"], [(b"content-length", b"11")])[0] == 413
    assert _run_limit([b"1"], [(b"content-length", b"x")])[0] == 400
