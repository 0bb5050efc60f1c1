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
from urllib.parse import quote, urlsplit

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


# Slack's limits (Block Kit reference): a message holds at most 50 blocks; a text object, a section's
# text and the message's top-level `text` at most 3000 characters each.
MAX_BLOCKS = 50
MAX_TEXT = 3000
EVIDENCE_CHARS = 280  # of a crawled text quoted as evidence: a glance, not the article
VALUE_CHARS = 200  # of a rule name or subject (a source name may be 200 long); 5x that once escaped
WORD_CHARS = 20  # of a severity, scope or status: one word
URL_CHARS = 2000  # a longer url gets no link: a cut url would lead somewhere else
ELLIPSIS = "…"  # marks a cut text
ZWSP = "\u200b"

# Control characters (NUL, ESC, C1), bidi embeddings, overrides and isolates (U+202E turns the rest
# of a line around: "gnp.exe" reads "exe.png"), and lone surrogates: dropped from anything shown.
_DROPPED = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s+")
# Slack links a bare url or domain and turns `@channel`, `@here`, `@everyone` and `#channel` into
# mentions and channel links (in mrkdwn without `verbatim`, which the top-level `text` cannot have,
# and some clients link urls even in plain text). A zero-width space after the `:` of `://`, after a
# dot between a letter or digit and a letter (a domain's, not a decimal's), and after `@` or `#`
# breaks every such match while the text reads the same. A word joiner would not: linkifiers take it
# as part of the word and link a half url; inline code would box crawled text in monospace, and a
# backtick inside it would end the box.
_AUTOLINK = re.compile(r"(?<=[^\W_])\.(?=[^\W\d_])|:(?=//)|[@#](?=\w)")
# mrkdwn has no escape for its formatting characters, so an event's value gets look-alikes that Slack
# does not parse (after jsx-slack's <Escape>). A zero-width character beside one would not do: Slack
# takes a zero-width space as a word boundary and formats more, not less. The fullwidth forms are
# markers too. `_` also keeps a value from spelling an emoji shortcode (`:rotating_light:`).
_LOOKALIKES = str.maketrans({"*": "∗", "_": "ˍ", "~": "∼", "`": "ˋ", "＊": "﹡", "＿": "⸏", "｀": "ˋ"})
_HOST = re.compile(r"[a-z0-9.-]+|\[[0-9a-f:.]+\]")
_URL_SAFE = "/:?#[]@!$&'()*+,;=%~"  # RFC 3986's reserved characters and `%`; quote() keeps -._ too


def _clean(value: object, limit: int) -> str:
    """One line of at most `limit` characters, without control or bidi characters, cut with `…`.

    Cut before any escaping, so that an escape (`&amp;`) is never cut in half."""
    text = _WHITESPACE.sub(" ", _DROPPED.sub("", "" if value is None else str(value))).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + ELLIPSIS


def _escape(text: str) -> str:
    """Slack's own rule, for every text object: `&`, `<` and `>` are its control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _defuse(text: str) -> str:
    return _AUTOLINK.sub(lambda m: m.group() + ZWSP, text)


def _mrkdwn(value: object, limit: int = VALUE_CHARS) -> str:
    """A value taken from an event (rule, scope, subject) as mrkdwn that shows it as it is."""
    text = _defuse(_escape(_clean(value, limit))).translate(_LOOKALIKES)
    # `>` (escaped or fullwidth) opens a quote at the start of a line; a soft hyphen before it does not.
    return "\u00ad" + text if text.startswith(("&gt;", "＞")) else text


def _plain(value: object, limit: int) -> str:
    """Crawled text for a `plain_text` object, which Slack never formats, links or mentions from;
    escaped all the same, as Slack asks of every text object, and its urls broken for the clients."""
    return _defuse(_escape(_clean(value, limit)))


def _link_target(url: object) -> str | None:
    """An absolute http(s) url, ready to stand in `<url|label>`; None for anything else.

    The scheme is checked here again: evidence rows may predate validation. The url is rebuilt from
    its parsed parts (what is checked is what is sent), without user info (`https://bank@evil`),
    and with `|`, `<`, `>`, spaces, quotes and non-ASCII percent-encoded, so nothing breaks out."""
    if not isinstance(url, str) or len(url) > URL_CHARS:
        return None
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname or "", parts.port
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        return None
    if parts.scheme.lower() not in ("http", "https") or parts.username is not None:
        return None
    host = f"[{host}]" if ":" in host else host
    if not _HOST.fullmatch(host):
        return None
    netloc = host if port is None else f"{host}:{port}"
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    rest += f"#{parts.fragment}" if parts.fragment else ""
    target = f"{parts.scheme.lower()}://{netloc}{quote(rest, safe=_URL_SAFE)}"
    return _escape(target) if len(target) <= URL_CHARS else None


def _alert_blocks(alert: dict[str, Any]) -> list[dict[str, Any]]:
    window = alert["window"]
    resolved = alert["status"] == "resolved"
    severity = str(alert.get("severity", ""))
    icon = ":white_check_mark:" if resolved else COLOURS.get(severity, "")
    state = "Resolved" if resolved else _mrkdwn(severity.title(), WORD_CHARS)
    title = f"{icon} *{state}: {_mrkdwn(alert['rule'])}*"
    subject = _mrkdwn(str(alert["scope_key"]).split(":", 1)[-1])
    figures = (
        f"{window['negative']} negative of {window['count']} "
        f"({window['negative_ratio']:.0%}) in {window['duration_s'] // 60} min"
    )
    if window.get("negative_zscore") is not None:
        figures += f", z-score {window['negative_zscore']:.1f}"
    # At most 2 x 1000 + 2 x 100 characters of escaped values and some 100 of ours: within MAX_TEXT.
    text = f"{title}\n*{_mrkdwn(alert['scope'], WORD_CHARS)}:* {subject}\n{figures}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
    ]
    for item in alert.get("evidence", [])[:3]:
        if not isinstance(item, dict):
            continue
        # The crawled text as plain_text (without emoji shortcodes): Slack shows it as it is.
        quoted = f"“{_plain(item.get('text'), EVIDENCE_CHARS)}”"
        elements: list[dict[str, Any]] = [{"type": "plain_text", "text": quoted, "emoji": False}]
        target = _link_target(item.get("url"))
        if target:
            elements.append({"type": "mrkdwn", "text": f"<{target}|source>", "verbatim": True})
        blocks.append({"type": "context", "elements": elements})
    blocks.append({"type": "divider"})
    return blocks


def _summary(alert: dict[str, Any]) -> str:
    subject = str(alert["scope_key"]).split(":", 1)[-1]
    return f"{_mrkdwn(alert['rule'])} {_mrkdwn(alert['status'], WORD_CHARS)} for {_mrkdwn(subject)}"


def slack_blocks(payload: dict[str, Any]) -> dict[str, Any]:
    """Block Kit: what happened, about whom, the window's figures and the most negative texts.

    Whatever comes from an event is shown, never obeyed: no mention, link or formatting of its own,
    only the evidence's own http(s) url as its `source` link; within Slack's limits, cut with `…`."""
    alerts = payload["alerts"]
    blocks: list[dict[str, Any]] = []
    shown = 0
    for alert in alerts:
        spare = 1 if shown + 1 < len(alerts) else 0  # for the note below, should a later one not fit
        alert_blocks = _alert_blocks(alert)
        if len(blocks) + len(alert_blocks) > MAX_BLOCKS - spare:
            break
        blocks += alert_blocks
        shown += 1
    if shown < len(alerts):
        left = len(alerts) - shown
        note = (
            f"{ELLIPSIS} and {left} more alert{'s' if left > 1 else ''}, left out: "
            f"a Slack message holds {MAX_BLOCKS} blocks"
        )
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    lines: list[str] = []
    for i, alert in enumerate(alerts):
        line = _summary(alert)  # at most some 2100 characters: the first one always fits
        if len("; ".join([*lines, line])) > MAX_TEXT - 40:
            lines.append(f"{ELLIPSIS} and {len(alerts) - i} more")
            break
        lines.append(line)
    return {"text": "; ".join(lines), "blocks": blocks}


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
    # The client's security options (foundation.connections.kafka_python_options); never shown.
    options: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        from kafka import KafkaProducer

        self._producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", **self.options)

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


def load_receivers(
    path: Path, kafka_bootstrap: str, kafka_options: dict[str, Any] | None = None
) -> dict[str, Notifier]:
    """receivers.yaml: `name: {type: slack|webhook|kafka, url: ${ENV_VAR}, topic: ...}`.

    URLs should come from the environment (`${SLACK_RISK_URL}`), so the file holds no secret; Kafka
    receivers connect with `kafka_options` (SASL and TLS, from settings).
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
            receivers[name] = KafkaNotifier(
                name, kafka_bootstrap, str(config.get("topic", "alerts")), dict(kafka_options or {})
            )
        else:
            raise ValueError(f"{path}: receiver {name!r} has type {kind!r}; use slack, webhook or kafka")
    return receivers
