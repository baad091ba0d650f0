"""ASGI requests in, bounded bodies (413 past the size limit, 408 past the read deadline) and one ECS access-log
line plus metrics per request out (a client that left before any response is counted as 499, not as a 5xx)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pricewise.serving.observability import CLIENT_CLOSED, Metrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_logger = logging.getLogger("pricewise.serving.access")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def _send_json(send: Send, status: int, payload: dict[str, Any], close: bool = False) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:  # the rest of the request may still be on its way: the connection cannot carry another one
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodySizeLimit:
    """Reject bodies over `max_bytes` with 413 before any parsing, whether Content-Length is sent or not, and
    bodies that do not arrive within `timeout_seconds` with 408 (a slow upload holds no worker for ever)."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_seconds: float = 30.0) -> None:
        """Wrap an ASGI app.

        Args:
            app: The wrapped application.
            max_bytes: Largest request body accepted.
            timeout_seconds: Longest time the whole body may take to arrive, from the end of the headers.
        """
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Buffer the body up to the limit, then hand it to the app in one piece."""
        if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_json(send, 400, {"detail": "invalid Content-Length header"})
                return
            if int(declared) > self.max_bytes:
                await _send_json(send, 413, {"detail": f"request body over {self.max_bytes} bytes"})
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        deadline = asyncio.get_running_loop().time() + self.timeout_seconds
        while more:
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                detail = f"request body not received within {self.timeout_seconds:g} s"
                await _send_json(send, 408, {"detail": detail}, close=True)
                return
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _send_json(send, 413, {"detail": f"request body over {self.max_bytes} bytes"})
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RequestTelemetry:
    """Give each request a trace id, and record its status and duration as a metric and an ECS log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        """Wrap an ASGI app.

        Args:
            app: The wrapped application.
            metrics: Where request counts and latencies go.
        """
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Time the request, tag it with a trace id, count and log it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter_ns()
        headers = dict(scope.get("headers", []))
        match = _TRACEPARENT.match(headers.get(b"traceparent", b"").decode("latin-1"))
        trace_id = match.group(1) if match else uuid.uuid4().hex
        scope.setdefault("state", {})["trace_id"] = trace_id
        status = 500
        responded = client_left = False

        async def receive_watching() -> Message:
            nonlocal client_left
            message = await receive()
            if message["type"] == "http.disconnect":
                client_left = True
            return message

        async def send_with_trace(message: Message) -> None:
            nonlocal status, responded
            if message["type"] == "http.response.start":
                status = int(message["status"])
                responded = True
                message["headers"] = [*message.get("headers", []), (b"x-trace-id", trace_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive_watching, send_with_trace)
            if not responded and client_left:
                status = CLIENT_CLOSED  # nothing was sent, and nothing went wrong on our side
        finally:
            duration = time.perf_counter_ns() - started
            route = scope.get("route")
            # The route template, never the raw path: fuzzed paths must not create new metric series.
            route_name = str(getattr(route, "path", "unmatched"))
            self.metrics.observe(route_name, str(scope.get("method", "")), status, duration / 1e9)
            access_logger.info(
                "%s %s %s",
                scope.get("method"),
                scope.get("path"),
                status,
                extra={
                    "event.duration": duration,
                    "trace.id": trace_id,
                    "http.request.method": scope.get("method"),
                    "url.path": scope.get("path"),
                    "http.response.status_code": status,
                    "event.dataset": "pricewise.access",
                    **(
                        {"event.reason": "client closed the connection before a response"}
                        if status == CLIENT_CLOSED
                        else {}
                    ),
                },
            )
