"""Which companies an event is about: cashtags, and a watchlist matched with Aho-Corasick.

Names and aliases may be in any language. Latin-script matches must sit on word boundaries
("Meta" is not found inside "metals"); CJK aliases match as plain substrings, since Chinese is not
written with spaces. Entities the producer put on the event are kept.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ahocorasick
import yaml

CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,5}(?:\.[A-Za-z]{1,2})?)\b")


class WatchlistError(ValueError):
    """A watchlist file that cannot be used, with the entry and the reason."""


@dataclass(frozen=True)
class Company:
    id: str
    name: str
    tickers: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()

    def entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.tickers:
            entity["ticker"] = self.tickers[0]
        return entity


def _is_cjk(text: str) -> bool:
    return any("\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in text)


def load_watchlist(path: Path) -> list[Company]:
    """YAML (a list of {id, name, tickers, aliases}) or CSV (tickers and aliases separated by `|`)."""
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows: list[dict[str, Any]] = [
                {**row, "tickers": _split(row.get("tickers")), "aliases": _split(row.get("aliases"))}
                for row in csv.DictReader(fh)
            ]
    else:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or []
        rows = loaded.get("companies", []) if isinstance(loaded, dict) else loaded
    companies, seen = [], set()
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not row.get("id") or not row.get("name"):
            raise WatchlistError(f"{path}: entry {number} needs an id and a name")
        if row["id"] in seen:
            raise WatchlistError(f"{path}: entry {number}: id {row['id']!r} appears twice")
        seen.add(row["id"])
        companies.append(
            Company(
                id=str(row["id"]),
                name=str(row["name"]),
                tickers=tuple(str(t).upper().lstrip("$") for t in row.get("tickers") or ()),
                aliases=tuple(str(a) for a in row.get("aliases") or ()),
            )
        )
    return companies


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split("|") if part.strip()]


@dataclass
class EntityMatcher:
    companies: list[Company]
    _automaton: Any = field(init=False, repr=False)
    _by_ticker: dict[str, Company] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_ticker = {t: c for c in self.companies for t in c.tickers}
        self._automaton = ahocorasick.Automaton()
        for company in self.companies:
            for phrase in {company.name, *company.aliases}:
                key = phrase.casefold()
                previous = self._automaton.get(key, ())
                self._automaton.add_word(key, (*previous, (company, len(key), _is_cjk(phrase))))
        if self.companies:
            self._automaton.make_automaton()

    def match(self, text: str) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for ticker in CASHTAG.findall(text):
            company = self._by_ticker.get(ticker.upper())
            entity = company.entity() if company else {"id": f"${ticker.upper()}", "ticker": ticker.upper()}
            found.setdefault(entity["id"], entity)
        if self.companies:
            folded = text.casefold()
            for end, hits in self._automaton.iter(folded):
                for company, length, cjk in hits:
                    start = end - length + 1
                    if cjk or _on_word_boundaries(folded, start, end):
                        found.setdefault(company.id, company.entity())
        return list(found.values())

    def enrich(self, text: str, given: Iterable[dict[str, Any]] = ()) -> list[dict[str, Any]]:
        """The producer's entities first, then what the text names; one entry per id."""
        entities = {e["id"]: e for e in given}
        for entity in self.match(text):
            entities.setdefault(entity["id"], entity)
        return list(entities.values())


def _on_word_boundaries(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end + 1] if end + 1 < len(text) else " "
    return not before.isalnum() and not after.isalnum()
