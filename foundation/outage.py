"""Riding out an outage of a dependency (Redis, the SQL database) instead of exiting on the first error.

`Outages.guard(...).call(fn)` runs `fn`; while it fails with an error that says a dependency is
unreachable, the call is retried with exponential backoff and full jitter, until it succeeds or the
outage outlasts `max_outage_s` (then `OutageTooLong`). Errors of any other kind pass through at once:
a retry cannot fix a bug. Each change of state is logged once (down, still down every minute, back)
and kept in the gauge `finsentry_dependency_up{dependency}`, which readiness checks read too.

`fn` must be safe to run again after a failure part-way: finsentry's are (the window script skips
event ids it has seen; SQL work is one transaction).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from foundation import metrics

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")


class OutageTooLong(RuntimeError):
    """A dependency stayed unreachable for longer than the configured bound."""


class Stopping(RuntimeError):
    """The process is shutting down while a call waits for a dependency to come back."""


@dataclass(frozen=True)
class Dependency:
    name: str
    errors: tuple[type[BaseException], ...]  # what this dependency raises when it cannot be reached


def redis_dependency() -> Dependency:
    import redis

    return Dependency("redis", (redis.ConnectionError, redis.TimeoutError))


def sql_dependency() -> Dependency:
    from sqlalchemy.exc import InterfaceError, OperationalError

    return Dependency("sql", (OperationalError, InterfaceError))


@dataclass
class _Down:
    since: float
    last_logged: float
    error: str


class Outages:
    """Shared by a process's threads: the state of each dependency is one, whoever saw it fail."""

    def __init__(
        self,
        dependencies: Sequence[Dependency],
        max_outage_s: float = 600.0,
        base_backoff_s: float = 0.25,
        max_backoff_s: float = 5.0,
        still_down_every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        stopping: threading.Event | None = None,
    ) -> None:
        self.dependencies = list(dependencies)
        self.errors = tuple(e for d in self.dependencies for e in d.errors)
        self.max_outage_s = max_outage_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.still_down_every_s = still_down_every_s
        self.clock = clock
        self.stopping = stopping or threading.Event()  # set it to end a wait early (`Stopping`)
        self._down: dict[str, _Down] = {}
        self._lock = threading.Lock()
        for dependency in self.dependencies:
            metrics.DEPENDENCY_UP.labels(dependency.name).set(1)

    def state(self) -> dict[str, bool]:
        """Each dependency: True while up (as far as this process has seen)."""
        with self._lock:
            return {d.name: d.name not in self._down for d in self.dependencies}

    def guard(self, *names: str) -> Guard:
        """Calls that reach these dependencies: their success is what shows them to be back."""
        unknown = set(names) - {d.name for d in self.dependencies}
        if unknown:
            raise ValueError(f"unknown dependencies {sorted(unknown)}")
        return Guard(self, names or tuple(d.name for d in self.dependencies))

    def dependency_of(self, exc: BaseException) -> Dependency:
        return next(d for d in self.dependencies if isinstance(exc, d.errors))

    def backoff(self, attempt: int) -> float:
        """Exponential with full jitter: processes that lost the same server do not retry in lockstep."""
        ceiling = min(self.max_backoff_s, self.base_backoff_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - sampling and jitter, not secrets

    def mark_down(self, dependency: Dependency, exc: BaseException) -> float:
        now = self.clock()
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        with self._lock:
            down = self._down.get(dependency.name)
            if down is None:
                self._down[dependency.name] = _Down(now, now, error)
                metrics.DEPENDENCY_UP.labels(dependency.name).set(0)
                metrics.OUTAGES.labels(dependency.name).inc()
                log.warning("dependency down", extra={"dependency": dependency.name, "error": error})
                return 0.0
            if now - down.last_logged >= self.still_down_every_s:
                down.last_logged = now
                log.warning(
                    "dependency still down",
                    extra={"dependency": dependency.name, "down_s": round(now - down.since), "error": error},
                )
            return now - down.since

    def mark_up(self, names: Sequence[str]) -> None:
        if not self._down:
            return
        now = self.clock()
        with self._lock:
            for name in names:
                down = self._down.pop(name, None)
                if down is not None:
                    metrics.DEPENDENCY_UP.labels(name).set(1)
                    down_s = round(now - down.since, 1)
                    log.info("dependency back", extra={"dependency": name, "down_s": down_s})


class Guard:
    """Runs calls that need some of the dependencies, waiting out (`call`) or noting (`attempt`) outages."""

    def __init__(self, outages: Outages, names: Sequence[str]) -> None:
        self.outages = outages
        self.names = tuple(names)

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        outages = self.outages
        attempt = 0
        while True:
            try:
                result = fn(*args, **kwargs)
            except outages.errors as exc:
                attempt += 1
                dependency = outages.dependency_of(exc)
                down_for = outages.mark_down(dependency, exc)
                if down_for > outages.max_outage_s:
                    raise OutageTooLong(
                        f"{dependency.name} unreachable for {down_for:.0f}s"
                        f" (bound {outages.max_outage_s:.0f}s): {exc}"
                    ) from exc
                if outages.stopping.wait(outages.backoff(attempt)):
                    raise Stopping("stopping while waiting for a dependency") from exc
                continue
            outages.mark_up(self.names)
            return result

    def attempt(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """One try, for periodic work that comes round again: an outage is noted, not waited out."""
        try:
            result = fn(*args, **kwargs)
        except self.outages.errors as exc:
            self.outages.mark_down(self.outages.dependency_of(exc), exc)
            return None
        self.outages.mark_up(self.names)
        return result
