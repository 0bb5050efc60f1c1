"""Accounts, roles and tokens in SQL; every change and every refusal goes to the audit log.

Roles are ordered: a `viewer` reads everything, an `analyst` also labels, acknowledges and silences,
an `admin` also promotes, rolls back and manages accounts. Passwords are hashed with argon2id
(argon2-cffi); API tokens are random 256-bit strings of which only the SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from accounts.tables import AccountRow, AuditRow, SessionRow, TokenRow
from accounts.throttle import LoginThrottle, ThrottlePolicy
from foundation.clock import utcnow

ROLES = ("viewer", "analyst", "admin")
TOKEN_PREFIX = "fs_"  # noqa: S105 - a token's prefix, not a secret
NAME = re.compile(r"^[A-Za-z0-9._@-]{1,100}$")
MIN_PASSWORD = 12
SESSION_HOURS = 8
KNOWN_ADDRESS_DAYS = timedelta(days=30)  # an address the owner signed in from skips the account's delay
_HASHER = PasswordHasher()
# Verifying against this when the account does not exist takes as long as a real check.
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(16))


class AccountError(ValueError):
    """A request about accounts that cannot be done, with the reason."""


class TooManyAttempts(RuntimeError):
    """Failed logins for this account or from this address delay the next try by `wait`."""

    def __init__(self, wait: timedelta) -> None:
        self.wait_s = max(1, math.ceil(wait.total_seconds()))
        super().__init__(f"too many failed logins; try again in {self.wait_s} seconds")


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    role: str
    disabled: bool


@dataclass(frozen=True)
class Token:
    id: int
    account: str
    label: str
    created_at: Any
    revoked_at: Any


def allows(role: str, needed: str) -> bool:
    return ROLES.index(role) >= ROLES.index(needed)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _account(row: AccountRow) -> Account:
    return Account(row.id, row.name, row.role, row.disabled)


class Accounts:
    def __init__(self, engine: Engine, throttle: ThrottlePolicy | None = None) -> None:
        self.engine = engine
        self.throttle = LoginThrottle(engine, throttle)

    def add(self, name: str, role: str, password: str) -> Account:
        if not NAME.match(name):
            raise AccountError(f"account name {name!r}: 1-100 letters, digits or . _ @ -")
        _check_role(role)
        _check_password(password)
        row = AccountRow(name=name, role=role, password_hash=_HASHER.hash(password), created_at=utcnow())
        try:
            with Session(self.engine, expire_on_commit=False) as session, session.begin():
                session.add(row)
        except IntegrityError as exc:
            raise AccountError(f"an account named {name!r} exists already") from exc
        return _account(row)

    def list(self) -> list[Account]:
        with Session(self.engine) as session:
            return [_account(r) for r in session.scalars(select(AccountRow).order_by(AccountRow.name))]

    def get(self, name: str) -> Account | None:
        with Session(self.engine) as session:
            row = session.scalar(select(AccountRow).where(AccountRow.name == name))
            return _account(row) if row else None

    # Each of these ends the account's sessions and revokes its tokens: a stolen password may have made them,
    # and a session or token must not outlive the role it was granted under.
    def set_role(self, name: str, role: str) -> Account:
        _check_role(role)
        return self._update(name, role=role)

    def set_disabled(self, name: str, disabled: bool) -> Account:
        return self._update(name, disabled=disabled)

    def set_password(self, name: str, password: str) -> Account:
        _check_password(password)
        return self._update(name, password_hash=_HASHER.hash(password))

    def _update(self, name: str, **values: Any) -> Account:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            row = session.scalar(select(AccountRow).where(AccountRow.name == name))
            if row is None:
                raise AccountError(f"no account named {name!r}")
            for key, value in values.items():
                setattr(row, key, value)
            session.execute(delete(SessionRow).where(SessionRow.account_id == row.id))
            session.execute(
                update(TokenRow)
                .where(TokenRow.account_id == row.id, TokenRow.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        return _account(row)

    def check_password(self, name: str, password: str) -> Account | None:
        """The account if the password is right and the account enabled; the same time either way."""
        with Session(self.engine) as session:
            row = session.scalar(select(AccountRow).where(AccountRow.name == name))
        try:
            _HASHER.verify(row.password_hash if row else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or row.disabled:
            return None
        return _account(row)

    def create_token(self, name: str, label: str) -> tuple[Token, str]:
        """A new token for the account: (its record, the secret, shown this once)."""
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            account = session.scalar(select(AccountRow).where(AccountRow.name == name))
            if account is None:
                raise AccountError(f"no account named {name!r}")
            row = TokenRow(
                account_id=account.id, label=label[:200], token_hash=_token_hash(secret), created_at=utcnow()
            )
            session.add(row)
        return Token(row.id, name, row.label, row.created_at, None), secret

    def tokens(self, name: str | None = None) -> list[Token]:
        query = select(TokenRow, AccountRow.name).join(AccountRow).order_by(TokenRow.id)
        if name is not None:
            query = query.where(AccountRow.name == name)
        with Session(self.engine) as session:
            return [
                Token(t.id, account, t.label, t.created_at, t.revoked_at)
                for t, account in session.execute(query)
            ]

    def revoke_token(self, token_id: int) -> Token:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            row = session.get(TokenRow, token_id)
            if row is None:
                raise AccountError(f"no token {token_id}")
            row.revoked_at = row.revoked_at or utcnow()
            account = session.get(AccountRow, row.account_id)
        return Token(row.id, account.name if account else "?", row.label, row.created_at, row.revoked_at)

    def by_token(self, secret: str) -> Account | None:
        """The enabled account a live token belongs to."""
        if not secret.startswith(TOKEN_PREFIX):
            return None
        with Session(self.engine) as session:
            row = session.scalar(
                select(AccountRow)
                .join(TokenRow)
                .where(TokenRow.token_hash == _token_hash(secret), TokenRow.revoked_at.is_(None))
            )
            return _account(row) if row is not None and not row.disabled else None

    def login(self, name: str, password: str, address: str | None) -> tuple[Account, str, str] | None:
        """(account, session secret, CSRF token) for a right password; None otherwise. Every try is
        audited. Failed tries for the name and from the address delay further ones (`TooManyAttempts`,
        with the wait); the account's own count is skipped from an address it signed in from before."""
        now = utcnow()
        keys = [f"address:{address or 'unknown'}"]
        if not self._known_address(name, address, now):
            keys.append(f"account:{name[:100]}")
        for taken, key in enumerate(keys):
            wait = self.throttle.take(key, now)
            if wait is not None:
                for earlier in keys[:taken]:  # a try that never reached the check counts for no key
                    self.throttle.forgive(earlier)
                self.audit(name, "login", "limited", address=address)
                raise TooManyAttempts(wait)
        account = self.check_password(name, password)
        if account is None:
            self.audit(name, "login", "failed", address=address)
            return None
        self.throttle.forgive(keys[0])
        self.throttle.clear(f"account:{name[:100]}")
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = utcnow()
        with Session(self.engine) as session, session.begin():
            session.execute(delete(SessionRow).where(SessionRow.expires_at < now))
            session.add(
                SessionRow(
                    id_hash=_token_hash(secret),
                    account_id=account.id,
                    csrf_token=csrf,
                    created_at=now,
                    expires_at=now + timedelta(hours=SESSION_HOURS),
                    address=address,
                )
            )
        self.audit(name, "login", address=address)
        return account, secret, csrf

    def _known_address(self, name: str, address: str | None, now: datetime) -> bool:
        if address is None:
            return False
        with Session(self.engine) as session:
            return (
                session.scalar(
                    select(AuditRow.id)
                    .where(
                        AuditRow.actor == name[:100],
                        AuditRow.action == "login",
                        AuditRow.outcome == "ok",
                        AuditRow.address == address,
                        AuditRow.at >= now - KNOWN_ADDRESS_DAYS,
                    )
                    .limit(1)
                )
                is not None
            )

    def by_session(self, secret: str) -> tuple[Account, str] | None:
        """(account, CSRF token) of a live session of an enabled account."""
        with Session(self.engine) as session:
            found = session.execute(
                select(AccountRow, SessionRow.csrf_token)
                .join(SessionRow, SessionRow.account_id == AccountRow.id)
                .where(SessionRow.id_hash == _token_hash(secret), SessionRow.expires_at > utcnow())
            ).first()
        if found is None or found[0].disabled:
            return None
        return _account(found[0]), found[1]

    def logout(self, secret: str) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(delete(SessionRow).where(SessionRow.id_hash == _token_hash(secret)))

    def audit(
        self,
        actor: str,
        action: str,
        outcome: str = "ok",
        target: str | None = None,
        address: str | None = None,
        **detail: Any,
    ) -> None:
        with Session(self.engine) as session, session.begin():
            session.add(
                AuditRow(
                    at=utcnow(),
                    actor=actor[:100],
                    action=action,
                    target=target[:300] if target else None,
                    outcome=outcome,
                    address=address,
                    detail=detail,
                )
            )

    def audit_log(self, limit: int = 100) -> list[AuditRow]:
        with Session(self.engine) as session:
            return list(session.scalars(select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)))


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"role {role!r}: one of {', '.join(ROLES)}")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
