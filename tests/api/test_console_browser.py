"""The console in real headless Chromium (Debian's package, driven by Playwright) on the real stack:
Kafka, Redis, SQL, a worker, a dispatcher-free alert pipeline and `finsentry api`.

An analyst watches a burst about one company reach the overview without reloading, opens its alert,
acknowledges it, labels five review items with the keyboard; a viewer is refused the same actions.
With FINSENTRY_SCREENSHOTS=DIR the pages are saved there as PNG (the README's pictures), and with
FINSENTRY_SCREENSHOT_MODEL=BUNDLE the worker serves that bundle (the demo's trained model) instead of
the tiny random one, so that the pictures show real sentiment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from accounts import Accounts
from accounts.tables import AuditRow
from finsentry.services.process import free_port, port_open
from foundation.db import open_database
from labels.store import LabelStore
from labels.tables import ReviewItemRow, SampleRow
from tests.streams.harness import StreamEnv, WorkerProcess, producer, wait_until
from tests.tiny_model import build_tiny_base
from tests.training.test_nightly import labels
from training.nightly import NightlyConfig, NightlyTrainer
from training.registry import Registry

pytestmark = pytest.mark.stack
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "a long password for the console"
RULES = """\
rules:
  - name: burst
    scope: entity
    window: 10m
    condition: count >= 20
    severity: critical
    repeat_interval: 1h
    receivers: [slack]  # no dispatcher runs: its notifications wait in the outbox
"""


def send(env: StreamEnv, entity: str, count: int, start: int, text: str) -> None:
    out = producer(env.bootstrap)
    for i in range(start, start + count):
        event = {
            "id": f"{entity}-{i}",
            "source": "wire",
            "text": f"{text} #{i}",
            "published_at": datetime.now(UTC).isoformat(),
            "entities": [{"id": entity}],
        }
        out.send(env.topic("news.raw"), json.dumps(event).encode())
    out.flush()
    out.close()


@pytest.fixture()
def stack(kafka_bootstrap: str, redis_url: str, tiny_bundle: Path, tmp_path: Path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (./dev installs it)")
    model = Path(os.environ.get("FINSENTRY_SCREENSHOT_MODEL", tiny_bundle))
    env = StreamEnv(kafka_bootstrap, redis_url, model, tmp_path)
    env.create_topics()
    (tmp_path / "rules.yaml").write_text(RULES)
    database = f"sqlite:///{tmp_path / 'finsentry.db'}"
    engine = open_database(database)
    # Two nights of the real nightly trainer, for the models page (runs, gate, training curves); their
    # serving link is the test's own, not the worker's.
    registry = Registry(engine, tmp_path / "models", tmp_path / "serving")
    store = LabelStore(engine)
    config = NightlyConfig(
        base_model=build_tiny_base(tmp_path / "base"), min_new_labels=50, epochs=3, lr=1e-3
    )
    for night in range(2):
        store.add(labels(night * 240, 240, by="importer"))
        NightlyTrainer(engine, registry, store, config).run()
    accounts = Accounts(engine)
    accounts.add("ana", "analyst", PASSWORD)
    accounts.add("vic", "viewer", PASSWORD)
    port = free_port()
    settings = {
        "database_url": database,
        "rules": str(tmp_path / "rules.yaml"),
        "alert_tick_s": "0.5",
        "review_margin": "1",
        "review_rate": "1",
        "api_port": str(port),
        "log_level": "INFO",
    }
    worker = WorkerProcess(env, "worker", **settings)
    api = WorkerProcess(env, "api", command="api", **settings)
    try:
        wait_until(lambda: port_open(port), 60, "the API to listen")
        send(env, "warmup", 10, 0, "Quiet trading in utilities")  # below the rule's 20
        wait_until(lambda: _review_items(database) >= 10, 180, "the worker to score the warm-up")
        yield env, f"http://127.0.0.1:{port}", database
    finally:
        api.stop()
        worker.stop()


def _review_items(database: str) -> int:
    with Session(open_database(database)) as session:
        return len(session.scalars(select(ReviewItemRow.id)).all())


def test_analyst_and_viewer_in_the_console(stack: tuple[StreamEnv, str, str], tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    env, base, database = stack
    shots = Path(os.environ.get("FINSENTRY_SCREENSHOTS", tmp_path / "shots"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
        )
        analyst = browser.new_page(viewport={"width": 1360, "height": 900})
        analyst.goto(f"{base}/console")
        expect(analyst).to_have_url(f"{base}/login?next=/console")
        analyst.screenshot(path=shots / "login.png")
        analyst.fill("input[name=name]", "ana")
        analyst.fill("input[name=password]", PASSWORD)
        analyst.click("button[type=submit]")
        expect(analyst).to_have_url(f"{base}/console")
        expect(analyst.locator("[data-figure=events]")).not_to_have_text("0")
        before = int(analyst.locator("[data-figure=events]").inner_text().replace(",", ""))

        # A burst of negative news about Northwind Bank: on the overview within 5 s, without a reload.
        send(env, "northwind-bank", 30, 0, "Northwind Bank shares plunge after fraud probe")
        sent_at = time.monotonic()
        firing = analyst.locator("#firing tbody", has_text="entity:northwind-bank")
        expect(firing).to_be_visible(timeout=5_000)
        expect(analyst.locator("[data-figure=events]")).to_have_text(f"{before + 30:,}", timeout=5_000)
        seen_after = time.monotonic() - sent_at
        print(f"the burst showed on the overview {seen_after:.1f}s after it was sent")
        assert seen_after <= 5.0
        analyst.screenshot(path=shots / "overview.png", full_page=True)

        analyst.click("#firing a", timeout=5_000)
        expect(analyst).to_have_url(re.compile(r"/console/scope/entity(:|%3A)northwind-bank$"))
        expect(analyst.locator("#firing tbody")).to_contain_text("burst")
        expect(analyst.locator("#items tbody")).to_contain_text(
            "Northwind Bank shares plunge after fraud probe"
        )
        analyst.screenshot(path=shots / "scope.png", full_page=True)

        # Its alert: evidence and notification history, then acknowledged.
        analyst.click("nav >> text=Alerts")
        analyst.click("#alerts tr[data-id]:has-text('northwind-bank')", timeout=5_000)
        expect(analyst.locator("#detail h2").first).to_contain_text("entity:northwind-bank")
        analyst.click("#ack")
        expect(analyst.locator("#ack")).to_contain_text("acknowledged by ana")
        analyst.screenshot(path=shots / "alerts.png", full_page=True)

        # Five review items labelled with the keyboard.
        analyst.click("nav >> text=Review")
        labelled = []
        for key in "12312":
            item = analyst.locator("[data-item]")
            expect(item).to_be_visible()
            labelled.append(int(item.get_attribute("data-item")))
            analyst.keyboard.press(key)
            expect(analyst.locator("#status")).to_contain_text("labelled")
            expect(analyst.locator("[data-item]")).not_to_have_attribute("data-item", str(labelled[-1]))
        analyst.screenshot(path=shots / "review.png", full_page=True)
        analyst.click("nav >> text=Models")
        expect(analyst.locator("#runs tbody")).to_contain_text("promoted")
        expect(analyst.locator("#curve canvas")).to_be_visible()
        analyst.screenshot(path=shots / "models.png", full_page=True)

        # A viewer sees the same pages and is refused the same actions.
        viewer = browser.new_page(viewport={"width": 1360, "height": 900})
        viewer.goto(f"{base}/login")
        viewer.fill("input[name=name]", "vic")
        viewer.fill("input[name=password]", PASSWORD)
        viewer.click("button[type=submit]")
        viewer.goto(f"{base}/console/alerts")
        viewer.click("#alerts tr[data-id]", timeout=5_000)
        expect(viewer.locator("#detail h2").first).to_be_visible()
        assert viewer.locator("#ack").count() == 0, "no acknowledge button for a viewer"
        refused = viewer.evaluate(
            """async () => {
                const csrf = document.querySelector('meta[name="csrf-token"]').content;
                const id = document.querySelector('#alerts tr[data-id]').dataset.id;
                const ack = await fetch(`/alerts/${id}/ack`,
                    {method: 'POST', headers: {'X-CSRF-Token': csrf}});
                const label = await fetch('/review/1/label', {method: 'POST',
                    headers: {'X-CSRF-Token': csrf, 'Content-Type': 'application/json'},
                    body: JSON.stringify({sentiment: 'negative'})});
                return [ack.status, label.status];
            }"""
        )
        assert refused == [403, 403]
        viewer.goto(f"{base}/console/review")
        expect(viewer.locator("[data-item]")).to_be_visible()
        viewer.keyboard.press("1")
        expect(viewer.locator("#status")).to_contain_text("viewers cannot label")
        browser.close()

    engine = open_database(database)
    with Session(engine) as session:
        samples = list(session.scalars(select(SampleRow).where(SampleRow.origin == "review")))
        answered = list(session.scalars(select(ReviewItemRow).where(ReviewItemRow.status == "answered")))
        denied = list(session.scalars(select(AuditRow).where(AuditRow.outcome == "denied")))
    assert len(samples) == 5 and {s.labelled_by for s in samples} == {"ana"}
    assert sorted(item.id for item in answered) == sorted(labelled), "exactly the five items answered"
    assert {item.sample_id for item in answered} == {s.id for s in samples}
    assert sorted(s.sentiment for s in samples) == sorted(
        ["negative", "neutral", "positive", "negative", "neutral"]
    )
    assert {(d.actor, d.action) for d in denied} == {("vic", "acknowledge"), ("vic", "label")}
