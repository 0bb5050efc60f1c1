"""A throwaway PostgreSQL cluster on 127.0.0.1 (Debian's binaries: initdb + postgres)."""

from __future__ import annotations

import glob
import os
import pwd
import subprocess
from pathlib import Path

from finsentry.services.process import ServerProcess, ServiceError, free_port


def _bin(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if not candidates:
        raise ServiceError(f"PostgreSQL's {name} not found; `apt-get install postgresql` (bootstrap does it)")
    return candidates[0]


class PostgresServer:
    """initdb refuses to run as root, so as root the cluster belongs to the `postgres` system user."""

    def __init__(self, data_dir: Path, port: int = 0):
        self.data_dir = data_dir
        self.port = port or free_port()
        self._process: ServerProcess | None = None
        self._user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://finsentry@127.0.0.1:{self.port}/finsentry"

    def _as_user(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", self._user, "--", *argv] if self._user else argv

    def start(self, timeout: float = 60.0) -> None:
        pgdata = self.data_dir / "pgdata"
        if not (pgdata / "PG_VERSION").is_file():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if self._user:
                entry = pwd.getpwnam(self._user)
                os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            subprocess.run(  # noqa: S603 - a fixed argv of our own tools, no shell
                self._as_user(
                    [
                        _bin("initdb"),
                        "-D",
                        str(pgdata),
                        "-U",
                        "finsentry",
                        "--auth=trust",
                        "-E",
                        "UTF8",
                        "--no-sync",
                    ]
                ),
                check=True,
                capture_output=True,
            )
        argv = self._as_user(
            [
                _bin("postgres"),
                "-D",
                str(pgdata),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self.data_dir),
                "-c",
                "fsync=off",
            ]
        )
        self._process = ServerProcess("postgres", argv, self.port, self.data_dir / "postgres.log")
        self._process.start(timeout)
        subprocess.run(  # noqa: S603 - a fixed argv of our own tools, no shell
            [
                _bin("psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "finsentry",
                "-d",
                "postgres",
                "-c",
                "CREATE DATABASE finsentry",
            ],
            capture_output=True,
        )

    def stop(self) -> None:
        """A fast shutdown by pg_ctl: as root the server runs under runuser, which passes no signal on."""
        if self._process is None:
            return
        subprocess.run(  # noqa: S603 - a fixed argv of our own tools, no shell
            self._as_user([_bin("pg_ctl"), "stop", "-D", str(self.data_dir / "pgdata"), "-m", "fast", "-w"]),
            capture_output=True,
        )
        self._process.stop()
