"""Masking personal data in everything finsentry stores or shows (数据脱敏); the model sees the original.

The rules, in the order they claim a stretch of text (a stretch taken by one is not looked at again):

| kind | recognised | shown as |
|---|---|---|
| China resident ID | 17 digits + digit or X, a real birth date, MOD 11-2 check | `110***********123X` |
| e-mail address | local@domain.tld | `j***@example.com` |
| card number | 13-19 digits, whole or in 4-4-4-4(-3) / 4-6-5 groups, Luhn-valid (*) | `**** **** **** 1111` |
| mainland mobile | 1[3-9] and 9 digits, with or without +86 | `+86 138****5678` |
| mainland landline | 0 + area code, a hyphen, 7-8 digits | `010-****5678` |
| international phone | + country code and 7-14 digits in groups, (area code) | `+44 ** **** 0958` |
| North American phone | (212) 555-0199 or 212-555-0199 | `(***) ***-0199` |

(*) An 18-digit number with a birth date where an ID has one is ID-shaped: it is masked only as an ID,
when its check character holds, not as a card that one in ten such numbers would pass for.

Digits next to a match's ends disqualify it (a longer number is something else), so dates, prices,
tickers, order numbers and numbers with a wrong checksum stay as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

# ASCII letters and digits only: Chinese text writes numbers right against its characters (手机13812345678).
# Nor a hyphen after a letter or digit: ORD-2024... is part of a longer code.
_NOT_DIGIT_BEFORE = r"(?<![0-9A-Za-z_])(?<![0-9A-Za-z_]-)"
_NOT_DIGIT_AFTER = r"(?![0-9A-Za-z_])"

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def resident_id_valid(number: str) -> bool:
    """A mainland-China resident ID: a real birth date and the MOD 11-2 check character."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if not 1900 <= born.year <= 2100:
        return False
    total = sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _keep_last(text: str, keep: int) -> str:
    """Every digit but the last `keep` becomes '*'; separators stay."""
    seen = sum(c.isdigit() for c in text)
    out = []
    for char in text:
        if char.isdigit():
            seen -= 1
            out.append(char if seen < keep else "*")
        else:
            out.append(char)
    return "".join(out)


def _mask_id(match: re.Match[str]) -> str | None:
    number = match.group(0)
    return number[:3] + "*" * 11 + number[14:] if resident_id_valid(number) else None


def _mask_email(match: re.Match[str]) -> str | None:
    return f"{match.group('local')[0]}***@{match.group('domain')}"


def _id_shaped(digits: str) -> bool:
    try:
        return (
            len(digits) == 18 and date(*map(int, (digits[6:10], digits[10:12], digits[12:14]))).year >= 1900
        )
    except ValueError:
        return False


def _mask_card(match: re.Match[str]) -> str | None:
    text = match.group(0)
    digits = re.sub(r"\D", "", text)
    if not 13 <= len(digits) <= 19 or _id_shaped(digits) or not luhn_valid(digits):
        return None
    return _keep_last(text, 4)


def _mask_mobile(match: re.Match[str]) -> str | None:
    number = match.group("number")
    return match.group(0)[: match.start("number") - match.start()] + number[:3] + "****" + number[7:]


def _mask_phone(match: re.Match[str]) -> str | None:
    """Keeps the country or area code (up to the first separator) and the last four digits."""
    text = match.group(0)
    if not 8 <= sum(c.isdigit() for c in text) <= 15:
        return None
    code = re.match(r"\+?\d+(?=[ .-])", text)
    keep = code.end() if code else 0
    return text[:keep] + _keep_last(text[keep:], 4)


_RULES: tuple[tuple[str, re.Pattern[str], Callable[[re.Match[str]], str | None]], ...] = (
    ("resident_id", re.compile(_NOT_DIGIT_BEFORE + r"\d{17}[\dXx]" + _NOT_DIGIT_AFTER), _mask_id),
    (
        "email",
        re.compile(
            r"(?<![\w.%+-])(?P<local>[A-Za-z0-9][A-Za-z0-9._%+-]*)@"
            r"(?P<domain>[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})"
            r"(?![\w-])"
        ),
        _mask_email,
    ),
    (
        "card",
        re.compile(
            _NOT_DIGIT_BEFORE
            + r"(?:\d{13,19}"
            + r"|\d{4}(?P<sep>[ -])\d{4}(?P=sep)\d{4}(?P=sep)\d{1,7}"
            + r"|\d{4}(?P<amex>[ -])\d{6}(?P=amex)\d{4,5})"
            + _NOT_DIGIT_AFTER
        ),
        _mask_card,
    ),
    (
        "mobile",
        re.compile(r"(?<![0-9A-Za-z_+])(?:(?:\+|00)86[ -]?)?(?P<number>1[3-9]\d{9})" + _NOT_DIGIT_AFTER),
        _mask_mobile,
    ),
    ("landline", re.compile(_NOT_DIGIT_BEFORE + r"0\d{2,3}-\d{7,8}" + _NOT_DIGIT_AFTER), _mask_phone),
    (
        "international_phone",
        re.compile(r"(?<![0-9A-Za-z_+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}" + _NOT_DIGIT_AFTER),
        _mask_phone,
    ),
    (
        "nanp_phone",
        re.compile(r"(?<![0-9A-Za-z_(])(?:\(\d{3}\) ?|\d{3}[-.])\d{3}[-.]\d{4}" + _NOT_DIGIT_AFTER),
        _mask_phone,
    ),
)


# Every rule's match holds an @ or at least eight digits with nothing but separators between them (a
# phone's eight are the fewest); seven leave a margin. One C-level scan rules out a text before seven
# patterns look at it: tweets and news nearly all carry some digit (a date, a price, a short link).
_MAYBE_PERSONAL = re.compile(r"@|\d(?:[ ().+-]*\d){6}")


def find_personal_data(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, kind, masked) for every stretch a rule claims, in text order."""
    taken: list[tuple[int, int, str, str]] = []
    for kind, pattern, mask in _RULES:
        for match in pattern.finditer(text):
            start, end = match.span()
            if any(start < t_end and t_start < end for t_start, t_end, _, _ in taken):
                continue
            masked = mask(match)
            if masked is not None:
                taken.append((start, end, kind, masked))
    return sorted(taken)


def mask(text: str) -> str:
    """The text with every piece of personal data masked (unchanged when there is none)."""
    if not _MAYBE_PERSONAL.search(text):
        return text  # most texts leave here
    spans = find_personal_data(text)
    if not spans:
        return text
    out, last = [], 0
    for start, end, _, masked in spans:
        out += [text[last:start], masked]
        last = end
    out.append(text[last:])
    return "".join(out)
