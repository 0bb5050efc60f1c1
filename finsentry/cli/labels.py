"""`finsentry label`: labelled samples into the store."""

from __future__ import annotations

from typing import Annotated

import typer

from finsentry.cli.options import LabelColumns, console, label_columns
from foundation.settings import get_settings

app = typer.Typer(help="Labelled samples: import them, count them.", no_args_is_help=True)


@app.command("import")
@label_columns(multi_label=False)
def label_import(
    data: Annotated[list[str], typer.Argument(help="CSV/JSONL/JSON file(s); topic:/sentiment: prefixes")],
    columns: LabelColumns,
    by: Annotated[str, typer.Option(help="Who labelled these")] = "import",
    source: Annotated[str | None, typer.Option(help="Where the texts come from")] = None,
) -> None:
    """Store labelled samples (deduplicated by normalised text; the newest label of a text wins)."""
    from labels.store import examples_to_labels
    from training.learning import learning

    examples = columns.load(data)
    parts = learning(get_settings(), announce=False)
    result = parts.labels.add(examples_to_labels(examples, by, "import", source))
    counts = parts.labels.counts()
    console.print(
        f"{len(examples)} rows: {result.inserted} new, {result.updated} relabelled,"
        f" {result.unchanged} unchanged, {result.repeated} repeated; store: {counts['total']} samples,"
        f" {counts['frozen']} in the frozen evaluation set"
    )
