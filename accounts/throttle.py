"""Failed logins slow the next try down; they never lock an account.

Each key (`account:NAME`, `address:IP`) lets `free_failures` tries reach the password check; after that
every try waits for a delay that doubles with each failure, up to `max_delay`. A right password clears
its account's key. An attacker who guesses from elsewhere therefore costs the owner at most one delay,
and none from an address the owner has signed in from before (the caller skips the account key then).

A try is counted before its password is checked, by a compare-and-set on the row, so that fifty
concurrent tries cannot all read "four failures so far" and all go on to the check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accounts.tables import LoginThrottleRow

_CAS_TRIES = 20


@dataclass(frozen=True)
class ThrottlePolicy:
    free_failures: int = 5
    first_delay: timedelta = timedelta(seconds=2)
    max_delay: timedelta = timedelta(minutes=2)
    forget_after: timedelta = timedelta(minutes=15)  # a quiet key starts over

    def delay_after(self, attempts: int) -> timedelta:
        """How long the try after the `attempts`-th unanswered one must wait."""
        if attempts < self.free_failures:
            return timedelta(0)
        doublings = min(attempts - self.free_failures, 30)
        return min(self.max_delay, self.first_delay * 2**doublings)


class LoginThrottle:
    def __init__(self, engine: Engine, policy: ThrottlePolicy | None = None) -> None:
        self.engine = engine
        self.policy = policy or ThrottlePolicy()

    def take(self, key: str, now: datetime) -> timedelta | None:
        """Counts a try against `key`; None if it may go on to the password check, else how long to wait."""
        for _ in range(_CAS_TRIES):
            outcome = self._try_take(key, now)
            if outcome is not _LOST_RACE:
                return outcome
        return self.policy.first_delay  # a storm of tries on one key: this one waits

    def _try_take(self, key: str, now: datetime) -> timedelta | object | None:
        with Session(self.engine) as session, session.begin():
            row = session.get(LoginThrottleRow, key)
            if row is None:
                # A new key is when old ones go: quiet keys would start over anyway, so none is kept.
                session.execute(
                    delete(LoginThrottleRow).where(
                        LoginThrottleRow.updated_at < now - self.policy.forget_after,
                        LoginThrottleRow.next_allowed_at <= now,
                    )
                )
                session.add(
                    LoginThrottleRow(
                        key=key, attempts=1, next_allowed_at=now + self.policy.delay_after(1), updated_at=now
                    )
                )
                try:
                    session.flush()
                except IntegrityError:
                    return _LOST_RACE
                return None
            seen, seen_at = row.attempts, row.updated_at
            attempts = 0 if now - seen_at > self.policy.forget_after and now >= row.next_allowed_at else seen
            if attempts >= self.policy.free_failures and now < row.next_allowed_at:
                return row.next_allowed_at - now
            changed = session.execute(
                update(LoginThrottleRow)
                .where(
                    LoginThrottleRow.key == key,
                    LoginThrottleRow.attempts == seen,
                    LoginThrottleRow.updated_at == seen_at,
                )
                .values(
                    attempts=attempts + 1,
                    next_allowed_at=now + self.policy.delay_after(attempts + 1),
                    updated_at=now,
                )
            ).rowcount
            return None if changed == 1 else _LOST_RACE

    def forgive(self, key: str) -> None:
        """Takes back one counted try (its password was right): successes do not slow a shared address."""
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(LoginThrottleRow)
                .where(LoginThrottleRow.key == key, LoginThrottleRow.attempts > 0)
                .values(attempts=LoginThrottleRow.attempts - 1)
            )

    def clear(self, key: str) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(delete(LoginThrottleRow).where(LoginThrottleRow.key == key))


_LOST_RACE = object()
