"""One micro-batch through validation, the real engine and entity matching, without Kafka."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inference import InferenceEngine, Prediction
from inference.entities import Company, EntityMatcher
from inference.languages import LanguageModels
from schemas import Contract
from stories import StoryIndex
from streams.learning import review_candidates
from streams.scoring import BatchScorer, RawRecord, assign_stories, scored_event, window_event

KINDS = {"news.raw": "news", "comments.raw": "comment"}


def record(offset: int, value: bytes, topic: str = "news.raw") -> RawRecord:
    return RawRecord(topic, 0, offset, f"k{offset}".encode(), value)


def event(i: int, text: str) -> bytes:
    return json.dumps(
        {"id": f"e{i}", "source": "wire", "published_at": "2026-11-29T09:00:00Z", "text": text}
    ).encode()


class FailsOnPoison(InferenceEngine):
    """The real engine, except that any batch holding the word POISON fails, as a model bug would."""

    async def apredict(self, texts: Sequence[str]) -> list[Prediction]:
        if any("POISON" in t for t in texts):
            raise RuntimeError("tokenizer exploded")
        return await super().apredict(texts)


def test_valid_invalid_and_entities(tiny_bundle: Path) -> None:
    matcher = EntityMatcher([Company("helios", "Helios Energy", ("HEL",), ("Helios",))])
    scorer = BatchScorer(LanguageModels.single(InferenceEngine(tiny_bundle)), KINDS, 65_536, matcher)
    records = [
        record(0, event(0, "Helios Energy beats estimates; $HEL and $XOM up")),
        record(1, b"\xff not utf-8"),
        record(2, event(2, "Forum says sell"), topic="comments.raw"),
        # A leap second is valid RFC 3339 but not a Python datetime: a dead letter, not a crash.
        record(3, event(3, "Late news").replace(b"2026-11-29T09:00:00Z", b"2026-12-31T23:59:60Z")),
    ]
    result = asyncio.run(scorer.score(records))
    assert [e["id"] for e in result.scored] == ["e0", "e2"]
    assert [e["kind"] for e in result.scored] == ["news", "comment"]
    assert sorted(x["id"] for x in result.scored[0]["entities"]) == ["$XOM", "helios"]
    for scored in result.scored:
        Contract.of("scored").validate(scored)
    letter, leap = result.dead_letters
    assert (leap["error_code"], leap["field"], leap["offset"]) == ("invalid_value", "published_at", 3)
    assert letter["error_code"] == "invalid_utf8" and letter["offset"] == 1
    assert base64.b64decode(letter["original_b64"]) == b"\xff not utf-8"
    Contract.of("dlq").validate(letter)


def test_a_message_that_breaks_the_model_is_isolated(tiny_bundle: Path) -> None:
    scorer = BatchScorer(LanguageModels.single(FailsOnPoison(tiny_bundle)), KINDS, 65_536)
    records = [record(i, event(i, "POISON pill" if i == 5 else f"Shares rise {i}")) for i in range(12)]
    result = asyncio.run(scorer.score(records))
    assert sorted(e["id"] for e in result.scored) == sorted(f"e{i}" for i in range(12) if i != 5)
    [letter] = result.dead_letters
    assert (letter["offset"], letter["error_code"]) == (5, "processing_failed")
    assert "tokenizer exploded" in letter["error"]


_ENGINE: dict[str, InferenceEngine] = {}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
messages = st.fixed_dictionaries(
    {
        "id": st.text(min_size=1, max_size=20),
        "source": st.text(min_size=1, max_size=10),
        "published_at": st.sampled_from(
            ["2026-11-29T09:00:00Z", "2026-11-29T09:00:00+05:30", "2026-12-31T23:59:60Z"]
        ),
        "text": st.text(min_size=1, max_size=200),
    },
    optional={
        "entities": json_values,
        "lang": json_values,
        "url": json_values,
        "schema_version": json_values,
    },
).map(lambda m: json.dumps(m).encode())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(messages | st.binary(max_size=100), min_size=1, max_size=10))
def test_any_input_is_scored_or_dead_lettered(tiny_bundle: Path, values: list[bytes]) -> None:
    engine = _ENGINE.setdefault("tiny", InferenceEngine(tiny_bundle))
    scorer = BatchScorer(LanguageModels.single(engine), KINDS, 65_536)
    result = asyncio.run(scorer.score([record(i, v) for i, v in enumerate(values)]))
    assert len(result.scored) + len(result.dead_letters) == len(values)
    for scored in result.scored:
        Contract.of("scored").validate(scored)
        json.dumps(scored, ensure_ascii=False).encode("utf-8")  # what the worker sends must encode


def test_a_multilabel_event_counts_under_each_of_its_topics() -> None:
    prediction = Prediction(
        topic="公司",
        topic_probs={"公司": 0.97, "外国": 0.91, "政策": 0.05},
        sentiment="negative",
        sentiment_probs={"negative": 0.8, "neutral": 0.15, "positive": 0.05},
        model_version="zh-1",
        topics=("公司", "外国"),
        language="zh",
        multi_label=True,
    )
    message = {
        "id": "e1",
        "source": "forum-zh",
        "published_at": "2026-11-29T09:00:00Z",
        "text": "苹果公司股价下跌",
    }
    event = scored_event("comment", message, prediction, [], "zh")
    Contract.of("scored").validate(event)
    assert event["topics"] == ["公司", "外国"] and event["model_language"] == "zh"
    assert {"topic:公司", "topic:外国"} <= set(window_event(event).keys)
    assert "topic:政策" not in window_event(event).keys
    [candidate] = review_candidates([event])
    assert candidate.head == "sentiment", "two confident topics are not an uncertain topic"


@pytest.mark.stack
def test_scored_events_carry_their_story(tiny_bundle: Path, redis_url: str) -> None:
    scorer = BatchScorer(LanguageModels.single(InferenceEngine(tiny_bundle)), KINDS, 65_536)
    texts = [
        "Helios Energy beats estimates, shares jump 8% on record output",
        "Forum says sell everything now",
        "UPDATE 1-Helios Energy beats estimates, shares jump 8% on record output https://t.co/x",
    ]
    records = [record(i, event(i, text)) for i, text in enumerate(texts)]
    index = StoryIndex(redis.Redis.from_url(redis_url), prefix=f"t{uuid.uuid4().hex[:8]}")
    result = asyncio.run(scorer.score(records))
    assign_stories(index, result.scored)
    stories = [(e["story_id"], e["is_copy"]) for e in result.scored]
    assert stories == [("e0", False), ("e1", False), ("e0", True)]
    for scored in result.scored:
        Contract.of("scored").validate(scored)
    replayed = asyncio.run(scorer.score(records[::-1]))  # a replay, in another order: the same stories
    assign_stories(index, replayed.scored)
    assert [e["story_id"] for e in replayed.scored] == ["e0", "e1", "e0"]
