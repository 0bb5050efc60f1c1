"""The trainer process: two started together (one trains, one skips and says why), and the schedule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine

from finsentry.settings import Settings
from finsentry.trainer import JOB_ID, schedule
from labels.store import LabelStore
from tests.tiny_model import build_tiny_base
from tests.training.test_nightly import labels


def test_two_trainers_started_together_one_trains_one_skips(
    sql_engine: Engine, database_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    LabelStore(sql_engine).add(labels(0, 240))
    env = {
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
    command = [sys.executable, "-m", "finsentry", "trainer", "--now", "--json"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    trainers = [subprocess.Popen(command, env=env, **pipes) for _ in "ab"]  # type: ignore[call-overload]
    outputs = [trainer.communicate(timeout=600) for trainer in trainers]
    results = [json.loads(out) for out, _ in outputs]

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
        assert job.func_ref == "finsentry.trainer:nightly_job"
    finally:
        scheduler.shutdown(wait=False)
    again = schedule(settings.model_copy(update={"train_cron": "0 1 * * *"}), BackgroundScheduler)
    again.start(paused=True)
    try:
        jobs = again.get_jobs()
        assert [(j.id, j.next_run_time.hour) for j in jobs] == [(JOB_ID, 1)], "one job, the new schedule"
    finally:
        again.shutdown(wait=False)
