"""The trainer process: APScheduler runs the nightly job on a cron, its schedule kept in SQL."""

from __future__ import annotations

import logging

from finsentry.settings import Settings, get_settings
from finsentry.wiring import learning, nightly_config
from training.nightly import NightlyTrainer, NightResult

log = logging.getLogger(__name__)
JOB_ID = "nightly-fine-tune"


def run_night(settings: Settings, force: bool = False, **overrides: object) -> NightResult:
    parts = learning(settings)
    config = nightly_config(settings, **overrides)
    result = NightlyTrainer(parts.engine, parts.registry, parts.labels, config).run(force=force)
    log.info("night done", extra={"status": result.status, "version": result.version})
    return result


def nightly_job() -> None:
    """The scheduled job; module-level so the SQL job store can name it."""
    run_night(get_settings())


def run_scheduler(settings: Settings) -> None:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger

    learning(settings, announce=False)  # the schema is in place before the job store uses the database
    scheduler = BlockingScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=settings.effective_database_url)}, timezone="UTC"
    )
    scheduler.add_job(
        nightly_job,
        CronTrigger.from_crontab(settings.train_cron, timezone="UTC"),
        id=JOB_ID,
        replace_existing=True,
        coalesce=True,  # nights missed while down run once, not once each
        max_instances=1,
        misfire_grace_time=6 * 3600,
    )
    job = scheduler.get_job(JOB_ID)
    next_run = str(job.next_run_time) if job else None
    log.info("trainer scheduled", extra={"cron": settings.train_cron, "next_run": next_run})
    scheduler.start()
