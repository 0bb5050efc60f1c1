"""The console's access control: session login, CSRF on every form and write, rate-limited failures,
expired sessions, pages behind the login, and the vendored chart library's checksums."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update
from sqlalchemy.orm import Session
from starlette.routing import Mount, Route

from accounts import Accounts
from accounts.tables import SessionRow
from accounts.throttle import ThrottlePolicy
from api import create_app
from foundation.clock import utcnow
from labels.review import ReviewQueue
from labels.store import LabelStore
from training.learning import Learning
from training.registry import Registry

VENDOR = Path(__file__).resolve().parents[2] / "api" / "static" / "vendor"
PASSWORD = "a long password for ana"


@pytest.fixture()
def app(sql_engine: Engine, tmp_path: Path) -> FastAPI:
    labels = LabelStore(sql_engine)
    parts = Learning(
        sql_engine,
        labels,
        ReviewQueue(sql_engine, labels, 0.5, 1.0),
        {"en": Registry(sql_engine, tmp_path / "registry", tmp_path / "current")},
    )
    accounts = Accounts(sql_engine)
    accounts.add("ana", "analyst", PASSWORD)
    accounts.add("vic", "viewer", PASSWORD)
    return create_app(parts, accounts)


def login(client: TestClient, name: str, password: str = PASSWORD, next_page: str = "/console") -> int:
    form = client.get(f"/login?next={next_page}").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    answer = client.post(
        "/login",
        data={"name": name, "password": password, "csrf": csrf, "next": next_page},
        follow_redirects=False,
    )
    return answer.status_code


def page_csrf(client: TestClient) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/console").text).group(1)


def test_pages_need_a_session_and_go_to_the_login_page(app: FastAPI) -> None:
    client = TestClient(app)
    documentation = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/login"}  # no data
    pages = [
        r.path
        for r in app.routes
        if isinstance(r, Route) and not r.include_in_schema and r.path not in documentation
    ]
    pages = [p.replace("{scope_key}", "entity:acme") for p in pages if "GET" in _methods(app, p)]
    assert "/console" in pages and "/console/scope/entity:acme" in pages
    for path in pages:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next="), path
    assert any(isinstance(r, Mount) and r.path == "/static" for r in app.routes), "static files: no data"


def _methods(app: FastAPI, path: str) -> set[str]:
    return {m for r in app.routes if isinstance(r, Route) and r.path == path for m in (r.methods or ())}


def test_login_sets_a_strict_http_only_cookie_and_the_console_shows_the_account(app: FastAPI) -> None:
    client = TestClient(app)
    assert login(client, "ana") == 303
    cookie = next(c for c in client.cookies.jar if c.name == "fs_session")
    assert cookie.has_nonstandard_attr("HttpOnly")
    page = client.get("/console")
    assert page.status_code == 200 and "ana · analyst" in page.text
    assert client.get("/alerts").status_code == 200, "the session reads the API like a token"


def test_a_form_without_its_csrf_token_is_refused(app: FastAPI) -> None:
    client = TestClient(app)
    client.get("/login")
    answer = client.post("/login", data={"name": "ana", "password": PASSWORD, "csrf": "forged"})
    assert answer.status_code == 403 and "fs_session" not in client.cookies
    assert login(client, "ana") == 303
    assert client.post("/silences", json={"matchers": {"rule": "x"}, "minutes": 5}).status_code == 403
    written = client.post(
        "/silences",
        json={"matchers": {"rule": "x"}, "minutes": 5, "comment": "ok"},
        headers={"X-CSRF-Token": page_csrf(client)},
    )
    assert written.status_code == 201


def test_a_viewer_session_is_refused_writes(app: FastAPI) -> None:
    client = TestClient(app)
    assert login(client, "vic") == 303
    answer = client.post("/alerts/a1/ack", headers={"X-CSRF-Token": page_csrf(client)})
    assert answer.status_code == 403


def test_failed_logins_are_rate_limited_per_account_and_audited(app: FastAPI, sql_engine: Engine) -> None:
    client = TestClient(app)
    free = ThrottlePolicy().free_failures
    for _ in range(free):
        assert login(client, "ana", "not the password at all") == 401
    assert login(client, "ana") == 429, "even the right password waits now"
    outcomes = [(r.action, r.outcome) for r in reversed(Accounts(sql_engine).audit_log())]
    assert outcomes == [("login", "failed")] * free + [("login", "limited")]


def test_an_expired_session_goes_to_the_login_page(app: FastAPI, sql_engine: Engine) -> None:
    client = TestClient(app)
    assert login(client, "ana") == 303
    with Session(sql_engine) as session, session.begin():
        session.execute(update(SessionRow).values(expires_at=utcnow() - timedelta(seconds=1)))
    answer = client.get("/console", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/console"
    assert client.get("/alerts").status_code == 401


def test_logout_ends_the_session(app: FastAPI) -> None:
    client = TestClient(app)
    assert login(client, "ana") == 303
    csrf = page_csrf(client)
    session_cookie = client.cookies["fs_session"]
    assert client.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    client.cookies.set("fs_session", session_cookie)  # a copied cookie opens nothing afterwards
    assert client.get("/console", follow_redirects=False).status_code == 303


def test_the_vendored_front_end_packages_match_their_recorded_checksums() -> None:
    recorded = re.findall(
        r"\| ((?:uplot|swagger-ui)-[\d.]+/\S+) \| ([0-9a-f]{64}) \|", (VENDOR / "VENDOR.md").read_text()
    )
    assert len(recorded) == 7
    for name, digest in recorded:
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name


def test_the_login_sends_only_to_pages_of_this_site(app: FastAPI) -> None:
    client = TestClient(app)
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example/"):
        form = client.get("/login", params={"next": target}).text
        assert 'name="next" value="/console"' in form, target
    assert login(client, "ana", next_page="/console/alerts") == 303


def test_over_tls_every_answer_asks_for_tls_next_time(app: FastAPI) -> None:
    secure = TestClient(app, base_url="https://testserver")
    for path in ("/healthz", "/login", "/no/such/page"):
        assert secure.get(path).headers["strict-transport-security"].startswith("max-age=")
    assert "strict-transport-security" not in TestClient(app).get("/healthz").headers
