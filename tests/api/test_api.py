"""The HTTP API on a real database: every route behind a token and a role, the audit log, and
schemathesis over OpenAPI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from sqlalchemy import Engine

from accounts import Accounts
from api import create_app
from inference.entities import Company
from labels.review import Candidate, ReviewQueue
from labels.store import LabelStore
from tests.tiny_model import build_tiny_bundle
from training.learning import Learning
from training.registry import Registry

OPEN = {"/healthz", "/readyz"}  # liveness and readiness only: they show no data
LABEL = {"schema_version": 1, "text": "Acme beats estimates", "sentiment": "positive", "labeled_by": "ana"}


@pytest.fixture()
def parts(sql_engine: Engine, tmp_path: Path) -> Learning:
    labels = LabelStore(sql_engine)
    review = ReviewQueue(sql_engine, labels, max_margin=0.5, rate=1.0)
    registry = Registry(sql_engine, tmp_path / "registry", tmp_path / "current")
    return Learning(sql_engine, labels, review, {"en": registry})


@pytest.fixture()
def accounts(sql_engine: Engine) -> Accounts:
    return Accounts(sql_engine)


@pytest.fixture()
def tokens(accounts: Accounts) -> dict[str, dict[str, str]]:
    """An account per role, and the Authorization header of a token of each."""
    headers = {}
    for role in ("viewer", "analyst", "admin"):
        accounts.add(f"{role}-1", role, f"a long password for {role}")
        headers[role] = {"Authorization": f"Bearer {accounts.create_token(f'{role}-1', 'tests')[1]}"}
    return headers


WATCHLIST = [
    Company("ping-an-bank", "Ping An Bank", ("000001.SZ",), ("平安银行",)),
    Company("northwind-bank", "Northwind Bank", ("NWB",), ("Northwind",)),
]


@pytest.fixture()
def app(parts: Learning, accounts: Accounts) -> FastAPI:
    return create_app(parts, accounts, WATCHLIST)


@pytest.fixture()
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


def routes(client: TestClient) -> list[tuple[str, str]]:
    """Every operation of the served OpenAPI document, with sample path parameters."""
    spec = client.app.openapi()
    ids = {"{version}": "v1", "{item_id}": "1", "{alert_id}": "a", "{silence_id}": "s", "{name}": "x"}
    ids |= {"{token_id}": "1", "{scope_key}": "entity:acme"}
    found = []
    for path, operations in spec["paths"].items():
        for name, value in ids.items():
            path = path.replace(name, value)
        assert "{" not in path, f"a sample value for the parameter of {path}"
        found += [(method.upper(), path) for method in operations]
    return found


def _template(client: TestClient, path: str) -> str:
    """The OpenAPI path template a sample path came from."""
    for template in client.app.openapi()["paths"]:
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path):
            return template
    return path


def test_every_route_needs_a_token(client: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    operations = routes(client)
    assert len(operations) >= 23
    for method, path in operations:
        if path in OPEN:
            continue
        for headers in ({}, {"Authorization": "Bearer fs_not-a-token"}, {"Authorization": "Basic eDp5"}):
            answer = client.request(method, path, json={}, headers=headers)
            assert answer.status_code == 401, (method, path, headers)
            assert set(answer.json()) == {"detail"}, "no data with a refusal"
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/openapi.json").status_code == 401, "the API's description is for accounts too"
    assert client.get("/openapi.json", headers=tokens["viewer"]).status_code == 200


def test_a_viewer_reads_everything_and_is_refused_every_write(
    client: TestClient, tokens: dict[str, dict[str, str]], accounts: Accounts
) -> None:
    writes = [(m, p) for m, p in routes(client) if m in ("POST", "PUT", "PATCH", "DELETE")]
    reads = [(m, p) for m, p in routes(client) if m == "GET" and p not in OPEN]
    own_tokens = {("POST", "/tokens"), ("DELETE", "/tokens/1")}  # every account manages its own tokens
    for method, path in reads:
        code = client.request(method, path, headers=tokens["viewer"]).status_code
        if path in ("/accounts", "/audit"):
            assert code == 403, (method, path)
        else:  # let in: 200, or 404 / 422 for a sample id or query that names nothing
            assert (
                code == 200
                or (code in (404, 422) and "{" in _template(client, path))
                or (path == "/watchlist" and code == 422)
            ), (method, path, code)
    refused = [(m, p) for m, p in writes if (m, p) not in own_tokens]
    for method, path in refused:
        assert client.request(method, path, json={}, headers=tokens["viewer"]).status_code == 403, (
            method,
            path,
        )
    denied = [row for row in accounts.audit_log(1000) if row.outcome == "denied"]
    assert len(denied) == len(refused) + 2, "every refused write is audited (and the two admin reads)"
    assert {row.actor for row in denied} == {"viewer-1"}
    assert {row.target for row in denied} >= {f"{m} {p}" for m, p in refused}


def test_roles_and_the_audit_trail(
    client: TestClient, tokens: dict[str, dict[str, str]], parts: Learning, tmp_path: Path
) -> None:
    parts.registry.register(build_tiny_bundle(tmp_path / "b1", seed=1, version="v1"), "champion")
    parts.registry.register(build_tiny_bundle(tmp_path / "b2", seed=2, version="v2"), "champion")
    assert client.post("/labels", json=[LABEL], headers=tokens["analyst"]).status_code == 201
    assert client.post("/models/rollback", headers=tokens["analyst"]).status_code == 403
    assert client.post("/models/rollback", headers=tokens["admin"]).status_code == 200
    trail = client.get("/audit", headers=tokens["admin"]).json()
    assert [(e["actor"], e["action"], e["outcome"]) for e in trail[:3]] == [
        ("admin-1", "rollback", "ok"),
        ("analyst-1", "rollback", "denied"),
        ("analyst-1", "label", "ok"),
    ]


def test_accounts_and_tokens_over_the_api(client: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    admin = tokens["admin"]
    body = {"name": "ria", "role": "viewer", "password": "twelve chars plus"}
    assert client.post("/accounts", json=body, headers=admin).status_code == 201
    assert client.post("/accounts", json=body, headers=admin).status_code == 409
    assert (
        client.post("/accounts/ria/role", json={"role": "analyst"}, headers=admin).json()["role"] == "analyst"
    )
    own = client.post("/tokens", json={"label": "laptop"}, headers=tokens["analyst"]).json()
    mine = {"Authorization": f"Bearer {own['token']}"}
    assert client.get("/alerts", headers=mine).status_code == 200
    assert [t["label"] for t in client.get("/tokens", headers=mine).json()] == ["tests", "laptop"]
    assert client.delete(f"/tokens/{own['id']}", headers=tokens["viewer"]).status_code == 404, "not yours"
    assert client.delete(f"/tokens/{own['id']}", headers=mine).status_code == 200
    assert client.get("/alerts", headers=mine).status_code == 401, "a revoked token opens nothing"
    assert client.post("/accounts/analyst-1/disable", headers=admin).status_code == 200
    assert client.get("/alerts", headers=tokens["analyst"]).status_code == 401, "nor does a disabled account"


def test_labels_are_validated_by_the_contract_and_stored(
    client: TestClient, parts: Learning, tokens: dict[str, dict[str, str]]
) -> None:
    auth = tokens["analyst"]
    created = client.post("/labels", json=[LABEL, {**LABEL, "text": "Acme  BEATS estimates"}], headers=auth)
    assert created.status_code == 201
    assert created.json()["inserted"] == 1, "the same text up to case and spaces is one sample"
    bad = client.post("/labels", json=[LABEL, {**LABEL, "sentiment": "bullish"}], headers=auth)
    assert bad.status_code == 422
    assert bad.json()["field"].startswith("[1].sentiment") and "label 1" in bad.json()["message"]
    assert client.post("/labels", content=b"{not json", headers=auth).json()["error"] == "invalid_json"
    assert client.get("/labels/stats", headers=auth).json()["total"] == 1


def test_review_queue_lists_least_certain_first_and_takes_answers(
    client: TestClient, parts: Learning, tokens: dict[str, dict[str, str]]
) -> None:
    auth = tokens["analyst"]
    offered = parts.review.offer(
        [
            Candidate(f"e{i}", f"text {i}", {"sentiment": "neutral"}, "sentiment", margin, "m1")
            for i, margin in enumerate((0.3, 0.05, 0.2))
        ]
    )
    assert offered == 3
    items = client.get("/review", headers=auth).json()
    assert [item["event_id"] for item in items] == ["e1", "e2", "e0"]
    answer = client.post(f"/review/{items[0]['id']}/label", json={"sentiment": "negative"}, headers=auth)
    assert answer.status_code == 200
    assert [item["event_id"] for item in client.get("/review", headers=auth).json()] == ["e2", "e0"]
    again = client.post(f"/review/{items[0]['id']}/label", json={"sentiment": "negative"}, headers=auth)
    assert again.status_code == 409
    assert client.post("/review/999999/label", json={"topic": "x"}, headers=auth).status_code == 404
    assert parts.labels.counts()["total"] == 1


def test_silences_round_trip(client: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    auth = tokens["analyst"]
    body = {"matchers": {"scope_key": "entity:acme"}, "minutes": 30, "comment": "known"}
    silence_id = client.post("/silences", json=body, headers=auth).json()["id"]
    silences = client.get("/silences", headers=auth).json()
    assert [(s["id"], s["created_by"]) for s in silences] == [(silence_id, "analyst-1")]
    assert client.delete(f"/silences/{silence_id}", headers=auth).status_code == 200
    assert client.get("/silences", headers=auth).json() == []
    assert client.delete(f"/silences/{silence_id}", headers=auth).status_code == 404


def test_models_promote_and_roll_back(
    client: TestClient, parts: Learning, tmp_path: Path, tokens: dict[str, dict[str, str]]
) -> None:
    auth = tokens["admin"]
    for seed in (1, 2):
        parts.registry.register(
            build_tiny_bundle(tmp_path / f"b{seed}", seed=seed, version=f"v{seed}"), "champion"
        )
    assert {m["version"]: m["status"] for m in client.get("/models", headers=auth).json()} == {
        "v1": "retired",
        "v2": "champion",
    }
    assert client.post("/models/rollback", headers=auth).json()["version"] == "v1"
    assert (tmp_path / "current").resolve() == (tmp_path / "registry" / "v1").resolve()
    assert client.post("/models/rollback", headers=auth).status_code == 409, (
        "v2 was rolled back: not a target"
    )
    assert client.post("/models/v2/promote", headers=auth).json()["status"] == "champion"
    assert client.post("/models/v9/promote", headers=auth).status_code == 404


def test_metrics_and_readiness(client: TestClient, tokens: dict[str, dict[str, str]]) -> None:
    client.post("/labels", json=[LABEL], headers=tokens["analyst"])
    text = client.get("/metrics", headers=tokens["viewer"]).text
    assert "finsentry_labelled_samples 1.0" in text
    assert client.get("/readyz").json() == {"status": "ready"}


def test_no_input_makes_a_server_error(
    app: FastAPI, accounts: Accounts, tokens: dict[str, dict[str, str]]
) -> None:
    """Schemathesis generates requests from the served OpenAPI document, operation by operation."""
    reader = {"Authorization": f"Bearer {accounts.create_token('admin-1', 'openapi')[1]}"}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=reader)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    calls: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_server_error(case: schemathesis.Case) -> None:
            # A fresh admin token for each call: a generated DELETE /tokens/{id} may revoke the last one.
            secret = accounts.create_token("admin-1", "schemathesis")[1]
            response = case.call(headers={"Authorization": f"Bearer {secret}"})
            calls.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])

        no_server_error()
    assert len(calls) >= 5 * len(operations), "schemathesis generated requests for every operation"
    assert any(200 <= code < 300 for code in calls) and any(code == 422 for code in calls)


def test_a_labelled_file_is_imported_row_by_row(
    client: TestClient, tokens: dict[str, dict[str, str]], parts: Learning
) -> None:
    csv_file = (
        "text,sentiment,topic\n"
        "Acme beats estimates,positive,\n"
        "Acme misses,bearish,\n"  # line 3: not a sentiment
        ",negative,\n"  # line 4: no text
        "Globex cuts guidance,negative,Earnings\n"
    )
    answer = client.post(
        "/labels/import", files={"file": ("labels.csv", csv_file.encode())}, headers=tokens["analyst"]
    )
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["stored"]["inserted"] == 2 and report["error_count"] == 2
    assert [(e["line"], e["field"]) for e in report["errors"]] == [(3, "sentiment"), (4, "text")]
    assert parts.labels.counts()["total"] == 2
    jsonl = b'{"text": "Initech rallies", "sentiment": "positive"}\n{not json\n'
    answer = client.post(
        "/labels/import", files={"file": ("l.jsonl", jsonl)}, headers=tokens["analyst"]
    ).json()
    assert answer["stored"]["inserted"] == 1 and answer["errors"][0]["line"] == 2
    viewer = client.post("/labels/import", files={"file": ("l.jsonl", jsonl)}, headers=tokens["viewer"])
    assert viewer.status_code == 403


def test_the_watchlist_search_finds_names_tickers_and_chinese_aliases(
    client: TestClient, tokens: dict[str, dict[str, str]]
) -> None:
    def found(q: str) -> list[str]:
        return [c["scope_key"] for c in client.get(f"/watchlist?q={q}", headers=tokens["viewer"]).json()]

    assert found("平安") == ["entity:ping-an-bank"]
    assert found("nwb") == ["entity:northwind-bank"]
    assert found("bank") == ["entity:ping-an-bank", "entity:northwind-bank"]
    assert found("globex") == []
