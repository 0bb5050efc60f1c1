"""The trainer process: APScheduler runs the nightly job on a cron, its schedule kept in SQL.

While the database is down APScheduler keeps trying its job store; a night starting then waits for it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from foundation.outage import Outages, sql_dependency
from foundation.settings import Settings, get_settings
from training.learning import Learning, learning, nightly_config
from training.nightly import NightlyTrainer, NightResult

if TYPE_CHECKING:
    from apscheduler.schedulers.base import BaseScheduler

log = logging.getLogger(__name__)
JOB_ID = "nightly-fine-tune"


def open_learning(settings: Settings, announce: bool = True) -> Learning:
    """The learning parts once the database answers: an outage at start is waited out, within bounds."""
    guard = Outages([sql_dependency()], settings.max_outage_s).guard()
    return guard.call(learning, settings, announce)


def run_night(settings: Settings, force: bool = False, **overrides: object) -> dict[str, NightResult]:
    """One night for every served language in turn: each trains, is judged and promoted on its own."""
    parts = open_learning(settings)
    results = {}
    for language, registry in parts.registries.items():
        config = nightly_config(settings, language, **overrides)
        result = NightlyTrainer(parts.engine, registry, parts.labels, config).run(force=force)
        log.info(
            "night done", extra={"language": language, "status": result.status, "version": result.version}
        )
        results[language] = result
    return results


def nightly_job() -> None:
    """The scheduled job; module-level so the SQL job store can name it."""
    run_night(get_settings())


def run_scheduler(settings: Settings) -> None:
    from apscheduler.schedulers.blocking import BlockingScheduler

    schedule(settings, BlockingScheduler).start()


def schedule(settings: Settings, scheduler_class: type[BaseScheduler]) -> BaseScheduler:
    """A scheduler with the nightly job in the SQL job store (replacing an older schedule)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.triggers.cron import CronTrigger

    open_learning(settings, announce=False)  # the schema is in place before the job store uses it
    scheduler = scheduler_class(
        jobstores={"default": SQLAlchemyJobStore(url=settings.effective_database_url)}, timezone="UTC"
    )
    trigger = CronTrigger.from_crontab(settings.train_cron, timezone="UTC")
    scheduler.add_job(
        nightly_job,
        trigger,
        id=JOB_ID,
        replace_existing=True,
        coalesce=True,  # nights missed while down run once, not once each
        max_instances=1,
        misfire_grace_time=6 * 3600,
    )
    next_run = trigger.get_next_fire_time(None, datetime.now(UTC))
    log.info("trainer scheduled", extra={"cron": settings.train_cron, "next_run": str(next_run)})
    return scheduler
