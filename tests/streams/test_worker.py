"""The worker on the real stack: Kafka broker, faust worker processes, the real inference engine."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import pytest
import redis

from alerts.windows import WindowStore
from foundation.db import open_database
from schemas import Contract
from tests.streams.harness import (
    SteadySender,
    StreamEnv,
    TopicReader,
    WorkerProcess,
    assert_switched_once,
    producer,
    serves,
    wait_until,
)
from tests.tiny_model import build_tiny_bundle
from trends import Rollups

pytestmark = pytest.mark.stack

MALFORMED = (
    "invalid_json",
    "missing_field",
    "wrong_type",
    "text_too_long",
    "invalid_utf8",
    "unknown_schema_version",
)


def valid_event(i: int) -> dict:
    return {
        "id": f"evt-{i}",
        "source": "wire" if i % 10 else "forum",
        "published_at": "2026-11-29T09:30:00Z",
        "text": f"Company {i % 97} shares move after quarterly results, item {i}",
    }


def malformed_bytes(i: int, kind: str) -> bytes:
    event = valid_event(i)
    if kind == "invalid_json":
        return json.dumps(event).encode()[:-7]
    if kind == "missing_field":
        del event["text"]
    elif kind == "wrong_type":
        event["text"] = 12345
    elif kind == "text_too_long":
        event["text"] = "loss " * 4000
    elif kind == "unknown_schema_version":
        event["schema_version"] = 99
    elif kind == "invalid_utf8":
        return json.dumps(event).encode().replace(b"Company", b"Comp\xff\xfeany")
    return json.dumps(event).encode()


@pytest.fixture()
def stream_env(kafka_bootstrap: str, redis_url: str, tiny_bundle: Path, tmp_path: Path) -> StreamEnv:
    env = StreamEnv(kafka_bootstrap, redis_url, tiny_bundle, tmp_path)
    env.create_topics(partitions=4)
    return env


def test_10k_events_with_malformed_and_sigkill_restart(stream_env: StreamEnv) -> None:
    total, bad_every = 10_000, 50  # every 50th event is malformed: exactly 200, in six ways
    expected_ids: set[str] = set()
    expected_dlq: dict[tuple[str, int, int], str] = {}
    send_done = threading.Event()

    def send_all() -> None:
        out = producer(stream_env.bootstrap)
        pending = []
        for i in range(total):
            if i % bad_every == bad_every // 2:
                kind = MALFORMED[(i // bad_every) % len(MALFORMED)]
                future = out.send(
                    stream_env.topic("news.raw"), key=f"evt-{i}".encode(), value=malformed_bytes(i, kind)
                )
                pending.append((future, kind))
            else:
                topic = stream_env.topic("comments.raw" if i % 10 == 0 else "news.raw")
                out.send(topic, key=f"evt-{i}".encode(), value=json.dumps(valid_event(i)).encode())
                expected_ids.add(f"evt-{i}")
            if i % 500 == 499:
                out.flush()
                time.sleep(0.25)  # ~2,000 events/s, so the kill below lands while events still arrive
        out.flush()
        for future, kind in pending:
            meta = future.get(timeout=30)
            expected_dlq[(meta.topic, meta.partition, meta.offset)] = kind
        out.close()
        send_done.set()

    scored = TopicReader(stream_env.bootstrap, stream_env.topic("events.scored"))
    dlq = TopicReader(stream_env.bootstrap, stream_env.topic("events.dlq"))
    worker = WorkerProcess(stream_env, "worker-1")
    sender = threading.Thread(target=send_all)
    sender.start()
    try:
        wait_until(
            lambda: len(scored.records) >= 2_000, 180, "2,000 scored events before the kill", scored.poll
        )
        worker.kill()
        unique_at_kill = len({r.key for r in scored.records})
        assert unique_at_kill < total - total // bad_every, "the kill must land mid-run"
        worker = WorkerProcess(stream_env, "worker-2")

        def complete() -> bool:
            dlq.poll()
            ids = {json.loads(r.value)["id"] for r in scored.records}
            positions = {(v["topic"], v["partition"], v["offset"]) for v in dlq.values()}
            return (
                send_done.is_set() and len(ids) >= len(expected_ids) and len(positions) >= len(expected_dlq)
            )

        wait_until(complete, 300, "every event scored or dead-lettered", scored.poll)
        time.sleep(3)  # anything still in flight would show up as an extra id or letter below
        scored.poll()
        dlq.poll()
    finally:
        worker.stop()
        sender.join()
        scored.close()
        dlq.close()

    # Duplicates are counted by event id: at-least-once delivery may repeat the batch that was in
    # flight at the kill, and consumers deduplicate by id. Unique ids must match exactly.
    scored_values = scored.values()
    ids = Counter(v["id"] for v in scored_values)
    assert set(ids) == expected_ids
    assert len(ids) == 9_800
    duplicates = sum(ids.values()) - len(ids)
    print(f"scored records {sum(ids.values())}, unique ids {len(ids)}, duplicates from the kill {duplicates}")

    contract = Contract.of("scored")
    for value in scored_values:
        contract.validate(value)
    # Exactly-once stories: a record the kill replayed carries the story its first delivery carried.
    stories: dict[str, str] = {}
    for value in scored_values:
        assert stories.setdefault(value["id"], value["story_id"]) == value["story_id"], value["id"]
    assert set(stories.values()) <= set(stories), "a story's id is the id of one of its events"

    letters = {(v["topic"], v["partition"], v["offset"]): v for v in dlq.values()}
    assert len(letters) == 200
    assert {position: letter["error_code"] for position, letter in letters.items()} == expected_dlq
    assert set(expected_dlq.values()) == set(MALFORMED), "all six kinds of malformed input were sent"
    dlq_contract = Contract.of("dlq")
    for letter in letters.values():
        dlq_contract.validate(letter)
        assert letter["error"], "every dead letter says why"

    # The Redis windows count each unique event once, although the kill replayed some of them.
    store = WindowStore(redis.Redis.from_url(stream_env.redis_url), prefix=stream_env.prefix)
    now = datetime.fromisoformat("2026-11-29T09:30:30+00:00").timestamp()
    windows = store.read_many(["global:all", "source:wire", "source:forum"], 3_600, now)
    forum = sum(1 for i in range(total) if i % 10 == 0 and i % bad_every != bad_every // 2)
    assert windows["global:all"].count == 9_800
    assert (windows["source:forum"].count, windows["source:wire"].count) == (forum, 9_800 - forum)
    by_sentiment = Counter(v["sentiment"]["label"] for v in {v["id"]: v for v in scored_values}.values())
    figures = windows["global:all"]
    assert (figures.negative, figures.neutral, figures.positive) == tuple(
        by_sentiment[s] for s in ("negative", "neutral", "positive")
    )

    # So do the hourly roll-ups in SQL, which outlive Redis: the replay added nothing to them.
    rollups = Rollups(open_database(f"sqlite:///{stream_env.home / 'finsentry.db'}"))
    [hour] = rollups.series("global:all", datetime(2026, 11, 29))
    assert hour.start == datetime(2026, 11, 29, 9)
    assert (hour.count, hour.negative, hour.neutral, hour.positive) == (
        9_800,
        *(by_sentiment[s] for s in ("negative", "neutral", "positive")),
    )
    assert rollups.series("source:forum", datetime(2026, 11, 29))[0].count == forum


def test_two_workers_share_partitions_and_take_over(stream_env: StreamEnv) -> None:
    scored = TopicReader(stream_env.bootstrap, stream_env.topic("events.scored"))
    out = producer(stream_env.bootstrap)
    news = stream_env.topic("news.raw")
    sent: set[str] = set()

    def send(start: int, count: int) -> None:
        for i in range(start, start + count):
            out.send(news, key=f"evt-{i}".encode(), value=json.dumps(valid_event(i)).encode())
            sent.add(f"evt-{i}")
        out.flush()

    def scored_ids() -> set[str]:
        return {json.loads(r.value)["id"] for r in scored.records}

    first, second = WorkerProcess(stream_env, "worker-a"), WorkerProcess(stream_env, "worker-b")
    try:

        def both_assigned() -> bool:
            return all(assigned_partitions(w) and len(assigned_partitions(w)) < 8 for w in (first, second))

        wait_until(both_assigned, 120, "both workers to hold partitions")
        a, b = assigned_partitions(first), assigned_partitions(second)
        assert not a & b, "no partition is held by two workers"
        assert len(a | b) == 8, "the two workers hold all 8 input partitions (news + comments, 4 each)"

        send(0, 2_000)
        wait_until(lambda: scored_ids() >= sent, 120, "2,000 events scored by two workers", scored.poll)
        assert events_in(first) > 0 and events_in(second) > 0, "both workers did part of the work"

        second.stop()
        wait_until(lambda: len(assigned_partitions(first)) == 8, 120, "the survivor to take all partitions")
        send(2_000, 2_000)
        wait_until(lambda: scored_ids() >= sent, 120, "events after the hand-over", scored.poll)
    finally:
        first.stop()
        second.stop()
        out.close()
        scored.close()
    assert scored_ids() == sent


def assigned_partitions(worker: WorkerProcess) -> set[str]:
    """The input partitions of the worker's latest assignment, from its own log."""
    assignments = [e for e in worker.log_events() if e.get("event") == "partitions assigned"]
    if not assignments:
        return set()
    latest = assignments[-1].get("partitions") or ""
    return set(latest.split(",")) - {""}


def events_in(worker: WorkerProcess) -> int:
    return sum(int(e.get("in", 0)) for e in worker.log_events() if e.get("event") == "batch")


def test_worker_swaps_to_a_new_bundle_under_load(stream_env: StreamEnv, tmp_path: Path) -> None:
    serving = build_tiny_bundle(tmp_path / "serving", seed=1, version="tiny-1")
    stream_env.model_dir = serving
    scored = TopicReader(stream_env.bootstrap, stream_env.topic("events.scored"))
    worker = WorkerProcess(stream_env, "worker", model_watch_s="0.5")
    sender = SteadySender(stream_env.bootstrap, stream_env.topic("news.raw"), valid_event, 4_000)
    try:
        wait_until(lambda: bool(assigned_partitions(worker)), 120, "the worker to join")
        sender.start()
        wait_until(lambda: len(scored.records) >= 1_000, 120, "1,000 events on the first model", scored.poll)
        build_tiny_bundle(serving, seed=2, version="tiny-2")  # written aside, renamed into place
        wait_until(serves(scored, "tiny-2"), 180, "the new model to serve under load", scored.poll)
        sender.stop()
        wait_until(lambda: len(scored.records) >= len(sender.sent), 180, "every event scored", scored.poll)
        time.sleep(2)
        scored.poll()
    finally:
        sender.stop()
        worker.stop()
        scored.close()

    assert_switched_once(scored.records, [e["id"] for e in sender.sent], "tiny-1", "tiny-2")
    assert any(e.get("event") == "model swapped" for e in worker.log_events())


def mixed_event(i: int) -> dict:
    """Even ids are Chinese forum posts (every fourth one says so in `lang`), odd ids English news."""
    if i % 2:
        return valid_event(i)
    event = {**valid_event(i), "text": f"平安银行第{i}号公告：净利润同比下降，股价跌停"}
    if i % 4 == 0:
        event["lang"] = "zh-CN"
    return event


def test_each_language_has_its_bundle_and_the_chinese_one_swaps_under_load(
    stream_env: StreamEnv, tmp_path: Path
) -> None:
    english = build_tiny_bundle(tmp_path / "en", seed=1, version="en-1", language="en")
    chinese = build_tiny_bundle(tmp_path / "zh", seed=2, version="zh-1", language="zh")
    scored = TopicReader(stream_env.bootstrap, stream_env.topic("events.scored"))
    worker = WorkerProcess(stream_env, "worker", model_watch_s="0.5", models=f"en={english},zh={chinese}")
    sender = SteadySender(stream_env.bootstrap, stream_env.topic("news.raw"), mixed_event, 4_000)
    try:
        wait_until(lambda: bool(assigned_partitions(worker)), 120, "the worker to join")
        sender.start()
        wait_until(lambda: len(scored.records) >= 1_000, 120, "1,000 events on the first models", scored.poll)
        build_tiny_bundle(chinese, seed=3, version="zh-2", language="zh")
        wait_until(serves(scored, "zh-2"), 180, "the new Chinese model to serve under load", scored.poll)
        sender.stop()
        wait_until(lambda: len(scored.records) >= len(sender.sent), 180, "every event scored", scored.poll)
        time.sleep(2)
        scored.poll()
    finally:
        sender.stop()
        worker.stop()
        scored.close()
    events = sender.sent

    by_id = {json.loads(r.value)["id"]: json.loads(r.value) for r in scored.records}
    english_ids = {e["id"] for e in events if "平安" not in e["text"]}
    assert {by_id[i]["model_language"] for i in english_ids} == {"en"}
    assert {by_id[i]["model_version"] for i in english_ids} == {"en-1"}, "the English model is not touched"
    chinese_records = [r for r in scored.records if json.loads(r.value)["id"] not in english_ids]
    assert {json.loads(r.value)["model_language"] for r in chinese_records} == {"zh"}
    assert_switched_once(
        chinese_records, [e["id"] for e in events if e["id"] not in english_ids], "zh-1", "zh-2"
    )
    assert len(scored.records) == len(events), "none lost, none repeated, in either language"
