"""Which companies an event is about: cashtags, and a watchlist matched with Aho-Corasick.

Names and aliases may be in any language. Latin-script matches must sit on word boundaries
("Meta" is not found inside "metals"); CJK aliases match as plain substrings, since Chinese is not
written with spaces. Entities the producer put on the event are kept.

Rules that keep matches trustworthy on real headlines:

- A ticker-like name or alias (all capitals, 1-5 letters, optional digits, an optional `.B`/`.SZ`
  suffix: `HEL`, `BRK.B`, `000001.SZ`) matches case-sensitively: `OIL` is not found in "Kirloskar
  Oil", nor `TAKE` in "to take the lead". Other names and aliases match in any case, except that
  one which is a common word or first name written with a capital ("Shell", "Target", "Arm") needs
  its capital in the text too ("shell company", "target price" and "investment arm" are not
  companies). A cashtag (`$HEL`) of a company's ticker or ticker-like alias always matches.
- The longest match wins: scanning left to right, a match takes the longest phrase that starts
  there, and a phrase inside it ("Bank of China" inside "Agricultural Bank of China") or overlapping
  it counts for no other company. Two companies sharing the very same alias both match (the loader
  warns about it).
- An alias may need context: it counts only when the text also has one of its `requires_context`
  words, or, with `requires_context: true`, a finance cue (shares, profit, CEO, a sum like $3bn or
  a percentage, ...) or a company named plainly (this one by another name, alias or cashtag, or
  another watchlist company).
- A name or alias right after a first name is a person's surname, not the company: "Jeremy Ford",
  "Ken Morrison" (a longer alias that includes the first name, "John Deere", still matches).
- `exclude` phrases are not mentions: "Apple pie" is not Apple. Since matches do not overlap, no
  company is found inside an excluded phrase (unless the phrase is itself a company's name).

Watchlist files (`load_watchlist`). YAML, a list (or `{companies: [...]}`) of:

    - id: apple                      # required, unique: the scope key is entity:apple
      name: Apple Inc.               # required; matched like an alias
      tickers: [AAPL]                # cashtags ($AAPL); list a ticker under aliases to match it bare
      aliases:
        - iPhone maker               # a plain alias
        - alias: Apple               # an alias with conditions
          requires_context: true     # or a list of words: [iPhone, Mac, Cook]
          exclude: [Apple pie, Big Apple, apple juice]
      exclude: [Apple Records]       # phrases that exclude any of the company's names

CSV, with a header `id,name,tickers,aliases[,requires_context][,exclude]`: lists are separated by
`|`; an alias ending in `?` needs context (`Apple?`): one of the row's `requires_context` words,
or a finance cue when that column is empty; `exclude` holds the row's excluded phrases.

Loading warns (a structured log line per alias) about names and aliases that are common English words
or first names ("Target", "Ryan") and carry no context condition, and about aliases two companies share.
"""

from __future__ import annotations

import csv
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ahocorasick
import yaml

from inference.common_words import COMMON_WORDS, FIRST_NAMES

log = logging.getLogger(__name__)

CASHTAG = re.compile(r"(?<![\w$])\$([A-Za-z][A-Za-z0-9]{0,5}(?:\.[A-Za-z]{1,2})?)\b")
TICKER_LIKE = re.compile(r"^(?:[A-Z]{1,5}[0-9]{0,3}|[0-9]{1,6})(?:[.-][A-Z0-9]{1,3})?$")
# Words that make a short or ambiguous alias a company mention (`requires_context: true`).
_FINANCE_CUES = """
    acquire acquires acquisition analyst analysts bank bid bids board bond bonds buy buyback buys ceo cfo
    chairman chief company contract corp deal dividend dividends downgrade downgrades drugmaker earnings
    eps executive firm ftse fy group guidance h1 h2 inc insurer investor investors ipo lender listed ltd
    merger miner nasdaq nyse offer outlook plc price profit profits q1 q2 q3 q4 quarter quarterly rating
    results retailer revenue revenues sale sales sells share shareholder shareholders shares stake stock
    stocks takeover trading upgrade upgrades
"""
FINANCE_CUES = frozenset(_FINANCE_CUES.split())
_WORD = re.compile(r"\w+")
_AMOUNT = re.compile(r"\d%|[$£€¥]\s?\d|\d(?:\.\d+)?\s?(?:bn|mln|bln|billion|million)\b")


class WatchlistError(ValueError):
    """A watchlist file that cannot be used, with the entry and the reason."""


@dataclass(frozen=True)
class Company:
    id: str
    name: str
    tickers: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    # alias -> words one of which the text must also have; () means a finance cue or another of the
    # company's names. Aliases not listed need nothing.
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False, compare=False)
    exclude: tuple[str, ...] = ()

    def entity(self) -> dict[str, Any]:
        entity: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.tickers:
            entity["ticker"] = self.tickers[0]
        return entity


def is_ticker_like(phrase: str) -> bool:
    """All capitals (1-5 letters, optional digits and suffix) or an exchange code: matched as written."""
    return bool(TICKER_LIKE.match(phrase))


def _is_common(phrase: str) -> bool:
    return phrase.casefold() in COMMON_WORDS or phrase.casefold() in FIRST_NAMES


def _is_cjk(text: str) -> bool:
    return any("\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in text)


def load_watchlist(path: Path) -> list[Company]:
    """YAML or CSV (see the module's docstring); warns about risky aliases as it loads."""
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows: list[Any] = [_csv_row(row) for row in csv.DictReader(fh)]
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
        try:
            companies.append(_company(row))
        except (TypeError, ValueError) as exc:
            raise WatchlistError(f"{path}: entry {number} ({row['id']}): {exc}") from exc
    warn_risky_aliases(companies, str(path))
    return companies


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    words = _split(row.get("requires_context"))
    aliases: list[Any] = []
    for alias in _split(row.get("aliases")):
        if alias.endswith("?") and len(alias) > 1:
            aliases.append({"alias": alias[:-1].rstrip(), "requires_context": words or True})
        else:
            aliases.append(alias)
    tickers, exclude = _split(row.get("tickers")), _split(row.get("exclude"))
    return {**row, "tickers": tickers, "aliases": aliases, "exclude": exclude}


def _company(row: dict[str, Any]) -> Company:
    aliases: list[str] = []
    context: dict[str, tuple[str, ...]] = {}
    exclude = [str(e) for e in _as_list(row.get("exclude"), "exclude")]
    for entry in _as_list(row.get("aliases"), "aliases"):
        if isinstance(entry, dict):
            alias = str(entry.get("alias") or "")
            if not alias.strip():
                raise ValueError(f"an alias entry needs `alias`: {entry!r}")
            required = entry.get("requires_context")
            if required is True:
                context[alias] = ()
            elif required:
                context[alias] = tuple(str(w) for w in _as_list(required, "requires_context"))
            exclude += [str(e) for e in _as_list(entry.get("exclude"), "exclude")]
        else:
            alias = str(entry)
        if alias.strip() and alias not in aliases:
            aliases.append(alias)
    return Company(
        id=str(row["id"]),
        name=str(row["name"]),
        tickers=tuple(str(t).upper().lstrip("$") for t in _as_list(row.get("tickers"), "tickers")),
        aliases=tuple(aliases),
        context=context,
        exclude=tuple(dict.fromkeys(exclude)),
    )


def _as_list(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str | int | float | dict):
        return [value]
    if not isinstance(value, list | tuple):
        raise ValueError(f"`{name}` must be a list")
    return list(value)


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split("|") if part.strip()]


def risky_aliases(companies: Sequence[Company]) -> list[dict[str, str]]:
    """Names and aliases likely to match ordinary text: common words and first names without a context
    condition, and aliases that two companies share."""
    found: list[dict[str, str]] = []
    owners: dict[str, list[str]] = {}
    for company in companies:
        for phrase in dict.fromkeys((company.name, *company.aliases)):
            owners.setdefault(phrase if is_ticker_like(phrase) else phrase.casefold(), []).append(company.id)
            if phrase in company.context:
                continue
            key = phrase.casefold()
            reason = "common word" if key in COMMON_WORDS else "first name" if key in FIRST_NAMES else ""
            if reason:
                matched = "as written" if is_ticker_like(phrase) else "in any case"
                found.append({"company": company.id, "alias": phrase, "reason": reason, "matched": matched})
    for phrase, ids in owners.items():
        if len(set(ids)) > 1:
            found.append({"company": ",".join(sorted(set(ids))), "alias": phrase, "reason": "shared alias"})
    return found


def warn_risky_aliases(companies: Sequence[Company], source: str = "") -> list[dict[str, str]]:
    risky = risky_aliases(companies)
    for item in risky:
        log.warning(
            "watchlist alias may match ordinary text: give it requires_context or exclude phrases",
            extra={"watchlist": source, **item},
        )
    return risky


@dataclass(frozen=True)
class _Phrase:
    company: Company | None  # None: an excluded phrase, which only blocks
    text: str
    exact: bool  # matched as written (ticker-like)
    capital: bool  # a capitalised common word ("Shell"): matched only with its first letter a capital
    cjk: bool
    context: tuple[str, ...] | None  # None: needs nothing; (): a finance cue or another of its names


@dataclass
class EntityMatcher:
    companies: list[Company]
    _automaton: Any = field(init=False, repr=False)
    _by_ticker: dict[str, Company] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_ticker = {}
        for company in self.companies:
            for ticker in (*company.tickers, *(a for a in company.aliases if is_ticker_like(a))):
                self._by_ticker.setdefault(ticker.upper(), company)
        self._automaton = ahocorasick.Automaton()
        for company in self.companies:
            for phrase in dict.fromkeys((company.name, *company.aliases)):
                needs = company.context.get(phrase)
                exact = is_ticker_like(phrase)
                capital = not exact and phrase[:1].isupper() and _is_common(phrase)
                self._add(_Phrase(company, phrase, exact, capital, _is_cjk(phrase), needs))
            for phrase in company.exclude:
                self._add(_Phrase(None, phrase, False, False, _is_cjk(phrase), None))
        if self.companies:
            self._automaton.make_automaton()

    def _add(self, phrase: _Phrase) -> None:
        key = phrase.text.casefold()
        if not key.strip():
            return
        previous = self._automaton.get(key, ())
        if phrase not in previous:
            self._automaton.add_word(key, (*previous, phrase))

    def match(self, text: str) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for ticker in CASHTAG.findall(text):
            company = self._by_ticker.get(ticker.upper())
            entity = company.entity() if company else {"id": f"${ticker.upper()}", "ticker": ticker.upper()}
            found.setdefault(entity["id"], entity)
        if self.companies:
            for company in self._companies_in(text, {e["id"] for e in found.values()}):
                found.setdefault(company.id, company.entity())
        return list(found.values())

    def _companies_in(self, text: str, cashtagged: set[str]) -> list[Company]:
        folded = text.casefold()
        # casefold can lengthen a character (ß -> ss): map folded positions back to the text's.
        origin = None if len(folded) == len(text) else _origins(text)
        candidates: list[tuple[int, int, _Phrase]] = []
        for end, phrases in self._automaton.iter(folded):
            for phrase in phrases:
                start = end - len(phrase.text.casefold()) + 1
                if not phrase.cjk and not _on_word_boundaries(folded, start, end):
                    continue
                if not phrase.exact and phrase.company is not None and _after_first_name(folded, start):
                    continue  # "Jeremy Ford", "Ken Morrison": a person's surname
                if phrase.exact or phrase.capital:
                    first, last = (start, end) if origin is None else (origin[start], origin[end])
                    if phrase.exact and text[first : last + 1] != phrase.text:
                        continue
                    if phrase.capital and not text[first].isupper():
                        continue
                candidates.append((start, end, phrase))
        if not candidates:
            return []
        plain = {p.company.id for _, _, p in candidates if p.company and p.context is None} | cashtagged
        words: set[str] | None = None
        kept = []
        for start, end, phrase in candidates:
            if phrase.context is not None and phrase.company is not None:
                words = words if words is not None else set(_WORD.findall(folded))
                if not _has_context(phrase, folded, words, start, end, plain):
                    continue
            kept.append((start, end, phrase))
        return _leftmost_longest(kept)

    def enrich(self, text: str, given: Iterable[dict[str, Any]] = ()) -> list[dict[str, Any]]:
        """The producer's entities first, then what the text names; one entry per id."""
        entities = {e["id"]: e for e in given}
        for entity in self.match(text):
            entities.setdefault(entity["id"], entity)
        return list(entities.values())


def _has_context(
    phrase: _Phrase, folded: str, words: set[str], start: int, end: int, plain: set[str]
) -> bool:
    """One of the alias's context words (outside the match itself), or, with no list, a finance cue or
    watchlist company named plainly (this one by another name, alias or cashtag, or another company)."""
    if phrase.context:
        outside = folded[:start] + " " + folded[end + 1 :]
        return any(_contains(outside, word.casefold()) for word in phrase.context)
    assert phrase.company is not None  # noqa: S101 - excluded phrases never need context
    if plain or not words.isdisjoint(FINANCE_CUES):  # the company or another one named plainly: business news
        return True
    return bool(_AMOUNT.search(folded))


def _after_first_name(folded: str, start: int) -> bool:
    """Whether the word before `start` is a first name: the match is then a person's surname."""
    before = folded[:start].rstrip()
    if len(before) == len(folded[:start]):
        return False  # no space before: not a separate word
    word = before[len(before.rstrip("abcdefghijklmnopqrstuvwxyz")) :]
    return word in FIRST_NAMES


def _contains(text: str, word: str) -> bool:
    if _is_cjk(word):
        return word in text
    at = text.find(word)
    while at >= 0:
        if _on_word_boundaries(text, at, at + len(word) - 1):
            return True
        at = text.find(word, at + 1)
    return False


def _leftmost_longest(candidates: list[tuple[int, int, _Phrase]]) -> list[Company]:
    """Non-overlapping spans, left to right, the longest at each start; the companies of each span kept
    (several when companies share the very alias), an excluded phrase's span keeps none."""
    candidates.sort(key=lambda c: (c[0], -c[1]))
    companies: dict[str, Company] = {}
    taken_until = -1
    span: tuple[int, int] | None = None
    for start, end, phrase in candidates:
        if span == (start, end):
            pass  # another phrase of the chosen span
        elif start > taken_until:
            span, taken_until = (start, end), end
        else:
            continue
        if phrase.company is not None:
            companies.setdefault(phrase.company.id, phrase.company)
    return list(companies.values())


def _origins(text: str) -> list[int]:
    return [i for i, ch in enumerate(text) for _ in ch.casefold()]


def _on_word_boundaries(text: str, start: int, end: int) -> bool:
    before = text[start - 1] if start > 0 else " "
    after = text[end + 1] if end + 1 < len(text) else " "
    return not before.isalnum() and not after.isalnum()
