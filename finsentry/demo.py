"""`finsentry demo`: a real fine-tuned model, the embedded stack, a replayed stream, what was scored."""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
import uuid
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from accounts import Accounts
from finsentry.slack_standin import SlackStandIn
from finsentry.stack import LocalStack
from foundation.connections import kafka_python_options
from foundation.db import open_database
from foundation.settings import Settings
from inference import Bundle, BundleError

log = logging.getLogger(__name__)
SAMPLES = ("headlines.jsonl", "forum_zh.jsonl")  # English news and comments; Chinese news and forum posts
CONTRACT_FIELDS = ("id", "source", "published_at", "text", "lang")
BURSTS = {"burst.txt": "Northwind Bank", "burst_zh.txt": "青岚科技 (Qinglan Technology)"}
DEMO_USER = "demo"


def sample_rows(names: tuple[str, ...] = SAMPLES) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        text = resources.files("finsentry.sample").joinpath(name).read_text(encoding="utf-8")
        rows += [json.loads(line) for line in text.splitlines() if line.strip()]
    return rows


def chinese_sample() -> list[str]:
    return [row["text"] for row in sample_rows(("forum_zh.jsonl",))]


def ensure_model(settings: Settings, console: Console, language: str = "en") -> Path:
    """The bundle to serve: FINSENTRY_MODEL_DIR, or the demo's own for the language, trained on first run."""
    if settings.model_dir is not None:
        return settings.model_dir
    target = settings.home / "models" / ("demo" if language == "en" else f"demo-{language}")
    try:
        Bundle.open(target)
        return target
    except BundleError:
        pass
    from training.demo_model import train_demo_model

    source = train_demo_model(settings.shared_data, target, console, language)
    console.print(f"[green]trained the {language} demo model from {source}[/]")
    return target


def ensure_models(settings: Settings, console: Console) -> dict[str, Path]:
    """FINSENTRY_MODELS, or the one FINSENTRY_MODEL_DIR, or the demo's English and Chinese models."""
    if settings.language_models:
        return settings.language_models
    if settings.model_dir is not None:
        return {"": settings.model_dir}
    return {language: ensure_model(settings, console, language) for language in ("en", "zh")}


def replay(settings: Settings, run_id: str, extra_malformed: bool = True) -> dict[str, str]:
    """Sends the sample stream (news and comments) plus two broken messages; returns id -> text."""
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5, **kafka_python_options(settings)
    )
    sent = {}
    for row in sample_rows():
        event = {k: row[k] for k in CONTRACT_FIELDS if k in row}
        event["id"] = f"{run_id}-{row['id']}"
        topic = settings.topic_comments if row["kind"] == "comment" else settings.topic_news
        producer.send(topic, key=event["id"].encode(), value=json.dumps(event).encode())
        sent[event["id"]] = row["text"]
    if extra_malformed:
        producer.send(settings.topic_news, value=b'{"id": "broken", "text": ')
        producer.send(
            settings.topic_news,
            value=json.dumps(
                {"id": f"{run_id}-no-text", "source": "wire", "published_at": "2026-11-02T08:00:00Z"}
            ).encode(),
        )
    producer.flush()
    producer.close()
    return sent


def collect(settings: Settings, sent: dict[str, str], since_ms: int, timeout: float) -> tuple[list, list]:
    consumer = KafkaConsumer(
        settings.topic_scored,
        settings.topic_dlq,
        bootstrap_servers=settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        **kafka_python_options(settings),
    )
    scored: dict[str, dict[str, Any]] = {}
    letters: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and (len(scored) < len(sent) or len(letters) < 2):
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.timestamp < since_ms:
                        continue
                    value = json.loads(record.value)
                    if record.topic == settings.topic_dlq:
                        letters.append(value)
                    elif value.get("id") in sent:
                        scored[value["id"]] = value
    finally:
        consumer.close()
    return list(scored.values()), letters


def show(
    console: Console, scored: list[dict[str, Any]], letters: list[dict[str, Any]], seconds: float
) -> None:
    colours = {"negative": "red", "neutral": "yellow", "positive": "green"}
    table = Table(title=f"events.scored: {len(scored)} events in {seconds:.1f}s")
    for column in ("source", "lang", "text", "topics", "sentiment", "p"):
        table.add_column(column, overflow="fold" if column == "text" else "ellipsis")
    for event in sorted(scored, key=lambda e: e["id"]):
        sentiment = event["sentiment"]["label"]
        p = event["sentiment"]["probabilities"][sentiment]
        topic = ", ".join(event.get("topics") or []) or "-"
        table.add_row(
            event["source"],
            event.get("model_language", "-"),
            event["text"][:90],
            topic,
            f"[{colours.get(sentiment, 'white')}]{sentiment}[/]",
            f"{p:.2f}",
        )
    console.print(table)
    dlq = Table(title=f"events.dlq: {len(letters)} dead letters")
    for column in ("topic:partition@offset", "code", "reason"):
        dlq.add_column(column)
    for letter in letters:
        dlq.add_row(
            f"{letter['topic']}:{letter['partition']}@{letter['offset']}",
            letter["error_code"],
            letter["error"],
        )
    console.print(dlq)
    versions = sorted({f"{e.get('model_language', '-')}: {e['model_version']}" for e in scored})
    if versions:
        console.print(f"models {', '.join(versions)}")


def sample_file(name: str) -> Path:
    return Path(str(resources.files("finsentry.sample").joinpath(name)))


def demo_settings(settings: Settings, models: dict[str, Path]) -> Settings:
    """The demo's models, watchlist, short-window rules and a Slack receiver, unless the settings name
    others."""
    receivers = settings.home / "demo" / "receivers.yaml"
    receivers.parent.mkdir(parents=True, exist_ok=True)
    receivers.write_text("receivers:\n  slack: {type: slack, url: '${FINSENTRY_DEMO_SLACK_URL}'}\n")
    return settings.model_copy(
        update={
            **model_settings(models),
            "watchlist": settings.watchlist or sample_file("watchlist.yaml"),
            "rules": settings.rules or sample_file("demo_rules.yaml"),
            "receivers": receivers,
            "alert_tick_s": min(settings.alert_tick_s, 2.0),
            "window_bucket_s": min(settings.window_bucket_s, 5),
        }
    )


def model_settings(models: dict[str, Path]) -> dict[str, Any]:
    """One model for everything (`model_dir`), or one per language (`models`)."""
    if list(models) == [""]:
        return {"model_dir": models[""]}
    return {"models": ",".join(f"{lang}={path}" for lang, path in models.items()), "model_dir": None}


def inject_burst(settings: Settings, run_id: str, name: str) -> None:
    """Negative news about one company, a few a second, with the current time."""
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", **kafka_python_options(settings)
    )
    lines = sample_file(name).read_text(encoding="utf-8").splitlines()
    for i, text in enumerate(line for line in lines if line.strip()):
        event = {
            "id": f"{run_id}-{Path(name).stem}-{i}",
            "source": "wire",
            "text": text,
            "published_at": datetime.now(UTC).isoformat(),
            "url": f"https://news.example/{run_id}/{i}",
        }
        producer.send(settings.topic_news, key=event["id"].encode(), value=json.dumps(event).encode())
        producer.flush()
        time.sleep(0.3)
    producer.close()


def show_slack(console: Console, message: dict[str, Any]) -> None:
    lines = []
    for block in message.get("blocks", []):
        if block["type"] == "section":
            lines.append(block["text"]["text"])
        elif block["type"] == "context":
            lines.extend(e["text"] for e in block["elements"])
    console.print(Panel("\n".join(lines), title="Slack (local receiver)", border_style="red"))


def wait_for(slack: SlackStandIn, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while len(slack.accepted) < count and time.monotonic() < deadline:
        time.sleep(0.2)
    return len(slack.accepted) >= count


def demo_login(settings: Settings) -> str:
    """The demo analyst's account with a fresh one-time password (the account is made on first use)."""
    accounts = Accounts(open_database(settings.effective_database_url))
    password = secrets.token_urlsafe(12)
    if accounts.get(DEMO_USER) is None:
        accounts.add(DEMO_USER, "analyst", password)
    else:
        accounts.set_password(DEMO_USER, password)
    accounts.audit("demo", "set password", target=DEMO_USER)
    return password


def run_demo(settings: Settings, console: Console, timeout: float = 180.0) -> int:
    settings = demo_settings(settings, ensure_models(settings, console))
    with SlackStandIn() as slack:
        os.environ["FINSENTRY_DEMO_SLACK_URL"] = slack.url
        stack = LocalStack(settings, worker_log=settings.home / "demo" / "worker.log")
        console.print("[bold]starting Kafka, Redis, the worker and the alert dispatcher[/]")
        try:
            stack.start(with_console=True)
            password = demo_login(settings)
            console.print(
                f"[bold]console:[/] http://{settings.api_host}:{settings.api_port}/console"
                f"  (log in as [bold]demo[/] with [bold]{password}[/]: a new password each run)"
            )
            run_id = f"demo-{uuid.uuid4().hex[:6]}"
            since_ms = int(time.time() * 1000) - 1000
            started = time.perf_counter()
            sent = replay(settings, run_id)
            console.print(
                f"replayed {len(sent)} events (+2 malformed) to {settings.topic_news} / "
                f"{settings.topic_comments}"
            )
            scored, letters = collect(settings, sent, since_ms, timeout)
            show(console, scored, letters, time.perf_counter() - started)
            if len(scored) < len(sent):
                console.print(
                    f"[red]only {len(scored)} of {len(sent)} events were scored in {timeout:.0f}s;"
                    f" see {stack.worker_log}[/]"
                )
                return 1
            console.print(f"[bold]injecting bursts of negative news about {' and '.join(BURSTS.values())}[/]")
            burst_at = time.perf_counter()
            for name in BURSTS:
                inject_burst(settings, run_id, name)
            if not wait_for(slack, 1, 60):
                console.print("[yellow]no alert fired: the model did not find the bursts negative enough[/]")
                return 0
            console.print(f"alert delivered {time.perf_counter() - burst_at:.1f}s after the bursts began")
            wait_for(slack, len(BURSTS), 30)
            for message in slack.accepted[: len(BURSTS)]:
                show_slack(console, message)
            console.print("waiting for the windows to clear (about a minute) ...")
            if wait_for(slack, 2 * len(BURSTS), 120):
                for message in slack.accepted[len(BURSTS) : 2 * len(BURSTS)]:
                    show_slack(console, message)
            return 0
        finally:
            stack.stop()
