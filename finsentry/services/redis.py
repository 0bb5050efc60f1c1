"""Redis on 127.0.0.1 from the machine's redis-server (Debian's package, built with TLS).

Plain by default. With `tls` (a certificate from finsentry.services.tls) it listens on TLS only, and with
`user` the `default` user is switched off: clients must sign in as that ACL user, whose rights are
its `rules` (the windows' Lua scripts, hashes, lists and strings under its key pattern).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from finsentry.services.process import ServerProcess, ServiceError, free_port
from finsentry.services.tls import ServerCertificate

# What the worker, rule tests and backtests do: EVALSHA/SCRIPT LOAD of the window scripts, whose
# calls (SET NX EX, HINCRBY, HMGET, LPUSH, LTRIM, EXPIRE) are checked against the key pattern too.
# No KEYS, FLUSHDB, CONFIG, DEBUG and the like (@dangerous), no pub/sub channels.
WORKER_RULES = "resetchannels -@all +@read +@write +@scripting +@connection +@transaction -@dangerous"


@dataclass(frozen=True)
class RedisUser:
    name: str
    password: str = field(repr=False)
    keys: str = "fs:*"  # the key pattern: <FINSENTRY_REDIS_PREFIX>:*
    rules: str = WORKER_RULES

    def directive(self) -> str:
        return f"user {self.name} reset on >{self.password} ~{self.keys} {self.rules}"


class RedisServer:
    def __init__(
        self,
        data_dir: Path,
        port: int = 0,
        persist: bool = False,
        tls: ServerCertificate | None = None,
        user: RedisUser | None = None,
    ):
        self.data_dir = data_dir
        self.port = port or free_port()
        self.persist = persist
        self.tls = tls
        self.user = user
        self._process: ServerProcess | None = None

    @property
    def url(self) -> str:
        """rediss:// with TLS; with an ACL user, its name and password (percent-encoded) in it."""
        scheme = "rediss" if self.tls else "redis"
        sign_in = (
            f"{quote(self.user.name, safe='')}:{quote(self.user.password, safe='')}@" if self.user else ""
        )
        return f"{scheme}://{sign_in}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        if self._process is None or self._process.process is None:
            raise ServiceError("redis is not running")
        return self._process.process.pid

    def _config(self) -> Path:
        """Settings that must not show in `ps` (the ACL password) go into a file only we can read."""
        lines = [
            "bind 127.0.0.1",
            f"dir {self.data_dir}",
            "protected-mode yes",
            "daemonize no",
        ]
        if self.tls:
            lines += [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {self.tls.cert}",
                f"tls-key-file {self.tls.key}",
                f"tls-ca-cert-file {self.tls.ca_cert}",
                "tls-auth-clients no",  # clients prove who they are with the ACL user, not a certificate
            ]
        else:
            lines.append(f"port {self.port}")
        if self.user:
            lines += ["user default off", self.user.directive()]
        lines += ["appendonly yes"] if self.persist else ['save ""', "appendonly no"]
        config = self.data_dir / "redis.conf"
        config.touch(mode=0o600)
        config.write_text("\n".join(lines) + "\n")
        return config

    def start(self, timeout: float = 30.0) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise ServiceError("redis-server not found; `apt-get install redis-server` (bootstrap does it)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [binary, str(self._config())]
        self._process = ServerProcess("redis", argv, self.port, self.data_dir / "redis.log")
        self._process.start(timeout)

    def stop(self) -> None:
        if self._process:
            self._process.stop()
