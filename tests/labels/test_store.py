"""The label store and the review queue on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from labels.review import Candidate, ReviewQueue
from labels.store import LabelError, LabelStore, NewLabel, normalise


def label(text: str, **heads: str) -> NewLabel:
    return NewLabel(text, "ana", "api", **heads)


def test_one_sample_per_normalised_text_and_the_newest_label_wins(sql_engine: Engine) -> None:
    store = LabelStore(sql_engine)
    first = store.add([label("Acme beats  estimates", sentiment="positive")])
    assert (first.inserted, first.updated) == (1, 0)
    assert normalise("ＡＣＭＥ beats\testimates") == normalise("Acme beats  estimates")
    again = store.add([label("ＡＣＭＥ beats\testimates", sentiment="positive")])
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 1)
    topic = store.add([label("acme BEATS estimates", topic="Earnings")])
    assert topic.updated == 1 and topic.ids == first.ids
    relabel = store.add([label("Acme beats estimates", sentiment="neutral")])
    assert relabel.updated == 1
    [example] = store.new_examples(None) + store.frozen_examples()
    assert (example.topic, example.sentiment) == ("Earnings", "neutral"), "a head's label keeps the other's"


def test_frozen_samples_are_stable_and_never_offered_for_training(sql_engine: Engine) -> None:
    store = LabelStore(sql_engine, frozen_percent=20)
    rows = [label(f"headline number {i}", sentiment="neutral") for i in range(300)]
    store.add(rows)
    frozen = {ex.text for ex in store.frozen_examples()}
    trainable = {ex.text for ex in store.new_examples(None)}
    assert 30 < len(frozen) < 90 and frozen.isdisjoint(trainable) and len(frozen | trainable) == 300
    assert frozen == {r.text for r in rows if LabelStore(sql_engine, 20).is_frozen(r.text)}


def test_new_labels_and_a_replay_sample_of_older_ones(sql_engine: Engine) -> None:
    store = LabelStore(sql_engine, frozen_percent=1)
    store.add([label(f"old {i}", sentiment="negative") for i in range(100)])
    cutoff = store.newest_label_time()
    store.add([label(f"new {i}", sentiment="positive") for i in range(20)])
    new = store.new_examples(cutoff)
    assert {ex.text.split()[0] for ex in new} == {"new"} and len(new) == store.counts(cutoff)["new"]
    replay = store.replay_examples(cutoff, 30, seed=1)  # type: ignore[arg-type]
    assert len(replay) == 30 and {ex.text.split()[0] for ex in replay} == {"old"}
    assert replay == store.replay_examples(cutoff, 30, seed=1), "the same seed, the same sample"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"text": " ", "sentiment": "neutral"}, "text"),
        ({"text": "x"}, "topic"),
        ({"text": "x", "sentiment": "bullish"}, "sentiment"),
        ({"text": "x\x00y", "sentiment": "neutral"}, "text"),
    ],
)
def test_a_bad_label_names_its_field(kwargs: dict[str, str], field: str) -> None:
    with pytest.raises(LabelError) as error:
        NewLabel(labelled_by="ana", origin="api", **kwargs)  # type: ignore[arg-type]
    assert error.value.field == field


def test_review_queue_samples_uncertain_predictions_once(sql_engine: Engine) -> None:
    queue = ReviewQueue(sql_engine, LabelStore(sql_engine), max_margin=0.2, rate=1.0)
    candidates = [
        Candidate(f"e{i}", f"text {i}", {}, "sentiment", margin, "m1")
        for i, margin in enumerate((0.05, 0.5, 0.15, 0.9))
    ]
    assert queue.offer(candidates) == 2
    assert queue.offer(candidates) == 0, "an event already queued is not queued again"
    assert [item.event_id for item in queue.open_items()] == ["e0", "e2"]
    sample_id = queue.answer(queue.open_items()[0].id, "ana", sentiment="negative")
    assert sample_id and queue.open_count() == 1
    with pytest.raises(LabelError):
        queue.answer(queue.open_items()[0].id, "ana")  # an answer without a topic or a sentiment


def test_label_import_command(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from finsentry.cli import app

    data = tmp_path / "labels.csv"
    data.write_text("text,label\nAcme beats,1\nAcme misses,0\nACME  beats,1\n")
    monkeypatch.setenv("FINSENTRY_HOME", str(tmp_path / "home"))
    flags = ["--sentiment-col", "label", "--sentiment-map", "0=negative,1=positive"]
    result = CliRunner().invoke(app, ["label", "import", str(data), *flags])
    assert result.exit_code == 0, result.output
    assert "3 rows: 2 new, 0 relabelled, 0 unchanged, 1 repeated" in result.output
    assert "alembic" not in result.output
