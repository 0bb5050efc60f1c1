"""The API's /metrics: totals read from SQL at each scrape, so they are right whichever process made them."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from alerts.store import AlertRow, NotificationRow
from foundation.db import reader
from labels.tables import ReviewItemRow, SampleRow
from training.registry import TrainingRunRow


class DatabaseCollector(Collector):
    """Totals read from SQL at each scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        tables = (
            ("finsentry_alerts", "Alerts by state", AlertRow.state),
            (
                "finsentry_notifications",
                "Notifications by status (delivered, failed, pending)",
                NotificationRow.status,
            ),
            ("finsentry_training_runs", "Training runs by outcome", TrainingRunRow.status),
            ("finsentry_review_items", "Review queue items by status", ReviewItemRow.status),
        )
        with Session(reader(self.engine)) as session:
            for name, doc, column in tables:
                family = GaugeMetricFamily(name, doc, labels=["status"])
                for status, count in session.execute(select(column, func.count()).group_by(column)):
                    family.add_metric([status], count)
                yield family
            samples = GaugeMetricFamily("finsentry_labelled_samples", "Labelled samples in the store")
            samples.add_metric([], session.scalar(select(func.count()).select_from(SampleRow)) or 0)
            yield samples
