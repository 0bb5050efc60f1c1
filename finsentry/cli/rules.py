"""`finsentry rules`: unit tests for the alert rules, on the worker's own windows and alert lifecycle."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from finsentry.cli.options import console, redis_for_tests
from foundation.settings import get_settings

app = typer.Typer(help="Alert rules: test them against synthetic events.", no_args_is_help=True)


@app.command("test")
def rules_test(
    tests: Annotated[Path, typer.Argument(help="Test file (YAML): events, silences, expected alerts")],
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report")] = False,
) -> None:
    """Replay each test's events through the rules; exit 1 if an expectation fails, 2 on a bad file."""
    from finsentry.rule_tests import RuleTestError, json_report, load_suite, run_suite, text_report
    from finsentry.services.process import ServiceError

    settings = get_settings()
    # Every state change is in the report; the lifecycle's log line for each would bury it.
    logging.getLogger("alerts").setLevel(logging.WARNING)
    try:
        suite = load_suite(tests)
        with redis_for_tests(settings) as client, tempfile.TemporaryDirectory() as workdir:
            results = run_suite(
                suite,
                client,
                Path(workdir),
                bucket_s=settings.window_bucket_s,
                retention_s=settings.window_retention_s,
                lateness_s=settings.window_lateness_s,
            )
    except (RuleTestError, ServiceError) as exc:
        console.print(f"[red]{exc}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    print(json.dumps(json_report(suite, results), indent=2) if as_json else text_report(results))
    if not all(r.passed for r in results):
        raise typer.Exit(1)
