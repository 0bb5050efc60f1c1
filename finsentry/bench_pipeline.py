"""`finsentry bench pipeline`: finsentry's stream against the consumer a user would write first.

finsentry: the embedded stack (or running services), a real worker and the served model, on topics
of its own. N events are produced as fast as Kafka takes them and timed until all are scored
(latency: produce time to the scored record's broker time). Then alert latency: for each of a
few companies, the event that makes a count rule true is timed to its delivery at a local
Slack-like receiver.

Naive: a kafka-python consumer that runs two Hugging Face text-classification pipelines (topic,
sentiment: two encoders, built from the same bundle's weights), one message at a time, torch fp32,
and produces each result.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from finsentry.slack_standin import SlackStandIn
from finsentry.stack import LocalStack
from foundation.kafka_admin import ensure_topics
from foundation.settings import Settings
from inference.bench import percentile
from inference.bundle import ENCODER_DIR, TOKENIZER_DIR, Bundle

ALERT_RULE_COUNT = 5
Progress = Callable[[str], None]


def _event(event_id: str, text: str, entity: str | None = None) -> bytes:
    event: dict[str, Any] = {
        "id": event_id,
        "source": "bench",
        "text": text,
        "published_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if entity:
        event["entities"] = [{"id": entity}]
    return json.dumps(event).encode()


def bench_settings(settings: Settings, prefix: str, home: Path) -> Settings:
    rules, receivers = home / "rules.yaml", home / "receivers.yaml"
    rules.write_text(
        f"rules:\n  - {{name: bench-burst, scope: entity, window: 1m, condition: count >= {ALERT_RULE_COUNT},"
        " receivers: [slack]}\n"
    )
    receivers.write_text("receivers:\n  slack: {type: slack, url: '${FINSENTRY_BENCH_SLACK_URL}'}\n")
    return settings.model_copy(
        update={
            "topic_news": f"{prefix}.news.raw",
            "topic_comments": f"{prefix}.comments.raw",
            "topic_scored": f"{prefix}.events.scored",
            "topic_dlq": f"{prefix}.events.dlq",
            "consumer_group": f"{prefix}-worker",
            "redis_prefix": prefix,
            "rules": rules,
            "receivers": receivers,
            "database_url": f"sqlite:///{home / 'alerts.db'}",
            "window_bucket_s": 1,
            "alert_tick_s": 1.0,
        }
    )


def run_pipeline_bench(
    settings: Settings, texts: Sequence[str], events: int, naive_events: int, alerts: int, say: Progress
) -> tuple[dict, dict]:
    """Both sides on one stack (started here unless running), finsentry first, then the naive one."""
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    home = Path(tempfile.mkdtemp(prefix="finsentry-bench-"))
    settings = bench_settings(settings, prefix, home)
    with SlackStandIn() as slack:
        os.environ["FINSENTRY_BENCH_SLACK_URL"] = slack.url
        stack = LocalStack(settings, worker_log=home / "worker.log")
        try:
            stack.start()
            ours = run_finsentry(settings, slack, texts, events, alerts, say)
            stack.stop_processes()  # the worker's cores go to the naive consumer
            naive = run_naive(settings, Bundle.open(settings.model_dir), texts, naive_events, say)
        finally:
            stack.stop()
    return ours, naive


def run_finsentry(
    settings: Settings, slack: SlackStandIn, texts: Sequence[str], events: int, alerts: int, say: Progress
) -> dict:
    prefix = settings.redis_prefix  # unique to this run, like its topics
    consumer = KafkaConsumer(
        settings.topic_scored,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    _await_scored(producer, consumer, settings.topic_news, "probe", 120)
    say(f"finsentry: {events} events through the worker")
    sent_at: dict[str, float] = {}
    started = time.time()
    for i in range(events):
        event_id = f"{prefix}-{i}"
        producer.send(
            settings.topic_news, key=event_id.encode(), value=_event(event_id, texts[i % len(texts)])
        )
        sent_at[event_id] = time.time()
    producer.flush()
    latencies: dict[str, float] = {}
    while len(latencies) < events and time.time() - started < 900:
        for batch in consumer.poll(timeout_ms=500).values():
            for record in batch:
                event_id = json.loads(record.value)["id"]
                if event_id in sent_at:
                    latencies.setdefault(event_id, record.timestamp / 1000 - sent_at[event_id])
    seconds = max(latency + sent_at[i] for i, latency in latencies.items()) - started
    say(f"finsentry: {alerts} alerts, each timed from its triggering event to delivery")
    alert_ms = []
    for k in range(alerts):
        entity = f"{prefix}-company-{k}"
        for j in range(ALERT_RULE_COUNT - 1):
            producer.send(settings.topic_news, _event(f"{entity}-{j}", texts[j], entity))
        producer.flush()
        time.sleep(1.5)  # the rule is one event short: let the worker see these first
        delivered = len(slack.accepted)
        producer.send(settings.topic_news, _event(f"{entity}-last", texts[0], entity))
        producer.flush()
        triggered = time.monotonic()
        deadline = triggered + 30
        while len(slack.accepted) == delivered and time.monotonic() < deadline:
            time.sleep(0.01)
        if len(slack.accepted) > delivered:
            alert_ms.append((slack.accepted_at[delivered] - triggered) * 1000)
    consumer.close()
    producer.close()
    values = [v * 1000 for v in latencies.values()]
    return {
        "events": len(latencies),
        "seconds": round(seconds, 2),
        "events_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(percentile(values, 0.5), 1),
        "p99_ms": round(percentile(values, 0.99), 1),
        "alerts_delivered": len(alert_ms),
        "alert_p50_ms": round(percentile(alert_ms, 0.5), 1) if alert_ms else None,
        "alert_p99_ms": round(percentile(alert_ms, 0.99), 1) if alert_ms else None,
    }


def _await_scored(
    producer: KafkaProducer, consumer: KafkaConsumer, topic: str, event_id: str, timeout: float
) -> None:
    """Start-up and the consumer-group join stay out of the timing: a probe must come back first."""
    producer.send(topic, _event(event_id, "warm-up"))
    producer.flush()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            if any(json.loads(r.value)["id"] == event_id for r in batch):
                return
    raise TimeoutError(f"the worker did not score a probe within {timeout:.0f}s")


def naive_models(bundle: Bundle, out: Path) -> list[Path]:
    """Two Hugging Face sequence classifiers, one per task, each with its own copy of the encoder."""
    from transformers import AutoConfig, AutoTokenizer, BertForSequenceClassification

    from inference.model import load_module

    module = load_module(bundle)
    tokenizer = AutoTokenizer.from_pretrained(str(bundle.path(TOKENIZER_DIR)))
    folders = []
    for name, head, labels in (
        ("topic", module.topic_head, bundle.topic_labels),
        ("sentiment", module.sentiment_head, bundle.sentiment_labels),
    ):
        config = AutoConfig.from_pretrained(
            str(bundle.path(ENCODER_DIR)),
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={v: k for k, v in enumerate(labels)},
        )
        model = BertForSequenceClassification(config)
        model.bert.load_state_dict(module.encoder.state_dict(), strict=False)
        model.classifier.load_state_dict(head.state_dict())
        folder = out / name
        model.save_pretrained(folder)
        tokenizer.save_pretrained(str(folder))
        folders.append(folder)
    return folders


def run_naive(settings: Settings, bundle: Bundle, texts: Sequence[str], events: int, say: Progress) -> dict:
    import torch
    from transformers import pipeline

    prefix = f"naive-{uuid.uuid4().hex[:6]}"
    topic_in, topic_out = f"{prefix}.news.raw", f"{prefix}.events.scored"
    ensure_topics(settings.kafka_bootstrap, [topic_in, topic_out], settings.topic_partitions)
    with tempfile.TemporaryDirectory() as folder:
        classifiers = [
            pipeline("text-classification", model=str(p), device=-1, dtype=torch.float32)
            for p in naive_models(bundle, Path(folder))
        ]
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
        for i in range(events):
            producer.send(topic_in, _event(f"{prefix}-{i}", texts[i % len(texts)]))
        producer.flush()
        say(f"naive: {events} events, two pipelines, one message at a time")
        consumer = KafkaConsumer(
            topic_in,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=prefix,
            auto_offset_reset="earliest",
            enable_auto_commit=True,
        )
        per_message, done = [], 0
        started = None  # from the first message: the consumer-group join is not the pipeline's cost
        while done < events:
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    t0 = time.perf_counter()
                    started = started or t0
                    message = json.loads(record.value)
                    topic, sentiment = (classify(message["text"])[0] for classify in classifiers)
                    message.update(topic=topic, sentiment=sentiment)
                    producer.send(topic_out, json.dumps(message).encode())
                    per_message.append((time.perf_counter() - t0) * 1000)
                    done += 1
        producer.flush()
        seconds = time.perf_counter() - started
        consumer.close()
        producer.close()
    return {
        "events": done,
        "seconds": round(seconds, 2),
        "events_per_s": round(done / seconds, 1),
        "p50_ms": round(statistics.median(per_message), 1),
        "p99_ms": round(percentile(per_message, 0.99), 1),
    }
