"""A local server process: started on a loopback port, waited for, stopped cleanly."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """A service that could not be installed, started or reached."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


class ServerProcess:
    """Runs `argv` with output to `log_path`; `start` returns once `port` accepts connections."""

    def __init__(
        self, name: str, argv: list[str], port: int, log_path: Path, env: dict[str, str] | None = None
    ):
        self.name = name
        self.argv = argv
        self.port = port
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 - a fixed argv of our own tools, no shell
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,  # Ctrl-C in a terminal reaches us, and we stop it in order
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            if port_open(self.port):
                log.info("service up", extra={"service": self.name, "port": self.port})
                return
            time.sleep(0.2)
        self.stop()
        raise ServiceError(
            f"{self.name} did not open port {self.port} in {timeout:.0f}s; see {self.log_path}"
        )

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        terminate(self.process, timeout)
        log.info("service stopped", extra={"service": self.name})


def terminate(process: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, then SIGKILL if it has not exited within timeout; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode
