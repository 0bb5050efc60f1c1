"""The `finsentry` command: one entry point for the worker, the tools and the local stack."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from finsentry import logs
from finsentry.learning_cli import api, label_app, model_app, simulate_nights, trainer
from finsentry.settings import get_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

app = typer.Typer(help="finsentry: real-time monitor of financial news and comments.", no_args_is_help=True)
console = Console(stderr=True)

TextCol = Annotated[str, typer.Option(help="Column (or JSON key) with the text")]
TopicCol = Annotated[str | None, typer.Option(help="Column with the topic label")]
SentimentCol = Annotated[str | None, typer.Option(help="Column with the sentiment label")]
SentimentMap = Annotated[
    str | None, typer.Option(help="Raw sentiment value to label, e.g. 0=negative,1=positive,2=neutral")
]
TopicMap = Annotated[
    str | None, typer.Option(help="Raw topic value to name: 0=Analyst Update,... or a TSV file")
]


@app.callback()
def main(
    config: Annotated[Path | None, typer.Option(help="YAML settings file (FINSENTRY_CONFIG)")] = None,
    log_level: Annotated[str | None, typer.Option(help="DEBUG, INFO, WARNING")] = None,
    log_json: Annotated[bool, typer.Option(help="Log JSON lines")] = False,
) -> None:
    if config is not None:
        os.environ["FINSENTRY_CONFIG"] = str(config)
    get_settings.cache_clear()  # one invocation, one reading of the environment
    settings = get_settings()
    logs.configure(log_level or settings.log_level, log_json or settings.log_json)


@app.command()
def worker(
    model: Annotated[Path | None, typer.Option(help="Model bundle folder (FINSENTRY_MODEL_DIR)")] = None,
    backend: Annotated[str | None, typer.Option(help="auto, onnx-int8, onnx-fp32 or torch")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda")] = None,
) -> None:
    """Run the stream worker: news.raw + comments.raw -> events.scored / events.dlq."""
    from streams.app import run_worker

    overrides = {k: v for k, v in {"model_dir": model, "backend": backend, "device": device}.items() if v}
    run_worker(get_settings().model_copy(update=overrides))


@app.command()
def produce(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="JSONL or CSV file")],
    topic: Annotated[str, typer.Option(help="Kafka topic")] = "news.raw",
    kind: Annotated[str | None, typer.Option(help="news or comment; taken from the topic when unset")] = None,
    text_col: TextCol = "text",
    id_col: Annotated[str | None, typer.Option(help="Column with the event id (derived when absent)")] = "id",
    source_col: Annotated[str | None, typer.Option(help="Column with the source")] = "source",
    time_col: Annotated[str | None, typer.Option(help="Column with the publication time")] = "published_at",
    url_col: Annotated[str | None, typer.Option(help="Column with the URL")] = "url",
    lang_col: Annotated[str | None, typer.Option(help="Column with the language")] = "lang",
    rate: Annotated[
        float | None, typer.Option(help="Messages per second (default: as fast as possible)")
    ] = None,
    limit: Annotated[int | None, typer.Option(help="Send at most this many rows")] = None,
) -> None:
    """Send a file's rows to Kafka, checking each against the topic's contract first."""
    from finsentry.produce import ColumnMap
    from finsentry.produce import produce as run_produce

    settings = get_settings()
    kind = kind or ("comment" if "comment" in topic else "news")
    columns = ColumnMap(text_col, id_col, source_col, time_col, url_col, lang_col)
    summary = run_produce(file, topic, kind, settings.kafka_bootstrap, columns, rate=rate, limit=limit)
    table = Table(title=f"produced {file.name} → {topic} in {summary.seconds:.1f}s")
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_column("example")
    table.add_row("sent", str(summary.sent), "")
    for code, count in summary.rejected.most_common():
        table.add_row(f"rejected: {code}", str(count), summary.examples[code])
    if summary.failed_delivery:
        table.add_row("delivery failed", str(summary.failed_delivery), "broker did not acknowledge")
    console.print(table)
    if summary.failed_delivery:
        raise typer.Exit(1)


def _load_sets(
    data: list[str],
    text_col: str,
    topic_col: str | None,
    sentiment_col: str | None,
    topic_map: str | None,
    sentiment_map: str | None,
) -> list:
    """Reads every --data file; a `topic:` or `sentiment:` prefix limits a file to that head's labels,
    for files whose label column has the same name (the Twitter topic and sentiment sets)."""
    from training.data import load_examples, parse_label_map

    topics, sentiments = parse_label_map(topic_map), parse_label_map(sentiment_map)
    examples = []
    for spec in data:
        head, sep, name = spec.partition(":")
        if not sep or head not in ("topic", "sentiment"):
            head, name = "", spec
        examples += load_examples(
            Path(name),
            text_col,
            topic_col if head in ("", "topic") else None,
            sentiment_col if head in ("", "sentiment") else None,
            topics,
            sentiments,
        )
    return examples


DataFiles = Annotated[
    list[str],
    typer.Option(
        help="Labelled file (CSV, JSONL, JSON); repeat for more. Prefix topic: or"
        " sentiment: to take only that head's labels from it"
    ),
]


@app.command()
def train(
    data: DataFiles,
    out: Annotated[Path, typer.Option(help="Bundle folder to write")],
    text_col: TextCol = "text",
    topic_col: TopicCol = None,
    sentiment_col: SentimentCol = None,
    topic_map: TopicMap = None,
    sentiment_map: SentimentMap = None,
    valid: Annotated[
        list[str] | None, typer.Option(help="Validation file(s), same prefixes; else 80/10/10")
    ] = None,
    base_model: Annotated[str | None, typer.Option(help="Local Hugging Face encoder folder")] = None,
    epochs: int = 5,
    batch_size: int = 32,
    grad_accum: int = 1,
    lr: float = 8e-5,
    max_length: int = 64,
    patience: int = 2,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimiser steps")] = None,
    bf16: Annotated[
        bool | None, typer.Option("--bf16/--no-bf16", help="bf16 autocast (default: if fast)")
    ] = None,
    extend_vocab: Annotated[
        bool, typer.Option(help="Add the corpus's unknown characters to the vocabulary")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON")] = False,
) -> None:
    """Fine-tune the topic + sentiment model and write a bundle (weights, ONNX, int8, metrics)."""
    from training.base import resolve_base_model
    from training.data import deduplicate, split
    from training.train import TrainConfig
    from training.train import train as run_train

    examples, conflicts = deduplicate(
        _load_sets(data, text_col, topic_col, sentiment_col, topic_map, sentiment_map)
    )
    if valid:
        valid_set = _load_sets(valid, text_col, topic_col, sentiment_col, topic_map, sentiment_map)
        train_set, test_set = examples, []
    else:
        train_set, valid_set, test_set = split(examples)
    console.print(
        f"rows: train {len(train_set)}, valid {len(valid_set)}, test {len(test_set)}"
        f" ({conflicts} texts with conflicting labels dropped their conflicting label)"
    )
    config = TrainConfig(
        base_model=resolve_base_model(base_model),
        out=out,
        epochs=epochs,
        batch_size=batch_size,
        grad_accum=grad_accum,
        lr=lr,
        max_length=max_length,
        patience=patience,
        max_steps=max_steps,
        bf16=bf16,
        extend_vocab=extend_vocab,
        progress=not as_json,
    )
    result = run_train(train_set, valid_set, test_set, config)
    if as_json:
        print(json.dumps(result.metrics, indent=2))
        return
    _print_reports(result.metrics["valid"], "validation")
    console.print(
        f"bundle {result.bundle.version} → {out} (serving {result.bundle.served});"
        f" {result.seconds / 60:.1f} min, peak RSS {result.peak_rss_mib:.0f} MiB"
    )


def _print_reports(reports: dict, title: str) -> None:
    for head in ("topic", "sentiment"):
        report = reports.get(head)
        if not report:
            continue
        table = Table(
            title=f"{head} ({title}): accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}"
        )
        for column in ("class", "precision", "recall", "f1", "support"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for label, row in report["per_class"].items():
            table.add_row(
                label,
                f"{row['precision']:.3f}",
                f"{row['recall']:.3f}",
                f"{row['f1']:.3f}",
                str(row["support"]),
            )
        console.print(table)
        labels = report["labels"]
        if len(labels) <= 6:
            matrix = Table(title=f"{head} confusion (rows: true, columns: predicted)")
            matrix.add_column("")
            for label in labels:
                matrix.add_column(label[:10], justify="right")
            for label, row in zip(labels, report["confusion_matrix"], strict=True):
                matrix.add_row(label, *map(str, row))
            console.print(matrix)


@app.command("eval")
def evaluate(
    model: Annotated[Path, typer.Option(help="Bundle folder")],
    data: DataFiles,
    text_col: TextCol = "text",
    topic_col: TopicCol = None,
    sentiment_col: SentimentCol = None,
    topic_map: TopicMap = None,
    sentiment_map: SentimentMap = None,
    backend: Annotated[str, typer.Option(help="auto, onnx-int8, onnx-fp32 or torch")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON")] = False,
) -> None:
    """Score a labelled file with a bundle's served model: report and confusion matrix per head."""
    from training.evaluate import evaluate_bundle

    examples = _load_sets(data, text_col, topic_col, sentiment_col, topic_map, sentiment_map)
    reports = evaluate_bundle(model, examples, backend=backend, progress=not as_json)
    if as_json:
        print(json.dumps(reports, indent=2, ensure_ascii=False))
        return
    _print_reports(reports, ", ".join(Path(p).name for p in data))
    if "unk_rate" in reports:
        console.print(f"[UNK] rate: {reports['unk_rate']:.3f}")


@app.command()
def up(
    model: Annotated[Path | None, typer.Option(help="Model bundle folder (default: the demo model)")] = None,
) -> None:
    """Run the embedded stack (Kafka, Redis, SQLite, worker) in the foreground; Ctrl-C stops it cleanly."""
    from finsentry.demo import ensure_model
    from finsentry.services.process import ServiceError
    from finsentry.stack import LocalStack

    settings = get_settings()
    settings = settings.model_copy(update={"model_dir": model or ensure_model(settings, console)})
    stack = LocalStack(settings)
    try:
        stack.start()
        console.print(
            f"[green]finsentry is up[/]: Kafka {settings.kafka_bootstrap}, Redis {settings.redis_url},"
            f" SQL {settings.effective_database_url.split('@')[-1]}; Ctrl-C stops it"
        )
        stack.wait()
    except KeyboardInterrupt:
        console.print("stopping…")
    except ServiceError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    finally:
        stack.stop()


@app.command()
def demo(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the scored stream")] = 180.0,
) -> None:
    """Train (first run) and serve a real model, replay a sample stream, and show what was scored."""
    from finsentry.demo import run_demo

    raise typer.Exit(run_demo(get_settings(), console, timeout))


bench_app = typer.Typer(help="Benchmarks that compare side by side in one run.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


def _bench_texts(count: int, min_tokens: int) -> tuple[list[str], str]:
    """Real finance texts of about 40 tokens: the longer tweets of the shared data, else the sample."""
    from finsentry.demo import sample_rows
    from training.base import packaged_base_model

    settings = get_settings()
    files = [
        settings.shared_data / "twitter_financial_news_topic" / "topic_valid.csv",
        settings.shared_data / "twitter_financial_news_sentiment" / "sent_valid.csv",
    ]
    if all(f.is_file() for f in files):
        import csv

        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(packaged_base_model()))
        texts = []
        for f in files:
            with f.open(encoding="utf-8") as fh:
                texts += [row["text"] for row in csv.DictReader(fh)]
        lengths = tokenizer(texts)["input_ids"]
        long_enough = [t for t, ids in zip(texts, lengths, strict=True) if len(ids) >= min_tokens]
        return long_enough[:count], f"{settings.shared_data} (Twitter valid texts of ≥{min_tokens} tokens)"
    texts = [row["text"] for row in sample_rows()]
    return (texts * (count // len(texts) + 1))[:count], "the shipped sample headlines (shared data absent)"


@bench_app.command("inference")
def bench_inference(
    model: Annotated[
        Path | None, typer.Option(help="Bundle folder (default: FINSENTRY_MODEL_DIR or demo)")
    ] = None,
    batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes")] = "1,8,32,128",
    backends: Annotated[
        str | None, typer.Option(help="Comma-separated: onnx-int8,onnx-fp32,torch,torch-cuda")
    ] = None,
    texts: Annotated[int, typer.Option(help="How many distinct texts to cycle through")] = 512,
    min_tokens: Annotated[int, typer.Option(help="Use texts of at least this many tokens")] = 36,
    seconds: Annotated[float, typer.Option(help="Minimum seconds per measurement")] = 3.0,
    threads: Annotated[int, typer.Option(help="Model threads (0: runtime default)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """texts/s and p50/p99 latency per backend and batch size on real texts, as one table."""
    from finsentry.demo import ensure_model
    from inference.bench import run_bench

    settings = get_settings()
    bundle = model or ensure_model(settings, console)
    corpus, source = _bench_texts(texts, min_tokens)
    sizes = [int(b) for b in batch_sizes.split(",")]
    chosen = backends.split(",") if backends else None
    if not as_json:
        console.print(f"texts: {len(corpus)} from {source}; bundle {bundle}")
    results = run_bench(
        str(bundle),
        corpus,
        sizes,
        chosen,
        threads,
        seconds,
        on_result=None
        if as_json
        else lambda r: console.print(f"  {r.backend} b={r.batch_size}: {r.texts_per_s}/s"),
    )
    if as_json:
        print(json.dumps({"texts": source, "results": [r.as_dict() for r in results]}, indent=2))
        return
    baseline = {
        r.batch_size: r.texts_per_s for r in results if r.backend == "torch-fp32" and r.device == "cpu"
    }
    table = Table(title="inference: texts/s (higher is better), latency per call")
    for column in ("backend", "device", "batch", "tokens", "texts/s", "p50 ms", "p99 ms", "× torch fp32"):
        table.add_column(column, justify="left" if column in ("backend", "device") else "right")
    for r in results:
        ratio = r.texts_per_s / baseline[r.batch_size] if baseline.get(r.batch_size) else None
        table.add_row(
            r.backend,
            r.device,
            str(r.batch_size),
            f"{r.mean_tokens:.0f}",
            f"{r.texts_per_s:,.0f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            f"{ratio:.2f}" if ratio else "-",
        )
    console.print(table)


@bench_app.command("pipeline")
def bench_pipeline(
    events: Annotated[int, typer.Option(help="Events through finsentry's worker")] = 5_000,
    naive_events: Annotated[int, typer.Option(help="Events through the naive consumer")] = 500,
    alerts: Annotated[int, typer.Option(help="Alerts to time from trigger to delivery")] = 10,
    model: Annotated[
        Path | None, typer.Option(help="Bundle folder (default: FINSENTRY_MODEL_DIR or demo)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """finsentry's stream against a naive consumer (two HF pipelines, one message at a time), one run."""
    from finsentry.bench_pipeline import run_pipeline_bench
    from finsentry.demo import ensure_model

    settings = get_settings()
    settings = settings.model_copy(update={"model_dir": model or ensure_model(settings, console)})
    texts, source = _bench_texts(2_000, min_tokens=0)

    def say(line: str) -> None:
        if not as_json:
            console.print(line)

    ours, naive = run_pipeline_bench(settings, texts, events, naive_events, alerts, say)
    speedup = ours["events_per_s"] / naive["events_per_s"]
    if as_json:
        print(
            json.dumps(
                {
                    "events_per_s": ours["events_per_s"],
                    "naive_events_per_s": naive["events_per_s"],
                    "speedup_vs_naive": round(speedup, 2),
                    "p50_ms": ours["p50_ms"],
                    "p99_ms": ours["p99_ms"],
                    "naive_p50_ms": naive["p50_ms"],
                    "naive_p99_ms": naive["p99_ms"],
                    "alert_p50_ms": ours["alert_p50_ms"],
                    "alert_p99_ms": ours["alert_p99_ms"],
                    "alerts_delivered": ours["alerts_delivered"],
                    "finsentry": ours,
                    "naive": naive,
                    "texts": source,
                },
                indent=2,
            )
        )
        return
    table = Table(title=f"pipeline: produce -> scored ({source})")
    for column in ("", "events", "events/s", "p50 ms", "p99 ms", "alert p50 ms", "alert p99 ms"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row(
        "finsentry",
        str(ours["events"]),
        f"{ours['events_per_s']:,.0f}",
        f"{ours['p50_ms']:.0f}",
        f"{ours['p99_ms']:.0f}",
        str(ours["alert_p50_ms"]),
        str(ours["alert_p99_ms"]),
    )
    table.add_row(
        "naive (2 HF pipelines, 1 msg)",
        str(naive["events"]),
        f"{naive['events_per_s']:,.0f}",
        f"{naive['p50_ms']:.0f}*",
        f"{naive['p99_ms']:.0f}*",
        "-",
        "-",
    )
    console.print(table)
    console.print(f"speed-up: {speedup:.1f}x   (* naive latency is per message, without queueing)")


@app.command()
def dispatch() -> None:
    """Deliver the alert outbox to the receivers (FINSENTRY_RECEIVERS) until stopped."""
    import signal
    import threading

    from alerts.dispatcher import Dispatcher
    from alerts.notifiers import load_receivers
    from finsentry.db import open_database

    settings = get_settings()
    if settings.receivers is None:
        raise typer.BadParameter("set FINSENTRY_RECEIVERS to a receivers YAML file")
    engine = open_database(settings.effective_database_url)
    notifiers = load_receivers(settings.receivers, settings.kafka_bootstrap)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    console.print(f"dispatching to {', '.join(notifiers) or 'no receivers'}")
    Dispatcher(engine, notifiers).run(stop)


silence_app = typer.Typer(
    help="Hold alerts back: silences with matchers and an expiry.", no_args_is_help=True
)
app.add_typer(silence_app, name="silence")
app.add_typer(label_app, name="label")
app.command()(api)
app.add_typer(model_app, name="model")
app.command()(trainer)
app.command("simulate-nights")(simulate_nights)


@silence_app.command("add")
def silence_add(
    matcher: Annotated[
        list[str], typer.Option(help="NAME=VALUE over rule, scope, scope_key, severity, labels")
    ],
    duration: Annotated[str, typer.Option(help="How long, e.g. 30m, 2h, 1d")] = "2h",
    by: Annotated[str, typer.Option(help="Who silences")] = os.environ.get("USER", "unknown"),
    comment: Annotated[str, typer.Option(help="Why")] = "",
) -> None:
    """Silence the alerts that match every matcher, for a while."""
    from datetime import timedelta

    from alerts.rules import parse_duration
    from alerts.silences import add_silence, parse_matchers
    from finsentry.db import open_database

    try:
        matchers, seconds = parse_matchers(matcher), parse_duration(duration)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    engine = open_database(get_settings().effective_database_url)
    silence_id = add_silence(engine, matchers, timedelta(seconds=seconds), by, comment)
    print(silence_id)


@silence_app.command("list")
def silence_list() -> None:
    """Active and upcoming silences."""
    from alerts.silences import active_silences
    from finsentry.db import open_database

    table = Table(title="silences")
    for column in ("id", "matchers", "ends (UTC)", "by", "comment"):
        table.add_column(column)
    for s in active_silences(open_database(get_settings().effective_database_url)):
        matchers = ", ".join(f"{k}={v}" for k, v in s.matchers.items())
        table.add_row(s.id, matchers, s.ends_at.strftime("%Y-%m-%d %H:%M"), s.created_by, s.comment)
    console.print(table)


@silence_app.command("expire")
def silence_expire(silence_id: str) -> None:
    """End a silence now."""
    from alerts.silences import expire_silence
    from finsentry.db import open_database

    if not expire_silence(open_database(get_settings().effective_database_url), silence_id):
        console.print(f"[red]no silence {silence_id}[/]")
        raise typer.Exit(1)


@app.command()
def export(
    model: Annotated[Path, typer.Option(help="Bundle folder to export again")],
    data: Annotated[list[Path], typer.Option(help="File(s) with real texts to check the exports on")],
    text_col: TextCol = "text",
    rows: Annotated[int, typer.Option(help="Texts to check the exports on")] = 2_000,
) -> None:
    """Export a bundle's weights to ONNX fp32 and int8 again, with the agreement checks on real text."""
    from training.data import read_rows
    from training.export import reexport

    texts = [str(row[text_col]) for path in data for row in read_rows(path) if row.get(text_col)]
    bundle = reexport(model, texts[:: max(1, len(texts) // rows)][:rows])
    console.print(json.dumps(bundle.manifest["export"], indent=2))
    console.print(f"serving {bundle.served}")
