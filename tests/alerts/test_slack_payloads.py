"""Hostile crawled text in Slack messages: shown as it is, never obeyed (issue 27).

Each case's Slack body is compared with its golden file under golden/; `FINSENTRY_UPDATE_GOLDEN=1`
rewrites them (read each one before committing it). The invariants below hold whatever the goldens
say: no mention, no link but the evidence's own http(s) url, no formatting from an event, and every
text within Slack's limits.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import httpx
import pytest

from alerts.notifiers import KafkaNotifier, WebhookNotifier, slack_blocks

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("FINSENTRY_UPDATE_GOLDEN") == "1"
URL = "https://news.example/markets/northwind-q3"


def alert(
    text: str = "Northwind Bank misses third-quarter profit estimates as loan losses double",
    url: object = URL,
    *,
    rule: str = "company-negative-surge",
    scope: str = "entity",
    scope_key: str = "entity:northwind-bank",
    status: str = "firing",
    number: int = 1,
    pieces: int = 1,
) -> dict[str, Any]:
    """An alert as alerts.lifecycle.alert_message writes it, with `pieces` of evidence (3 at most)."""
    evidence: list[dict[str, Any]] = []
    for piece in range(pieces):
        item: dict[str, Any] = {"id": f"news-{number}-{piece}", "text": text, "negative": 0.97 - piece / 10}
        if url is not None:
            item["url"] = url
        evidence.append(item)
    return {
        "schema_version": 1,
        "alert_id": f"7c9e6679-7425-40de-944b-e07fc1f9{number:04d}",
        "rule": rule,
        "scope": scope,
        "scope_key": scope_key,
        "status": status,
        "severity": "critical",
        "labels": {"team": "risk"},
        "starts_at": "2026-11-29T09:00:00Z",
        "ends_at": None,
        "window": {
            "duration_s": 900,
            "count": 30,
            "negative": 24,
            "neutral": 3,
            "positive": 3,
            "negative_ratio": 0.8,
            "negative_zscore": 4.2,
        },
        "evidence": evidence,
    }


def notification(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "firing", "alerts": list(alerts)}


CASES: dict[str, dict[str, Any]] = {
    "channel_mention": notification(alert("<!channel> Northwind Bank halts all withdrawals")),
    "here_mention_with_label": notification(alert("<!here|x> liquidity crunch at Northwind")),
    "user_mention": notification(alert("<@U123> says Northwind Bank is insolvent")),
    "disguised_link": notification(alert("Download <https://evil.example|Your bank statement> now")),
    "already_escaped": notification(alert("&lt;!channel&gt; &amp; friends sell Northwind")),
    "formatting": notification(alert("*bold* _it_ ~s~ `code` ```block``` Northwind")),
    "bare_mentions": notification(alert("@channel @here @everyone Northwind is done")),
    "bare_url": notification(alert("Log in at https://evil.example/login or www.evil.example now")),
    "javascript_url": notification(alert(url="javascript:alert(1)")),
    "url_breakout": notification(alert(url="https://news.example/a|b>c <!channel>?q=1&r=2")),
    "long_text": notification(alert("Northwind & Helios <b>sink</b> " * 323)),  # 10,013 characters
    "chinese": notification(alert("北风银行三季度净利润不及预期，坏账翻倍，股价下跌7.5% @所有人")),
    "rtl_override": notification(alert("Your statement: invoice\u202egnp.exe\u202c from Northwind")),
    "control_chars": notification(alert("Northwind\x00 Bank\x07 misses\x1b[31m estimates\r\nagain\x85\x9b")),
    "hostile_scope_key_and_rule": notification(
        alert(
            rule="<!everyone> *surge*",
            scope="source",
            scope_key="source:<!channel> *Breaking* _news_ evil.example @here \u202eylno",
        )
    ),
    "too_many_alerts": notification(
        *(alert(scope_key=f"entity:company-{i}", number=i, pieces=3) for i in range(12))
    ),
}

# What the evidence link of a case must be, escaped as it stands in the mrkdwn; None: no link at all.
LINKS: dict[str, str | None] = {
    "javascript_url": None,
    "url_breakout": "https://news.example/a%7Cb%3Ec%20%3C!channel%3E?q=1&amp;r=2",
}


def render(body: dict[str, Any]) -> str:
    """The golden form: indented JSON, letters (Chinese too) as they are, but every other non-ASCII
    character written as its \\u escape, so that a reader sees zero-width spaces and look-alikes."""
    text = json.dumps(body, ensure_ascii=False, indent=2) + "\n"

    def shown(match: re.Match[str]) -> str:
        char = match.group()
        if unicodedata.category(char) == "Lo" or char in "…“”":
            return char
        return json.dumps(char)[1:-1]

    return re.sub(r"[^\x00-\x7f]", shown, text)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_slack_body_is_the_golden_one(case: str) -> None:
    path = GOLDEN / f"slack_{case}.json"
    rendered = render(slack_blocks(CASES[case]))
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"no golden file {path.name}: run with FINSENTRY_UPDATE_GOLDEN=1, then read it"
    assert rendered == path.read_text(encoding="utf-8")


def test_every_golden_file_has_its_case() -> None:
    assert sorted(p.name for p in GOLDEN.glob("slack_*.json")) == sorted(f"slack_{c}.json" for c in CASES)


def text_objects(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every text object of the blocks, and the top-level `text` as the mrkdwn it is."""
    found = [{"type": "mrkdwn", "text": body["text"], "top": True}]
    for block in body["blocks"]:
        if "text" in block:
            found.append(block["text"])
        found += block.get("fields", [])
        found += [e for e in block.get("elements", []) if "text" in e]
    return found


LINK = re.compile(r"<(https?://[^\s<>|\"]+)\|source>")
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
EMOJI = re.compile(r":(?:red_circle|large_orange_circle|large_blue_circle|white_check_mark):")


def assert_inert(payload: dict[str, Any], expected_links: list[str]) -> None:
    body = slack_blocks(payload)
    assert len(body["blocks"]) <= 50
    assert 0 < len(body["text"]) <= 3000
    assert "<!" not in json.dumps(body), "a mention (or a mention's look-alike) went through"
    links = []
    for obj in text_objects(body):
        text = obj["text"]
        assert 0 < len(text) <= 3000, obj
        assert not CONTROL.search(text), f"a control or bidi character: {text!r}"
        assert not re.search(r"&(?!amp;|lt;|gt;)", text), f"a raw `&` or a cut escape: {text!r}"
        if obj["type"] == "plain_text":
            assert obj.get("emoji") is False, obj
        elif LINK.fullmatch(text):
            links.append(LINK.fullmatch(text).group(1))  # an element of its own, and nothing else
            continue
        assert "<" not in text and ">" not in text, f"unescaped < or >: {text!r}"
        assert not re.search(r"(?i)@(?:channel|here|everyone)\b", text), f"a bare mention: {text!r}"
        assert not re.search(r"(?i)\b(?:https?|javascript):/*\w", text), f"a bare url: {text!r}"
        assert not re.search(r"(?i)[^\W_]\.[a-z]", text), f"a bare domain: {text!r}"
        if obj["type"] == "mrkdwn":
            ours = EMOJI.sub("", text)
            # Ours alone: `*Critical: rule*` and `*scope:*` in a section; none in the fallback text.
            assert ours.count("*") == (0 if obj.get("top") or "\n" not in text else 4), text
            assert not re.search("[_~`＊＿｀]", ours), f"formatting from an event: {text!r}"
    for block in body["blocks"]:
        if block["type"] != "context":
            continue
        first, *rest = block["elements"]
        if first["type"] == "mrkdwn":  # ours: the note of what was left out, as the last block
            assert block is body["blocks"][-1] and first["text"].startswith("… and "), block
            continue
        assert first["type"] == "plain_text", "crawled text only ever in plain_text"
        assert all(LINK.fullmatch(e["text"]) for e in rest), block
    assert links == expected_links


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_input_is_shown_and_never_obeyed(case: str) -> None:
    payload = CASES[case]
    shown = payload["alerts"][: 9 if case == "too_many_alerts" else None]  # nine of five blocks fit
    expected = LINKS.get(case, URL)
    pieces = sum(len(a["evidence"]) for a in shown)
    assert_inert(payload, [] if expected is None else [expected] * pieces)


def test_the_worst_case_stays_within_slacks_limits() -> None:
    """Ampersands grow fivefold when escaped; everything is cut before, so nothing grows past 3000."""
    huge = "&" * 10_000
    payload = notification(
        *(
            alert(huge, f"https://news.example/{huge}", rule=huge, scope=huge, scope_key=huge)
            for _ in range(20)
        )
    )
    assert_inert(payload, [])  # a url that long gets no link: a cut one would lead elsewhere
    body = slack_blocks(payload)
    quoted = body["blocks"][1]["elements"][0]["text"]
    assert quoted == "“" + "&amp;" * 279 + "…”", "cut to 280 characters, then escaped"
    assert body["text"].endswith("; … and 19 more"), "the fallback text says what it left out"


def test_at_most_fifty_blocks_and_the_last_says_how_many_were_left_out() -> None:
    body = slack_blocks(notification(*(alert(number=i, pieces=3) for i in range(30))))
    assert len(body["blocks"]) == 46, "nine alerts of five blocks, and the note"
    assert body["blocks"][-1]["elements"][0]["text"] == (
        "… and 21 more alerts, left out: a Slack message holds 50 blocks"
    )
    assert body["text"].count("company-negative-surge firing for northwind-bank") == 30
    exactly = slack_blocks(notification(*(alert(number=i, pieces=3) for i in range(10))))
    assert len(exactly["blocks"]) == 50 and exactly["blocks"][-1] == {"type": "divider"}, "all ten fit"


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("https://news.example/markets/1", "https://news.example/markets/1"),
        ("HTTPS://News.Example:8443/a?b=1&c=2#top", "https://news.example:8443/a?b=1&amp;c=2#top"),
        ('http://news.example/a b|c>d<e"f', "http://news.example/a%20b%7Cc%3Ed%3Ce%22f"),
        (" https://news.example/x\n", "https://news.example/x"),
        ("https://例え.jp/パス", "https://xn--r8jz45g.jp/%E3%83%91%E3%82%B9"),
        ("http://[2001:db8::1]/x", "http://[2001:db8::1]/x"),
        ("javascript:alert(1)", None),
        ("JavaScript://news.example/%0aalert(1)", None),
        ("\x00javascript:alert(1)", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("ftp://files.example/report.pdf", None),
        ("//evil.example/login", None),
        ("/markets/1", None),
        ("https:evil.example", None),
        ("https://", None),
        ("https://northwind-bank.example@evil.example/login", None),
        ("https://news.example:99999/", None),
        ("https://evil<x>.example/", None),
        ("https://news.example/" + "a" * 2000, None),
        ("", None),
        (None, None),
        (42, None),
    ],
)
def test_only_an_absolute_http_url_becomes_the_source_link(url: object, target: str | None) -> None:
    assert_inert(notification(alert(url=url)), [] if target is None else [target])


def test_a_resolved_alert_without_evidence_is_inert_too() -> None:
    resolved = alert(rule="<!here>", scope_key="topic:*earnings*", status="resolved")
    resolved["evidence"] = []
    assert_inert(notification(resolved), [])
    assert slack_blocks(notification(resolved))["blocks"][0]["text"]["text"].startswith(
        ":white_check_mark: *Resolved: &lt;!here&gt;*"
    )


HOSTILE = "<!channel> *x* <https://evil.example|bank> \u202e &amp; 北风银行 \x00"


def test_the_generic_webhook_sends_the_alert_as_json_untouched() -> None:
    """JSON carries any text safely; the receiver gets exactly what the alert holds."""
    received: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(200)

    payload = notification(alert(HOSTILE, url="javascript:alert(1)"))
    notifier = WebhookNotifier("hooks", "https://hooks.example/in")
    notifier._client = httpx.Client(transport=httpx.MockTransport(answer))
    assert notifier.send(7, payload).ok
    [request] = received
    assert json.loads(request.content) == payload
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "finsentry-7"


def test_kafka_publishes_each_alert_as_json_untouched() -> None:
    sent: list[tuple[str, bytes, bytes]] = []

    class Future:
        def get(self, timeout: float) -> None:
            return None

    class Producer:
        def send(self, topic: str, key: bytes, value: bytes) -> Future:
            sent.append((topic, key, value))
            return Future()

    notifier = object.__new__(KafkaNotifier)  # without __post_init__: no broker
    notifier.name, notifier.topic, notifier._producer = "kafka", "alerts", Producer()
    payload = notification(alert(HOSTILE))
    assert notifier.send(1, payload).ok
    [(topic, key, value)] = sent
    assert (topic, key) == ("alerts", payload["alerts"][0]["alert_id"].encode())
    assert json.loads(value) == payload["alerts"][0]
