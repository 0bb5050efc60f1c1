"""What counts as the same text: normalisation and shingles, English and Chinese."""

from __future__ import annotations

from stories.text import language, shingles, units


def test_english_units_drop_links_case_cashtags_punctuation_and_wire_tags() -> None:
    text = "UPDATE 2-$AAPL: Apple's shares fall 5.20% (1,000 jobs) https://t.co/Gowb7wv4QM &amp; more"
    assert units(text) == ["aapl", "apple", "shares", "fall", "5.2", "1000", "jobs", "more"]


def test_numbers_are_written_one_way_but_kept() -> None:
    assert units("up 1,000.50 pct") == units("UP 1000.5 percent") == ["up", "1000.5", "percent"]
    assert shingles("EPS beats by $0.06") != shingles("EPS beats by $0.02")


def test_a_copy_with_another_link_and_tag_has_the_same_shingles() -> None:
    first = "Italy's government is on the cusp of collapse https://t.co/unGEJxjoYY"
    assert shingles(first) == shingles("BREAKING: Italy’s government is on the cusp of collapse  t.co/9UIKc8")
    assert shingles(first) == {
        "italy government",
        "government is",
        "is on",
        "on the",
        "the cusp",
        "cusp of",
        "of collapse",
    }


def test_chinese_shingles_are_character_runs_with_latin_words_and_numbers_as_one_unit() -> None:
    assert units("腾讯控股转跌，报444.40港元（ＴＸ）") == [
        *"腾讯控股转跌报",
        "444.4",
        "港",
        "元",
        "tx",  # full-width forms folded, punctuation dropped
    ]
    assert "腾 讯 控 股" in shingles("港股腾讯控股转跌", "zh")
    assert shingles("港股腾讯控股转跌", "zh-CN") == shingles("港股腾讯控股转跌")  # by script when undeclared


def test_language_declared_or_by_script() -> None:
    assert language("平安银行发布业绩预告") == "zh"
    assert language("Apple beats") == "en"
    assert language("Apple beats", "zh-Hant") == "zh"
    assert language("平安银行发布业绩预告", "fr") == "zh"  # neither: the script decides


def test_short_and_empty_texts() -> None:
    assert shingles("$TSLA") == {"tsla"}
    assert shingles("--- !!! ...") == set()
    assert shingles("") == set()
