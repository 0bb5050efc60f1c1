"""Crawled text that tries to ping a channel or dress up a link, from the outbox through the real dispatcher
to the Slack stand-in. On 0a5b3b2 `<!channel>` and `<https://evil.example|Your bank statement>` went into
the message as Slack control sequences. (Golden payloads for many more: tests/alerts/test_slack_payloads.)"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from alerts.dispatcher import Dispatcher
from alerts.lifecycle import AlertLifecycle
from alerts.notifiers import SlackNotifier
from finsentry.slack_standin import SlackStandIn
from tests.alerts.test_lifecycle import evaluation, rule

HOSTILE = [
    {"id": "e1", "text": "<!channel> Acme is bankrupt, act now", "url": "https://news.example/a"},
    {"id": "e2", "text": "See <https://evil.example/login|Your bank statement>", "url": "javascript:x()"},
    {"id": "e3", "text": "<@U024BE7LH> *urgent* @here", "url": "https://x.example/a|b><!here>"},
]


def test_hostile_evidence_reaches_slack_as_text(sql_engine: Engine) -> None:
    burst = rule("surge", **{"for": "0s", "receivers": ["slack"]})
    AlertLifecycle(sql_engine, evidence=lambda _key, _window: HOSTILE).apply(
        [evaluation(burst, "entity:acme", True)], datetime(2026, 12, 4, 9)
    )
    with SlackStandIn() as slack:
        Dispatcher(sql_engine, {"slack": SlackNotifier("slack", slack.url)}).run_once()
        assert len(slack.accepted) == 1
        body = slack.accepted[0]
    texts = list(_texts(body))
    everything = json.dumps(body, ensure_ascii=False)
    assert "Acme is bankrupt" in everything, "the evidence is shown"
    for text in texts:
        assert "<!" not in text and "<@" not in text, text
    links = [m for t in texts for m in re.findall(r"<([^>]*)>", t)]
    assert links == ["https://news.example/a|source", "https://x.example/a%7Cb%3E%3C!here%3E|source"], links


def _texts(node: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from _texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)
