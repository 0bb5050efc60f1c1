"""Labelled files for `finsentry entities eval`, built from the data sets in ../shared/data.

SemEval-2017 task 5 and FiQA 2018 task 1 headlines each name the company they are about (their target):
a row per distinct headline, labelled with its targets' ids in data/watchlist_semeval_fiqa.yaml. They
name only their targets, not every company in the text, so they measure recall only. The texts are
read from ../shared/data and never written into the repository:

    python -m tests.inference.entity_data /tmp/semeval_fiqa_targets.jsonl
    finsentry entities eval --file /tmp/semeval_fiqa_targets.jsonl \
        --watchlist tests/inference/data/watchlist_semeval_fiqa.yaml
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from inference.entities import Company, load_watchlist

DATA = Path(__file__).parent / "data"
SEMEVAL_FIQA_WATCHLIST = DATA / "watchlist_semeval_fiqa.yaml"
LARGE_CAPS_WATCHLIST = DATA / "watchlist_large_caps.yaml"
SHARED = Path(__file__).resolve().parents[3] / "shared"
HAND_LABELLED = SHARED / "labels" / "entities_headlines.jsonl"

# Targets misspelt in the data sets, or written there in a form the watchlist does not list; None: the
# target is not a company (an index, a place, a drug, a person), and is left out.
TARGET_FIXES: dict[str, str | None] = {
    "AB InBrev": "AB InBev",
    "Aberdeen Asset Managment": "Aberdeen Asset Management",
    "Brunzl": "Bunzl",
    "Coca-Cola Companp": "Coca-Cola",
    "Deutsche BÃ¶rse": "Deutsche Boerse",
    "Frensillo Production": "Fresnillo",
    "Haris & Hoole": "Harris & Hoole",
    "Morrissons": "Morrisons",
    "Perssimon": "Persimmon",
    "Rangold": "Randgold",
    "Rival National Grid plc": "National Grid",
    "Shoeders": "Schroders",
    "Tailor Wimpey": "Taylor Wimpey",
    "Uinilever": "Unilever",
    "WWP": "WPP",
    "The Coca-Cola Company": "The Coca-Cola Company",
    "Intercontinental Exchange": "Intercontinental Exchange",
    **dict.fromkeys(["MOVANTIK", "Movantik", "JV Partner", "Mid Wales", "Shropshire", "Yorkshire"], None),
    **dict.fromkeys(["Sensex", "Nikkei", "MediaCityUK", "Lemann", "Pure Food"], None),
}
SUFFIXES = (" Group plc", " Group Plc", " Group PLC", " plc", " PLC", " Plc", " Inc.", " Corp.")


def company_index(companies: list[Company]) -> dict[str, str]:
    """Casefolded name or alias -> company id (names first, so a name never loses to another's alias)."""
    index: dict[str, str] = {}
    for company in companies:
        index.setdefault(company.name.casefold(), company.id)
    for company in companies:
        for alias in company.aliases:
            index.setdefault(alias.casefold(), company.id)
    return index


def target_id(target: str, index: dict[str, str]) -> str | None:
    target = TARGET_FIXES.get(target, target)  # type: ignore[assignment]
    if target is None:
        return None
    for form in (target, *(target.removesuffix(s) for s in SUFFIXES if target.endswith(s))):
        if form.casefold() in index:
            return index[form.casefold()]
    raise KeyError(f"target {target!r} is not in the watchlist")


def semeval_fiqa_rows(shared_data: Path, watchlist: Path = SEMEVAL_FIQA_WATCHLIST) -> list[dict]:
    """{"text", "companies"} per distinct headline, in file order; targets that are no company left out."""
    index = company_index(load_watchlist(watchlist))
    pairs: list[tuple[str, str]] = []
    semeval = shared_data / "semeval2017_task5"
    for name in ("Headline_Trainingdata.json", "Headlines_Testdata_withscores.json"):
        pairs += [(row["title"], row["company"]) for row in json.loads((semeval / name).read_text("utf-8"))]
    fiqa = json.loads((shared_data / "fiqa2018_task1" / "task1_headline_ABSA_train.json").read_text("utf-8"))
    pairs += [(row["sentence"], info["target"]) for row in fiqa.values() for info in row["info"]]
    by_text: dict[str, set[str]] = {}
    for text, target in pairs:
        found = target_id(target, index)
        if found is not None:
            by_text.setdefault(" ".join(text.split()), set()).add(found)
    return [{"text": text, "companies": sorted(ids)} for text, ids in by_text.items()]


if __name__ == "__main__":
    out = Path(sys.argv[1])
    rows = semeval_fiqa_rows(SHARED / "data")
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    print(f"{len(rows)} headlines, {len({c for r in rows for c in r['companies']})} companies in {out}")
