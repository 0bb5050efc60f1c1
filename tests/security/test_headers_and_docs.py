"""Every answer carries the browser's security headers (errors and static files too), and the API docs
are for accounts only, from vendored files, under the same policy."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from finsentry.services.process import terminate
from tests.security.conftest import ApiServer, start_api
from tests.security.test_accounts import sign_in

pytestmark = pytest.mark.stack
TEMPLATES = Path(__file__).resolve().parents[2] / "api" / "templates"
NEEDED = {
    "content-security-policy",
    "x-content-type-options",
    "referrer-policy",
    "cross-origin-opener-policy",
    "permissions-policy",
    "x-frame-options",
}


def test_every_answer_carries_the_security_headers(api_server: ApiServer) -> None:
    from api.middleware import CONTENT_SECURITY_POLICY

    with api_server.client() as client:
        answers = [
            client.get("/healthz"),
            client.get("/login"),
            client.get("/console"),  # a redirect
            client.get("/alerts"),  # 401
            client.get("/no/such/page"),  # 404
            client.post("/labels", json={}, headers=api_server.token("vic")),  # 403
            client.post("/login", content=b"x" * (2 * 2**20)),  # 413
            client.get("/static/console.js"),
            client.get("/static/vendor/uplot-1.6.32/uPlot.min.css"),
        ]
    for answer in answers:
        missing = NEEDED - set(answer.headers)
        assert not missing, (answer.request.url.path, answer.status_code, missing)
        policy = answer.headers["content-security-policy"]
        assert policy == CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in policy and "unsafe-inline" not in policy
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "strict-transport-security" not in answer.headers, "HSTS only over TLS"


def test_the_policy_says_what_the_issue_asks() -> None:
    from api.middleware import CONTENT_SECURITY_POLICY

    for directive in (
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        "form-action 'self'",
    ):
        assert directive in CONTENT_SECURITY_POLICY


def test_no_page_has_an_inline_script_or_handler() -> None:
    for template in TEMPLATES.glob("*.html"):
        html = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"inline script in {template.name}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"inline handler in {template.name}"
        assert not re.search(r"https?://", html), f"a page of {template.name} loads from elsewhere"


def test_api_docs_need_an_account(api_server: ApiServer) -> None:
    with api_server.client() as client:
        assert client.get("/openapi.json").status_code == 401
        assert client.get("/redoc").status_code == 404
        docs = client.get("/docs")
        assert docs.status_code == 303 and docs.headers["location"] == "/login?next=/docs"
        assert client.get("/openapi.json", headers=api_server.token("vic")).json()["info"]["title"]
        assert sign_in(client, "vic").status_code == 303
        page = client.get("/docs")
        assert page.status_code == 200
        scripts = re.findall(r'<script src="([^"]+)"', page.text)
        assert scripts and all(s.startswith("/static/") for s in scripts), scripts
        assert "cdn" not in page.text.lower()
        for asset in [*scripts, *re.findall(r'href="([^"]+)"', page.text)]:
            assert client.get(asset).status_code == 200, asset
        assert client.get("/openapi.json").status_code == 200, "the page reads it with the session"


def test_api_docs_can_be_turned_off(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_api(tmp_path_factory.mktemp("nodocs"), api_docs="false")
    try:
        with server.client() as client:
            assert sign_in(client, "vic").status_code == 303
            assert client.get("/docs").status_code == 404
            assert client.get("/openapi.json", headers=server.token("adm")).status_code == 404
    finally:
        terminate(server.process, 30)
