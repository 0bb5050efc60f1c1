"""`finsentry demo` end to end on its own embedded stack (served by a tiny model to keep it quick)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from accounts import Accounts
from finsentry.cli import app
from finsentry.demo import sample_rows
from finsentry.services.process import free_port
from foundation.db import open_database
from tests.tiny_model import build_tiny_bundle

pytestmark = pytest.mark.stack


def test_demo_replays_the_sample_and_shows_scores_and_dead_letters(tiny_bundle: Path, tmp_path: Path) -> None:
    # The tiny random model's sentiment is noise, so the alert rule here counts items instead.
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n  - {name: burst, scope: entity, window: 10s, condition: count >= 6, receivers: [slack]}\n"
    )
    chinese = build_tiny_bundle(tmp_path / "zh", seed=5, version="tiny-zh", language="zh")
    env = {
        "FINSENTRY_RULES": str(rules),
        "FINSENTRY_WINDOW_BUCKET_S": "1",
        "FINSENTRY_HOME": str(tmp_path / "home"),
        "FINSENTRY_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "FINSENTRY_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "FINSENTRY_MODELS": f"en={tiny_bundle},zh={chinese}",
        "FINSENTRY_API_PORT": str(free_port()),
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(app, ["demo", "--timeout", "120"], env=env)
    assert result.exit_code == 0, result.output
    rows = sample_rows()
    assert f"events.scored: {len(rows)} events" in result.output
    assert "events.dlq: 2 dead letters" in result.output
    assert "missing_field" in result.output and "invalid_json" in result.output
    assert rows[0]["text"][:40] in result.output
    assert "Slack (local receiver)" in result.output
    assert "burst" in result.output and "northwind-bank" in result.output
    # The Chinese burst is found through the watchlist's Chinese alias 青岚科技 and scored by the zh bundle.
    assert "qinglan-tech" in result.output
    assert "models en: tiny-1, zh: tiny-zh" in result.output
    chinese_row = next(row for row in rows if row["source"] == "forum-zh")
    assert chinese_row["text"][:10] in result.output
    assert "Resolved: burst" in result.output
    login = re.search(r"console: (http://\S+/console)\s+\(log in as demo with (\S+):", result.output)
    assert login, "the demo prints the console's address and a one-time login"
    accounts = Accounts(open_database(f"sqlite:///{tmp_path / 'home' / 'finsentry.db'}"))
    assert accounts.check_password("demo", login.group(2)) is not None
