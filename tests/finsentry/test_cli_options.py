"""The label options that every labelled-data command shares, given to it as one LabelColumns."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.testing import CliRunner

from finsentry.cli.options import LabelColumns, label_columns


def _app(multi_label: bool) -> tuple[typer.Typer, list[tuple[str, LabelColumns, int]]]:
    app, seen = typer.Typer(), []

    @app.command()
    @label_columns(multi_label=multi_label)
    def load(
        data: Annotated[list[str], typer.Argument(help="files")],
        columns: LabelColumns,
        by: Annotated[str, typer.Option(help="who")] = "import",
    ) -> None:
        seen.append((by, columns, len(columns.load(data))))

    return app, seen


def test_the_options_arrive_as_one_label_columns_and_load_the_rows(tmp_path: Path) -> None:
    labelled = tmp_path / "rows.csv"
    labelled.write_text("body,topics,tone\nBank sells bonds,a b,0\nRates rise,b,1\nNo label here,c,2\n")
    app, seen = _app(multi_label=True)
    args = [str(labelled), "--text-col", "body", "--topic-col", "topics", "--topic-sep", " "]
    args += [
        "--topic-map",
        "a=Financials,b=Debt",
        "--sentiment-col",
        "tone",
        "--sentiment-map",
        "0=negative,1=positive",
    ]
    result = CliRunner().invoke(app, [*args, "--skip-bad-labels", "--by", "ana"])
    assert result.exit_code == 0, result.output
    by, columns, rows_loaded = seen[0]
    assert by == "ana", "the command's own options still reach it"
    assert columns == LabelColumns(
        "body", "topics", "tone", "a=Financials,b=Debt", "0=negative,1=positive", " ", skip_bad_labels=True
    )
    assert rows_loaded == 2, "the row with a topic outside the map was skipped"
    rows = columns.load([str(labelled)])
    assert rows[0].topics == ("Financials", "Debt") and rows[0].sentiment == "negative"


def test_a_single_label_command_has_no_topic_separator() -> None:
    app, _ = _app(multi_label=False)
    result = CliRunner().invoke(app, ["x.csv", "--topic-sep", " "])
    assert result.exit_code != 0 and "No such option: --topic-sep" in result.output
    assert "--topic-col" in CliRunner().invoke(app, ["--help"]).output
