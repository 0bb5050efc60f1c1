"""Prometheus metrics that a worker counts as it runs, served on FINSENTRY_METRICS_PORT.

The totals that live in SQL (alerts, deliveries, training runs, labels) are the API's (`api/metrics.py`).
"""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app

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
DEPENDENCY_UP = Gauge(
    "finsentry_dependency_up", "1 while the dependency answers, 0 during an outage", ["dependency"]
)
OUTAGES = Counter(
    "finsentry_dependency_outages_total", "Outages of a dependency seen by this process", ["dependency"]
)
GC_PAUSE_SECONDS = Histogram(
    "finsentry_gc_pause_seconds",
    "Pauses of Python's cycle collector, by generation",
    ["generation"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
)


def time_gc_pauses() -> Callable[[str, dict[str, int]], None]:
    """Observes every collection's pause in GC_PAUSE_SECONDS (a full one stops every thread of the
    process); returns the hook, which gc.callbacks.remove takes off again."""
    started: list[float] = []

    def on_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            GC_PAUSE_SECONDS.labels(str(info["generation"])).observe(time.perf_counter() - started[0])

    gc.callbacks.append(on_collection)
    return on_collection


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *_: Any) -> None:  # a scrape every few seconds is not worth a log line
        return


def serve(host: str, port: int, readiness: Callable[[], dict[str, bool]]) -> WSGIServer:
    """/metrics for Prometheus and /readyz (503 while a dependency is down), on a daemon thread."""
    metrics_app = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/readyz":
            return metrics_app(environ, start_response)
        dependencies = readiness()
        ready = all(dependencies.values())
        body = {"status": "ready" if ready else "unavailable", "dependencies": dependencies}
        status = "200 OK" if ready else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    server = make_server(host, port, app, _Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
