"""A seeded, already-scored news history with known incidents, for backtesting the alert rules.

Background news about many companies follows a trading day's rhythm in New York time (quiet nights,
peaks after the open and into the close, weekends at about 15%), mostly neutral or positive. Three
kinds of incident are injected and listed in `incidents.csv`:

- burst: one company, dozens of negative items in 10-30 minutes (what a ratio rule is for);
- selloff: one topic, many companies, negative for 1-2 hours;
- drift: one company's negative share rising over hours at a modest volume, which a z-score against
  its own baseline should catch and a ratio threshold should not.

Texts are real: the shipped samples and, when present, the Twitter financial-news CSVs in shared/data,
drawn by sentiment so a negative event carries a negative text.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

SENTIMENTS = ("negative", "neutral", "positive")
BACKGROUND_SHARE = np.array([0.12, 0.55, 0.33])  # negative, neutral, positive
TOPICS = (
    "Earnings",
    "M&A | Investments",
    "Analyst Update",
    "Stock Movement",
    "Company | Product News",
    "Legal | Regulation",
    "Markets",
    "Macro",
)
# Relative news volume by New York hour: quiet nights, the open (09:30-10:30) and the close (14-16).
# fmt: off
HOURLY = np.array([
    0.08, 0.06, 0.05, 0.05, 0.07, 0.12, 0.25, 0.45, 0.7, 1.3, 1.6, 1.1,  # 00-11
    0.85, 0.8, 1.25, 1.35, 1.2, 0.6, 0.4, 0.3, 0.22, 0.17, 0.13, 0.1,  # 12-23
])
# fmt: on
WEEKEND = 0.15
NEW_YORK = ZoneInfo("America/New_York")
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TWITTER_LABELS = {"0": "negative", "1": "positive", "2": "neutral"}
MODEL_VERSION = "synthetic-history"


@dataclass(frozen=True)
class Incident:
    scope_key: str
    start: float
    end: float
    kind: str  # burst | selloff | drift


@dataclass(frozen=True)
class Texts:
    """Real texts by sentiment, each with the source it came from."""

    text: dict[str, list[str]]
    source: dict[str, list[str]]

    def sources(self) -> set[str]:
        return {s for sources in self.source.values() for s in sources}


@dataclass
class Events:
    """Columns of a history, one row per event."""

    time: np.ndarray  # epoch seconds
    company: np.ndarray  # index into the companies
    topic: np.ndarray  # index into TOPICS
    sentiment: np.ndarray  # index into SENTIMENTS

    def __len__(self) -> int:
        return len(self.time)

    @staticmethod
    def concat(parts: list[Events]) -> Events:
        return Events(*(np.concatenate([getattr(p, f) for p in parts]) for f in Events.__annotations__))

    def take(self, order: np.ndarray) -> Events:
        return Events(self.time[order], self.company[order], self.topic[order], self.sentiment[order])


def load_texts(shared: Path = SHARED_DATA) -> Texts:
    texts: dict[str, list[str]] = {s: [] for s in SENTIMENTS}
    sources: dict[str, list[str]] = {s: [] for s in SENTIMENTS}

    def add(sentiment: str, text: str, source: str) -> None:
        if text.strip() and sentiment in texts:
            texts[sentiment].append(text.strip())
            sources[sentiment].append(source)

    sample = resources.files("finsentry.sample")
    for name, source in (("headlines.jsonl", "wire"), ("forum_zh.jsonl", "wire-zh")):
        for line in sample.joinpath(name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                add(row["sentiment"], row["text"], source)
    for name, source in (("burst.txt", "wire"), ("burst_zh.txt", "wire-zh")):
        for line in sample.joinpath(name).read_text(encoding="utf-8").splitlines():
            add("negative", line, source)
    twitter = shared / "twitter_financial_news_sentiment" / "sent_train.csv"
    if twitter.is_file():
        with twitter.open(encoding="utf-8", newline="") as handle:
            for row in csv.DictReader(handle):
                add(TWITTER_LABELS.get(row["label"], ""), row["text"], "twitter")
    return Texts(texts, sources)


def company_names(count: int, rng: np.random.Generator) -> list[str]:
    first = ["North", "Helio", "Arca", "Blue", "Iron", "Silver", "Crest", "Nova", "Terra", "Summit"]
    second = ["wind", "stone", "dia", "field", "gate", "bridge", "point", "vale", "ridge", "line"]
    kinds = ["Bank", "Energy", "Retail", "Pharma", "Motors", "Systems", "Foods", "Mining", "Holdings"]
    picks = rng.integers(0, [len(first), len(second), len(kinds)], size=(count, 3))
    return [f"{first[a]}{second[b]} {kinds[c]}" for a, b, c in picks]


def minute_weights(days: int) -> np.ndarray:
    """News intensity per UTC minute of the span, from the New York hour and the weekday."""
    minutes = np.arange(days * 1440)
    weights = np.empty(len(minutes))
    for day in range(days):
        moment = START + timedelta(days=day, hours=12)
        offset_min = int(moment.astimezone(NEW_YORK).utcoffset().total_seconds() // 60)  # DST-aware
        local = (minutes[day * 1440 : (day + 1) * 1440] + offset_min) % 1440
        weekend = (moment.astimezone(NEW_YORK).weekday() >= 5) * (1 - WEEKEND)
        weights[day * 1440 : (day + 1) * 1440] = HOURLY[local // 60] * (1 - weekend)
    return weights


def background(count: int, days: int, companies: int, rng: np.random.Generator) -> Events:
    weights = minute_weights(days)
    minute = rng.choice(len(weights), size=count, p=weights / weights.sum())
    time = START.timestamp() + minute * 60 + rng.uniform(0, 60, count)
    popularity = 1 / np.arange(1, companies + 1) ** 0.8  # a few companies are in the news a lot
    company = rng.choice(companies, size=count, p=popularity / popularity.sum())
    topic = rng.integers(0, len(TOPICS), count)
    sentiment = rng.choice(3, size=count, p=BACKGROUND_SHARE)
    return Events(time, company, topic, sentiment)


def _window(rng: np.random.Generator, days: int, length_s: float) -> float:
    """A start after the first day (the baselines need a day) that ends inside the span."""
    first, last = START.timestamp() + 86_400, START.timestamp() + days * 86_400 - length_s
    return float(rng.uniform(first, max(first, last)))


def burst(rng: np.random.Generator, days: int, companies: int) -> tuple[Events, Incident]:
    length = float(rng.uniform(600, 1800))
    start, company = _window(rng, days, length), int(rng.integers(companies))
    count = int(length / 60 * rng.uniform(3, 5))  # 3-5 a minute: dozens, whatever the length
    time = start + np.sort(rng.uniform(0, length, count))
    topic = np.full(count, rng.integers(len(TOPICS)))
    events = Events(time, np.full(count, company), topic, np.zeros(count, dtype=int))
    return events, Incident(f"entity:{company_id(company)}", start, start + length, "burst")


def selloff(rng: np.random.Generator, days: int, companies: int) -> tuple[Events, Incident]:
    length = float(rng.uniform(3600, 7200))
    start, topic, count = (
        _window(rng, days, length),
        int(rng.integers(len(TOPICS))),
        int(rng.integers(300, 600)),
    )
    victims = rng.choice(companies, size=min(companies, 40), replace=False)
    time = start + rng.uniform(0, length, count)
    sentiment = (rng.random(count) > 0.9).astype(int)  # nine in ten negative, the rest neutral
    events = Events(time, rng.choice(victims, count), np.full(count, topic), sentiment)
    return events, Incident(f"topic:{TOPICS[topic]}", start, start + length, "selloff")


def drift(rng: np.random.Generator, days: int, companies: int) -> tuple[Events, Incident]:
    """About 12 items per 15 minutes, negative share rising to about half: under the ratio rule's 0.6."""
    length = float(rng.uniform(4, 8) * 3600)
    start, company = _window(rng, days, length), int(rng.integers(companies // 2, companies))
    count = int(length / 75)
    time = start + np.sort(rng.uniform(0, length, count))
    negative_share = 0.1 + 0.4 * (time - start) / length
    sentiment = np.where(rng.random(count) < negative_share, 0, rng.choice([1, 2], count))
    events = Events(time, np.full(count, company), rng.integers(0, len(TOPICS), count), sentiment)
    return events, Incident(f"entity:{company_id(company)}", start, start + length, "drift")


def company_id(index: int) -> str:
    return f"co-{index + 1:03d}"


def generate(
    days: int, companies: int, seed: int, events_per_day: int = 22_000
) -> tuple[Events, list[Incident], list[str]]:
    """The history's columns sorted by time, its incidents, the company names."""
    rng = np.random.default_rng(seed)
    names = company_names(companies, rng)
    weights = minute_weights(days)
    # events_per_day is a weekday's volume; weekends get their share through the weights.
    total = int(events_per_day * weights.sum() / (HOURLY.sum() * 60))
    parts, incidents = [background(total, days, companies, rng)], []
    kinds: list[Callable[..., tuple[Events, Incident]]] = [burst] * max(1, days // 3)
    kinds += [selloff] * max(1, days // 10) + [drift] * max(1, days // 10)
    for kind in kinds:
        events, incident = kind(rng, days, companies)
        parts.append(events)
        incidents.append(incident)
    events = Events.concat(parts)
    return events.take(np.argsort(events.time, kind="stable")), incidents, names


def rows(events: Events, names: list[str], texts: Texts, seed: int) -> list[dict[str, Any]]:
    """Scored events (the `scored` contract), each with a real text of its sentiment."""
    rng = np.random.default_rng(seed + 1)
    picks = {s: rng.integers(0, len(texts.text[s]), len(events)) for s in SENTIMENTS}
    confidence = rng.uniform(0.55, 0.98, len(events))
    stamps = np.datetime_as_string((events.time * 1000).astype("int64").astype("datetime64[ms]"), unit="ms")
    out = []
    for i, (stamp, company, topic, sentiment) in enumerate(
        zip(stamps, events.company.tolist(), events.topic.tolist(), events.sentiment.tolist(), strict=True)
    ):
        label, pick = SENTIMENTS[sentiment], int(picks[SENTIMENTS[sentiment]][i])
        top = round(float(confidence[i]), 4)
        rest = round((1 - top) / 2, 4)
        published = f"{stamp}Z"
        out.append(
            {
                "schema_version": 1,
                "id": f"hist-{i:07d}",
                "kind": "news",
                "source": texts.source[label][pick],
                "published_at": published,
                "text": texts.text[label][pick],
                "topic": {"label": TOPICS[topic], "probabilities": {TOPICS[topic]: 1.0}},
                "topics": [TOPICS[topic]],
                "sentiment": {
                    "label": label,
                    "probabilities": {s: top if s == label else rest for s in SENTIMENTS},
                },
                "entities": [{"id": company_id(company), "name": names[company]}],
                "model_version": MODEL_VERSION,
                "processed_at": published,
            }
        )
    return out


def write_history(out: Path, rows: list[dict[str, Any]], chunk: int = 50_000) -> Callable[[], int]:
    """Writes history.jsonl in chunks; returns a step function for a progress bar (rows written)."""
    dumps = _dumps()
    handle = (out / "history.jsonl").open("wb")
    position = 0

    def step() -> int:
        nonlocal position
        handle.write(b"".join(dumps(row) + b"\n" for row in rows[position : position + chunk]))
        position = min(len(rows), position + chunk)
        if position == len(rows):
            handle.close()
        return position

    return step


def write_incidents(out: Path, incidents: list[Incident]) -> None:
    with (out / "incidents.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["scope_key", "start", "end", "kind"])
        for incident in sorted(incidents, key=lambda i: i.start):
            writer.writerow([incident.scope_key, iso(incident.start), iso(incident.end), incident.kind])


def read_incidents(path: Path) -> list[Incident]:
    with path.open(encoding="utf-8", newline="") as handle:
        return [
            Incident(row["scope_key"], from_iso(row["start"]), from_iso(row["end"]), row["kind"])
            for row in csv.DictReader(handle)
        ]


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def from_iso(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _dumps() -> Callable[[Any], bytes]:
    try:
        import orjson
    except ImportError:  # orjson is optional; the standard library is slower but writes the same lines
        return lambda row: json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()
    return orjson.dumps
