"""The labelled sets beside the project load with the documented flags (skipped when they are absent)."""

from __future__ import annotations

from pathlib import Path

from training.data import deduplicate, load_examples, parse_label_map


def test_twitter_sets_load_with_their_label_maps(shared_data: Path) -> None:
    topic_dir = shared_data / "twitter_financial_news_topic"
    topic_map = parse_label_map(str(topic_dir / "label_map.tsv"))
    assert len(topic_map) == 20 and topic_map["0"] == "Analyst Update"
    for split, rows in (("train", 16_990), ("valid", 4_117)):
        examples = load_examples(
            topic_dir / f"topic_{split}.csv", "text", topic_col="label", topic_map=topic_map
        )
        assert len(examples) == rows and all(e.topic in topic_map.values() for e in examples)
    sentiment_map = parse_label_map("0=negative,1=positive,2=neutral")
    sent_dir = shared_data / "twitter_financial_news_sentiment"
    for split, rows in (("train", 9_543), ("valid", 2_388)):
        examples = load_examples(
            sent_dir / f"sent_{split}.csv", "text", sentiment_col="label", sentiment_map=sentiment_map
        )
        assert len(examples) == rows and {e.sentiment for e in examples} == {
            "negative",
            "neutral",
            "positive",
        }


def test_finfe_duplicates_and_conflicts(shared_data: Path) -> None:
    rows = load_examples(
        shared_data / "zh_fincuge" / "finfe_train.json",
        "0",
        sentiment_col="1",
        sentiment_map=parse_label_map("0=negative,1=neutral,2=positive"),
    )
    assert len(rows) == 16_157
    unique, conflicts = deduplicate(rows)
    assert conflicts == 773, "the data README counts 773 texts with conflicting labels"
    assert len(unique) == 11_646 - 773
