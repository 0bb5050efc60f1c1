"""Reading labelled text: CSV, JSONL or JSON files, column and label mapping, a deterministic split."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from inference.bundle import SENTIMENTS
from labels.examples import Example, split_bucket

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A data file or a column/label flag that cannot be used, with the place and the reason."""


def parse_label_map(spec: str | None) -> dict[str, str]:
    """`0=negative,1=positive` inline, or a path to a TSV/CSV of `id<TAB>name` rows."""
    if not spec:
        return {}
    path = Path(spec)
    if path.is_file():
        mapping: dict[str, str] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = [p.strip() for p in line.replace(",", "\t").split("\t", 1)]
            if len(parts) == 2 and parts[0] and not parts[0].lower().startswith(("id", "label")):
                mapping[parts[0]] = parts[1]
        if not mapping:
            raise DataError(f"{path}: no `id<TAB>name` rows in this label map")
        return mapping
    mapping = {}
    for pair in spec.split(","):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise DataError(f"label map entry {pair!r} is not KEY=LABEL")
        mapping[key.strip()] = value.strip()
    return mapping


def read_rows(path: Path) -> Iterator[dict[str, object]]:
    """Rows as dicts; a JSON list of lists gets columns named "0", "1", ..."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            yield from csv.DictReader(fh)
    elif suffix in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}:{number}: invalid JSON ({exc.msg})") from exc
    elif suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of rows")
        for row in data:
            yield row if isinstance(row, dict) else {str(i): v for i, v in enumerate(row)}
    else:
        raise DataError(f"{path}: unknown format {suffix!r}; use .csv, .jsonl or .json")


def load_examples(
    path: Path,
    text_col: str,
    topic_col: str | None = None,
    sentiment_col: str | None = None,
    topic_map: dict[str, str] | None = None,
    sentiment_map: dict[str, str] | None = None,
    topic_sep: str | None = None,
    skip_bad_labels: bool = False,
) -> list[Example]:
    """Rows with a text and at least one label.

    With `topic_sep` the topic column holds several labels (multi-label), e.g. "公司 外国" with " ".
    A label outside a given map is an error naming the row and the label, or with `skip_bad_labels`
    a logged, counted skip of that row.
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    examples, skipped = [], []
    for number, row in enumerate(read_rows(path), 1):
        if text_col not in row:
            raise DataError(f"{path}: row {number} has no column {text_col!r} (columns: {', '.join(row)})")
        text = str(row[text_col] or "").strip()
        if not text:
            continue
        try:
            topics = _labels(row, topic_col, topic_map, path, number, topic_sep)
            sentiment = _label(row, sentiment_col, sentiment_map, path, number)
        except DataError as exc:
            if not skip_bad_labels:
                raise
            skipped.append(str(exc))
            continue
        if sentiment is not None and sentiment not in SENTIMENTS:
            raise DataError(
                f"{path}: row {number}: sentiment {sentiment!r} is not one of {', '.join(SENTIMENTS)};"
                " map it with --sentiment-map, e.g. 0=negative,1=positive,2=neutral"
            )
        if topics or sentiment is not None:
            multi = topics if topic_sep is not None else ()
            examples.append(Example(text, topics[0] if topics else None, sentiment, multi))
    if skipped:
        log.warning(
            "rows with labels outside the map skipped",
            extra={"file": str(path), "rows": len(skipped), "first": skipped[:3]},
        )
    return examples


def _labels(
    row: dict[str, object],
    column: str | None,
    mapping: dict[str, str] | None,
    path: Path,
    number: int,
    sep: str | None,
) -> tuple[str, ...]:
    if sep is None:
        label = _label(row, column, mapping, path, number)
        return (label,) if label is not None else ()
    if column is None:
        return ()
    if column not in row:
        raise DataError(f"{path}: row {number} has no column {column!r}")
    raw = row[column]
    values = [v.strip() for v in str(raw if raw is not None else "").split(sep) if v.strip()]
    for value in values:
        if mapping and value not in mapping:
            raise DataError(f"{path}: row {number}: topic label {value!r} is not in the label map")
    # Order kept, duplicates dropped: the first label is the row's primary topic.
    return tuple(dict.fromkeys(mapping[v] if mapping else v for v in values))


def _label(
    row: dict[str, object], column: str | None, mapping: dict[str, str] | None, path: Path, number: int
) -> str | None:
    if column is None:
        return None
    if column not in row:
        raise DataError(f"{path}: row {number} has no column {column!r}")
    raw = row[column]
    if raw is None or str(raw).strip() == "":
        return None
    value = str(raw).strip()
    if mapping:
        if value not in mapping:
            raise DataError(f"{path}: row {number}: label {value!r} is not in the label map")
        return mapping[value]
    return value


def deduplicate(examples: Iterable[Example]) -> tuple[list[Example], int]:
    """Merges rows of the same text; a text whose labels conflict keeps neither conflicting label."""
    merged: dict[str, dict[str, set]] = {}
    for ex in examples:
        slot = merged.setdefault(ex.text, {"topic": set(), "sentiment": set()})
        if ex.topic_set:
            slot["topic"].add(ex.topics or ex.topic)
        if ex.sentiment is not None:
            slot["sentiment"].add(ex.sentiment)
    result, conflicts = [], 0
    for text, labels in merged.items():
        topic = next(iter(labels["topic"])) if len(labels["topic"]) == 1 else None
        sentiment = next(iter(labels["sentiment"])) if len(labels["sentiment"]) == 1 else None
        conflicts += len(labels["topic"]) > 1 or len(labels["sentiment"]) > 1
        if isinstance(topic, tuple):
            result.append(Example(text, topic[0], sentiment, topic))
        elif topic is not None or sentiment is not None:
            result.append(Example(text, topic, sentiment))
    return result, conflicts


def split(examples: list[Example]) -> tuple[list[Example], list[Example], list[Example]]:
    """80/10/10 train/valid/test by text hash."""
    train, valid, test = [], [], []
    for ex in examples:
        bucket = split_bucket(ex.text)
        (train if bucket < 80 else valid if bucket < 90 else test).append(ex)
    return train, valid, test
