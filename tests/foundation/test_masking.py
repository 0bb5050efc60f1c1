"""Masking personal data: 1,000 generated texts with real-format data and look-alikes, scored."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from foundation.masking import _MAYBE_PERSONAL, find_personal_data, luhn_valid, mask, resident_id_valid

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


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


# Digits, every separator the rules allow, and what borders a match: the rules' own alphabet.
PHONE_LIKE = st.text(st.sampled_from("0123456789 ()+-.@Xx_aZ手,"), max_size=40)


@settings(max_examples=3000, deadline=None)
@given(PHONE_LIKE)
def test_the_quick_scan_never_rules_out_a_text_a_rule_would_mask(text: str) -> None:
    if not _MAYBE_PERSONAL.search(text):
        assert find_personal_data(text) == []


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["+86 139", "1234 5678", "(212) 555-0199", "010-", "x@y.io", " ", "7"]), max_size=8
    )
)
def test_the_quick_scan_on_glued_pieces_of_real_formats(pieces: list[str]) -> None:
    text = "".join(pieces)
    if not _MAYBE_PERSONAL.search(text):
        assert find_personal_data(text) == []


def test_the_quick_scan_lets_dates_prices_and_short_links_through_unscanned() -> None:
    assert not _MAYBE_PERSONAL.search(
        "Q3 2026 (Nov 29): EPS $1.23 vs 1.10 on $1,234.5m, see https://t.co/G9Zdi1boy5"
    )
    assert _MAYBE_PERSONAL.search("call 212-555-0199")
