"""How well a watchlist's matcher finds companies, against a labelled file (`finsentry entities eval`).

The file is JSON lines, `{"text": ..., "companies": ["id", ...]}`: every watchlist company the text
names, by id. A match counts when its id is labelled; cashtags of tickers outside the watchlist
(`$XYZ`) are not watchlist companies and are left out, and so are labelled ids the watchlist lacks
(counted in `unknown_ids`). Precision and recall are micro-averaged over (text, company) pairs; the
worst offenders are the companies with the most wrong plus missed matches.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inference.entities import EntityMatcher

EXAMPLES_PER_COMPANY = 3


class LabelledFileError(ValueError):
    """A labelled file that cannot be read, with the line and the reason."""


@dataclass
class Labelled:
    text: str
    companies: frozenset[str]


@dataclass
class CompanyScore:
    id: str
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    wrong: list[str] = field(default_factory=list)  # texts it was found in but does not name
    missed: list[str] = field(default_factory=list)  # texts naming it where it was not found

    @property
    def errors(self) -> int:
        return self.false_positives + self.false_negatives

    def as_dict(self) -> dict[str, Any]:
        return (
            asdict(self)
            | {"precision": _ratio(self.true_positives, self.false_positives)}
            | {"recall": _ratio(self.true_positives, self.false_negatives)}
        )


@dataclass
class Evaluation:
    texts: int = 0
    labelled_companies: int = 0  # distinct labelled ids the watchlist has
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    unknown_ids: int = 0  # labelled ids that are not in the watchlist: not counted
    companies: dict[str, CompanyScore] = field(default_factory=dict)

    @property
    def precision(self) -> float | None:
        return _ratio(self.true_positives, self.false_positives)

    @property
    def recall(self) -> float | None:
        return _ratio(self.true_positives, self.false_negatives)

    def worst(self, count: int = 10) -> list[CompanyScore]:
        """The companies with the most wrong plus missed matches, most first."""
        scored = [c for c in self.companies.values() if c.errors]
        return sorted(scored, key=lambda c: (-c.errors, -c.false_positives, c.id))[:count]

    def as_dict(self, worst: int = 10) -> dict[str, Any]:
        return {
            "texts": self.texts,
            "labelled_companies": self.labelled_companies,
            "true_positives": self.true_positives,
            "false_positives": self.false_positives,
            "false_negatives": self.false_negatives,
            "unknown_ids": self.unknown_ids,
            "precision": self.precision,
            "recall": self.recall,
            "worst": [c.as_dict() for c in self.worst(worst)],
        }


def _ratio(hits: int, misses: int) -> float | None:
    return round(hits / (hits + misses), 4) if hits + misses else None


def read_labelled(path: Path) -> list[Labelled]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise LabelledFileError(f"{path}: line {number}: not JSON ({exc})") from exc
            if not isinstance(row, dict) or not isinstance(row.get("text"), str):
                raise LabelledFileError(f"{path}: line {number}: needs a string `text`")
            companies = row.get("companies", [])
            if not isinstance(companies, list) or not all(isinstance(c, str) for c in companies):
                raise LabelledFileError(f"{path}: line {number}: `companies` must be a list of ids")
            rows.append(Labelled(row["text"], frozenset(companies)))
    return rows


def evaluate(matcher: EntityMatcher, rows: Iterable[Labelled]) -> Evaluation:
    known = {c.id for c in matcher.companies}
    result = Evaluation()
    labelled: set[str] = set()
    for row in rows:
        result.texts += 1
        gold = row.companies & known
        result.unknown_ids += len(row.companies - known)
        labelled |= gold
        found = {e["id"] for e in matcher.match(row.text)} & known
        for company in found | gold:
            score = result.companies.setdefault(company, CompanyScore(company))
            if company in found and company in gold:
                score.true_positives += 1
            elif company in found:
                score.false_positives += 1
                _example(score.wrong, row.text)
            else:
                score.false_negatives += 1
                _example(score.missed, row.text)
    result.labelled_companies = len(labelled)
    for score in result.companies.values():
        result.true_positives += score.true_positives
        result.false_positives += score.false_positives
        result.false_negatives += score.false_negatives
    return result


def _example(examples: list[str], text: str) -> None:
    if len(examples) < EXAMPLES_PER_COMPANY:
        examples.append(text[:200])
