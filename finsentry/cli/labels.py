"""`finsentry label`: labelled samples into the store."""

from __future__ import annotations

from typing import Annotated

import typer

from finsentry.cli.options import (
    console,
    load_sets,
)
from foundation.settings import get_settings

app = typer.Typer(help="Labelled samples: import them, count them.", no_args_is_help=True)


@app.command("import")
def label_import(
    data: Annotated[list[str], typer.Argument(help="CSV/JSONL/JSON file(s); topic:/sentiment: prefixes")],
    text_col: Annotated[str, typer.Option(help="Column (or JSON key) with the text")] = "text",
    topic_col: Annotated[str | None, typer.Option(help="Column with the topic label")] = None,
    sentiment_col: Annotated[str | None, typer.Option(help="Column with the sentiment label")] = None,
    topic_map: Annotated[str | None, typer.Option(help="0=Analyst Update,... or a TSV file")] = None,
    sentiment_map: Annotated[str | None, typer.Option(help="e.g. 0=negative,1=positive,2=neutral")] = None,
    by: Annotated[str, typer.Option(help="Who labelled these")] = "import",
    source: Annotated[str | None, typer.Option(help="Where the texts come from")] = None,
) -> None:
    """Store labelled samples (deduplicated by normalised text; the newest label of a text wins)."""
    from labels.store import examples_to_labels
    from training.learning import learning

    examples = load_sets(data, text_col, topic_col, sentiment_col, topic_map, sentiment_map)
    parts = learning(get_settings(), announce=False)
    result = parts.labels.add(examples_to_labels(examples, by, "import", source))
    counts = parts.labels.counts()
    console.print(
        f"{len(examples)} rows: {result.inserted} new, {result.updated} relabelled,"
        f" {result.unchanged} unchanged, {result.repeated} repeated; store: {counts['total']} samples,"
        f" {counts['frozen']} in the frozen evaluation set"
    )
