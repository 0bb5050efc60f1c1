"""The model `finsentry demo` serves: fine-tuned on first run, from the shared data when it is there."""

from __future__ import annotations

import random
from importlib import resources
from pathlib import Path

from rich.console import Console

from labels.examples import Example, split_bucket
from training.bases import describe_base, packaged_base_model, resolve_base_model
from training.data import deduplicate, load_examples, parse_label_map
from training.train import TrainConfig, train

# A short run: enough for a model that reads finance headlines sensibly, in a few minutes on 2 cores.
DEMO_TRAIN_ROWS = 6_000
DEMO_VALID_ROWS = 800
DEMO_STEPS = 300
FINFE_SENTIMENTS = "0=negative,1=neutral,2=positive"


def twitter_sets(shared: Path) -> tuple[list[Example], list[Example]] | None:
    topic_dir = shared / "twitter_financial_news_topic"
    sentiment_dir = shared / "twitter_financial_news_sentiment"
    if not (topic_dir / "topic_train.csv").is_file() or not (sentiment_dir / "sent_train.csv").is_file():
        return None
    topic_map = parse_label_map(str(topic_dir / "label_map.tsv"))
    sentiment_map = parse_label_map("0=negative,1=positive,2=neutral")

    def read(split: str) -> list[Example]:
        return load_examples(
            topic_dir / f"topic_{split}.csv", "text", topic_col="label", topic_map=topic_map
        ) + (
            load_examples(
                sentiment_dir / f"sent_{split}.csv",
                "text",
                sentiment_col="label",
                sentiment_map=sentiment_map,
            )
        )

    return read("train"), read("valid")


def chinese_sets(shared: Path) -> tuple[list[Example], list[Example]] | None:
    """FinNL's multi-label news topics and FinFE's forum sentiment, split 90/10 by text hash."""
    folder = shared / "zh_fincuge"
    if not (folder / "finfe_train.json").is_file() or not (folder / "finnl_train.json").is_file():
        return None
    topics = load_examples(
        folder / "finnl_train.json",
        "0",
        topic_col="1",
        topic_map=parse_label_map(str(sample_path("finnl_topics.tsv"))),
        topic_sep=" ",
        skip_bad_labels=True,
    )
    sentiments = load_examples(
        folder / "finfe_train.json", "0", sentiment_col="1", sentiment_map=parse_label_map(FINFE_SENTIMENTS)
    )
    examples, _ = deduplicate(topics + sentiments)
    train_set = [ex for ex in examples if split_bucket(ex.text, "demo") >= 10]
    return train_set, [ex for ex in examples if split_bucket(ex.text, "demo") < 10]


def sample_path(name: str) -> Path:
    return Path(str(resources.files("finsentry.sample").joinpath(name)))


def sample_set(name: str = "headlines.jsonl", topic_sep: str | None = None) -> list[Example]:
    return load_examples(
        sample_path(name), "text", topic_col="topic", sentiment_col="sentiment", topic_sep=topic_sep
    )


def train_demo_model(shared: Path, out: Path, console: Console, language: str = "en") -> str:
    if language == "zh":
        return _train_chinese(shared, out, console)
    rng = random.Random(7)  # noqa: S311 - sampling and jitter, not secrets
    base = packaged_base_model()
    english = {"language": "en", "base": describe_base(base)}
    sets = twitter_sets(shared)
    if sets is not None:
        train_set, valid_set = sets
        rng.shuffle(train_set)
        rng.shuffle(valid_set)
        train_set, valid_set = train_set[:DEMO_TRAIN_ROWS], valid_set[:DEMO_VALID_ROWS]
        source = f"{shared} (Twitter Financial News, {len(train_set)} rows, {DEMO_STEPS} steps)"
        config = TrainConfig(base_model=base, out=out, epochs=2, max_steps=DEMO_STEPS, **english)
    else:
        # The shipped sample is small: it is learned whole and checked on itself; a toy, and it says so.
        train_set = valid_set = sample_set()
        source = "the small sample shipped with finsentry (no shared data found): expect a weak model"
        config = TrainConfig(
            base_model=base, out=out, epochs=12, batch_size=8, lr=1e-4, patience=12, **english
        )
    console.print(f"[bold]first run: fine-tuning the demo model[/] from {source}")
    train(train_set, valid_set, [], config)
    return source


def _train_chinese(shared: Path, out: Path, console: Console) -> str:
    base = resolve_base_model("bge-small-zh")
    sets = chinese_sets(shared)
    config = TrainConfig(
        base_model=base, out=out, epochs=2, max_steps=DEMO_STEPS, language="zh", base=describe_base(base)
    )
    if sets is not None:
        rng = random.Random(7)  # noqa: S311 - sampling and jitter, not secrets
        train_set, valid_set = sets
        rng.shuffle(train_set)
        train_set, valid_set = train_set[:DEMO_TRAIN_ROWS], valid_set[:DEMO_VALID_ROWS]
        source = (
            f"{shared}/zh_fincuge (FinNL topics + FinFE sentiment, {len(train_set)} rows, {DEMO_STEPS} steps)"
        )
    else:
        train_set = valid_set = sample_set("forum_zh.jsonl")
        source = "the small Chinese sample shipped with finsentry (no shared data found): expect a weak model"
        config.epochs, config.batch_size, config.max_steps, config.patience = 12, 8, None, 12
    console.print(f"[bold]first run: fine-tuning the Chinese demo model[/] from {source}")
    train(train_set, valid_set, [], config)
    return source
