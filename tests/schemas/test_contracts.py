"""Contracts: every schema is valid 2020-12, and breaches get a code and a message naming the field."""

from __future__ import annotations

import json

import jsonschema_rs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import KINDS, Contract, ContractError, load_schema

GOOD = {"id": "n-1", "source": "wire", "published_at": "2026-11-29T09:30:00Z", "text": "Rates rise"}


@pytest.mark.parametrize("kind", KINDS)
def test_each_schema_is_a_valid_2020_12_schema(kind: str) -> None:
    schema = load_schema(kind)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema_rs.Draft202012Validator(schema)  # raises on an invalid schema
    assert Contract.of(kind).kind == kind


@pytest.mark.parametrize(
    ("raw", "code", "field", "words"),
    [
        (b'{"id": "x", "text": ', "invalid_json", None, "not JSON"),
        (b'{"id": "caf\xe9"}', "invalid_utf8", None, "UTF-8"),
        (b"[1, 2]", "not_an_object", None, "JSON object"),
        (json.dumps({**GOOD, "text": None}).encode(), "wrong_type", "text", "expected"),
        (
            json.dumps({k: v for k, v in GOOD.items() if k != "text"}).encode(),
            "missing_field",
            "text",
            "missing",
        ),
        (json.dumps({**GOOD, "text": "x" * 16_001}).encode(), "text_too_long", "text", "16000"),
        (json.dumps({**GOOD, "schema_version": 2}).encode(), "unknown_schema_version", "schema_version", "2"),
        (
            json.dumps({**GOOD, "published_at": "yesterday"}).encode(),
            "invalid_value",
            "published_at",
            "date-time",
        ),
        (
            json.dumps({**GOOD, "entities": [{"name": "Apple"}]}).encode(),
            "missing_field",
            "entities.0.id",
            "missing",
        ),
        (json.dumps({**GOOD, "text": "bad \ud800 half"}).encode(), "invalid_utf8", "text", "surrogate"),
    ],
)
def test_breaches_name_the_field_and_the_reason(raw: bytes, code: str, field: str | None, words: str) -> None:
    with pytest.raises(ContractError) as caught:
        Contract.of("news").decode(raw, max_bytes=65_536)
    assert caught.value.code == code
    assert caught.value.field == field
    assert words in caught.value.message
    if field:
        assert f"'{field}'" in caught.value.message


def test_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(ContractError) as caught:
        Contract.of("news").decode(b" " * 2_000, max_bytes=1_024)
    assert caught.value.code == "message_too_large"


def test_unknown_version_wins_over_other_breaches() -> None:
    with pytest.raises(ContractError) as caught:
        Contract.of("comment").validate({"schema_version": 9})
    assert caught.value.code == "unknown_schema_version"


def test_label_needs_a_topic_or_a_sentiment() -> None:
    label = Contract.of("label")
    label.validate({"schema_version": 1, "text": "Rates rise", "labeled_by": "ana", "sentiment": "negative"})
    with pytest.raises(ContractError):
        label.validate({"schema_version": 1, "text": "Rates rise", "labeled_by": "ana"})


@given(st.binary(max_size=300))
def test_any_bytes_are_either_valid_or_a_contract_error(raw: bytes) -> None:
    try:
        message = Contract.of("news").decode(raw, max_bytes=65_536)
    except ContractError as exc:
        assert exc.code and exc.message
    else:
        assert isinstance(message["text"], str)
