"""Message contracts: one JSON Schema (2020-12) file per message kind, and validators built from them.

The JSON files are the single source of truth; `Contract` compiles one (Rust validator, microseconds
per message) and turns its first error into a code and a message that name the field and the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

from schemas.urls import BadUrl, normalise_url

SCHEMA_DIR = Path(__file__).parent
KINDS = ("news", "comment", "scored", "dlq", "alert", "label", "model_updated")
SCHEMA_VERSION = 1

# Which error wins when a message breaks several rules: an unknown version makes the rest moot.
_PRIORITY = {"unknown_schema_version": 0, "missing_field": 1, "wrong_type": 2, "text_too_long": 3}


class ContractError(ValueError):
    """A message that breaks its contract: `code` for machines, `message` for people."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.message = message


@cache
def load_schema(kind: str) -> dict[str, Any]:
    if kind not in KINDS:
        raise ValueError(f"unknown message kind {kind!r}; one of {', '.join(KINDS)}")
    return json.loads((SCHEMA_DIR / f"{kind}.json").read_text(encoding="utf-8"))


def _field_path(error: Any) -> str | None:
    path = ".".join(str(p) for p in error.instance_path)
    if type(error.kind).__name__ == "Required":
        missing = str(error.kind.property)
        return f"{path}.{missing}" if path else missing
    return path or None


def _code(error: Any, field: str | None) -> str:
    kind = type(error.kind).__name__
    if field == "schema_version" and kind in ("Enum", "Constant", "Type"):
        return "unknown_schema_version"
    if kind == "Required":
        return "missing_field"
    if kind == "Type":
        return "wrong_type"
    if kind == "MaxLength" and field == "text":
        return "text_too_long"
    if field == "url":
        return "bad_url"
    return "invalid_value"


def _reason(error: Any, code: str) -> str:
    kind = error.kind
    name = type(kind).__name__
    if code == "missing_field":
        return "required field is missing"
    if code == "unknown_schema_version":
        return f"schema_version {error.instance!r} is not supported (supported: {SCHEMA_VERSION})"
    if name == "MaxLength":
        return f"longer than {kind.limit} characters"
    if name == "Type":
        return f"expected {error.message.rsplit('is not of type', 1)[-1].strip()}"
    return error.message if len(error.message) <= 200 else error.message[:200] + "..."


# JSON may spell a lone UTF-16 surrogate (\\ud800) that no UTF-8 output can carry; such text would
# fail later, on the way out. Only messages that contain such an escape pay for the full check.
_MAYBE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _refuse_lone_surrogates(value: Any, path: str = "") -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            where = f"field '{path}'" if path else "message"
            raise ContractError(
                "invalid_utf8", f"{where}: contains an unpaired surrogate escape", path
            ) from exc
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_lone_surrogates(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_lone_surrogates(item, f"{path}.{index}" if path else str(index))


@cache
def _url_fields(kind: str) -> tuple[str, ...]:
    properties = load_schema(kind).get("properties", {})
    return tuple(name for name, spec in properties.items() if spec.get("format") in ("uri", "iri"))


@dataclass(frozen=True)
class Contract:
    kind: str
    validator: Any

    @classmethod
    @cache
    def of(cls, kind: str) -> Contract:
        return cls(kind, jsonschema_rs.validator_for(load_schema(kind), validate_formats=True))

    def validate(self, message: Any) -> dict[str, Any]:
        """Returns the message if it keeps the contract; raises ContractError for its worst breach."""
        if not isinstance(message, dict):
            raise ContractError("not_an_object", f"{self.kind} message must be a JSON object")
        for name in self.url_fields:
            if isinstance(message.get(name), str):
                try:
                    message[name] = normalise_url(message[name])
                except BadUrl as exc:
                    raise ContractError("bad_url", f"field '{name}': {exc}", name) from exc
        if self.validator.is_valid(message):
            return message
        errors = []
        for error in self.validator.iter_errors(message):
            field = _field_path(error)
            code = _code(error, field)
            errors.append((_PRIORITY.get(code, 9), code, field, error))
        _, code, field, error = min(errors, key=lambda e: e[0])
        alternatives = self._required_alternatives()
        if type(error.kind).__name__ == "AnyOf" and not field and alternatives:
            needs = f"{self.kind} message: needs {' or '.join(alternatives)} (or both)"
            raise ContractError("missing_field", needs, alternatives[0])
        where = f"field '{field}'" if field else f"{self.kind} message"
        raise ContractError(code, f"{where}: {_reason(error, code)}", field)

    @property
    def url_fields(self) -> tuple[str, ...]:
        """Top-level fields that hold a crawled link (`format: uri` or `iri`): normalised before the check."""
        return _url_fields(self.kind)

    def _required_alternatives(self) -> list[str]:
        """Field names of a top-level `anyOf` whose branches each only require one field."""
        branches = load_schema(self.kind).get("anyOf", [])
        names = [b["required"][0] for b in branches if set(b) == {"required"} and len(b["required"]) == 1]
        return names if names and len(names) == len(branches) else []

    def decode(self, raw: bytes | None, max_bytes: int) -> dict[str, Any]:
        """Bytes off the wire to a valid message, or ContractError saying what is wrong with them."""
        if raw is None:
            raise ContractError("invalid_json", "message has no value (null)")
        if len(raw) > max_bytes:
            raise ContractError("message_too_large", f"message is {len(raw)} bytes; the limit is {max_bytes}")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ContractError("invalid_utf8", f"message is not valid UTF-8 (byte {exc.start})") from exc
        try:
            message = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ContractError(
                "invalid_json", f"message is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            ) from exc
        if _MAYBE_SURROGATE.search(text):
            _refuse_lone_surrogates(message)
        return self.validate(message)
