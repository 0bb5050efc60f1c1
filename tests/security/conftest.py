"""The attacks of issue 27 against the real thing: `finsentry api` as its own process on a loopback port,
its database on SQLite, accounts made beforehand. No Kafka or Redis: the API needs neither."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from accounts import Accounts
from finsentry.services.process import free_port, port_open, terminate
from foundation.db import open_database
from tests.streams.harness import wait_until

PASSWORD = "a long password for the tests"
ACCOUNTS = {"ana": "analyst", "adm": "admin", "vic": "viewer"}


@dataclass
class ApiServer:
    base: str
    process: subprocess.Popen[bytes]
    engine: Engine
    tmpdir: Path  # the server's TMPDIR: a spooled upload would show up here
    log: Path

    def rss_bytes(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS line")

    def open_temp_files(self) -> list[str]:
        """Files the server holds open under its TMPDIR (unlinked temporary files included), but SQLite's
        own scratch files of a large transaction (etilqs_*), which hold no request body."""
        found = []
        for fd in Path(f"/proc/{self.process.pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed while we looked
            if target.startswith(str(self.tmpdir)) and not Path(target).name.startswith("etilqs_"):
                found.append(target)
        return found

    def token(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {Accounts(self.engine).create_token(name, 'security tests')[1]}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=30)


def start_api(home: Path, **settings: str) -> ApiServer:
    database = f"sqlite:///{home / 'finsentry.db'}"
    engine = open_database(database)
    accounts = Accounts(engine)
    for name, role in ACCOUNTS.items():
        if accounts.get(name) is None:
            accounts.add(name, role, PASSWORD)
    port = free_port()
    tmpdir = home / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    log = home / "api.log"
    env = {
        **os.environ,
        "TMPDIR": str(tmpdir),
        "FINSENTRY_HOME": str(home),
        "FINSENTRY_DATABASE_URL": database,
        "FINSENTRY_API_PORT": str(port),
        **{f"FINSENTRY_{k.upper()}": v for k, v in settings.items()},
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "finsentry", "api"], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    server = ApiServer(f"http://127.0.0.1:{port}", process, engine, tmpdir, log)
    try:
        wait_until(lambda: port_open(port) or process.poll() is not None, 90, "the API to listen")
    except AssertionError:
        terminate(process, 10)
        raise
    if process.poll() is not None:
        raise AssertionError(f"the API exited: {log.read_text()[-2000:]}")
    return server


@pytest.fixture(scope="module")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    server = start_api(tmp_path_factory.mktemp("api"), api_import_limit_bytes=str(4 * 2**20))
    yield server
    terminate(server.process, 30)
