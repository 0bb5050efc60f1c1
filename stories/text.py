"""Normalised shingles of a text: what two copies of one story share and two stories do not.

Both languages are first folded the same way: NFKC (full-width forms become ASCII), HTML entities
decoded, lower case, links dropped, a possessive `'s` dropped, a wire tag in front (`UPDATE 2-`,
`BREAKING:`, `NEW:` ...) dropped, wire abbreviations spelled out (`pct`, `bln`, `mln`), and every number
written one way (`1,000.50` -> `1000.5`). Numbers are kept, not erased: on the hand-labelled pairs,
erasing them made "X EPS beats by $0.06" and "Y EPS beats by $0.02" look like copies, and cost English
0.12 and Chinese 0.14 of F1 (see `stories/__init__.py`). What is left is split into units: a run of
letters and digits (the `$` of a cashtag and all punctuation fall away), or one CJK character.

English shingles are runs of `WORD_SHINGLE` units (words); Chinese ones runs of `CHAR_SHINGLE` units
(characters, a Latin word or number inside Chinese text counting as one).
"""

from __future__ import annotations

import html
import re
import unicodedata

from foundation.language import base_language, script_language

WORD_SHINGLE = 2
CHAR_SHINGLE = 4

_CJK_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_URL = re.compile(r"(?:https?://|www\.|\bt\.(?:co|cn)/)\S+")
_POSSESSIVE = re.compile(r"['’]s\b")
_WIRE_TAG = re.compile(
    r"^\W*(?:(?:rpt-)?(?:update|corrected|refile)\s*\d*\s*-"
    r"|(?:breaking|new|just in|live|icymi|watch|exclusive)\s*[:-])\s*"
)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# A unit: a number (its decimals kept), one CJK ideograph, or a run of letters and digits that holds none.
_UNITS = re.compile(rf"\d+(?:\.\d+)?|[{_CJK_RANGES}]|[^\W_{_CJK_RANGES}]+")
_ABBREVIATIONS = {"pct": "percent", "bln": "billion", "bn": "billion", "mln": "million", "mn": "million"}


def _number(match: re.Match[str]) -> str:
    number = match.group().replace(",", "")
    if "." in number:
        number = number.rstrip("0").rstrip(".")
    return number


def units(text: str) -> list[str]:
    """The text's words (or CJK characters), normalised: what shingles are made of."""
    text = html.unescape(unicodedata.normalize("NFKC", text)).lower()
    text = _URL.sub(" ", text)
    text = _WIRE_TAG.sub("", _POSSESSIVE.sub("", text))
    text = _NUMBER.sub(_number, text)
    return [_ABBREVIATIONS.get(unit, unit) for unit in _UNITS.findall(text)]


def language(text: str, lang: str | None = None) -> str:
    """`zh` for Chinese (declared, or by script when the declared language is neither), else `en`."""
    declared = base_language(lang)
    if declared in ("zh", "en"):
        return declared
    return script_language(text)


def shingles(text: str, lang: str | None = None) -> set[str]:
    """The set of normalised shingles; a text shorter than one shingle is its units joined, and a text
    without a letter or digit has none."""
    parts = units(text)
    size = CHAR_SHINGLE if language(text, lang) == "zh" else WORD_SHINGLE
    if len(parts) <= size:
        return {" ".join(parts)} if parts else set()
    return {" ".join(parts[i : i + size]) for i in range(len(parts) - size + 1)}
