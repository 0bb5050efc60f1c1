"""`finsentry bench`: benchmarks that compare side by side in one run."""

from __future__ import annotations

import json
import math
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
    from training.bases import packaged_base_model

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
    texts = [row["text"] for row in sample_rows(("headlines.jsonl",))]
    return (texts * (count // len(texts) + 1))[:count], "the shipped sample headlines (shared data absent)"


def _chinese_texts(count: int) -> tuple[list[str], str]:
    """Chinese forum posts and news from the shared FinFE and FinNL sets, alternately; else the sample."""
    settings = get_settings()
    files = [settings.shared_data / "zh_fincuge" / name for name in ("finfe_train.json", "finnl_train.json")]
    if all(f.is_file() for f in files):
        posts, news = ([str(row[0]) for row in json.loads(f.read_text(encoding="utf-8"))] for f in files)
        mixed = [text for pair in zip(posts, news, strict=False) for text in pair]
        return mixed[:count], f"{settings.shared_data}/zh_fincuge (FinFE posts and FinNL news)"
    from finsentry.demo import chinese_sample

    texts = chinese_sample()
    return (texts * (count // len(texts) + 1))[:count], "the shipped Chinese sample (shared data absent)"


def _interleave(english: list[str], chinese: list[str], zh_share: float) -> list[str]:
    """One stream with zh_share of its texts Chinese, spread evenly, until either side runs out."""
    texts = []
    en, zh = iter(english), iter(chinese)
    for i in range(len(english) + len(chinese)):
        chinese_turn = int((i + 1) * zh_share) > int(i * zh_share)
        text = next(zh if chinese_turn else en, None)
        if text is None:
            break
        texts.append(text)
    return texts


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
    threads: Annotated[
        int, typer.Option(help="Cores for the model (0: every core): ONNX lanes, torch threads")
    ] = 0,
    models: Annotated[
        str | None,
        typer.Option(
            help="One bundle per language (en=DIR,zh=DIR): each on its own language's texts,"
            " then a mixed stream through the language router"
        ),
    ] = None,
    zh_share: Annotated[float, typer.Option(help="Share of Chinese texts in the mixed stream")] = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """texts/s and p50/p99 latency per backend and batch size on real texts, as one table."""
    from finsentry.demo import ensure_model
    from inference.bench import run_bench, run_mixed_bench
    from inference.languages import LanguageModels

    settings = get_settings()
    folders = settings.model_copy(update={"models": models}).language_models if models else {}
    if not folders:
        folders = {"": model or ensure_model(settings, console)}
    sizes = [int(b) for b in batch_sizes.split(",")]
    chosen = backends.split(",") if backends else None
    corpora = {"zh": _chinese_texts(texts)}
    results, sources = [], []
    for language, bundle in folders.items():
        corpus, source = corpora.get(language) or _bench_texts(texts, min_tokens)
        sources.append(f"{language or 'texts'}: {len(corpus)} from {source}")
        if not as_json:
            console.print(f"{sources[-1]}; bundle {bundle}")
        results += run_bench(
            str(bundle),
            corpus,
            sizes,
            chosen,
            threads,
            seconds,
            on_result=None
            if as_json
            else lambda r: console.print(f"  {r.language} {r.backend} b={r.batch_size}: {r.texts_per_s}/s"),
            language=language,
        )
    if {"en", "zh"} <= set(folders):
        stream = _interleave(_bench_texts(texts, min_tokens)[0], corpora["zh"][0], zh_share)
        router = LanguageModels.load(folders, threads=threads)
        results += run_mixed_bench(router, stream, sizes, seconds)
        router.close()
        sources.append(f"mixed: {len(stream)} texts, {zh_share:.0%} Chinese, routed by script")
    from inference.backends import available_cores
    from inference.bundle import Bundle
    from inference.machine import cpu_summary

    served = {language: Bundle.open(bundle, verify=False).served for language, bundle in folders.items()}
    machine = {
        "cpu": cpu_summary(),
        "threads": threads or f"every core ({available_cores()})",
        "served": served,
    }
    if as_json:
        print(
            json.dumps(
                {"texts": sources, "machine": machine, "results": [r.as_dict() for r in results]}, indent=2
            )
        )
        return
    baseline = {
        (r.language, r.batch_size): r.texts_per_s
        for r in results
        if r.backend == "torch-fp32" and r.device == "cpu"
    }
    table = Table(
        title="inference: texts/s (higher is better), latency per call",
        caption=f"{machine['cpu']}; model cores: {machine['threads']} (ONNX: one-thread lanes, torch:"
        " threads); * the bundle's served backend",
    )
    columns = (
        "language",
        "backend",
        "device",
        "batch",
        "tokens",
        "texts/s",
        "p50 ms",
        "p99 ms",
        "× torch fp32",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("language", "backend", "device") else "right")
    for r in results:
        base = baseline.get((r.language, r.batch_size))
        ratio = r.texts_per_s / base if base else None
        is_served = r.device == "cpu" and served.get(r.language, served.get("")) == r.backend
        table.add_row(
            r.language or "-",
            r.backend + (" *" if is_served else ""),
            r.device,
            str(r.batch_size),
            f"{r.mean_tokens:.0f}",
            f"{r.texts_per_s:,.0f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            f"{ratio:.2f}" if ratio else "-",
        )
    console.print(table)


def _positive_rate(value: float | None) -> float | None:
    if value is not None and not 0 < value < math.inf:
        raise typer.BadParameter(f"must be a number of events/s above 0, not {value}")
    return value


def _load_fraction(value: float) -> float:
    if not 0 < value <= 1:
        raise typer.BadParameter(f"must be above 0 and at most 1, not {value}")
    return value


@app.command("pipeline")
def bench_pipeline(
    events: Annotated[int, typer.Option(min=2, help="Events through finsentry's worker, per run")] = 5_000,
    naive_events: Annotated[int, typer.Option(help="Events through the naive consumer")] = 500,
    alerts: Annotated[int, typer.Option(help="Alerts to time from trigger to delivery")] = 10,
    rate: Annotated[
        float | None,
        typer.Option(
            help="Events/s of the paced run, for latency at that load (default: --load-fraction × peak)",
            callback=_positive_rate,
        ),
    ] = None,
    load_fraction: Annotated[
        float,
        typer.Option(
            help="The paced run's rate as a share of the peak rate, in (0, 1]", callback=_load_fraction
        ),
    ] = 0.5,
    model: Annotated[
        Path | None, typer.Option(help="Bundle folder (default: FINSENTRY_MODEL_DIR or demo)")
    ] = None,
    broker_warmup: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Messages produced and fetched back through the broker before anything is timed, so"
            " that its JIT has compiled the hot paths, as a long-running broker's has (0: none;"
            " default: 200,000)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """finsentry's stream against a naive consumer (two HF pipelines, one message at a time), one run:
    the peak rate (a backlog drained), then the latency of events paced at a fixed rate."""
    from finsentry.bench_pipeline import Load, run_pipeline_bench
    from finsentry.demo import ensure_model

    settings = get_settings()
    settings = settings.model_copy(update={"model_dir": model or ensure_model(settings, console)})
    texts, source = _bench_texts(2_000, min_tokens=0)

    def say(line: str) -> None:
        if not as_json:
            console.print(line)

    load = Load(events, rate, load_fraction)
    ours, naive = run_pipeline_bench(settings, texts, load, naive_events, alerts, say, broker_warmup)
    at_load = ours["at_load"]
    speedup = ours["events_per_s"] / naive["events_per_s"]
    rate_vs_peak = at_load["rate"] / ours["events_per_s"]
    if as_json:
        print(
            json.dumps(
                {
                    "peak_events_per_s": ours["events_per_s"],
                    "naive_events_per_s": naive["events_per_s"],
                    "speedup_vs_naive": round(speedup, 2),
                    "naive_p50_ms": naive["p50_ms"],
                    "naive_p99_ms": naive["p99_ms"],
                    "load_rate": at_load["rate"],
                    "load_vs_peak": round(rate_vs_peak, 3),
                    "load_produced_per_s": at_load["produced_per_s"],
                    "load_scored_per_s": at_load["scored_per_s"],
                    "load_p50_ms": at_load["p50_ms"],
                    "load_p90_ms": at_load["p90_ms"],
                    "load_p99_ms": at_load["p99_ms"],
                    "load_max_ms": at_load["max_ms"],
                    "worker_peak_rss_mib": ours["worker_peak_rss_mib"],
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
    console.print(_peak_table(ours, naive, source))
    console.print(
        f"speed-up: {speedup:.1f}x; the naive consumer takes {naive['p50_ms']:.0f} ms a message at the"
        f" median, {naive['p99_ms']:.0f} ms at p99"
    )
    console.print(_load_table(at_load, rate_vs_peak))
    rss = ours["worker_peak_rss_mib"]
    console.print(f"worker peak RSS: {f'{rss:,.0f} MiB' if rss is not None else 'not measured (no /proc)'}")


def _peak_table(ours: dict, naive: dict, source: str) -> Table:
    """A backlog drained: the events/s each sustains, and finsentry's alert latency."""
    table = Table(title=f"pipeline: peak rate, a backlog drained ({source})")
    for column in ("", "events", "peak events/s", "alert p50 ms", "alert p99 ms"):
        table.add_column(column, justify="left" if not column else "right")
    table.add_row(
        "finsentry",
        str(ours["events"]),
        f"{ours['events_per_s']:,.0f}",
        str(ours["alert_p50_ms"]),
        str(ours["alert_p99_ms"]),
    )
    table.add_row(
        "naive (2 HF pipelines, 1 msg)", str(naive["events"]), f"{naive['events_per_s']:,.0f}", "-", "-"
    )
    return table


def _load_table(at_load: dict, rate_vs_peak: float) -> Table:
    table = Table(
        title=f"finsentry at {at_load['rate']:,.0f} events/s ({rate_vs_peak:.2f} × peak): produce -> scored"
    )
    for column in ("events", "produced/s", "scored/s", "p50 ms", "p90 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="right")
    table.add_row(
        str(at_load["events"]),
        f"{at_load['produced_per_s']:,.0f}",
        f"{at_load['scored_per_s']:,.0f}",
        *(f"{at_load[key]:.0f}" for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms")),
    )
    return table


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
