"""A local HTTP receiver that speaks Slack's incoming-webhook protocol, for the demo and the tests.

It answers like Slack: 200 with body `ok`; 400 `invalid_payload` without `text` or `blocks`; 404
`no_service` on an unknown path. A script of misbehaviours can be queued: 429 with Retry-After,
a 5xx, or a hang longer than the client's timeout. What it accepted is kept in order.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from finsentry.services.process import free_port


@dataclass(frozen=True)
class Misbehaviour:
    status: int = 200  # 429, 500, 503 ... or 0 to hang
    retry_after: int | None = None
    hang_s: float = 0.0  # with status 0, hangs up after it; otherwise answers after it


class SlackStandIn:
    def __init__(self, path: str = "/services/T000/B000/XXXX") -> None:
        self.path = path
        self.port = free_port()
        self.accepted: list[dict[str, Any]] = []
        self.accepted_at: list[float] = []
        self.requests = 0
        self.connections = 0
        self.script: deque[Misbehaviour] = deque()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def __enter__(self) -> SlackStandIn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def misbehave(self, *steps: Misbehaviour) -> None:
        with self._lock:
            self.script.extend(steps)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # as Slack: a connection stays open for the next message
            disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart

            def setup(self) -> None:
                super().setup()
                with standin._lock:
                    standin.connections += 1

            def log_message(self, *_: object) -> None:  # quiet: the tests and the demo print what matters
                return

            def _answer(self, status: int, body: str, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain")
                data = body.encode()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                with standin._lock:
                    standin.requests += 1
                    step = standin.script.popleft() if standin.script else Misbehaviour()
                if self.path != standin.path:
                    return self._answer(404, "no_service")
                if step.status == 0:
                    time.sleep(step.hang_s)
                    return None  # the client has given up by now; nothing is accepted
                time.sleep(step.hang_s)  # a slow answer, but an answer
                if step.status == 429:
                    return self._answer(429, "rate_limited", {"Retry-After": str(step.retry_after or 1)})
                if step.status >= 500:
                    return self._answer(step.status, "internal_error")
                try:
                    payload = json.loads(raw)
                except json.JSONDecodeError:
                    return self._answer(400, "invalid_payload")
                if not isinstance(payload, dict) or not (payload.get("text") or payload.get("blocks")):
                    return self._answer(400, "invalid_payload")
                with standin._lock:
                    standin.accepted.append(payload)
                    standin.accepted_at.append(time.monotonic())
                return self._answer(200, "ok")

        return Handler
