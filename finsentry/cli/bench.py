"""`finsentry bench`: benchmarks that compare side by side in one run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from finsentry.cli.options import (
    console,
)
from foundation.settings import get_settings

app = typer.Typer(help="Benchmarks that compare side by side in one run.", no_args_is_help=True)


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


@app.command("inference")
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


@app.command("pipeline")
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


@app.command("trends")
def bench_trends(
    events: Annotated[int, typer.Option(help="Scored events to roll up")] = 10_000_000,
    days: Annotated[int, typer.Option(help="Days of history they span")] = 400,
    companies: Annotated[int, typer.Option(help="Companies they are about")] = 200,
    database_url: Annotated[
        str | None, typer.Option(help="PostgreSQL URL (default: a throwaway cluster started here)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The trend charts' queries on PostgreSQL with millions of events rolled up: times and plans."""
    from dataclasses import asdict

    from finsentry.bench_trends import run_trends_bench

    rows, timings = run_trends_bench(
        database_url, events, days, companies, say=(lambda _: None) if as_json else console.print
    )
    if as_json:
        print(
            json.dumps(
                {"events": events, "hour_rows": rows, "queries": [asdict(t) for t in timings]}, indent=2
            )
        )
        return
    table = Table(title=f"trend queries on {rows:,} hour rows ({events:,} events, {days} days)")
    for column in ("query", "rows", "median ms", "p99 ms"):
        table.add_column(column, justify="left" if column == "query" else "right")
    for t in timings:
        table.add_row(t.name, str(t.rows), f"{t.median_ms:.2f}", f"{t.p99_ms:.2f}")
    console.print(table)
    for t in timings:
        console.print(f"[bold]{t.name}[/]\n{t.plan}")
