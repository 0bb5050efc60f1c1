"""How `finsentry api` serves the app: uvicorn's h11 protocol with limits on what a client may hold.

uvicorn bounds the request line and headers that arrive in pieces (`h11_max_incomplete_event_size`; the
body limit checks whole ones) and the idle time between requests, but not how long a client may take to
send a request's headers: a client that trickles a byte now and then (slowloris) holds its connection
for ever. `GuardedH11Protocol` closes a connection whose next request's headers are not in within
`HEADER_TIMEOUT_S` of the connection or of the answer before. Slow bodies are cut off by the body limit's
own timeout (api/middleware.py).
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

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():  # kept alive: the next request's headers are timed too
            self._header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._headers_too_slow)

    def handle_events(self) -> None:
        super().handle_events()
        waiting = self.cycle is None or self.cycle.response_complete
        if not waiting and self._header_timer is not None:  # the request line and headers are in
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        waiting = self.cycle is None or self.cycle.response_complete
        if waiting and not self.transport.is_closing():
            self.transport.close()


SERVER_LIMITS: dict[str, Any] = {
    "http": GuardedH11Protocol,
    "h11_max_incomplete_event_size": 16 * 1024,  # request line and headers together
    "limit_concurrency": 200,  # more connections at once get 503 rather than memory
    "timeout_keep_alive": 5,
    "server_header": False,
    # uvicorn would believe X-Forwarded-For from any local client; the app wraps itself in the same
    # middleware, believing only FINSENTRY_TRUSTED_PROXIES (api/app.py: FinsentryAPI).
    "proxy_headers": False,
}
