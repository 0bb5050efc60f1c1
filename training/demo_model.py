"""The model `finsentry demo` serves: fine-tuned on first run, from the shared data when it is there."""

from __future__ import annotations

import random
from importlib import resources
from pathlib import Path

from rich.console import Console

from labels.examples import Example
from training.base import packaged_base_model
from training.data import load_examples, parse_label_map
from training.train import TrainConfig, train

# A short run: enough for a model that reads finance headlines sensibly, in a few minutes on 2 cores.
DEMO_TRAIN_ROWS = 6_000
DEMO_VALID_ROWS = 800
DEMO_STEPS = 300


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


def sample_set() -> list[Example]:
    path = resources.files("finsentry.sample").joinpath("headlines.jsonl")
    with resources.as_file(path) as file:
        return load_examples(Path(file), "text", topic_col="topic", sentiment_col="sentiment")


def train_demo_model(shared: Path, out: Path, console: Console) -> str:
    rng = random.Random(7)
    sets = twitter_sets(shared)
    if sets is not None:
        train_set, valid_set = sets
        rng.shuffle(train_set)
        rng.shuffle(valid_set)
        train_set, valid_set = train_set[:DEMO_TRAIN_ROWS], valid_set[:DEMO_VALID_ROWS]
        source = f"{shared} (Twitter Financial News, {len(train_set)} rows, {DEMO_STEPS} steps)"
        config = TrainConfig(base_model=packaged_base_model(), out=out, epochs=2, max_steps=DEMO_STEPS)
    else:
        # The shipped sample is small: it is learned whole and checked on itself; a toy, and it says so.
        train_set = valid_set = sample_set()
        source = "the small sample shipped with finsentry (no shared data found): expect a weak model"
        config = TrainConfig(
            base_model=packaged_base_model(), out=out, epochs=12, batch_size=8, lr=1e-4, patience=12
        )
    console.print(f"[bold]first run: fine-tuning the demo model[/] from {source}")
    train(train_set, valid_set, [], config)
    return source
