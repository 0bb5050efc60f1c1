"""The `finsentry` command: the root and its groups, one module each in this folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from finsentry.cli import (
    backtest,
    base,
    bench,
    entities,
    feed,
    labels,
    models,
    processes,
    registry,
    rules,
    silence,
    users,
)
from foundation import logs
from foundation.settings import get_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")

app = typer.Typer(help="finsentry: real-time monitor of financial news and comments.", no_args_is_help=True)


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


for command in (processes.up, processes.worker, processes.dispatch, processes.api, processes.trainer):
    app.command()(command)
app.command()(feed.produce)
app.command()(feed.demo)
app.command()(models.train)
app.command("eval")(models.evaluate)
app.command()(models.export)
app.command()(models.distill)
app.command()(models.soup)
app.command("simulate-nights")(models.simulate_nights)
app.add_typer(base.app, name="base")
app.add_typer(bench.app, name="bench")
app.add_typer(silence.app, name="silence")
app.add_typer(rules.app, name="rules")
app.add_typer(backtest.app, name="backtest")
app.add_typer(labels.app, name="label")
app.add_typer(registry.app, name="model")
app.add_typer(users.app, name="user")
app.add_typer(entities.app, name="entities")
