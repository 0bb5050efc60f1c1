"""Masking personal data: 1,000 generated texts with real-format data and look-alikes, scored; property
tests with every format built from its own rules (check digits, birth dates, mod-97), in every rendering."""

from __future__ import annotations

import random
import re
import string
import unicodedata
from collections.abc import Callable
from datetime import date
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from foundation.masking import (
    _MAYBE_PERSONAL,
    _fold,
    find_personal_data,
    iban_valid,
    luhn_valid,
    mask,
    mask_source,
    mask_url,
    resident_id_valid,
)

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
DIGITS = "0123456789"


def resident_id(rng: random.Random, valid: bool = True) -> str:
    body = (
        rng.choice(["110105", "310104", "440305", "510107"])
        + f"{rng.randint(1950, 2005)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        + f"{rng.randint(0, 999):03d}"
    )
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True)) % 11]
    if not valid:
        check = rng.choice([c for c in "0123456789X" if c != check])
    return body + check


def card(rng: random.Random, valid: bool = True) -> str:
    digits = [rng.choice("45")] + [str(rng.randint(0, 9)) for _ in range(14)]
    for last in "0123456789":
        if luhn_valid("".join(digits) + last) == valid:
            number = "".join(digits) + last
            break
    style = rng.choice(["plain", "spaces", "hyphens"])
    if style == "plain":
        return number
    sep = " " if style == "spaces" else "-"
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def personal(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(["email", "mobile", "landline", "intl", "nanp", "id", "card"])
    if kind == "email":
        local = rng.choice(["li.wei", "j.smith", "trader_88", "ir+news", "zhang.san"])
        value = (
            f"{local}{rng.randint(1, 999)}@{rng.choice(['example.com', 'corp.cn', 'bank.co.uk', 'qq.com'])}"
        )
    elif kind == "mobile":
        number = f"1{rng.choice('3456789')}{rng.randint(0, 999_999_999):09d}"
        value = rng.choice(["", "+86 ", "+86-", "0086"]) + number
    elif kind == "landline":
        value = rng.choice([f"010-{rng.randint(10**7, 10**8 - 1)}", f"0755-{rng.randint(10**6, 10**7 - 1)}"])
    elif kind == "intl":
        value = rng.choice(
            [
                f"+44 20 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}",
                f"+1 ({rng.randint(200, 999)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
                f"+49 30 {rng.randint(1_000_000, 9_999_999)}",
                f"+852 {rng.randint(5000, 9999)} {rng.randint(1000, 9999)}",
            ]
        )
    elif kind == "nanp":
        value = rng.choice(
            [
                f"({rng.randint(200, 999)}) {rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
                f"{rng.randint(200, 999)}-{rng.randint(200, 999)}-{rng.randint(1000, 9999)}",
            ]
        )
    elif kind == "id":
        value = resident_id(rng)
    else:
        value = card(rng)
    return kind, value


def look_alike(rng: random.Random) -> tuple[str, str]:
    kind = rng.choice(
        ["bad_id", "bad_card", "date", "price", "ticker", "order", "not_mobile", "percent", "time", "big"]
    )
    value = {
        "bad_id": lambda: resident_id(rng, valid=False),
        "bad_card": lambda: card(rng, valid=False),
        "date": lambda: rng.choice(["2026-11-29", "2026/11/29", "2026年11月29日", "29.11.2026"]),
        "price": lambda: rng.choice(
            [
                f"${rng.randint(1, 999)},{rng.randint(100, 999)}.{rng.randint(10, 99)}",
                f"¥{rng.randint(1, 99)},{rng.randint(100, 999)},{rng.randint(100, 999)}",
            ]
        ),
        "ticker": lambda: rng.choice(["600519.SH", "000001.SZ", "0700.HK", "$AAPL", "NVDA"]),
        "order": lambda: f"ORD-{rng.randint(20200101, 20261231)}-{rng.randint(0, 99999):05d}",
        "not_mobile": lambda: f"1{rng.choice('012')}{rng.randint(0, 999_999_999):09d}",
        "percent": lambda: f"{rng.randint(1, 99)}.{rng.randint(0, 9)}%",
        "time": lambda: f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
        "big": lambda: f"{rng.randint(1, 999)},{rng.randint(100, 999)},{rng.randint(100, 999)}",
    }[kind]()
    return kind, value


TEMPLATES = (
    "Investor relations: contact {} about the Q3 results, revenue {} on {}.",
    "{} 股东大会通知，联系人电话 {}，报名截止 {}。",
    "Leaked memo lists {} and {} next to the {} filing.",
    "客户投诉：账户 {} 被冻结，客服 {} 未回复，时间 {}",
    "Analyst {} says the stock at {} is cheap; see {}.",
)


def generated_texts(n: int, seed: int = 7) -> list[tuple[str, list[tuple[str, str]], list[tuple[str, str]]]]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        slots = [personal(rng) if rng.random() < 0.5 else look_alike(rng) for _ in range(3)]
        text = rng.choice(TEMPLATES).format(*(value for _, value in slots))
        real = [s for s in slots if s[0] in ("email", "mobile", "landline", "intl", "nanp", "id", "card")]
        texts.append((text, real, [s for s in slots if s not in real]))
    return texts


def test_masking_precision_and_recall_on_1000_generated_texts() -> None:
    true_pos = false_neg = false_pos = true_neg = 0
    misses: list[str] = []
    for text, real, fakes in generated_texts(1_000):
        masked = mask(text)
        for kind, value in real:
            if value in masked:
                false_neg += 1
                misses.append(f"missed {kind} {value!r} in {text!r}")
            else:
                true_pos += 1
        for kind, value in fakes:
            if value in masked:
                true_neg += 1
            else:
                false_pos += 1
                misses.append(f"masked a {kind} look-alike {value!r} in {text!r}")
    precision = true_pos / (true_pos + false_pos)
    recall = true_pos / (true_pos + false_neg)
    print(
        f"masking on 1,000 texts: {true_pos + false_neg} personal items, {true_neg + false_pos} look-alikes;"
        f" precision {precision:.4f}, recall {recall:.4f}"
    )
    assert true_pos > 1_000 and true_neg > 1_000, "both kinds were generated in numbers"
    assert recall == 1.0, misses[:10]
    assert precision >= 0.995, misses[:10]


def test_each_rule_on_its_own() -> None:
    assert mask("mail li.wei@example.com now") == "mail l***@example.com now"
    assert mask("手机13812345678，座机010-12345678") == "手机138****5678，座机010-****5678"
    assert mask("+86 13912345678") == "+86 139****5678"
    assert mask("call +44 20 7946 0958") == "call +44 ** **** 0958"
    assert mask("(212) 555-0199") == "(***) ***-0199"
    assert mask("身份证11010519491231002X") == "身份证110***********002X"
    assert mask("card 4111 1111 1111 1111.") == "card **** **** **** 1111."
    assert (
        mask("no personal data here: 2026-11-29, $1,234.56") == "no personal data here: 2026-11-29, $1,234.56"
    )


def test_checksums_decide() -> None:
    assert resident_id_valid("11010519491231002X")
    assert not resident_id_valid("110105194912310021"), "wrong check character"
    assert not resident_id_valid("110105194902300028"), "no 30 February"
    assert mask("4111111111111112") == "4111111111111112", "not Luhn-valid"
    assert [kind for _, _, kind, _ in find_personal_data("4111111111111111 x@y.io")] == ["card", "email"]


def scan_rules_out(text: str) -> bool:
    return not _MAYBE_PERSONAL.search(_fold(text)[0])


# Digits, every separator the rules allow, and what borders a match: the rules' own alphabet, in ASCII,
# full width and with the characters the fold skips or turns into separators.
PHONE_LIKE = st.text(
    st.sampled_from("0123456789 ()+-.@Xx_aZ手,０１３８９　．－＋＠（）\u200b\u00a0\u2013。GBDEgb"),
    max_size=40,
)


@settings(max_examples=3000, deadline=None)
@given(PHONE_LIKE)
def test_the_quick_scan_never_rules_out_a_text_a_rule_would_mask(text: str) -> None:
    if scan_rules_out(text):
        assert find_personal_data(text) == []


@settings(max_examples=600, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "+86 139",
                "1234 5678",
                "(212) 555-0199",
                "010-",
                "x@y.io",
                " ",
                "7",
                "１３８",
                "　１２３４",
                "＠例子.公司",
                "GB82 WEST",
                "de89",
                " 3704 0044",
                "0532013000",
                "\u200b",
                "．",
                "call ",
                "2125550199",
                "110101 1990",
                " 0307 123X",
                "+44",
                " (20) ",
                "(79)",
                "46",
                "1",
            ]
        ),
        max_size=8,
    )
)
def test_the_quick_scan_on_glued_pieces_of_real_formats(pieces: list[str]) -> None:
    text = "".join(pieces)
    if scan_rules_out(text):
        assert find_personal_data(text) == []


@settings(max_examples=600, deadline=None)
@given(
    st.text(DIGITS, min_size=1, max_size=3),
    st.lists(
        st.tuples(
            st.sampled_from(["", " ", "-", "."]), st.booleans(), st.text(DIGITS, min_size=1, max_size=4)
        ),
        min_size=2,
        max_size=5,
    ),
)
def test_the_quick_scan_on_the_shortest_phones_in_every_grouping(
    code: str, groups: list[tuple[str, bool, str]]
) -> None:
    """Eight digits, the fewest a phone has, and up to three characters between two of them: (20) (79)."""
    text = "+" + code + "".join(f"{sep}({group})" if paren else sep + group for sep, paren, group in groups)
    if scan_rules_out(text):
        assert find_personal_data(text) == []


def test_the_quick_scan_lets_dates_prices_and_short_links_through_unscanned() -> None:
    assert scan_rules_out("Q3 2026 (Nov 29): EPS $1.23 vs 1.10 on $1,234.5m, see https://t.co/G9Zdi1boy5")
    assert scan_rules_out("FY24 earnings — “beat” 🚀 and DE12 up 3% on 03/15")
    assert not scan_rules_out("call 212-555-0199")
    assert not scan_rules_out("手机１３８　１２３４　５６７８")
    assert not scan_rules_out("iban gb82west12345698765432")
    assert not scan_rules_out("GB39WEST12AB34CD56EF78"), "an IBAN with no seven digits in a row"
    assert not scan_rules_out("+1 (212) (555) (0199)"), "three characters between digits: the most allowed"
    assert mask("+1 (212) (555) (0199)") == "+1 (***) (***) (0199)"
    assert mask("IBAN GB39 WEST 12AB 34CD 56EF 78") == "IBAN GB** **** **** **** **EF 78"


# --- every format built from its own rules ------------------------------------------------------------------


def luhn_digit(body: str) -> str:
    """The digit that makes body + digit pass the Luhn check."""
    total = 0
    for i, char in enumerate(reversed(body)):
        d = int(char) * (1 if i % 2 else 2)
        total += d - 9 if d > 9 else d
    return str(-total % 10)


def id_check(body: str) -> str:
    """ISO 7064 MOD 11-2, as GB 11643 uses it."""
    return "10X98765432"[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS, strict=True)) % 11]


IBAN_LENGTHS = {"BE": 16, "CH": 21, "DE": 22, "ES": 24, "FR": 27, "GB": 22, "IT": 27, "LC": 32, "MT": 31}
IBAN_LENGTHS |= {"NL": 18, "NO": 15, "PL": 28, "SA": 24, "AE": 23, "RU": 33}


def iban_check(country: str, bban: str) -> str:
    """ISO 7064 mod 97-10: letters count as 10-35, the country and 00 go to the end."""
    return f"{98 - int(''.join(str(int(c, 36)) for c in bban + country + '00')) % 97:02d}"


FULL_WIDTH = {c: chr(ord(c) + 0xFEE0) for c in string.digits + string.ascii_letters + "@.-+()"} | {
    " ": "\u3000"
}
SEPARATOR = st.sampled_from([" ", "-", ".", ""])


def digits(n: int) -> st.SearchStrategy[str]:
    return st.text(DIGITS, min_size=n, max_size=n)


def grouped(chars: str, sizes: tuple[int, ...], sep: str) -> str:
    out, at = [], 0
    for size in sizes:
        out.append(chars[at : at + size])
        at += size
    return sep.join(out)


@st.composite
def rendered(draw: st.DrawFn, text: str) -> str:
    """ASCII, full width, a mix of both, or with zero-width spaces between the characters."""
    style = draw(st.sampled_from(["ascii", "full", "mixed", "zero-width"]))
    if style == "full":
        return "".join(FULL_WIDTH.get(c, c) for c in text)
    if style == "mixed":
        flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
        return "".join(FULL_WIDTH.get(c, c) if flip else c for c, flip in zip(text, flips, strict=True))
    if style == "zero-width":
        gaps = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
        return "".join(c + ("\u200b" if gap else "") for c, gap in zip(text, gaps, strict=True))
    return text


@st.composite
def cards(draw: st.DrawFn, valid: bool = True) -> tuple[str, str]:
    """(the digits, as written): 15 digits in 4-6-5, 16 in 4-4-4-4, 19 in 4-4-4-4-3, or whole."""
    length, sizes = draw(st.sampled_from([(15, (4, 6, 5)), (16, (4, 4, 4, 4)), (19, (4, 4, 4, 4, 3))]))
    body = draw(st.sampled_from("23456")) + draw(digits(length - 2))
    check = luhn_digit(body)
    if not valid:
        check = draw(st.sampled_from([d for d in DIGITS if d != check]))
    number, sep = body + check, draw(SEPARATOR)
    if not valid and length == 19 and sep:  # a valid 4-4-4-4 and three more digits is a card and its CVV
        assume(luhn_digit(number[:15]) != number[15])
    return number, grouped(number, sizes, sep)


@st.composite
def resident_ids(draw: st.DrawFn, valid: bool = True) -> tuple[str, str]:
    """A region code, a real birth date, three digits and the check character; whole, 6-8-4 or 6-4-4-4."""
    born = draw(st.dates(date(1900, 1, 1), date(2099, 12, 31)))
    body = draw(st.sampled_from("12345678")) + draw(digits(5)) + born.strftime("%Y%m%d") + draw(digits(3))
    check = id_check(body)
    if not valid:
        check = draw(st.sampled_from([c for c in "0123456789X" if c != check]))
    if check == "X" and draw(st.booleans()):
        check = "x"
    number = body + check
    sizes = draw(st.sampled_from([(18,), (6, 8, 4), (6, 4, 4, 4)]))
    return number, grouped(number, sizes, draw(st.sampled_from([" ", "-", "."])))


@st.composite
def ibans(draw: st.DrawFn, valid: bool = True) -> tuple[str, str]:
    """A country, a BBAN of its length and the mod-97 check digits; whole or in groups of 4, any case."""
    country = draw(st.sampled_from(sorted(IBAN_LENGTHS)))
    bban = draw(st.text(DIGITS + string.ascii_uppercase, min_size=IBAN_LENGTHS[country] - 4, max_size=34))
    bban = bban[: IBAN_LENGTHS[country] - 4]
    check = iban_check(country, bban)
    if not valid:
        check = draw(st.sampled_from([f"{i:02d}" for i in range(100) if i % 97 != int(check) % 97]))
    iban = country + check + bban
    sep = draw(st.sampled_from(["", " ", " ", "-"]))
    text = sep.join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban, text.lower() if draw(st.booleans()) else text


@st.composite
def mobiles(draw: st.DrawFn) -> tuple[str, str]:
    """1, a second digit 3-9 and nine more; whole or 3-4-4, with or without the country code."""
    number = "1" + draw(st.sampled_from("3456789")) + draw(digits(9))
    sep = draw(SEPARATOR)
    prefix = draw(st.sampled_from(["", "+86 ", "+86-", "+86", "0086 ", "0086-", "0086"]))
    return number, prefix + grouped(number, (3, 4, 4), sep)


@st.composite
def nanp_phones(draw: st.DrawFn) -> tuple[str, str]:
    """Area code and exchange starting 2-9 and a 4-digit line, in the ways Americans write them."""
    area = draw(st.sampled_from("23456789")) + draw(digits(2))
    exchange = draw(st.sampled_from("23456789")) + draw(digits(2))
    line = draw(digits(4))
    form = draw(
        st.sampled_from(
            [
                "{a} {e} {l}",
                "{a}-{e}-{l}",
                "{a}.{e}.{l}",
                "({a}) {e}-{l}",
                "({a}) {e} {l}",
                "({a}){e}-{l}",
                "+1 {a} {e} {l}",
                "+1-{a}-{e}-{l}",
                "+1.{a}.{e}.{l}",
                "+1 ({a}) {e}-{l}",
                "1-{a}-{e}-{l}",
            ]
        )
    )
    return area + exchange + line, form.format(a=area, e=exchange, l=line)


@st.composite
def international_phones(draw: st.DrawFn) -> tuple[str, str]:
    """+ a country code, an area code and a number in groups: +44 20 7946 0958."""
    code = draw(st.sampled_from(["44", "49", "33", "852", "81", "61", "65", "971"]))
    area = draw(st.sampled_from("123456789")) + draw(digits(draw(st.integers(0, 2))))
    middle = draw(digits(draw(st.integers(3, 4))))
    line = draw(digits(4))
    sep = draw(st.sampled_from([" ", "-", "."]))
    return area + middle + line, f"+{code}{sep}{area}{sep}{middle}{sep}{line}"


@st.composite
def emails(draw: st.DrawFn) -> tuple[str, str]:
    """(local part, address): an ASCII or a Chinese local part, an ASCII or a Chinese domain, @ or ＠."""
    local = draw(
        st.one_of(
            st.from_regex(r"[a-z][a-z0-9]{1,7}(?:[._+][a-z0-9]{1,6})?", fullmatch=True),
            st.text("张三李四王五赵六", min_size=2, max_size=3),
        )
    )
    domain = draw(st.sampled_from(["example.com", "corp.cn", "bank.co.uk", "qq.com", "例子.公司"]))
    return local, local + draw(st.sampled_from(["@", "＠"])) + domain


# What surrounds an item: a prefix ending and a suffix starting with something that is not an ASCII letter
# or digit (a letter or digit against a number makes it part of a longer code), Chinese and English.
FILLER = st.text(st.sampled_from("abc xyz 股价上涨，公司公告。Q rally"), max_size=20)
SPACED = [
    "客户账号：",
    "card no. ",
    "请转账至 ",
    "(",
    "邮箱 ",
    "见 ",
    "Acme IR: ",
]  # ending in a space or sign
PREFIXES = [*SPACED, "身份证号码", "账户", "Call ", "联系电话", "IR contact: "]  # some phone words among them
NO_PHONE_WORD = [*SPACED, "身份证号码", "账户"]
SUFFIXES = [" today", ".", "。", "，谢谢", ")", " 明天到期", "!", "；", " 或 ", ", thanks"]


@st.composite
def in_text(draw: st.DrawFn, item: str, prefixes: list[str] = PREFIXES) -> tuple[str, int]:
    """(the text, where the item starts in it)."""
    before = draw(FILLER) + draw(st.sampled_from(prefixes))
    return before + item + draw(st.sampled_from(SUFFIXES)) + draw(FILLER), len(before)


def seen(text: str) -> str:
    """What a reader sees: full width as ASCII, no zero-width spaces."""
    return unicodedata.normalize("NFKC", text).replace("\u200b", "")


def digits_of(text: str) -> str:
    return re.sub(r"\D", "", seen(text))


def starred(text: str, hidden: Callable[[int, int], bool], chars: str = DIGITS) -> str:
    """The table's masked form: `*` for the i-th of the n `chars` where hidden(i, n)."""
    n, i, out = sum(c in chars for c in text), 0, []
    for char in text:
        if char in chars:
            out.append("*" if hidden(i, n) else char)
            i += 1
        else:
            out.append(char)
    return "".join(out)


def masked_item(text: str, start: int, item: str) -> str:
    """The item as mask() leaves it; everything around it must be unchanged."""
    masked = mask(text)
    end = start + len(item)
    assert (masked[:start], masked[len(masked) - len(text) + end :]) == (text[:start], text[end:]), masked
    return masked[start : len(masked) - len(text) + end]


ALNUM = DIGITS + string.ascii_letters


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_a_card_number_keeps_only_its_last_four(data: st.DataObject) -> None:
    number, written = data.draw(cards())
    item = data.draw(rendered(written))
    text, start = data.draw(in_text(item))
    shown = masked_item(text, start, item)
    assert number not in digits_of(mask(text))
    assert seen(shown) == starred(seen(item), lambda i, n: i < n - 4), (text, mask(text))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_a_resident_id_keeps_its_first_three_and_last_four(data: st.DataObject) -> None:
    number, written = data.draw(resident_ids())
    item = data.draw(rendered(written))
    text, start = data.draw(in_text(item))
    shown = masked_item(text, start, item)
    assert number[:17] not in digits_of(mask(text))
    assert seen(shown) == starred(seen(item), lambda i, n: 3 <= i < 14, ALNUM), (text, mask(text))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_an_iban_keeps_its_country_and_last_four(data: st.DataObject) -> None:
    iban, written = data.draw(ibans())
    assert iban_valid(iban)
    item = data.draw(rendered(written))
    text, start = data.draw(in_text(item))
    shown = masked_item(text, start, item)
    assert iban[4:] not in re.sub(r"[^0-9A-Z]", "", seen(mask(text)).upper())
    assert seen(shown) == starred(seen(item), lambda i, n: 2 <= i < n - 4, ALNUM), (text, mask(text))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_a_mainland_mobile_keeps_its_first_three_and_last_four(data: st.DataObject) -> None:
    number, written = data.draw(mobiles())
    item = data.draw(rendered(written))
    text, start = data.draw(in_text(item))
    shown = masked_item(text, start, item)
    assert number not in digits_of(mask(text))
    # the number is the last 11 digits, after the country code: its 4th to 7th go
    assert seen(shown) == starred(seen(item), lambda i, n: n - 8 <= i < n - 4), (text, mask(text))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_a_phone_number_keeps_its_last_four(data: st.DataObject) -> None:
    number, written = data.draw(st.one_of(nanp_phones(), international_phones()))
    item = data.draw(rendered(written))
    text, start = data.draw(in_text(item))
    shown = seen(masked_item(text, start, item))
    assert number not in digits_of(mask(text))
    assert re.sub(r"[^0-9*]", "", shown)[-7:-4] == "***", "the exchange (or the number's middle) is hidden"
    assert shown.endswith(number[-4:]), (text, mask(text))


PHONE_WORDS = [
    "call ",
    "Call us at ",
    "phone: ",
    "Tel. ",
    "cell ",
    "WhatsApp ",
    "电话：",
    "手机号 ",
    "联系",
    "热线 ",
]
OTHER_WORDS = ["revenue ", "order ", "营收 ", "shares ", "订单号", "ID ", "volume: ", "成交额"]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_bare_ten_digit_number_is_a_phone_only_after_a_phone_word(data: st.DataObject) -> None:
    number, _ = data.draw(nanp_phones())
    item = data.draw(st.sampled_from(["", "1"])) + number
    word = data.draw(st.sampled_from(PHONE_WORDS))
    text, _ = data.draw(in_text(data.draw(rendered(word + item))))
    assert number not in digits_of(mask(text)) and digits_of(mask(text)).endswith(number[-4:]), mask(text)
    other = data.draw(in_text(data.draw(st.sampled_from(OTHER_WORDS)) + number, NO_PHONE_WORD))[0]
    assert mask(other) == other


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_an_email_address_keeps_its_first_character_and_domain(data: st.DataObject) -> None:
    local, written = data.draw(emails())
    item = data.draw(rendered(written)) if local.isascii() else written
    text, _ = data.draw(in_text(item, PREFIXES if local.isascii() else SPACED))  # 联系张三@: 联系 is in it
    masked = seen(mask(text))
    domain = seen(written).split("@")[1]
    assert local + "@" not in masked and f"{local[0]}***@{domain}" in masked, (text, masked)


@st.composite
def near_misses(draw: st.DrawFn) -> str:
    kind = draw(
        st.sampled_from(["card", "id", "iban", "date", "price", "version", "ticker", "order", "bare"])
    )
    if kind == "card":
        return draw(rendered(draw(cards(valid=False))[1]))
    if kind == "id":
        return draw(rendered(draw(resident_ids(valid=False))[1]))
    if kind == "iban":
        return draw(rendered(draw(ibans(valid=False))[1]))
    if kind == "date":
        day = draw(st.dates(date(1990, 1, 1), date(2040, 12, 31)))
        form = draw(
            st.sampled_from(["%Y-%m-%d", "%Y.%m.%d", "%Y/%m/%d", "%Y年%m月%d日", "%d.%m.%Y", "%Y%m%d"])
        )
        return draw(rendered(day.strftime(form)))
    if kind == "price":
        big, cents, small = draw(st.integers(1, 10**10)), draw(st.integers(0, 99)), draw(st.integers(1, 999))
        return draw(
            st.sampled_from(
                [
                    f"${big:,}.{cents:02d}",
                    f"{big:,}.{cents:02d}",
                    f"${small}.{cents % 10}bn",
                    f"¥{small}.5亿",
                    f"+{small}.{cents}%",
                    f"-{big:,}",
                    f"{big / 100:.2f}",
                ]
            )
        )
    if kind == "version":
        a, b, c, d = (draw(st.integers(0, top)) for top in (20, 20, 99999, 9999))
        return draw(
            st.sampled_from([f"v{a}.{b}.{c}", f"{a}.{b}.{c}.{d}", f"{2000 + a}.{b:02d}.{c % 100}.{d}"])
        )
    if kind == "ticker":
        return draw(
            st.sampled_from(["600519.SH", "000001.SZ", "0700.HK", "$AAPL", "NVDA", "BRK.B", "9988.HK"])
        )
    if kind == "order":
        n = draw(st.integers(0, 99999))
        return f"ORD-{draw(st.dates()).strftime('%Y%m%d')}-{n:05d}"
    return draw(st.sampled_from(OTHER_WORDS)) + draw(nanp_phones())[0]  # (1 and 3xx... is a mainland mobile)


@settings(max_examples=1500, deadline=None)
@given(st.data())
def test_near_misses_stay_as_they_are(data: st.DataObject) -> None:
    text, _ = data.draw(in_text(data.draw(near_misses()), NO_PHONE_WORD))
    assert mask(text) == text, find_personal_data(text)


def test_near_misses_by_example() -> None:
    for text in [
        "2024-03-15 and 2024.03.15: revenue 1,234,567.89, a $12.5bn deal",
        "revenue 1234567890, order 2125550199, Unix time 1710460800",
        "v10.0.19041.1234, 3.12.0, build 2024.03.15.1",
        "600519.SH 0700.HK $AAPL ORD-20240315-00042",
        "4111111111111112 and 4111 1111 1111 1112: Luhn fails",
        "110101199003071230 and 110101 19900307 1230: the check character fails",
        "GB00 WEST 1234 5698 7654 32 and DE00370400440532013000: mod 97 fails",
        "0.4111111111111111 is a probability, 13812345678.5 an amount",
        "FY24 Q3 2026 (Nov 29): EPS $1.23 vs 1.10",
    ]:
        assert mask(text) == text, find_personal_data(text)


def test_the_forms_the_issue_names() -> None:
    cases = {
        "138 1234 5678": "138 **** 5678",
        "138-1234-5678": "138-****-5678",
        "138.1234.5678": "138.****.5678",
        "手机１３８１２３４５６７８。": "手机１３８****５６７８。",
        "212 555 0199": "212 *** 0199",
        "212.555.0199": "212.***.0199",
        "+1 212 555 0199": "+1 *** *** 0199",
        "+44 20 7946 0958": "+44 ** **** 0958",
        "+86 138 1234 5678": "+86 138 **** 5678",
        "4111.1111.1111.1111": "****.****.****.1111",
        "4111 1111 1111 1111": "**** **** **** 1111",
        "4111-1111-1111-1111": "****-****-****-1111",
        "４１１１１１１１１１１１１１１１": "************１１１１",
        "11010519491231002X": "110***********002X",
        "110105 19491231 002X": "110*** ******** 002X",
        "110105 1949 1231 002X": "110*** **** **** 002X",
        "１１０１０５１９４９１２３１００２Ｘ": "１１０***********００２Ｘ",
        "GB82 WEST 1234 5698 7654 32": "GB** **** **** **** **54 32",
        "DE89370400440532013000": "DE****************3000",
        "张三＠example.com": "张***@example.com",
        "zhang.san＠example.com": "z***@example.com",
        "联系zhang@example.com获取": "联系z***@example.com获取",
        "call 2125550199": "call ******0199",
        "4111 1111 1111 1111 123": "**** **** **** 1111 123",
        "1381234\u200b5678": "138****\u200b5678",
    }
    assert {text: mask(text) for text in cases} == cases


def test_iban_check() -> None:
    assert iban_valid("GB82WEST12345698765432") and iban_valid("GB82 WEST 1234 5698 7654 32")
    assert iban_valid("DE89370400440532013000") and iban_valid("NO9386011117947")
    assert not iban_valid("GB83WEST12345698765432"), "wrong check digits"
    assert not iban_valid("GB82WEST1234569876543"), "not Great Britain's length"
    assert not iban_valid("XX82WEST12345698765432"), "no such country"


# --- links and sources --------------------------------------------------------------------------------------


def test_mask_url_keeps_the_link_and_masks_its_query() -> None:
    assert (
        mask_url("https://x.com/a?email=john@example.com&phone=13812345678&id=7")
        == "https://x.com/a?email=j***@example.com&phone=138****5678&id=7"
    )
    assert mask_url("https://user:secret@x.com/a/b?x=1#top") == "https://***@x.com/a/b?x=1#top"
    assert (
        mask_url("https://x.com/p?tel=2125550199&n=2125550199")
        == "https://x.com/p?tel=******0199&n=2125550199"
    )
    assert mask_url("https://x.com/p?q=%2B8613812345678") == "https://x.com/p?q=%2B86138****5678"
    assert (
        mask_url("https://x.com/#/c?mail=li.wei%40example.com") == "https://x.com/#/c?mail=l***@example.com"
    )
    assert mask_url("https://x.com/u/john%40example.com/posts") == "https://x.com/u/j***@example.com/posts"
    assert mask_url("mailto:john@example.com") == "mailto:j***@example.com"
    assert mask_url("tel:+44-20-7946-0958") == "tel:+44-**-****-0958"
    for url in [
        "https://twitter.com/x/status/1770000000000000000",  # a status id may look like a card: it stays
        "https://www.reuters.com/markets/2024/03/15/acme-beats-estimates-idUS4111111111111111/",
        "https://finance.sina.com.cn/stock/s/2024-03-15/doc-inamxyz13812345678.shtml?from=wap&cre=tianyi",
        "https://t.co/G9Zdi1boy5",
        "",
    ]:
        assert mask_url(url) == url


def hidden(secret: str, written: str, masked: str) -> bool:
    """No e-mail address's local part before its @, no number's characters in sequence."""
    if "@" in seen(written):
        return f"{secret}@" not in masked
    return secret.upper() not in re.sub(r"[^0-9A-Za-z]", "", masked).upper()


URL_ITEMS = st.one_of(cards(), resident_ids(), ibans(), mobiles(), international_phones(), emails())


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mask_url_masks_every_format_in_a_query_value(data: st.DataObject) -> None:
    secret, written = data.draw(URL_ITEMS)
    name = data.draw(st.sampled_from(["q", "email", "acct", "contact", "u"]))
    value = (
        quote(written, safe="") if data.draw(st.booleans()) else quote(written, safe="@ ").replace(" ", "+")
    )
    url = f"https://news.example.com/2024/03/story.html?id=7&{name}={value}&lang=zh#c{data.draw(digits(3))}"
    masked = mask_url(url)
    kept, parts = urlsplit(masked), urlsplit(url)
    assert (kept.scheme, kept.netloc, kept.path, kept.fragment) == (
        parts.scheme,
        parts.netloc,
        parts.path,
        parts.fragment,
    )
    assert kept.query.startswith(f"id=7&{name}=") and kept.query.endswith("&lang=zh")
    decoded = seen(unquote(kept.query)).replace("+", " ")
    assert hidden(secret, written, decoded), masked


def test_mask_source_masks_a_handle() -> None:
    assert mask_source("weibo:13812345678") == "weibo:138****5678"
    assert mask_source("john.smith@example.com") == "j***@example.com"
    assert mask_source("whatsapp:2125550199") == "whatsapp:******0199"
    assert mask_source("https://x.com/?e=a.b@example.com") == "https://x.com/?e=a***@example.com"
    for source in ["forum", "wire", "reuters", "weibo:财经头条", "twitter:@acme_ir", "rss:feed-2024"]:
        assert mask_source(source) == source


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mask_source_masks_every_format_in_a_handle(data: st.DataObject) -> None:
    secret, written = data.draw(st.one_of(mobiles(), nanp_phones(), international_phones(), emails()))
    source = data.draw(st.sampled_from(["", "weibo:", "wechat/", "tel:", "whatsapp "])) + written
    assert hidden(secret, written, seen(mask_source(source))), mask_source(source)


# --- where the masked texts go, their links and sources go masked too ---------------------------------------


def scored(**fields: object) -> dict[str, object]:
    return {
        "id": "e1",
        "text": "客户 13812345678 投诉",
        "source": "weibo:13812345678",
        "url": "https://x.com/a?email=john@example.com&id=7",
        "published_at": "2026-11-29T09:00:00Z",
        "model_version": "m1",
        "sentiment": {"label": "negative", "probabilities": {"negative": 0.9, "positive": 0.05}},
        "entities": [],
    } | fields


def test_trend_items_and_evidence_carry_masked_links_and_sources() -> None:
    from streams.scoring import trend_item, window_event

    item = trend_item(scored())
    assert (item.text, item.source) == ("客户 138****5678 投诉", "weibo:138****5678")
    assert item.url == "https://x.com/a?email=j***@example.com&id=7"
    evidence = window_event(scored()).evidence
    assert evidence is not None and evidence["url"] == "https://x.com/a?email=j***@example.com&id=7"
    assert trend_item(scored(source=None, url=None)).url is None


def test_the_label_store_and_review_queue_keep_masked_sources(tmp_path: Path) -> None:
    from foundation.db import make_engine, migrate
    from labels.review import Candidate, ReviewQueue
    from labels.store import LabelStore, NewLabel

    engine = make_engine(f"sqlite:///{tmp_path / 'labels.db'}")
    migrate(engine)
    store = LabelStore(engine)
    store.add([NewLabel("Acme beats", "ana", "api", sentiment="positive", source="john.smith@example.com")])
    queue = ReviewQueue(engine, store, max_margin=1.0, rate=1.0)
    queue.offer(
        [
            Candidate(
                "e1",
                "Acme misses",
                {"sentiment": "negative"},
                "sentiment",
                0.01,
                "m1",
                None,
                "weibo:13812345678",
            )
        ]
    )
    from sqlalchemy import text

    with engine.connect() as connection:
        sources = {
            row[0]
            for row in connection.execute(
                text("SELECT source FROM samples UNION SELECT source FROM review_items")
            )
        }
    assert sources == {"j***@example.com", "weibo:138****5678"}
