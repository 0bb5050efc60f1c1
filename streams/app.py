"""The faust worker: raw news and comments -> micro-batches -> one encoder pass -> scored events or DLQ.

Three batches are in hand at once: while the model scores batch N+1, batch N+2 waits for it (so the
model never idles while a batch gathers or is validated) and batch N is recorded (Redis windows, SQL
roll-ups, rules) and produced. Batches are finished one at a time, in order.

Delivery is at-least-once: each record holds a reference on its Kafka message until the broker has
acknowledged every output of its batch, so faust (which commits only acked offsets) cannot commit it
before then; batches are acked in offset order, so no ack ever leaves a gap behind it. A crash
between output and commit replays the batch; event ids let consumers drop the repeats.

An outage of Redis or SQL holds the batch in hand (so no offset moves past it) and retries it until
the dependency is back; the model stays loaded and the consumer stays in its group. Only an outage
longer than `max_outage_s` ends the process, before the ack, so that a restart replays the batch.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Awaitable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NoReturn

import faust
from faust.types import TP, EventT

from alerts.event_time import EventTimeAlerts
from alerts.lifecycle import Transition
from alerts.monitor import AlertMonitor, default_rules
from alerts.rules import load_rules
from alerts.windows import RecordResult, WindowStore
from foundation import logs, metrics
from foundation.connections import (
    aiokafka_options,
    faust_broker_credentials,
    kafka_python_options,
    redis_client,
)
from foundation.db import open_database
from foundation.kafka_admin import ensure_topics
from foundation.outage import Outages, redis_dependency, sql_dependency
from foundation.settings import Settings
from inference import Bundle, BundleError, serving
from inference.languages import LanguageModels
from labels.review import ReviewQueue
from labels.store import LabelStore
from stories import StoryIndex
from streams.learning import LabelIntake, offer_for_review, read_announcement
from streams.scoring import BatchResult, BatchScorer, RawRecord, assign_stories, trend_item, window_event
from trends import Rollups

log = logging.getLogger(__name__)
EXIT_UNDELIVERED = 70  # EX_SOFTWARE: a supervisor restarts the worker
STATS_EVERY_S = 30.0
ROLLUP_PRUNE_EVERY_S = 3600.0
GIL_SWITCH_INTERVAL_S = 0.0005
PRODUCER_LINGER_S = 0.005


def build_app(
    settings: Settings, models: LanguageModels, outages: Outages, model_dirs: dict[str, Path] | None = None
) -> faust.App:
    """The worker's faust app; model_dirs are the folders watched for new bundles, per language."""
    (settings.home / "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        "finsentry",
        broker=f"kafka://{settings.kafka_bootstrap}",
        # SASL and TLS, from settings: faust gives them to every client it makes, whatever the scheme.
        broker_credentials=faust_broker_credentials(settings),
        store="memory://",
        autodiscover=False,
        topic_partitions=settings.topic_partitions,
        broker_session_timeout=settings.broker_session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        web_enabled=settings.web_enabled,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        producer_acks=-1,
        # A batch's outputs go out in a few produce requests, not one each: the broker shares the cores.
        producer_linger=PRODUCER_LINGER_S,
        datadir=str(settings.home / "faust"),
    )
    app.conf.id = settings.consumer_group
    raw = app.topic(*settings.input_topics, value_type=bytes, value_serializer="raw", key_serializer="raw")
    scored_topic = app.topic(settings.topic_scored, value_serializer="raw", key_serializer="raw")
    dlq_topic = app.topic(settings.topic_dlq, value_serializer="raw", key_serializer="raw")
    kinds = {settings.topic_news: "news", settings.topic_comments: "comment"}
    # The matcher, like the models, is built as the backtest builds its own (inference/serving.py).
    scorer = BatchScorer(models, kinds, settings.max_message_bytes, serving.load_matcher(settings))
    within = settings.max_wait_ms / 1000
    totals: Counter[str] = Counter()

    @app.timer(interval=STATS_EVERY_S)
    async def report_throughput() -> None:
        if totals:
            rates = {f"{k}_per_s": round(v / STATS_EVERY_S, 1) for k, v in totals.items()}
            log.info("throughput", extra={**totals, **rates, "model": models.version})
            totals.clear()

    @app.on_partitions_assigned.connect
    async def on_assigned(app: faust.App, assigned: set, **_: Any) -> None:
        inputs = sorted(f"{tp.topic}:{tp.partition}" for tp in assigned if tp.topic in settings.input_topics)
        log.info("partitions assigned", extra={"partitions": ",".join(inputs), "count": len(inputs)})

    windows = WindowStore(
        redis_client(settings),  # its timeouts make a frozen server an outage, not a hang
        prefix=settings.redis_prefix,
        bucket_s=settings.window_bucket_s,
        retention_s=settings.window_retention_s,
        lateness_s=settings.window_lateness_s,
    )
    stories = StoryIndex(windows.client, prefix=settings.redis_prefix, ttl_s=settings.story_ttl_s)

    database = outages.guard("sql").call(open_database, settings.effective_database_url)
    monitor = AlertMonitor(
        windows,
        load_rules(settings.rules) if settings.rules else default_rules(),
        database,
        rules_file=settings.rules,
    )
    rollups = Rollups(database, settings.rollup_retention_days)
    label_store = LabelStore(database, settings.frozen_percent)
    review = ReviewQueue(database, label_store, settings.review_margin, settings.review_rate)

    event_clock: EventTimeAlerts | None = None

    def count_fired(transitions: Sequence[Transition]) -> None:
        metrics.ALERTS_FIRED.inc(sum(t.after == "firing" for t in transitions))

    def record_and_check(scored: list[dict[str, Any]]) -> RecordResult:
        nonlocal event_clock
        events = [window_event(e) for e in scored]
        if settings.alert_clock == "event" and events:
            if event_clock is None:
                event_clock = EventTimeAlerts(
                    windows,
                    monitor,
                    settings.alert_tick_s,
                    events[0].event_time,
                    on_tick=lambda tick: count_fired(tick.transitions),
                )
            recorded = event_clock.record(events)
        else:
            recorded = windows.record(events)
            count_fired(monitor.check({key for event in events for key in event.keys}))
        # The durable hourly history and latest items; skips ids it has counted, like the windows.
        rollups.record(events, {e["id"]: trend_item(e) for e in scored})
        try:
            offer_for_review(review, scored)
        except outages.errors:
            raise  # an unreachable database holds the batch like any outage
        except Exception:  # sampling for review is best effort: a bug in it must not hold up the stream
            log.exception("could not queue predictions for review")
        return recorded

    batch_guard, tick_guard = outages.guard("redis", "sql"), outages.guard("sql")
    # Every SQL write of this process runs on this one thread: batches, ticks and prunes never wait
    # for one another's locks, and they run beside the model call, not after it.
    bookkeeping = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bookkeeping")

    if settings.alert_clock == "wall":  # on event time the events carry the clock, ticks included

        @app.timer(interval=settings.alert_tick_s)
        async def alert_tick() -> None:
            # The next tick comes round anyway: an outage is noted here, not waited out.
            await asyncio.get_running_loop().run_in_executor(bookkeeping, tick_guard.attempt, monitor.tick)

    @app.timer(interval=ROLLUP_PRUNE_EVERY_S)
    async def prune_rollups() -> None:
        await asyncio.get_running_loop().run_in_executor(bookkeeping, tick_guard.attempt, rollups.prune)

    async def publish(records: list[RawRecord], result: BatchResult) -> None:
        # The scored events go out first, so that readers have them while the windows and rules catch
        # up. `finish` releases the inputs only once both are done and the broker has every output: a
        # crash before then replays the batch, and the window store skips ids it has seen. Each event goes
        # out with its story (one Redis call; a replayed event keeps its story), so an outage holds it here.
        await asyncio.get_running_loop().run_in_executor(
            bookkeeping, batch_guard.call, assign_stories, stories, result.scored
        )
        pending = [
            await scored_topic.send(key=event["id"].encode(), value=_json(event)) for event in result.scored
        ]
        pending += [await dlq_topic.send(key=None, value=_json(letter)) for letter in result.dead_letters]
        recorded = await asyncio.get_running_loop().run_in_executor(
            bookkeeping, batch_guard.call, record_and_check, result.scored
        )
        totals.update({"late": recorded.late, "replayed": recorded.duplicates})
        await asyncio.gather(*pending)
        totals.update({"in": len(records), "scored": len(result.scored), "dlq": len(result.dead_letters)})
        count_batch(records, result.scored, result.dead_letters)
        log.debug(
            "batch",
            extra={
                "in": len(records),
                "scored": len(result.scored),
                "dlq": len(result.dead_letters),
                "model": models.version,
            },
        )

    switcher = ModelSwitcher(models)
    if settings.model_watch_s:
        for language, folder in (model_dirs or {}).items():
            watch_model(app, switcher, language, folder, settings.model_watch_s)
    follow_announcements(app, switcher, settings)
    take_labels(app, settings, LabelIntake(label_store, settings.max_message_bytes), dlq_topic, outages)

    def count_batch(
        records: list[RawRecord], scored: list[dict[str, Any]], dead_letters: list[dict[str, Any]]
    ) -> None:
        metrics.BATCH_SIZE.observe(len(records))
        metrics.EVENTS_SCORED.inc(len(scored))
        for topic, n in Counter(r.topic for r in records).items():
            metrics.EVENTS_IN.labels(topic).inc(n)
        for code, n in Counter(letter["error_code"] for letter in dead_letters).items():
            metrics.DEAD_LETTERS.labels(code).inc(n)
        last = {(r.topic, r.partition): r.offset for r in records}
        for (topic, partition), offset in last.items():
            highwater = app.consumer.highwater(TP(topic, partition))
            if highwater is not None:
                metrics.CONSUMER_LAG.labels(topic, str(partition)).set(max(0, highwater - offset - 1))

    async def timed_score(records: list[RawRecord]) -> BatchResult:
        with metrics.INFERENCE_SECONDS.time():
            return await scorer.score(records)

    async def deliver(
        records: list[RawRecord], scoring: asyncio.Task[BatchResult], before: asyncio.Task[None] | None
    ) -> None:
        result = await scoring
        if before is not None:
            await before  # one batch finishing at a time, in offset order
        await publish(records, result)

    @app.agent(raw, name="score")
    async def score(stream: faust.Stream) -> None:
        # take_events gathers the next batch only between iterations, so an iteration hands its batch
        # to the model and returns once the model has the one before it done: the model then always
        # has a batch queued while the next gathers and the last is recorded and produced.
        scoring: asyncio.Task[BatchResult] | None = None
        finishing: list[asyncio.Task[None]] = []  # the last two batches', oldest first
        async for events in stream.take_events(settings.max_batch, within=within):
            hold_acks(events)
            records = [
                RawRecord(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.value)
                for e in events
            ]
            in_model, previous = scoring, finishing
            scoring = asyncio.create_task(timed_score(records))
            last = asyncio.create_task(
                finish(events, deliver(records, scoring, previous[-1] if previous else None))
            )
            finishing = [*previous[-1:], last]
            try:
                # At most four batches in hand: this one queued for the model, the one in it, the one
                # before that finishing, and the next one gathering.
                await asyncio.gather(*([in_model] if in_model else []), *previous[-2:-1])
            except asyncio.CancelledError:
                stop_before_ack("score")
            except Exception:
                exit_undelivered()

    return app


class ModelSwitcher:
    """Hot swaps per language, from the folder watch or an announcement; a refused bundle is logged once."""

    def __init__(self, models: LanguageModels) -> None:
        self.models = models
        self.refused: set[str] = set()
        self._lock = asyncio.Lock()

    async def switch(self, path: Path, version: str, language: str | None = None) -> None:
        async with self._lock:  # the watch and an announcement can ask at once
            if version in self.refused:
                return
            language = language or self._language_of(path)
            if language not in self.models.languages:
                self.refused.add(version)
                log.error(
                    "new model refused: no bundle of its language is served here",
                    extra={"refused": version, "language": language, "serving": self.models.version},
                )
                return
            engine = self.models.engine(language)
            if version == engine.version:
                return
            try:
                await asyncio.get_running_loop().run_in_executor(None, engine.reload, path)
            except BundleError as exc:
                self.refused.add(version)
                log.error(
                    "new model refused; the current one serves on",
                    extra={"refused": version, "serving": engine.version, "reason": str(exc)},
                )
                return
            metrics.MODEL_SWAPS.inc()

    def _language_of(self, path: Path) -> str:
        """The language the bundle declares; one that declares none replaces the default language's."""
        try:
            declared = Bundle.open(path, verify=False).language
        except BundleError:
            declared = None  # reload reports what is wrong with it
        return declared or self.models.default


def watch_model(
    app: faust.App, switcher: ModelSwitcher, language: str, model_dir: Path, interval: float
) -> None:
    """Swaps this language's model to a new bundle written into (or linked at) model_dir."""

    @app.timer(interval=interval, name=f"watch_model_{language}")
    async def check_for_new_model() -> None:
        try:
            version = Bundle.open(model_dir, verify=False).version
        except BundleError:
            return  # mid-replacement or absent: look again at the next tick
        await switcher.switch(model_dir, version, language)


def follow_announcements(app: faust.App, switcher: ModelSwitcher, settings: Settings) -> None:
    """Every worker reads every announcement (no consumer group), from the newest on."""

    @app.task
    async def follow() -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            settings.topic_models,
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=None,
            auto_offset_reset="latest",
            **aiokafka_options(settings),
        )
        await consumer.start()
        try:
            async for message in consumer:
                announcement = read_announcement(message.value)
                if announcement is not None:
                    language = announcement.get("language")
                    log.info(
                        "model announcement received",
                        extra={"version": announcement["version"], "language": language},
                    )
                    await switcher.switch(
                        Path(announcement["bundle_path"]), announcement["version"], language
                    )
        finally:
            await consumer.stop()


def take_labels(
    app: faust.App, settings: Settings, intake: LabelIntake, dlq_topic: faust.TopicT, outages: Outages
) -> None:
    labels_topic = app.topic(
        settings.topic_labels, value_type=bytes, value_serializer="raw", key_serializer="raw"
    )

    @app.agent(labels_topic, name="labels")
    async def store_labels(stream: faust.Stream) -> None:
        async for events in stream.take_events(256, within=1.0):
            records = [
                RawRecord(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.value)
                for e in events
            ]
            batch = intake.parse(records)
            try:
                stored = await asyncio.get_running_loop().run_in_executor(
                    None, outages.guard("sql").call, intake.store_labels, batch
                )
                letters = [_json(letter) for letter in batch.dead_letters]
                await asyncio.gather(*[await dlq_topic.send(key=None, value=letter) for letter in letters])
            except asyncio.CancelledError:
                stop_before_ack("labels")
            except Exception:
                log.critical("labels not stored; exiting so that they are replayed", exc_info=True)
                os._exit(EXIT_UNDELIVERED)
            metrics.LABELS_IN.labels("kafka").inc(stored)
            metrics.DEAD_LETTERS.labels("label").inc(len(batch.dead_letters))
            log.info("labels stored", extra={"stored": stored, "dlq": len(batch.dead_letters)})


def hold_acks(events: Sequence[EventT]) -> None:
    """One more reference on each record's message: take_events' own ack then leaves it unacked, and
    `finish` releases it once the batch is delivered."""
    for event in events:
        event.message.incref()


async def finish(events: Sequence[EventT], delivery: Awaitable[None]) -> None:
    """Delivers a scored batch, then lets faust commit its records."""
    try:
        await delivery
    except asyncio.CancelledError:
        stop_before_ack("score")
    except Exception:
        exit_undelivered()
    for event in events:
        event.ack()


def exit_undelivered() -> NoReturn:
    """Input errors never get here (they become dead letters): this is the broker or a bug. Exit
    before the ack, so that a restarted worker replays the batch."""
    log.critical("batch not delivered; exiting so that it is replayed", exc_info=True)
    os._exit(EXIT_UNDELIVERED)


def stop_before_ack(agent: str) -> NoReturn:
    """Stopped mid-batch (a SIGTERM, perhaps while an outage held the batch): take_events would ack the
    batch on the way out and the stop would commit it unprocessed. Exit first; a restart replays it."""
    log.warning("stopped mid-batch; exiting before its ack so that it is replayed", extra={"agent": agent})
    os._exit(0)


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def load_models(settings: Settings) -> tuple[LanguageModels, dict[str, Path]]:
    """The engines to serve and the folders to watch: FINSENTRY_MODELS per language, else one model."""
    try:
        return serving.load_models(settings)
    except serving.NoModelError as exc:
        raise SystemExit(str(exc)) from exc


def run_worker(settings: Settings) -> None:
    """Loads the models, then runs the faust worker in the foreground until SIGTERM/SIGINT."""
    # The event loop, the bookkeeping thread and the model thread's Python all share the GIL, and
    # each Redis, SQLite and socket call gives it up. At the default 5 ms switch interval a call
    # returns only when the thread holding the GIL has used its 5 ms: small calls queue up behind it.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    models, folders = load_models(settings)
    client = kafka_python_options(settings)
    ensure_topics(
        settings.kafka_bootstrap, [settings.topic_labels], settings.topic_partitions, options=client
    )
    ensure_topics(settings.kafka_bootstrap, [settings.topic_models], 1, options=client)
    outages = Outages([redis_dependency(), sql_dependency()], settings.max_outage_s)
    if settings.metrics_port:
        metrics.serve(settings.web_host, settings.metrics_port, outages.state)
    app = build_app(settings, models, outages, folders)
    metrics.time_gc_pauses()
    # What is loaded by now (torch, transformers, faust, the models: some 300,000 objects) lives as long
    # as the process. Left in the collector's oldest generation, every full collection walks it all:
    # 230-290 ms with every thread stopped, a latency spike of the whole stream.
    gc.freeze()
    worker = _Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.finsentry_settings = settings
    worker.execute_from_commandline()


class _Worker(faust.Worker):
    """faust's worker, with finsentry's structured log lines instead of faust's own format."""

    finsentry_settings: Settings

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        logs.configure(self.finsentry_settings.log_level, self.finsentry_settings.log_json)
