"""`finsentry produce` against the real broker: JSONL and CSV, column mapping, a summary of rejects."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer
from typer.testing import CliRunner

from finsentry.cli import app
from finsentry.produce import ColumnMap, produce

pytestmark = pytest.mark.stack


def read_all(bootstrap: str, topic: str, expected: int) -> list[dict]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        consumer_timeout_ms=5_000,
    )
    values = [json.loads(record.value) for record in consumer]
    consumer.close()
    assert len(values) == expected
    return values


def test_jsonl_with_bad_rows_is_summarised(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = f"t-{uuid.uuid4().hex[:8]}.news.raw"
    lines = [
        json.dumps(
            {"id": "a", "source": "wire", "published_at": "2026-11-29T09:00:00Z", "text": "Rates rise"}
        ),
        json.dumps({"id": "b", "source": "wire", "published_at": "2026-11-29T09:00:00Z"}),
        "{not json",
        json.dumps({"id": "c", "source": "wire", "published_at": "2026-11-29T09:00:00Z", "text": 5}),
        json.dumps({"text": "No id, source or time: they are derived"}),
    ]
    path = tmp_path / "news.jsonl"
    path.write_text("\n".join(lines) + "\n")
    summary = produce(path, topic, "news", kafka_bootstrap, ColumnMap(), show_progress=False)
    assert (summary.read, summary.sent) == (5, 2)
    assert summary.rejected == {"missing_field": 1, "invalid_json": 1, "wrong_type": 1}
    assert "line 2" in summary.examples["missing_field"] and "'text'" in summary.examples["missing_field"]
    values = read_all(kafka_bootstrap, topic, 2)
    derived = next(v for v in values if v["id"] != "a")
    assert derived["source"] == "news" and derived["id"].startswith("news:") and derived["published_at"]


def test_csv_column_mapping_and_rate_through_the_cli(kafka_bootstrap: str, tmp_path: Path) -> None:
    topic = f"t-{uuid.uuid4().hex[:8]}.comments.raw"
    path = tmp_path / "posts.csv"
    path.write_text(
        "post_id,body,forum,when\n1,$AAPL to the moon,wsb,2026-11-29T09:00:00Z\n"
        "2,Sell everything,wsb,2026-11-29T09:01:00Z\n3,,wsb,2026-11-29T09:02:00Z\n"
    )
    result = CliRunner().invoke(
        app,
        [
            "produce",
            str(path),
            "--topic",
            topic,
            "--text-col",
            "body",
            "--id-col",
            "post_id",
            "--source-col",
            "forum",
            "--time-col",
            "when",
            "--rate",
            "50",
        ],
        env={"FINSENTRY_KAFKA_BOOTSTRAP": kafka_bootstrap},
    )
    assert result.exit_code == 0, result.output
    values = read_all(kafka_bootstrap, topic, 2)
    assert {v["id"] for v in values} == {"1", "2"}
    assert {v["source"] for v in values} == {"wsb"}
    assert all("body" not in v for v in values), "mapped columns land under the contract's names"
