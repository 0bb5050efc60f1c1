"""The access-control tables in SQL: accounts, their API tokens, and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from foundation.db import Base


class AccountRow(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(12))  # viewer | analyst | admin
    password_hash: Mapped[str] = mapped_column(String(200))  # argon2id, with its own salt and costs
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]


class TokenRow(Base):
    """A bearer token for the API. Only its SHA-256 is kept: the token is shown once, at creation."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    label: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class SessionRow(Base):
    """A console login. The cookie holds a random secret of which only the SHA-256 is kept here."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_expires_at", "expires_at"),)

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    csrf_token: Mapped[str] = mapped_column(String(64))  # every form and write of this session carries it
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    address: Mapped[str | None] = mapped_column(String(64))


class AuditRow(Base):
    """Who did (or tried) what: labels, acknowledgements, silences, promotions, logins, refusals."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_actor_action", "actor", "action"),  # a login's known-address look-up
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str | None] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(12))  # ok | denied | failed
    address: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]]


class LoginThrottleRow(Base):
    """Failed logins of one account (`account:NAME`) or from one address (`address:IP`), and when the next
    try may reach the password check. Changed only by compare-and-set on `attempts`, so concurrent tries
    cannot all slip through between a read and a write."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # tries that reached the check, unanswered
    next_allowed_at: Mapped[datetime]
    updated_at: Mapped[datetime]
