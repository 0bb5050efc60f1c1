"""What the command groups share: the console, the labelled-data options and the report tables."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, cast

import typer
from rich.console import Console
from rich.table import Table

from foundation.settings import Settings
from labels.examples import Example

if TYPE_CHECKING:
    import redis

console = Console(stderr=True)

TextCol = Annotated[str, typer.Option(help="Column (or JSON key) with the text")]
TopicCol = Annotated[str | None, typer.Option(help="Column with the topic label")]
SentimentCol = Annotated[str | None, typer.Option(help="Column with the sentiment label")]
SentimentMap = Annotated[
    str | None, typer.Option(help="Raw sentiment value to label, e.g. 0=negative,1=positive,2=neutral")
]
TopicMap = Annotated[
    str | None, typer.Option(help="Raw topic value to name: 0=Analyst Update,... or a TSV file")
]
TopicSep = Annotated[
    str | None,
    typer.Option(help="The topic column holds several labels split by this (multi-label), e.g. ' '"),
]
SkipBadLabels = Annotated[
    bool, typer.Option(help="Skip (and count) rows with a label outside the map instead of stopping")
]

DataFiles = Annotated[
    list[str],
    typer.Option(
        help="Labelled file (CSV, JSONL, JSON); repeat for more. Prefix topic: or"
        " sentiment: to take only that head's labels from it"
    ),
]


@dataclasses.dataclass(frozen=True)
class LabelColumns:
    """Where a labelled file keeps its text and labels, and what the raw labels mean."""

    text: str = "text"
    topic: str | None = None
    sentiment: str | None = None
    topic_map: str | None = None
    sentiment_map: str | None = None
    topic_sep: str | None = None
    skip_bad_labels: bool = False

    def load(self, data: Sequence[str]) -> list[Example]:
        """Reads every file; a `topic:` or `sentiment:` prefix limits a file to that head's labels,
        for files whose label column has the same name (the Twitter topic and sentiment sets)."""
        from training.data import load_examples, parse_label_map

        topics, sentiments = parse_label_map(self.topic_map), parse_label_map(self.sentiment_map)
        examples = []
        for spec in data:
            head, sep, name = spec.partition(":")
            if not sep or head not in ("topic", "sentiment"):
                head, name = "", spec
            examples += load_examples(
                Path(name),
                self.text,
                self.topic if head in ("", "topic") else None,
                self.sentiment if head in ("", "sentiment") else None,
                topics,
                sentiments,
                self.topic_sep,
                self.skip_bad_labels,
            )
        return examples


# The command-line option of each LabelColumns field (its parameter name and type); the default is
# the field's own.
_COLUMN_OPTIONS = {
    "text": ("text_col", TextCol),
    "topic": ("topic_col", TopicCol),
    "sentiment": ("sentiment_col", SentimentCol),
    "topic_map": ("topic_map", TopicMap),
    "sentiment_map": ("sentiment_map", SentimentMap),
    "topic_sep": ("topic_sep", TopicSep),
    "skip_bad_labels": ("skip_bad_labels", SkipBadLabels),
}

Command = TypeVar("Command", bound=Callable[..., None])


def label_columns(*, multi_label: bool = True) -> Callable[[Command], Command]:
    """Gives a command the label options (--text-col, --topic-col, ...) as one `columns: LabelColumns`
    argument: typer sees the options, the command gets them together. Without `multi_label` there is
    no --topic-sep (for what keeps one topic a text, like the label store)."""
    fields = {k: v for k, v in _COLUMN_OPTIONS.items() if multi_label or k != "topic_sep"}

    def decorate(command: Command) -> Command:
        own = [
            p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "columns"
        ]
        defaults = {field.name: field.default for field in dataclasses.fields(LabelColumns)}
        options = [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=defaults[field], annotation=annotation
            )
            for field, (name, annotation) in fields.items()
        ]
        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + options

        @functools.wraps(command)
        def with_columns(**kwargs: Any) -> None:
            columns = LabelColumns(**{field: kwargs.pop(fields[field][0]) for field in fields})
            command(columns=columns, **kwargs)

        with_columns.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
        with_columns.__annotations__ = {p.name: p.annotation for p in parameters}
        return cast(Command, with_columns)

    return decorate


def print_reports(reports: dict, title: str) -> None:
    for head in ("topic", "sentiment"):
        report = reports.get(head)
        if not report:
            continue
        if report.get("multi_label"):
            summary = f"micro-F1 {report['micro_f1']:.3f}, macro-F1 {report['macro_f1']:.3f}"
        else:
            summary = f"accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}"
        table = Table(title=f"{head} ({title}): {summary}")
        for column in ("class", "precision", "recall", "f1", "support"):
            table.add_column(column, justify="left" if column == "class" else "right")
        for label, row in report["per_class"].items():
            table.add_row(
                label,
                f"{row['precision']:.3f}",
                f"{row['recall']:.3f}",
                f"{row['f1']:.3f}",
                str(row["support"]),
            )
        console.print(table)
        labels = report["labels"]
        if "confusion_matrix" in report and len(labels) <= 6:
            matrix = Table(title=f"{head} confusion (rows: true, columns: predicted)")
            matrix.add_column("")
            for label in labels:
                matrix.add_column(label[:10], justify="right")
            for label, row in zip(labels, report["confusion_matrix"], strict=True):
                matrix.add_row(label, *map(str, row))
            console.print(matrix)


@contextmanager
def redis_for_tests(settings: Settings) -> Iterator[redis.Redis]:
    """The configured Redis (FINSENTRY_REDIS_URL) when it is given and answers, else a throwaway one.

    Rule tests and backtests write only under Redis prefixes of their own and delete them afterwards.
    """
    import redis

    from finsentry.services.redis import RedisServer
    from foundation.connections import redis_client
    from foundation.logs import without_credentials

    if "redis_url" in settings.model_fields_set:
        client = redis_client(settings, socket_connect_timeout=2)
        try:
            client.ping()
        except (redis.ConnectionError, redis.TimeoutError):
            shown = without_credentials(settings.redis_url)
            console.print(f"Redis at {shown} does not answer; starting a throwaway one")
        else:
            yield client
            return
    with tempfile.TemporaryDirectory(prefix="finsentry-rules-test-") as data:
        server = RedisServer(Path(data))
        server.start()
        try:
            yield redis.Redis.from_url(server.url)
        finally:
            server.stop()
