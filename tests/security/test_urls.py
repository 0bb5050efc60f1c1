"""A crawled `url` is a link on an admin's screen: only absolute http(s) URLs get in, normalised; every
other form goes to the dead-letter topic with code `bad_url`, whole and findable. On 0a5b3b2 the news
contract took any string of up to 2048 characters."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inference import InferenceEngine
from inference.languages import LanguageModels
from schemas import Contract, ContractError
from streams.scoring import BatchScorer, RawRecord

HOSTILE = [
    "javascript:alert(document.cookie)",
    "JAVASCRIPT:alert(1)",
    " javascript:alert(1)",
    "java\tscript:alert(1)",
    "java\nscript:alert(1)",
    "\x01javascript:alert(1)",
    "javascript://%0aalert(1)",
    "&#106;avascript:alert(1)",
    "javascript&#58;alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "//evil.example/login",
    "/relative/path",
    "https://bank.example@evil.example/login",
    "https://",
    "https:///no-host",
    "https://evil.example/a b",
    "https://evil.example/\u202eexe.png",
    "https://evil.example:99999/",
    "http:\\\\evil.example",
    "",
]
GOOD = {
    "https://news.example/story?id=7": "https://news.example/story?id=7",
    "  HTTPS://News.example/Story  ": "https://News.example/Story",
    "Http://wire.example:8080/a#b": "http://wire.example:8080/a#b",
    "https://新闻.example/路径": "https://新闻.example/路径",
}


def news(url: str) -> dict[str, str]:
    return {"id": "n1", "source": "wire", "published_at": "2026-12-04T09:00:00Z", "text": "Acme", "url": url}


@pytest.mark.parametrize("url", HOSTILE)
def test_the_contract_refuses_every_non_http_link(url: str) -> None:
    for kind in ("news", "comment"):
        with pytest.raises(ContractError) as refused:
            Contract.of(kind).validate(news(url))
        assert (refused.value.code, refused.value.field) == ("bad_url", "url")
        assert "url" in refused.value.message


def test_rows_stored_before_the_check_are_not_links_either() -> None:
    from schemas.urls import safe_link

    assert [url for url in HOSTILE if safe_link(url) is not None] == []
    assert all(safe_link(url) == kept for url, kept in GOOD.items())


@pytest.mark.parametrize(("given", "kept"), GOOD.items())
def test_a_good_link_is_normalised_and_kept(given: str, kept: str) -> None:
    assert Contract.of("news").validate(news(given))["url"] == kept


@given(st.text(max_size=60))
def test_whatever_gets_in_is_an_http_link(url: str) -> None:
    try:
        message = Contract.of("news").validate(news(url))
    except ContractError as exc:
        assert exc.code == "bad_url"
        return
    assert message["url"].startswith(("http://", "https://"))
    assert not any(c.isspace() or ord(c) < 32 for c in message["url"])


def test_the_worker_sends_a_bad_link_to_the_dead_letter_topic(tiny_bundle: Path) -> None:
    scorer = BatchScorer(LanguageModels.single(InferenceEngine(tiny_bundle)), {"news.raw": "news"}, 65_536)
    raw = [json.dumps(news(url)).encode() for url in ("javascript:alert(1)", "https://news.example/ok")]
    records = [RawRecord("news.raw", 0, i, b"k", value) for i, value in enumerate(raw)]
    result = asyncio.run(scorer.score(records))
    assert [e["url"] for e in result.scored] == ["https://news.example/ok"]
    (letter,) = result.dead_letters
    assert (letter["error_code"], letter["field"], letter["offset"]) == ("bad_url", "url", 0)
    assert base64.b64decode(letter["original_b64"]) == raw[0], "kept whole, to be found again"
    Contract.of("dlq").validate(letter)
