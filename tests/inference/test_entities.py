"""Entity matching: cashtags, watchlist names and aliases in two scripts, boundaries, producer entities."""

from __future__ import annotations

from pathlib import Path

import pytest

from inference.entities import EntityMatcher, WatchlistError, load_watchlist

WATCHLIST = """
- id: northwind-bank
  name: Northwind Bank
  tickers: [NWB]
  aliases: [Northwind, 北风银行]
- id: meta
  name: Meta Platforms
  tickers: [META]
  aliases: [Meta]
- id: pingan-bank
  name: Ping An Bank
  tickers: ["000001.SZ"]
  aliases: [平安银行]
"""


@pytest.fixture()
def matcher(tmp_path: Path) -> EntityMatcher:
    path = tmp_path / "watchlist.yaml"
    path.write_text(WATCHLIST, encoding="utf-8")
    return EntityMatcher(load_watchlist(path))


def ids(entities: list[dict]) -> list[str]:
    return sorted(e["id"] for e in entities)


def test_names_aliases_and_cashtags(matcher: EntityMatcher) -> None:
    assert ids(matcher.match("Northwind Bank misses estimates; $NWB falls")) == ["northwind-bank"]
    assert ids(matcher.match("NORTHWIND cuts jobs")) == ["northwind-bank"]
    assert ids(matcher.match("$AAPL and $meta rally")) == ["$AAPL", "meta"]
    assert ids(matcher.match("平安银行发布业绩预告，北风银行下跌")) == ["northwind-bank", "pingan-bank"]


def test_latin_names_need_word_boundaries(matcher: EntityMatcher) -> None:
    assert matcher.match("Precious metals rally") == []
    assert matcher.match("Metaverse hype fades") == []
    assert ids(matcher.match("Meta's new glasses")) == ["meta"]


def test_producer_entities_are_kept(matcher: EntityMatcher) -> None:
    given = [{"id": "northwind-bank", "name": "Northwind (from producer)"}, {"id": "acme"}]
    entities = matcher.enrich("Northwind Bank and Meta", given)
    assert ids(entities) == ["acme", "meta", "northwind-bank"]
    assert entities[0]["name"] == "Northwind (from producer)"


def test_csv_watchlist_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "watchlist.csv"
    path.write_text("id,name,tickers,aliases\nhelios,Helios Energy,HEL|HLE,Helios\n", encoding="utf-8")
    assert ids(EntityMatcher(load_watchlist(path)).match("$HLE up; Helios wins")) == ["helios"]
    path.write_text("id,name\nhelios,Helios\nhelios,Helios again\n", encoding="utf-8")
    with pytest.raises(WatchlistError, match=r"entry 2.*twice"):
        load_watchlist(path)
