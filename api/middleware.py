"""What every request passes before any route: a body limit and the browser's security headers.

Both are plain ASGI wrappers around the whole application (outside Starlette's error handler), so a 413,
a 500 and a static file get the same headers as a page, and an oversized body is refused while it
streams in: a declared `Content-Length` over the limit is answered before a byte of it is read, and a
chunked or lying body is cut off the moment it passes the limit, before any parser or disk sees it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# No inline script or handler may run, nothing may frame the console, forms post only here. Images may
# be data: URIs (the API docs' icons); nothing else may come from anywhere but this origin.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),  # frame-ancestors for browsers that predate CSP level 2
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every HTTP response, and HSTS to those served over TLS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = (*SECURITY_HEADERS, HSTS) if scope.get("scheme") == "https" else SECURITY_HEADERS
        names = {name for name, _ in extra}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = kept + list(extra)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RefusedBody(HTTPException):
    """A request body refused while it streams in; the API answers in its error shape with `error`."""

    error = "refused_body"


class BodyTooLarge(RefusedBody):
    error = "body_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit:,} bytes")


class BodyTooSlow(RefusedBody):
    error = "body_too_slow"

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body did not arrive within {seconds:g} seconds")


def _problem(error: str, message: str) -> bytes:
    return json.dumps({"error": error, "message": message, "field": None}).encode()


@dataclass
class BodyLimit:
    """Refuses bodies over `default` bytes, or over the limit `routes` gives a path prefix, bodies that
    take longer than `timeout_s` to arrive, and a request line and headers over `max_head` bytes (the
    server's own bound applies only to what arrives in pieces)."""

    app: ASGIApp
    default: int
    routes: dict[str, int] = field(default_factory=dict)
    timeout_s: float = 30.0
    max_head: int = 16 * 1024

    def limit_for(self, path: str) -> int:
        matching = [prefix for prefix in self.routes if path.startswith(prefix)]
        return self.routes[max(matching, key=len)] if matching else self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        line = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        head = line + sum(len(k) + len(v) for k, v in scope.get("headers", []))
        if head > self.max_head:
            message = f"the request line and headers are over {self.max_head:,} bytes"
            await _refuse(send, 431, _problem("headers_too_large", message))
            return
        limit = self.limit_for(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            refused = BodyTooLarge(limit)
            await _refuse(send, 413, _problem(refused.error, refused.detail))
            return
        received, complete = 0, False
        deadline = asyncio.get_running_loop().time() + self.timeout_s

        async def counted_receive() -> Message:
            nonlocal received, complete
            if complete:  # after the body only a disconnect can come, whenever it comes
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), deadline - asyncio.get_running_loop().time())
            except TimeoutError:
                raise BodyTooSlow(self.timeout_s) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > limit:
                    raise BodyTooLarge(limit)  # the app's exception handler turns it into the 413
            return message

        await self.app(scope, counted_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before we see it
    return None


async def _refuse(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),  # the unread body must not be taken for the next request
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
