"""ASGI responses in; the same responses with browser security headers out: a Content-Security-Policy and a ban on
framing on every HTML page, and no content sniffing and no cross-origin referrer on every response.

The seller and monitoring pages load only their own static files (no inline script or style, no third party), so
their policy allows 'self' and nothing else. Two kinds of HTML page are not ours to write that way and get a
policy of their own:

- recorded monitoring reports, which carry their own inline scripts and styles: they run sandboxed (an opaque
  origin: no access to the server's pages, API or cookies) and may load nothing from anywhere;
- the interactive API docs (off unless `serve.expose_docs`): Swagger UI and ReDoc load from this server too, but
  FastAPI starts Swagger UI with an inline script and ReDoc styles itself inline, so the docs pages may run inline
  script and style; they load nothing from another host.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
REPORT_POLICY = (
    "sandbox allow-scripts allow-popups; default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; font-src 'self'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
REPORTS_PREFIX = "/monitoring/reports/"
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
EVERY_RESPONSE = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)


def policy_for(path: str) -> str:
    """The Content-Security-Policy of the HTML page at `path`."""
    if path.startswith(REPORTS_PREFIX):
        return REPORT_POLICY
    if path in DOCS_PATHS:
        return DOCS_POLICY
    return PAGE_POLICY


class SecurityHeaders:
    """Add the security headers to every response (the page policy only to HTML); headers the app set stay."""

    def __init__(self, app: ASGIApp) -> None:
        """Wrap an ASGI app."""
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request through; add the headers to the response's start message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                added = list(EVERY_RESPONSE)
                content_type = {k.lower(): v for k, v in headers}.get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    added += [
                        (b"content-security-policy", policy_for(path).encode()),
                        (b"x-frame-options", b"DENY"),
                    ]
                headers += [(name, value) for name, value in added if name not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
