"""Redis on 127.0.0.1 from the machine's redis-server (Debian's package)."""

from __future__ import annotations

import shutil
from pathlib import Path

from finsentry.services.process import ServerProcess, ServiceError, free_port


class RedisServer:
    def __init__(self, data_dir: Path, port: int = 0, persist: bool = False):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.persist = persist
        self._process: ServerProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        if self._process is None or self._process.process is None:
            raise ServiceError("redis is not running")
        return self._process.process.pid

    def start(self, timeout: float = 30.0) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise ServiceError("redis-server not found; `apt-get install redis-server` (bootstrap does it)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
        ]
        argv += ["--appendonly", "yes"] if self.persist else ["--save", "", "--appendonly", "no"]
        self._process = ServerProcess("redis", argv, self.port, self.data_dir / "redis.log")
        self._process.start(timeout)

    def stop(self) -> None:
        if self._process:
            self._process.stop()
