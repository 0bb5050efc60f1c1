"""`finsentry user`: accounts, their roles and API tokens; every change is audited as the CLI."""

from __future__ import annotations

import getpass
import secrets
import sys
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from accounts import AccountError, Accounts
from finsentry.cli.options import console
from foundation.db import open_database
from foundation.settings import get_settings

app = typer.Typer(help="Accounts (viewer, analyst, admin) and their API tokens.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens: create, list, revoke.", no_args_is_help=True)
app.add_typer(token_app, name="token")
ACTOR = "cli"


def _accounts() -> Accounts:
    return Accounts(open_database(get_settings().effective_database_url))


def _run(change: Callable[[], None]) -> None:
    """Runs a change; an AccountError is a clear message and exit 1, not a traceback."""
    try:
        change()
    except AccountError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc


@app.command("add")
def add(
    name: str,
    role: Annotated[str, typer.Option(help="viewer, analyst or admin")] = "viewer",
    password_stdin: Annotated[bool, typer.Option(help="Read the password from standard input")] = False,
) -> None:
    """Add an account; without --password-stdin a random password is made and shown once."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else secrets.token_urlsafe(12)
    accounts = _accounts()

    def change() -> None:
        accounts.add(name, role, password)
        accounts.audit(ACTOR, "add account", target=name, role=role)

    _run(change)
    if not password_stdin:
        print(password)
        console.print(f"{name} ({role}) added; the password above is shown this once")


@app.command("list")
def list_accounts() -> None:
    """Every account with its role and state."""
    table = Table("name", "role", "state", "tokens")
    accounts = _accounts()
    live = [t.account for t in accounts.tokens() if t.revoked_at is None]
    for account in accounts.list():
        table.add_row(
            account.name,
            account.role,
            "disabled" if account.disabled else "enabled",
            str(live.count(account.name)),
        )
    Console().print(table)


@app.command("set-role")
def set_role(name: str, role: str) -> None:
    """Change an account's role."""
    accounts = _accounts()

    def change() -> None:
        accounts.set_role(name, role)
        accounts.audit(ACTOR, "set role", target=name, role=role)

    _run(change)


@app.command("disable")
def disable(name: str) -> None:
    """Disable an account: its logins and tokens stop working at once."""
    accounts = _accounts()

    def change() -> None:
        accounts.set_disabled(name, True)
        accounts.audit(ACTOR, "disable account", target=name)

    _run(change)


@app.command("enable")
def enable(name: str) -> None:
    """Enable a disabled account again."""
    accounts = _accounts()

    def change() -> None:
        accounts.set_disabled(name, False)
        accounts.audit(ACTOR, "enable account", target=name)

    _run(change)


@app.command("password")
def password(name: str) -> None:
    """Set a new password (asked for, or read from standard input when it is not a terminal)."""
    new = getpass.getpass("new password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    accounts = _accounts()

    def change() -> None:
        accounts.set_password(name, new)
        accounts.audit(ACTOR, "set password", target=name)

    _run(change)


@token_app.command("create")
def token_create(name: str, label: Annotated[str, typer.Option(help="What the token is for")] = "") -> None:
    """A new API token for the account, printed once (only its hash is kept)."""
    accounts = _accounts()
    made: list[str] = []

    def change() -> None:
        token, secret = accounts.create_token(name, label)
        accounts.audit(ACTOR, "create token", target=f"token/{token.id}", account=name)
        made.append(secret)

    _run(change)
    print(made[0])


@token_app.command("list")
def token_list(name: Annotated[str | None, typer.Argument(help="Only this account's")] = None) -> None:
    """Tokens (never their secrets)."""
    table = Table("id", "account", "label", "created (UTC)", "revoked (UTC)")
    for t in _accounts().tokens(name):
        revoked = t.revoked_at.strftime("%Y-%m-%d %H:%M") if t.revoked_at else ""
        table.add_row(str(t.id), t.account, t.label, t.created_at.strftime("%Y-%m-%d %H:%M"), revoked)
    Console().print(table)


@token_app.command("revoke")
def token_revoke(token_id: int) -> None:
    """Revoke a token now."""
    accounts = _accounts()

    def change() -> None:
        accounts.revoke_token(token_id)
        accounts.audit(ACTOR, "revoke token", target=f"token/{token_id}")

    _run(change)
