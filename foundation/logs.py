"""Structured logs: one line per event, `key=value` for people or JSON for machines.

Fields come from `extra=` on the log call. Values under keys that name secrets are masked, URLs
lose their path and query (webhook URLs carry their token there), and personal data in any text is
masked (foundation/masking.py).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from foundation.masking import mask

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_SECRET_KEY = re.compile(r"(token|secret|password|passwd|webhook|authorization|api_key)", re.I)
# user:password@ up to the last @ before the host, so that a password with a stray @ goes whole.
_URL_CREDENTIALS = re.compile(r"(\w+://)([^/\s]*@)")
_URL_PATH = re.compile(r"(https?://[^/\s]+)/\S*")


def without_credentials(text: str) -> str:
    """The text with the user:password@ of each URL in it (rediss://, postgresql://...) as ***@: for
    showing a configured URL to people."""
    return _URL_CREDENTIALS.sub(r"\1***@", text)


def redact(key: str, value: object) -> object:
    if _SECRET_KEY.search(key):
        return "***"
    if isinstance(value, str):
        return mask(_URL_PATH.sub(r"\1/***", without_credentials(value)))
    return value


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: redact(k, v) for k, v in record.__dict__.items() if k not in _STANDARD}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        fields = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        line = f"{ts} {record.levelname:<5} {record.name}: {redact('', record.getMessage())}"
        if fields:
            line += f"  {fields}"
        if record.exc_info:
            line += "\n" + str(redact("", self.formatException(record.exc_info)))
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact("", record.getMessage()),
            **_fields(record),
        }
        if record.exc_info:
            payload["exception"] = redact("", self.formatException(record.exc_info))
        return json.dumps(payload, default=str, ensure_ascii=False)


def configure(level: str = "INFO", json_lines: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "kafka", "faust", "mode", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
