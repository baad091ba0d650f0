"""Bytes from a client's TCP connection in; uvicorn's HTTP protocol with bounded waits out: a connection that sends
no request, or a request head that does not arrive in time or grows too large, is answered (408, 431) or closed.

uvicorn arms its keep-alive timeout only after a response, and bounds neither the time nor the size of a request
head, so a client that connects and stays silent, or sends its headers a byte at a time, holds a connection for
ever. The body of a request is bounded by the body-read deadline of `middleware.BodySizeLimit`, which can still
answer 408; a body that keeps trickling in after the response was sent is cut off here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger(__name__)


def _plain_response(status: bytes, text: str) -> bytes:
    body = text.encode()
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: text/plain; charset=utf-8\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body
    )


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines for an idle connection, a request head and a leftover body.

    uvicorn builds one per connection; the limits come in as keyword arguments bound with `functools.partial`
    (see `server.run`), so they travel to every worker process with uvicorn's config.
    """

    def __init__(
        self,
        *args: Any,
        header_timeout: float = 10.0,
        max_header_bytes: int = 32_768,
        body_timeout: float = 30.0,
        **kwargs: Any,
    ) -> None:
        """Wrap uvicorn's protocol.

        Args:
            args: uvicorn's positional arguments.
            header_timeout: Seconds from a request's first byte to the end of its head (else 408 and close).
            max_header_bytes: Largest request head (request line and headers); a larger one gets 431.
            body_timeout: Seconds a request body may still take to arrive after its response was sent.
            kwargs: uvicorn's keyword arguments (config, server_state, ...).
        """
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.max_header_bytes = max_header_bytes
        self.body_timeout = body_timeout
        self._deadline: asyncio.TimerHandle | None = None
        self._in_head = False
        self._head_bytes = 0
        self._head_too_large = False

    def _arm(self, seconds: float, on_expiry: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, on_expiry)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _refuse(self, status: bytes, text: str) -> None:
        self._disarm()
        if not self.transport.is_closing():
            logger.info(
                "connection closed: %s",
                text,
                extra={"client.address": self.client[0] if self.client else None, "event.reason": text},
            )
            self.transport.write(_plain_response(status, text))
            self.transport.close()

    def _idle_expired(self) -> None:
        # Nothing of a request arrived: there is no one to answer, just close (as the keep-alive timeout does).
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def _head_expired(self) -> None:
        self._deadline = None
        self._refuse(b"408 Request Timeout", f"request head not received within {self.header_timeout:g} s")

    def _leftover_body_expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start counting the idle time before the first request (uvicorn only counts it between requests)."""
        super().connection_made(transport)
        self._arm(self.timeout_keep_alive, self._idle_expired)

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Feed the parser; refuse a head that has grown past `max_header_bytes`."""
        if self._head_too_large:
            return
        super().data_received(data)
        if self._head_too_large:
            self._refuse(
                b"431 Request Header Fields Too Large", f"request head over {self.max_header_bytes} bytes"
            )

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_header_bytes:
            self._head_too_large = True

    def on_message_begin(self) -> None:
        """A request starts: its head must be complete within `header_timeout`."""
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._arm(self.header_timeout, self._head_expired)

    def on_url(self, url: bytes) -> None:
        """Count the request target towards the head's size."""
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count a header towards the head's size (kept only while the head is within it)."""
        self._count_head(len(name) + len(value) + 4)
        if not self._head_too_large:
            super().on_header(name, value)

    def on_body(self, body: bytes) -> None:
        """Pass the body on, unless the head was refused."""
        if not self._head_too_large:
            super().on_body(body)

    def on_headers_complete(self) -> None:
        """The head is in: the app takes over (the body deadline is the middleware's)."""
        self._in_head = False
        self._disarm()
        if self._head_too_large:
            return
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        """After a response: a body still arriving gets `body_timeout` to finish, else the connection closes."""
        super().on_response_complete()
        cycle = self.cycle
        if cycle is not None and cycle.more_body and not self.transport.is_closing():
            self._unset_keepalive_if_required()
            self._arm(self.body_timeout, self._leftover_body_expired)

    def on_message_complete(self) -> None:
        """A body finished after its response: the usual keep-alive wait follows."""
        if self._head_too_large:
            return
        leftover = self.cycle is not None and self.cycle.response_complete and self.cycle.more_body
        super().on_message_complete()
        if leftover:
            self._disarm()
            if not self.transport.is_closing():
                self.timeout_keep_alive_task = self.loop.call_later(
                    self.timeout_keep_alive, self.timeout_keep_alive_handler
                )
