"""The HTTP API on a real database: every route, the token on writes, and schemathesis over OpenAPI."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from sqlalchemy import Engine

from api import create_app
from labels.review import Candidate, ReviewQueue
from labels.store import LabelStore
from tests.tiny_model import build_tiny_bundle
from training.learning import Learning
from training.registry import Registry

TOKEN = "test-token-8c1f"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LABEL = {"schema_version": 1, "text": "Acme beats estimates", "sentiment": "positive", "labeled_by": "ana"}


@pytest.fixture()
def parts(sql_engine: Engine, tmp_path: Path) -> Learning:
    labels = LabelStore(sql_engine)
    review = ReviewQueue(sql_engine, labels, max_margin=0.5, rate=1.0)
    registry = Registry(sql_engine, tmp_path / "registry", tmp_path / "current")
    return Learning(sql_engine, labels, review, registry)


@pytest.fixture()
def app(parts: Learning) -> FastAPI:
    return create_app(parts, TOKEN)


@pytest.fixture()
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


def test_every_write_needs_the_token(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    ids = {"{version}": "v1", "{item_id}": "1", "{alert_id}": "a", "{silence_id}": "s"}
    writes = []
    for path, operations in spec["paths"].items():
        for name, value in ids.items():
            path = path.replace(name, value)
        writes += [(method, path) for method in operations if method in ("post", "put", "patch", "delete")]
    assert len(writes) >= 7
    for method, path in writes:
        assert client.request(method, path, json={}).status_code == 401, (method, path)
        wrong = {"Authorization": "Bearer not-the-token"}
        assert client.request(method, path, json={}, headers=wrong).status_code == 401, (method, path)
    assert client.get("/healthz").status_code == 200, "reads need no token"


def test_labels_are_validated_by_the_contract_and_stored(client: TestClient, parts: Learning) -> None:
    created = client.post("/labels", json=[LABEL, {**LABEL, "text": "Acme  BEATS estimates"}], headers=AUTH)
    assert created.status_code == 201
    assert created.json()["inserted"] == 1, "the same text up to case and spaces is one sample"
    bad = client.post("/labels", json=[LABEL, {**LABEL, "sentiment": "bullish"}], headers=AUTH)
    assert bad.status_code == 422
    assert bad.json()["field"].startswith("[1].sentiment") and "label 1" in bad.json()["message"]
    assert client.post("/labels", content=b"{not json", headers=AUTH).json()["error"] == "invalid_json"
    assert client.get("/labels/stats").json()["total"] == 1


def test_review_queue_lists_least_certain_first_and_takes_answers(
    client: TestClient, parts: Learning
) -> None:
    offered = parts.review.offer(
        [
            Candidate(f"e{i}", f"text {i}", {"sentiment": "neutral"}, "sentiment", margin, "m1")
            for i, margin in enumerate((0.3, 0.05, 0.2))
        ]
    )
    assert offered == 3
    items = client.get("/review").json()
    assert [item["event_id"] for item in items] == ["e1", "e2", "e0"]
    answer = client.post(
        f"/review/{items[0]['id']}/label", json={"labeled_by": "ana", "sentiment": "negative"}, headers=AUTH
    )
    assert answer.status_code == 200
    assert [item["event_id"] for item in client.get("/review").json()] == ["e2", "e0"]
    again = client.post(
        f"/review/{items[0]['id']}/label", json={"labeled_by": "ana", "sentiment": "negative"}, headers=AUTH
    )
    assert again.status_code == 409
    assert (
        client.post("/review/999999/label", json={"labeled_by": "a", "topic": "x"}, headers=AUTH).status_code
        == 404
    )
    assert parts.labels.counts()["total"] == 1


def test_silences_round_trip(client: TestClient) -> None:
    body = {"matchers": {"scope_key": "entity:acme"}, "minutes": 30, "created_by": "ana", "comment": "known"}
    silence_id = client.post("/silences", json=body, headers=AUTH).json()["id"]
    assert [s["id"] for s in client.get("/silences").json()] == [silence_id]
    assert client.delete(f"/silences/{silence_id}", headers=AUTH).status_code == 200
    assert client.get("/silences").json() == []
    assert client.delete(f"/silences/{silence_id}", headers=AUTH).status_code == 404


def test_models_promote_and_roll_back(client: TestClient, parts: Learning, tmp_path: Path) -> None:
    for seed in (1, 2):
        parts.registry.register(
            build_tiny_bundle(tmp_path / f"b{seed}", seed=seed, version=f"v{seed}"), "champion"
        )
    assert {m["version"]: m["status"] for m in client.get("/models").json()} == {
        "v1": "retired",
        "v2": "champion",
    }
    assert client.post("/models/rollback", headers=AUTH).json()["version"] == "v1"
    assert (tmp_path / "current").resolve() == (tmp_path / "registry" / "v1").resolve()
    assert client.post("/models/rollback", headers=AUTH).status_code == 409, (
        "v2 was rolled back: not a target"
    )
    assert client.post("/models/v2/promote", headers=AUTH).json()["status"] == "champion"
    assert client.post("/models/v9/promote", headers=AUTH).status_code == 404


def test_metrics_and_readiness(client: TestClient, parts: Learning) -> None:
    parts.labels.add([])
    client.post("/labels", json=[LABEL], headers=AUTH)
    text = client.get("/metrics").text
    assert "finsentry_labelled_samples 1.0" in text
    assert client.get("/readyz").json() == {"status": "ready"}


def test_no_input_makes_a_server_error(app: FastAPI) -> None:
    """Schemathesis generates requests from the served OpenAPI document, operation by operation."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    calls: list[int] = []
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call(headers=AUTH)
            calls.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])

        no_server_error()
    assert len(calls) >= 5 * len(operations), "schemathesis generated requests for every operation"
    assert any(200 <= code < 300 for code in calls) and any(code == 422 for code in calls)
