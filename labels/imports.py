"""A labelled file (CSV or JSONL) read row by row against the `label` contract: good rows and, for
each bad one, its line and the reason. Nothing of a bad row is kept; a bad row stops nothing else."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from labels.store import LabelError, NewLabel
from schemas import Contract, ContractError

MAX_ROWS = 50_000
FIELDS = ("text", "topic", "sentiment", "lang", "source")


@dataclass(frozen=True)
class RowError:
    line: int
    field: str | None
    reason: str


@dataclass
class ParsedFile:
    labels: list[NewLabel] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)


def parse_labelled_file(
    name: str, content: bytes, labelled_by: str, origin: str = "import", keep_row_attribution: bool = False
) -> ParsedFile:
    """CSV with a header (text, and topic and/or sentiment; lang and source optional) or JSONL of label
    messages; `labelled_by` is who imports. A JSONL row's own labeled_by is kept only with
    `keep_row_attribution` (an admin's import); otherwise every row is the importer's."""
    parsed = ParsedFile()
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        parsed.errors.append(RowError(0, None, f"the file is not UTF-8: {exc.reason} at byte {exc.start}"))
        return parsed
    contract = Contract.of("label")
    for line, row in _rows(name, text, parsed):
        if line > MAX_ROWS + 1:
            parsed.errors.append(RowError(line, None, f"more than {MAX_ROWS} rows: the rest was not read"))
            break
        message = {"schema_version": 1, "labeled_by": labelled_by, **row}
        if not keep_row_attribution:
            message["labeled_by"] = labelled_by
        try:
            contract.validate(message)
            parsed.labels.append(NewLabel.from_message(message, origin))
        except ContractError as exc:
            parsed.errors.append(RowError(line, exc.field, exc.message))
        except LabelError as exc:
            parsed.errors.append(RowError(line, exc.field, str(exc)))
    return parsed


def _rows(name: str, text: str, parsed: ParsedFile) -> Any:
    if name.lower().endswith((".jsonl", ".ndjson", ".json")):
        for line, raw in enumerate(text.splitlines(), 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as exc:
                parsed.errors.append(RowError(line, None, f"not JSON: {exc.msg} at column {exc.colno}"))
                continue
            if not isinstance(row, dict):
                parsed.errors.append(RowError(line, None, "not a JSON object"))
                continue
            yield line, row
        return
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames or "text" not in reader.fieldnames:
        parsed.errors.append(RowError(1, "text", "a CSV needs a header with a text column"))
        return
    for row in reader:
        values = {k: v for k, v in row.items() if k in FIELDS and v not in (None, "")}
        yield reader.line_num, values
