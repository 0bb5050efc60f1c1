"""The trainer process: two started together (one trains, one skips and says why), a killed one's lease
lapsing within its expiry, and the schedule."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, MetaData
from sqlalchemy.orm import Session

from foundation.clock import utcnow
from foundation.db import make_engine, migrate
from foundation.settings import Settings
from labels.store import LabelStore
from tests.streams.harness import wait_until
from tests.tiny_model import build_tiny_base
from tests.training.test_nightly import labels
from training.lock import LockRow
from training.nightly import LOCK
from training.scheduler import JOB_ID, schedule


def trainer_env(database_url: str, kafka_bootstrap: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FINSENTRY_HOME": str(tmp_path / "home"),
        "FINSENTRY_DATABASE_URL": database_url,
        "FINSENTRY_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "FINSENTRY_TOPIC_MODELS": f"models.updated.{tmp_path.name}",
        "FINSENTRY_BASE_MODEL": str(build_tiny_base(tmp_path / "tiny-base")),
        "FINSENTRY_MIN_NEW_LABELS": "50",
        "FINSENTRY_NIGHT_LR": "0.001",
        "FINSENTRY_LOG_LEVEL": "WARNING",
    }


TRAINER = [sys.executable, "-m", "finsentry", "trainer", "--now", "--json"]


def test_two_trainers_started_together_one_trains_one_skips(
    sql_engine: Engine, database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    LabelStore(sql_engine).add(labels(0, 240))
    env = trainer_env(database_url, kafka_bootstrap, tmp_path)
    command = TRAINER
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    trainers = [subprocess.Popen(command, env=env, **pipes) for _ in "ab"]  # type: ignore[call-overload]
    outputs = [trainer.communicate(timeout=600) for trainer in trainers]
    results = [json.loads(out)["en"] for out, _ in outputs]

    statuses = sorted(result["status"] for result in results)
    assert statuses == ["promoted", "skipped"], [err.decode()[-2000:] for _, err in outputs]
    skipped = next(result for result in results if result["status"] == "skipped")
    assert "another trainer holds the lock" in skipped["detail"]
    skipped_err = next(err for (out, err), r in zip(outputs, results, strict=True) if r is skipped)
    assert b"trainer skipped" in skipped_err, "the one that skips says so in its log"


def test_the_nightly_job_is_kept_in_sql_on_its_cron(
    database_url: str, sql_engine: Engine, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path, database_url=database_url, train_cron="30 3 * * *")
    scheduler = schedule(settings, BackgroundScheduler)
    scheduler.start(paused=True)
    try:
        job = scheduler.get_job(JOB_ID)
        assert job is not None and (job.next_run_time.hour, job.next_run_time.minute) == (3, 30)
        assert job.func_ref == "training.scheduler:nightly_job"
    finally:
        scheduler.shutdown(wait=False)
    again = schedule(settings.model_copy(update={"train_cron": "0 1 * * *"}), BackgroundScheduler)
    again.start(paused=True)
    try:
        jobs = again.get_jobs()
        assert [(j.id, j.next_run_time.hour) for j in jobs] == [(JOB_ID, 1)], "one job, the new schedule"
    finally:
        again.shutdown(wait=False)


def test_a_killed_trainers_lease_lapses_within_its_expiry(
    postgres_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    engine = make_engine(postgres_url)
    existing = MetaData()
    existing.reflect(engine)
    existing.drop_all(engine)
    migrate(engine)
    LabelStore(engine).add(labels(0, 2_400))  # a night of several seconds on the tiny model
    lease_s = 6
    env = trainer_env(postgres_url, kafka_bootstrap, tmp_path) | {
        "FINSENTRY_TRAINER_LEASE_S": str(lease_s),
        "FINSENTRY_LOG_LEVEL": "INFO",
        "FINSENTRY_LOG_JSON": "true",
    }

    def lock() -> LockRow:
        with Session(engine) as session:
            row = session.get(LockRow, LOCK)
            assert row is not None
            return row

    log_path = tmp_path / "first.log"
    with log_path.open("wb") as log_file:
        first = subprocess.Popen(TRAINER, env=env | {"FINSENTRY_NIGHT_EPOCHS": "50"}, stderr=log_file)
    try:
        wait_until(lambda: b"trainer started" in log_path.read_bytes(), 300, "the first trainer to train")
        expiries = set()
        for _ in range(9):  # 4.5 s: the heartbeat renews every lease_s / 3 = 2 s
            expiries.add(lock().expires_at)
            time.sleep(0.5)
        assert first.poll() is None, "killed mid-run, not after it"
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = utcnow()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert len(expiries) >= 2, "the heartbeat pushed the expiry on while the trainer ran"

    held = lock()
    assert held.holder is not None and held.holder.endswith(f":{first.pid}"), "nobody released it"
    assert killed_at < held.expires_at <= killed_at + timedelta(seconds=lease_s)
    time.sleep(max(0.0, (held.expires_at - utcnow()).total_seconds()))
    second = subprocess.run(TRAINER, env=env, capture_output=True, timeout=600)
    assert json.loads(second.stdout)["en"]["status"] == "promoted", second.stderr.decode()[-2000:]
    started = next(json.loads(line) for line in second.stderr.splitlines() if b"trainer started" in line)
    took = datetime.fromisoformat(started["ts"]).replace(tzinfo=None) - killed_at
    lapsed = (held.expires_at - killed_at).total_seconds()
    print(f"lease {lease_s}s: lapsed {lapsed:.1f}s after the kill; a second trainer trained", end=" ")
    print(f"{took.total_seconds():.1f}s after it")
