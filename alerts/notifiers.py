"""Receivers: every integration implements one interface, `send(notification) -> Delivery`.

Webhook URLs are secrets (Slack's carries its token in the path): they are held here and never
logged; errors name the receiver, not its URL.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

COLOURS = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}


@dataclass(frozen=True)
class Delivery:
    ok: bool
    retry_after_s: float | None = None
    error: str | None = None
    permanent: bool = False  # a retry cannot help (the receiver refused the message itself)


class Notifier(Protocol):
    name: str

    def send(self, notification_id: int, payload: dict[str, Any]) -> Delivery: ...


def _http_delivery(name: str, response: httpx.Response) -> Delivery:
    if response.status_code < 300:
        return Delivery(ok=True)
    if response.status_code == 429:
        retry_after = response.headers.get("Retry-After", "1")
        return Delivery(
            ok=False,
            retry_after_s=float(retry_after) if retry_after.isdigit() else 1.0,
            error=f"{name}: rate limited (429)",
        )
    permanent = 400 <= response.status_code < 500
    return Delivery(
        ok=False, error=f"{name}: HTTP {response.status_code} {response.text[:100]}", permanent=permanent
    )


def _post(
    client: httpx.Client, name: str, url: str, body: dict[str, Any], timeout_s: float, headers: dict[str, str]
) -> Delivery:
    try:
        response = client.post(url, json=body, timeout=timeout_s, headers=headers)
    except httpx.TimeoutException:
        return Delivery(ok=False, error=f"{name}: no answer within {timeout_s:.0f}s")
    except httpx.HTTPError as exc:
        return Delivery(ok=False, error=f"{name}: {type(exc).__name__}")
    return _http_delivery(name, response)


def slack_blocks(payload: dict[str, Any]) -> dict[str, Any]:
    """Block Kit: what happened, about whom, the window's figures and the most negative texts."""
    blocks: list[dict[str, Any]] = []
    lines = []
    for alert in payload["alerts"]:
        window = alert["window"]
        resolved = alert["status"] == "resolved"
        icon = ":white_check_mark:" if resolved else COLOURS.get(alert["severity"], "")
        title = f"{icon} *{'Resolved' if resolved else alert['severity'].title()}: {alert['rule']}*"
        subject = alert["scope_key"].split(":", 1)[-1]
        lines.append(f"{alert['rule']} {alert['status']} for {subject}")
        figures = (
            f"{window['negative']} negative of {window['count']} "
            f"({window['negative_ratio']:.0%}) in {window['duration_s'] // 60} min"
        )
        if window.get("negative_zscore") is not None:
            figures += f", z-score {window['negative_zscore']:.1f}"
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": f"{title}\n*{alert['scope']}:* {subject}\n{figures}"},
            }
        )
        for item in alert.get("evidence", [])[:3]:
            text = item["text"][:280]
            link = f" <{item['url']}|source>" if item.get("url") else ""
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"> {text}{link}"}]})
        blocks.append({"type": "divider"})
    return {"text": "; ".join(lines)[:3000], "blocks": blocks[:50]}


@dataclass
class HttpNotifier:
    """A JSON POST to a URL that is a secret: repr and errors show the receiver's name only."""

    name: str
    url: str
    timeout_s: float = 5.0
    # One client per receiver, for the dispatcher's one thread: its TLS context is built once (some 40 ms
    # of CPU each time) and its connection stays open from one message to the next.
    _client: httpx.Client | None = field(default=None, init=False, repr=False, compare=False)

    def body(self, payload: dict[str, Any]) -> dict[str, Any]:
        return payload

    def headers(self, notification_id: int) -> dict[str, str]:
        return {}

    def send(self, notification_id: int, payload: dict[str, Any]) -> Delivery:
        if self._client is None:
            self._client = httpx.Client()
        return _post(
            self._client,
            self.name,
            self.url,
            self.body(payload),
            self.timeout_s,
            self.headers(notification_id),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class SlackNotifier(HttpNotifier):
    """Slack incoming webhook, in Block Kit."""

    def body(self, payload: dict[str, Any]) -> dict[str, Any]:
        return slack_blocks(payload)


class WebhookNotifier(HttpNotifier):
    """Generic JSON webhook; the Idempotency-Key lets the receiver drop a retried duplicate."""

    def headers(self, notification_id: int) -> dict[str, str]:
        return {"Idempotency-Key": f"finsentry-{notification_id}"}


@dataclass
class KafkaNotifier:
    """Each alert of the notification onto a Kafka topic, keyed by alert id."""

    name: str
    bootstrap: str
    topic: str = "alerts"

    def __post_init__(self) -> None:
        from kafka import KafkaProducer

        self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")

    def send(self, notification_id: int, payload: dict[str, Any]) -> Delivery:
        from kafka.errors import KafkaError

        try:
            futures = [
                self._producer.send(self.topic, key=a["alert_id"].encode(), value=json.dumps(a).encode())
                for a in payload["alerts"]
            ]
            for future in futures:
                future.get(timeout=10)
        except KafkaError as exc:
            return Delivery(ok=False, error=f"{self.name}: {type(exc).__name__}")
        return Delivery(ok=True)


_ENV = re.compile(r"\$\{([A-Z0-9_]+)\}")


def load_receivers(path: Path, kafka_bootstrap: str) -> dict[str, Notifier]:
    """receivers.yaml: `name: {type: slack|webhook|kafka, url: ${ENV_VAR}, topic: ...}`.

    URLs should come from the environment (`${SLACK_RISK_URL}`), so the file holds no secret.
    """
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    receivers: dict[str, Notifier] = {}
    for name, config in (spec.get("receivers") or {}).items():
        kind = config.get("type")
        url = _ENV.sub(lambda m: os.environ.get(m.group(1), ""), str(config.get("url", "")))
        if kind in ("slack", "webhook") and not url:
            raise ValueError(f"{path}: receiver {name!r} has no url (is its environment variable set?)")
        if kind == "slack":
            receivers[name] = SlackNotifier(name, url, float(config.get("timeout_s", 5)))
        elif kind == "webhook":
            receivers[name] = WebhookNotifier(name, url, float(config.get("timeout_s", 5)))
        elif kind == "kafka":
            receivers[name] = KafkaNotifier(name, kafka_bootstrap, str(config.get("topic", "alerts")))
        else:
            raise ValueError(f"{path}: receiver {name!r} has type {kind!r}; use slack, webhook or kafka")
    return receivers
