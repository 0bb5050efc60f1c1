"""The long-running processes: the local stack, the stream worker, the dispatcher, the API, the trainer."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from finsentry.cli.options import (
    console,
)
from foundation.settings import get_settings


def worker(
    model: Annotated[Path | None, typer.Option(help="Model bundle folder (FINSENTRY_MODEL_DIR)")] = None,
    backend: Annotated[str | None, typer.Option(help="auto, onnx-int8, onnx-fp32 or torch")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda")] = None,
    models: Annotated[
        str | None,
        typer.Option(help="One bundle per language: en=/models/en,zh=/models/zh (FINSENTRY_MODELS)"),
    ] = None,
) -> None:
    """Run the stream worker: news.raw + comments.raw -> events.scored / events.dlq."""
    from streams.app import run_worker

    given = {"model_dir": model, "backend": backend, "device": device, "models": models}
    overrides = {k: v for k, v in given.items() if v}
    run_worker(get_settings().model_copy(update=overrides))


def up(
    model: Annotated[
        Path | None,
        typer.Option(
            help="One model bundle for every text (default: FINSENTRY_MODELS, or the demo's en and zh)"
        ),
    ] = None,
) -> None:
    """Run the embedded stack (Kafka, Redis, SQLite, worker, API, console) in the foreground; Ctrl-C stops."""
    import signal

    from finsentry.demo import ensure_models, model_settings
    from finsentry.services.process import ServiceError
    from finsentry.stack import LocalStack
    from foundation.logs import without_credentials

    settings = get_settings()
    models = {"": model} if model else ensure_models(settings, console)
    settings = settings.model_copy(update=model_settings(models))
    # The worker and the API stop on SIGINT even when started with it ignored (as a background job
    # is); without this, up would outlive them and report their clean exit as a failure.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stack = LocalStack(settings)
    try:
        stack.start(with_console=True)
        console.print(
            f"[green]finsentry is up[/]: Kafka {settings.kafka_bootstrap},"
            f" Redis {without_credentials(settings.redis_url)},"
            f" SQL {settings.effective_database_url.split('@')[-1]},"
            f" console http://{settings.api_host}:{settings.api_port}/console; Ctrl-C stops it"
        )
        stack.wait()
    except KeyboardInterrupt:
        console.print("stopping…")
    except ServiceError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    finally:
        stack.stop()


def dispatch() -> None:
    """Deliver the alert outbox to the receivers (FINSENTRY_RECEIVERS) until stopped."""
    import signal
    import threading

    from alerts.dispatcher import Dispatcher
    from alerts.notifiers import load_receivers
    from foundation import metrics
    from foundation.connections import kafka_python_options
    from foundation.db import open_database
    from foundation.outage import Outages, OutageTooLong, Stopping, sql_dependency

    settings = get_settings()
    if settings.receivers is None:
        raise typer.BadParameter("set FINSENTRY_RECEIVERS to a receivers YAML file")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    outages = Outages([sql_dependency()], settings.max_outage_s, stopping=stop)
    if settings.metrics_port:
        metrics.serve(settings.web_host, settings.metrics_port, outages.state)
    try:
        engine = outages.guard().call(open_database, settings.effective_database_url)
        notifiers = load_receivers(
            settings.receivers, settings.kafka_bootstrap, kafka_python_options(settings)
        )
        console.print(f"dispatching to {', '.join(notifiers) or 'no receivers'}")
        Dispatcher(engine, notifiers).run(stop, outages.guard())
    except Stopping:
        return
    except OutageTooLong as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc


def api(
    host: Annotated[str | None, typer.Option(help="Bind address (FINSENTRY_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (FINSENTRY_API_PORT)")] = None,
) -> None:
    """Serve the HTTP API; every route but /healthz and /readyz needs a token (`finsentry user`)."""
    import uvicorn

    from accounts import Accounts
    from accounts.throttle import ThrottlePolicy
    from api import create_app
    from api.server import SERVER_LIMITS
    from inference.entities import load_watchlist
    from training.learning import learning

    settings = get_settings()
    parts = learning(settings)
    throttle = ThrottlePolicy(
        free_failures=settings.login_free_failures, max_delay=timedelta(seconds=settings.login_max_delay_s)
    )
    accounts = Accounts(parts.engine, throttle)
    if not accounts.list():
        console.print(
            "[yellow]no accounts yet: `finsentry user add NAME --role admin`,"
            " then `finsentry user token create NAME`[/]"
        )
    watchlist = load_watchlist(settings.watchlist) if settings.watchlist else []
    uvicorn.run(
        create_app(parts, accounts, watchlist, settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_config=None,
        **SERVER_LIMITS,
    )


def trainer(
    now: Annotated[bool, typer.Option("--now", help="Run one night now and exit")] = False,
    force: Annotated[bool, typer.Option(help="With --now: train even with few new labels")] = False,
    max_steps: Annotated[int | None, typer.Option(help="Cap the optimiser steps of a night")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With --now: print the result as JSON")] = False,
) -> None:
    """Run the nightly fine-tuning on its schedule (FINSENTRY_TRAIN_CRON), or once with --now."""
    from training.scheduler import run_night, run_scheduler

    settings = get_settings()
    if not now:
        run_scheduler(settings)
        return
    results = run_night(settings, force=force, **({"max_steps": max_steps} if max_steps else {}))
    if as_json:
        report = {
            language: {
                "status": result.status,
                "version": result.version,
                "detail": result.detail,
                "metrics": result.metrics,
            }
            for language, result in results.items()
        }
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return
    for language, result in results.items():
        console.print(
            f"{language}: {result.status}: {result.detail}", f"({result.version})" if result.version else ""
        )
    if any(result.status == "failed" for result in results.values()):
        raise typer.Exit(1)
