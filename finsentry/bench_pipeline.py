"""`finsentry bench pipeline`: finsentry's stream against the consumer a user would write first.

finsentry: the embedded stack (or running services), a real worker and the served model, on topics
of its own. N events are produced as a backlog before the worker starts, as the naive consumer's are,
so that the load's producer does not take the worker's cores; the worker's output is timed from the end
of its first batch to its last: the peak rate it sustains. Then N events paced at a fixed rate (asked,
or a fraction of the peak) for the latency at that load (produce time to the scored record's broker
time), and the worker's peak RSS. Then alert latency: for each of a
few companies, the event that makes a count rule true is timed to its delivery at a local
Slack-like receiver.

Naive: a kafka-python consumer that runs two Hugging Face text-classification pipelines (topic,
sentiment: two encoders, built from the same bundle's weights), one message at a time, torch fp32,
and produces each result.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from kafka import KafkaConsumer, KafkaProducer

from finsentry.slack_standin import SlackStandIn
from finsentry.stack import LocalStack
from foundation.connections import aiokafka_options, kafka_python_options
from foundation.kafka_admin import delete_topics, ensure_topics
from foundation.settings import Settings
from inference.bench import percentile
from inference.bundle import ENCODER_DIR, TOKENIZER_DIR, Bundle

ALERT_RULE_COUNT = 5
# Records of one batch are produced within a few ms of each other; batches follow each other by a model
# call (tens of ms at least), so a gap this long ends the worker's first batch.
BATCH_GAP_S = 0.025
BENCH_FETCH_MIN_BYTES = 256 * 1024
BENCH_FETCH_MAX_WAIT_MS = 250
PACING_TICK_S = 0.02  # a paced producer's shortest sleep: a flush per tick, not per message, as a
# crawler's producer batches its sends; the broker shares the cores with the worker here
# A broker started seconds ago compiles its produce and fetch paths when the first heavy traffic
# comes: its JIT compiler threads took 46 of the broker's 78 CPU ticks over 5 s of a drain here, some
# 9% of a core taken from the worker. A user's broker has run for weeks; the bench warms this one with
# messages of a scored event's size, produced and fetched back, before anything is timed.
BROKER_WARMUP_MESSAGES = 200_000
BROKER_WARMUP_BYTES = 1_000
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
    """The worker as users run it (its window buckets included: a minute by default), on topics of
    its own; the alert rule's window spans five buckets, so the timed alerts' events, sent within two
    seconds, always fall in one window."""
    rules, receivers = home / "rules.yaml", home / "receivers.yaml"
    rules.write_text(
        f"rules:\n  - {{name: bench-burst, scope: entity, window: 5m, condition: count >= {ALERT_RULE_COUNT},"
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
        }
    )


@dataclass(frozen=True)
class Load:
    """N events drained as a backlog for the peak rate, then N paced at `rate`, or at `fraction` x peak."""

    events: int
    rate: float | None = None
    fraction: float = 0.5

    def paced_rate(self, peak: float) -> float:
        return self.rate if self.rate is not None else self.fraction * peak


def run_pipeline_bench(
    settings: Settings,
    texts: Sequence[str],
    load: Load,
    naive_events: int,
    alerts: int,
    say: Progress,
    broker_warmup: int | None = None,
) -> tuple[dict, dict]:
    """Both sides on one stack (started here unless running), finsentry first, then the naive one."""
    broker_warmup = BROKER_WARMUP_MESSAGES if broker_warmup is None else broker_warmup
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    home = Path(tempfile.mkdtemp(prefix="finsentry-bench-"))
    settings = bench_settings(settings, prefix, home)
    with SlackStandIn() as slack:
        os.environ["FINSENTRY_BENCH_SLACK_URL"] = slack.url
        stack = LocalStack(settings, worker_log=home / "worker.log")
        try:
            stack.start(with_worker=False)
            if broker_warmup:
                warm_broker(settings, f"{prefix}.warmup", broker_warmup, say)
            ours = run_finsentry(settings, stack, slack, texts, load, alerts, say)
            ours["broker_warmup_messages"] = broker_warmup
            # Read while the worker runs: the kernel's high-water mark goes with the process.
            ours["worker_peak_rss_mib"] = peak_rss_mib(stack.worker_pid)
            stack.stop_processes()  # the worker's cores go to the naive consumer
            naive = run_naive(settings, Bundle.open(settings.model_dir), texts, naive_events, say)
        except BaseException:
            say(f"the worker's log and databases are kept in {home}")
            raise
        finally:
            stack.stop()
    shutil.rmtree(home, ignore_errors=True)
    return ours, naive


def warm_broker(settings: Settings, topic: str, messages: int, say: Progress) -> None:
    """Produces `messages` and fetches them back with the worker's own client library (aiokafka); the
    topic goes afterwards, so that a kept stack's disk does not grow by them every run."""
    say(f"warming the broker: {messages:,} messages produced and fetched back before anything is timed")
    client = kafka_python_options(settings)
    ensure_topics(settings.kafka_bootstrap, [topic], settings.topic_partitions, options=client)
    try:
        asyncio.run(_warm_broker(settings.kafka_bootstrap, topic, messages, aiokafka_options(settings)))
    finally:
        delete_topics(settings.kafka_bootstrap, [topic], options=client)


async def _warm_broker(bootstrap: str, topic: str, messages: int, options: dict[str, Any]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, **options)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", **options
    )
    await producer.start()
    await consumer.start()
    try:
        value = b"x" * BROKER_WARMUP_BYTES
        fetched = 0
        for start in range(0, messages, 1000):
            sends = [
                await producer.send(topic, value, key=str(i).encode()) for i in range(start, start + 1000)
            ]
            await asyncio.gather(*sends)
            batches = await consumer.getmany(timeout_ms=0)
            fetched += sum(len(batch) for batch in batches.values())
        deadline = time.monotonic() + 60
        while fetched < messages and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            fetched += sum(len(batch) for batch in batches.values())
    finally:
        await consumer.stop()
        await producer.stop()


def run_finsentry(
    settings: Settings,
    stack: LocalStack,
    slack: SlackStandIn,
    texts: Sequence[str],
    load: Load,
    alerts: int,
    say: Progress,
) -> dict:
    prefix = settings.redis_prefix  # unique to this run, like its topics
    consumer = KafkaConsumer(
        settings.topic_scored,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        # Latency is read from the records' broker times, not from when they are fetched: fetching in
        # larger, fewer pieces leaves the cores to the worker and the broker being measured.
        fetch_min_bytes=BENCH_FETCH_MIN_BYTES,
        fetch_max_wait_ms=BENCH_FETCH_MAX_WAIT_MS,
        **kafka_python_options(settings),
    )
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5, **kafka_python_options(settings)
    )
    say(f"finsentry: a backlog of {load.events} events, then the worker started to drain it")
    result = drain_run(
        _Run(producer, settings.topic_news, texts, prefix), consumer, load.events, stack.start_worker
    )
    rate = load.paced_rate(result["events_per_s"])
    say(f"finsentry: {load.events} events at {rate:,.1f}/s")
    paced_events = _Run(producer, settings.topic_news, texts, f"{prefix}-paced")
    result["at_load"] = paced_run(paced_events, consumer, load.events, rate)
    say(f"finsentry: {alerts} alerts, each timed from its triggering event to delivery")
    alert_ms = time_alerts(producer, slack, settings.topic_news, prefix, texts, alerts)
    consumer.close()
    producer.close()
    return result | {
        "alerts_delivered": len(alert_ms),
        "alert_p50_ms": round(percentile(alert_ms, 0.5), 1) if alert_ms else None,
        "alert_p99_ms": round(percentile(alert_ms, 0.99), 1) if alert_ms else None,
    }


class _Run:
    """One timed run's events, with ids of their own, and the wall time each was sent."""

    def __init__(self, producer: KafkaProducer, topic: str, texts: Sequence[str], prefix: str):
        self.producer, self.topic, self.texts, self.prefix = producer, topic, texts, prefix
        self.sent_at: dict[str, float] = {}

    def send(self, i: int) -> None:
        event_id = f"{self.prefix}-{i}"
        self.producer.send(
            self.topic, key=event_id.encode(), value=_event(event_id, self.texts[i % len(self.texts)])
        )
        self.sent_at[event_id] = time.time()  # wall time: it is compared with broker timestamps

    def scored_at(self, consumer: KafkaConsumer, timeout: float) -> dict[str, float]:
        """Broker time (s) of each sent event's scored record, until all are in or the timeout passes."""
        scored: dict[str, float] = {}
        deadline = time.monotonic() + timeout
        while len(scored) < len(self.sent_at) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    # The worker keys each scored event by its id: no JSON to parse in the load's process.
                    event_id = record.key.decode()
                    if event_id in self.sent_at:
                        scored.setdefault(event_id, record.timestamp / 1000)
        return scored

    def latency_ms(self, scored: dict[str, float]) -> dict[str, float]:
        values = [(at - self.sent_at[i]) * 1000 for i, at in scored.items()]
        quantiles = {f"p{q}_ms": round(percentile(values, q / 100), 1) for q in (50, 90, 99)}
        return quantiles | {"max_ms": round(max(values), 1)}


def drain_run(run: _Run, consumer: KafkaConsumer, events: int, start_worker: Callable[[], None]) -> dict:
    """A backlog of N events, produced before the worker starts, timed from the worker's first
    output to its last: the peak rate, without start-up or the load's producer in it."""
    for i in range(events):
        run.send(i)
    run.producer.flush()
    start_worker()
    scored = run.scored_at(consumer, 900)
    return {"events": len(scored), **sustained_rate(sorted(scored.values()))}


def sustained_rate(times: Sequence[float]) -> dict:
    """Events/s over whole batches: the first batch ends the worker's start-up (its records come out
    together, then a gap of a model call); the events after it, over the time from its end to the last."""
    first = next((k for k in range(1, len(times)) if times[k] - times[k - 1] >= BATCH_GAP_S), None)
    if first is None:
        raise ValueError("the drain came out as one batch: too few events to time a rate")
    seconds = times[-1] - times[first - 1]
    return {
        "seconds": round(seconds, 3),
        "first_batch": first,
        "events_per_s": round((len(times) - first) / seconds, 1),
    }


def paced_run(run: _Run, consumer: KafkaConsumer, events: int, rate: float) -> dict:
    """N events at `rate`: the produce -> scored latency of a worker that is not behind a backlog."""
    sent = paced(events, rate, run.send, run.producer.flush)
    scored = run.scored_at(consumer, 900)
    return {
        "rate": round(rate, 1),
        "events": len(scored),
        "produce_seconds": round(sent[-1] - sent[0], 3),
        "produced_per_s": round(_per_s(len(sent), sent[-1] - sent[0]), 1),
        "scored_per_s": round(_per_s(len(scored), max(scored.values()) - min(scored.values())), 1),
        **run.latency_ms(scored),
    }


def _per_s(count: int, span: float) -> float:
    """Events per second from the first to the last; broker times are whole milliseconds, hence the floor."""
    return (count - 1) / max(span, 0.001)


def paced(
    count: int,
    rate: float,
    send: Callable[[int], None],
    flush: Callable[[], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    tick: float = PACING_TICK_S,
) -> list[float]:
    """send(i) for i < count, each at start + i / rate on `clock` and never earlier; returns when each
    was sent. Behind schedule, the events already due go out at once. One flush per wake-up, a tick
    apart at least, rather than one per message: so the producer keeps up with thousands a second."""
    start = clock()
    sent: list[float] = []
    while len(sent) < count:
        woke = clock()
        while len(sent) < count and start + len(sent) / rate <= woke:
            # Timed as it starts: the first send waits for the topic's metadata, which must not
            # shorten the measured spread of the schedule.
            sent.append(clock())
            send(len(sent) - 1)
        flush()
        if len(sent) < count:
            delay = max(start + len(sent) / rate, woke + tick) - clock()
            if delay > 0:
                sleep(delay)
    return sent


def time_alerts(
    producer: KafkaProducer,
    slack: SlackStandIn,
    topic: str,
    prefix: str,
    texts: Sequence[str],
    alerts: int,
) -> list[float]:
    """For each of a few companies, ms from the event that makes the count rule true to its delivery."""
    alert_ms = []
    for k in range(alerts):
        entity = f"{prefix}-company-{k}"
        for j in range(ALERT_RULE_COUNT - 1):
            producer.send(topic, _event(f"{entity}-{j}", texts[j], entity))
        producer.flush()
        time.sleep(1.5)  # the rule is one event short: let the worker see these first
        delivered = len(slack.accepted)
        producer.send(topic, _event(f"{entity}-last", texts[0], entity))
        producer.flush()
        triggered = time.monotonic()
        deadline = triggered + 30
        while len(slack.accepted) == delivered and time.monotonic() < deadline:
            time.sleep(0.01)
        if len(slack.accepted) > delivered:
            alert_ms.append((slack.accepted_at[delivered] - triggered) * 1000)
    return alert_ms


def peak_rss_mib(pid: int | None) -> float | None:
    """A process's peak resident memory (VmHWM, kept by the kernel), or None without the process or /proc."""
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return round(kib / 1024, 1) if kib is not None else None


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
    client = kafka_python_options(settings)
    ensure_topics(settings.kafka_bootstrap, [topic_in, topic_out], settings.topic_partitions, options=client)
    with tempfile.TemporaryDirectory() as folder:
        classifiers = [
            pipeline("text-classification", model=str(p), device=-1, dtype=torch.float32)
            for p in naive_models(bundle, Path(folder))
        ]
        producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5, **client
        )
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
            **client,
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
