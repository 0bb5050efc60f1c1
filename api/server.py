"""How `finsentry api` serves the app: uvicorn's h11 protocol with limits on what a client may hold.

uvicorn bounds the request line and headers that arrive in pieces (`h11_max_incomplete_event_size`; the
body limit checks whole ones) and the idle time between requests, but not how long a client may take to
send its first request's headers: a client that trickles a byte now and then (slowloris) holds its
connection for ever. `GuardedH11Protocol` closes a
connection whose request has not begun within `HEADER_TIMEOUT_S`. Slow bodies are cut off by the body
limit's own timeout (api/middleware.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0


class GuardedH11Protocol(H11Protocol):
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._headers_too_slow)

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and self._header_timer is not None:  # the request line and headers are in
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is None and not self.transport.is_closing():
            self.transport.close()


SERVER_LIMITS: dict[str, Any] = {
    "http": GuardedH11Protocol,
    "h11_max_incomplete_event_size": 16 * 1024,  # request line and headers together
    "limit_concurrency": 200,  # more connections at once get 503 rather than memory
    "timeout_keep_alive": 5,
    "server_header": False,
    # uvicorn would believe X-Forwarded-For from any local client; the app decides, from its own setting
    # FINSENTRY_TRUSTED_PROXIES (api/console.py: address_of).
    "proxy_headers": False,
}
