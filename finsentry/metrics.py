"""Prometheus metrics: what a worker counts as it runs, and what the database knows for the API.

A worker serves its own counters on FINSENTRY_METRICS_PORT; the API's /metrics adds the totals that
live in SQL (alerts, deliveries, training runs, labels), so they are right whichever process made them.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

EVENTS_IN = Counter("finsentry_events_in_total", "Raw events taken from Kafka", ["topic"])
EVENTS_SCORED = Counter("finsentry_events_scored_total", "Events scored and sent to events.scored")
DEAD_LETTERS = Counter("finsentry_dead_letters_total", "Events sent to the DLQ", ["code"])
BATCH_SIZE = Histogram(
    "finsentry_batch_size", "Events per micro-batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
)
INFERENCE_SECONDS = Histogram(
    "finsentry_inference_seconds",
    "Model time per micro-batch",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMER_LAG = Gauge(
    "finsentry_consumer_lag", "Messages behind the end of the partition", ["topic", "partition"]
)
LABELS_IN = Counter("finsentry_labels_total", "Labels received", ["origin"])
ALERTS_FIRED = Counter("finsentry_alerts_fired_total", "Alerts that started firing in this worker")
MODEL_SWAPS = Counter("finsentry_model_swaps_total", "Hot swaps to a new model")


class DatabaseCollector(Collector):
    """Totals read from SQL at each scrape."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from alerts.store import AlertRow, NotificationRow
        from labels.tables import ReviewItemRow, SampleRow
        from training.registry import TrainingRunRow

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
        with Session(self.engine) as session:
            for name, doc, column in tables:
                family = GaugeMetricFamily(name, doc, labels=["status"])
                for status, count in session.execute(select(column, func.count()).group_by(column)):
                    family.add_metric([status], count)
                yield family
            samples = GaugeMetricFamily("finsentry_labelled_samples", "Labelled samples in the store")
            samples.add_metric([], session.scalar(select(func.count()).select_from(SampleRow)) or 0)
            yield samples
