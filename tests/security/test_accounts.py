"""Attacks on accounts, against `finsentry api` on a real socket: a storm of concurrent guesses, a forged
X-Forwarded-For, a stolen password's sessions and tokens, a label in another's name, a cross-site sign-out,
and the lockout of the real owner."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from accounts import Accounts, TooManyAttempts
from accounts.tables import AuditRow
from finsentry.services.process import terminate
from labels.tables import SampleRow
from tests.security.conftest import PASSWORD, ApiServer, start_api

pytestmark = pytest.mark.stack


def login_form(client: httpx.Client) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)


def sign_in(client: httpx.Client, name: str, password: str = PASSWORD) -> httpx.Response:
    return client.post(
        "/login", data={"name": name, "password": password, "csrf": login_form(client), "next": "/console"}
    )


def page_csrf(client: httpx.Client) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', client.get("/console").text).group(1)


def audit(server: ApiServer, action: str) -> list[AuditRow]:
    with Session(server.engine) as session:
        return list(session.scalars(select(AuditRow).where(AuditRow.action == action).order_by(AuditRow.id)))


async def _storm(base: str, name: str, tries: int) -> list[int]:
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        form = (await client.get("/login")).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)

        async def guess(i: int) -> int:
            data = {"name": name, "password": f"wrong guess {i}", "csrf": csrf, "next": "/console"}
            return (await client.post("/login", data=data)).status_code

        return list(await asyncio.gather(*(guess(i) for i in range(tries))))


def test_fifty_concurrent_guesses_reach_the_password_check_at_most_five_times(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = start_api(tmp_path_factory.mktemp("storm"), login_free_failures="5")
    try:
        statuses = Counter(asyncio.run(_storm(server.base, "ana", 50)))
        checked = [r for r in audit(server, "login") if r.outcome == "failed"]
        assert len(checked) <= 5, f"{len(checked)} guesses reached the password check ({statuses})"
        assert statuses[429] >= 45, statuses
        # The owner is slowed, not locked out: after the delay the right password opens the console.
        with server.client() as owner:
            refused = sign_in(owner, "ana")
            assert refused.status_code == 429
            wait = int(refused.headers["Retry-After"])
            assert 1 <= wait <= 120
            time.sleep(wait + 0.5)
            assert sign_in(owner, "ana").status_code == 303
            assert owner.get("/console").status_code == 200
    finally:
        terminate(server.process, 30)


def test_failures_from_elsewhere_never_lock_the_owner_out(api_server: ApiServer) -> None:
    with api_server.client() as owner:
        assert sign_in(owner, "vic").status_code == 303  # vic has signed in from here before
    attacker = Accounts(api_server.engine)
    delayed = 0
    for i in range(30):  # an attacker guessing from other addresses, far past the free tries
        try:
            assert attacker.login("vic", f"guess {i}", f"203.0.113.{i}") is None
        except TooManyAttempts:
            delayed += 1
    assert delayed >= 20, "the attacker is slowed down"
    with api_server.client() as owner:
        assert sign_in(owner, "vic").status_code == 303, "the owner's known address is not slowed"


def test_x_forwarded_for_from_a_client_is_not_believed(api_server: ApiServer) -> None:
    with api_server.client() as client:
        client.post(
            "/login",
            data={"name": "nobody", "password": "x" * 12, "csrf": login_form(client)},
            headers={"X-Forwarded-For": "198.51.100.7"},
        )
    last = audit(api_server, "login")[-1]
    assert last.actor == "nobody" and last.address == "127.0.0.1", last.address


def test_behind_a_trusted_proxy_the_nearest_untrusted_hop_is_the_client(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    server = start_api(tmp_path_factory.mktemp("proxied"), trusted_proxies="127.0.0.0/8")
    try:
        with server.client() as client:
            for chain in ("198.51.100.7", "6.6.6.6, 198.51.100.7, 127.0.0.5"):
                headers = {"X-Forwarded-For": chain, "X-Forwarded-Proto": "https"}
                form = client.get("/login", headers=headers)
                answer = client.post(
                    "/login",
                    data={"name": "nobody", "password": "x" * 12, "csrf": login_form(client)},
                    headers=headers,
                )
                assert answer.status_code == 401
                assert audit(server, "login")[-1].address == "198.51.100.7", chain
            # The proxy said TLS: cookies are Secure and HSTS is asked for.
            assert "secure" in form.headers["set-cookie"].lower()
            assert "strict-transport-security" in form.headers
    finally:
        terminate(server.process, 30)


def test_a_password_change_ends_every_session_and_token(api_server: ApiServer) -> None:
    accounts = Accounts(api_server.engine)
    accounts.add("eve", "analyst", PASSWORD)
    token = api_server.token("eve")
    with api_server.client() as thief:
        assert sign_in(thief, "eve").status_code == 303
        assert thief.get("/alerts").status_code == 200
        assert thief.get("/alerts", headers=token).status_code == 200
        accounts.set_password("eve", "the owner's new long password")
        assert thief.get("/alerts").status_code == 401, "the session made with the old password"
        assert thief.get("/alerts", headers=token).status_code == 401, "the token made with the old password"
    for change in (lambda: accounts.set_role("eve", "viewer"), lambda: accounts.set_disabled("eve", True)):
        with api_server.client() as client:
            assert sign_in(client, "eve", "the owner's new long password").status_code == 303
            fresh = api_server.token("eve")
            change()
            assert client.get("/alerts").status_code == 401
            assert client.get("/alerts", headers=fresh).status_code == 401


def test_labels_are_the_callers_own(api_server: ApiServer) -> None:
    label = {"schema_version": 1, "text": "Acme misses estimates", "sentiment": "negative"}
    label["labeled_by"] = "adm"  # an analyst writes another's name
    with api_server.client() as client:
        stored = client.post("/labels", json=[label], headers=api_server.token("ana"))
        assert stored.status_code == 201, stored.text
        jsonl = '{"text": "Acme wins a contract", "sentiment": "positive", "labeled_by": "adm"}\n'
        imported = client.post(
            "/labels/import", files={"file": ("x.jsonl", jsonl.encode())}, headers=api_server.token("ana")
        )
        assert imported.status_code == 200, imported.text
        by_admin = dict(label, text="Acme settles the lawsuit", labeled_by="importer-7")
        assert client.post("/labels", json=[by_admin], headers=api_server.token("adm")).status_code == 201
    with Session(api_server.engine) as session:
        who = dict(session.execute(select(SampleRow.text, SampleRow.labelled_by)).all())
    assert who["Acme misses estimates"] == "ana"
    assert who["Acme wins a contract"] == "ana"
    assert who["Acme settles the lawsuit"] == "importer-7", "an admin attributes explicitly"
    attributed = [r for r in audit(api_server, "label") if r.actor == "adm"]
    assert attributed and attributed[-1].detail.get("attributed_to") == ["importer-7"]


def test_a_cross_site_sign_out_does_nothing(api_server: ApiServer) -> None:
    with api_server.client() as victim:
        assert sign_in(victim, "ana").status_code == 303
        cookie = victim.cookies["fs_session"]
        # Another site's form posts to /logout with the victim's cookie but cannot know the CSRF token.
        forged = victim.post("/logout", data={"csrf": "guessed"}, headers={"Origin": "https://evil.example"})
        assert forged.status_code == 403
        assert "fs_session" not in forged.headers.get("set-cookie", ""), "the cookie is not cleared"
        assert victim.cookies["fs_session"] == cookie
        assert victim.get("/console").status_code == 200
        assert victim.post("/logout", data={"csrf": page_csrf(victim)}).status_code == 303
        assert victim.get("/console", follow_redirects=False).status_code == 303
