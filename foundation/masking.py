"""Masking personal data in everything finsentry stores or shows (数据脱敏); the model sees the original.

The rules, in the order they claim a stretch of text (a stretch taken by one is not looked at again):

| kind | recognised | shown as |
|---|---|---|
| IBAN | its country's length, compact or in groups of 4, mod-97 check (1) | `GB** **** **** **** **54 32` |
| China resident ID | 18 characters, whole, 6-8-4 or 6-4-4-4, birth date, MOD 11-2 | `110***********123X` |
| e-mail address | local@domain.tld, the local part in any script (张三@example.com) | `j***@example.com` |
| mainland mobile | 1[3-9] and 9 digits, whole or 3-4-4, with or without +86 / 0086 | `+86 138****5678` |
| card number | 13-19 digits, whole or 4-4-4-4(-3) / 4-6-5, Luhn-valid (2) | `**** **** **** 1111` |
| mainland landline | 0 + area code, a hyphen, 7-8 digits or 3-4, a hyphen, 4 | `010-****5678` |
| international phone | + country code and 7-14 digits in groups, (area code) | `+44 ** **** 0958` |
| North American phone | (212) 555-0199, 212-555-0199, 212.555.0199, 212 555 0199 (3) | `(***) ***-0199` |
| phone after a word | a bare 10-digit North American number after a phone word (4) | `******0199` |

Groups are split by one space, hyphen or dot (a landline's by hyphens, an IBAN's by spaces or hyphens),
the same one throughout a number (not between +86 and the rest). The rules read the text through a
fold of the same meaning: full-width and other compatibility forms (１３８, ＠, ．, －, ＋, Ａ-Ｚ), any
script's decimal digits, every kind of space (U+3000 too), every dash, 。 and middle dots become their
ASCII counterparts, and zero-width, format and combining characters are skipped; `*` then goes into the
original text, so a full-width number stays full-width around its stars.

(1) The length is the SWIFT registry's for the country code; letters may be lower case. An IBAN-shaped
stretch (country code, two digits, that country's length) whose check fails is claimed and left as it
is: its groups of four are not read as a card.
(2) An 18-digit number with a birth date where an ID has one is ID-shaped: it is masked only as an ID,
when its check character holds, not as a card that one in ten such numbers would pass for.
(3) Spaced (212 555 0199) only with area code and exchange starting 2-9, as numbers in a row are common.
(4) A bare 10-digit number (`revenue 1234567890`, `order 2125550199`) is no phone: amounts, ids and
Unix times look like one. Only when it is a valid North American number (area code and exchange
starting 2-9, an optional leading 1) at most 12 non-digits after call, phone, tel, cell, mobile, text,
sms, whatsapp, fax, contact, hotline, 电话, 手机, 联系, 致电 or 热线 is it masked (`call 2125550199`).

Digits next to a match's ends disqualify it (a longer number is something else), and so do ASCII
letters (ORD2024...), except for resident IDs, whose date and check make a chance hit rare; a digit
and a dot before a card or ID number, or a dot and a digit after any number, make it a decimal
(0.4111..., 13812345678.5). So dates (2024-03-15, 2024.03.15), prices and amounts (1,234,567.89,
$12.5bn), tickers, order numbers, version strings and numbers with a wrong checksum stay as they are.

Links and sources (`mask_url`, `mask_source`): a link keeps its scheme, host and path; the names and
values of its query and fragment are masked by the rules above, read percent-decoded (a form's `+` as a
space too), each value as if after its name (`phone=2125550199` is a phone after a word), and a
`user:pass@` part becomes `***@`. In the path only e-mail addresses, resident IDs and IBANs are masked:
article and status ids look like cards and phones. A source handle (`weibo:13812345678`,
`john@example.com`) is masked as text after a phone word; a source that is a link, as a link.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable
from datetime import date
from urllib.parse import quote, unquote, unquote_plus

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

# The SWIFT IBAN registry (release 2024): each country's IBAN length.
_IBAN_LENGTHS = {
    **dict.fromkeys(["NO"], 15),
    **dict.fromkeys(["BE"], 16),
    **dict.fromkeys(["DK", "FI", "FK", "FO", "GL", "NL", "SD"], 18),
    **dict.fromkeys(["MK", "SI"], 19),
    **dict.fromkeys(["AT", "BA", "EE", "KZ", "LT", "LU", "MN", "XK"], 20),
    **dict.fromkeys(["CH", "HR", "LI", "LV"], 21),
    **dict.fromkeys(["BG", "BH", "CR", "DE", "GB", "GE", "IE", "ME", "RS", "VA"], 22),
    **dict.fromkeys(["AE", "GI", "IL", "IQ", "OM", "SO", "TL"], 23),
    **dict.fromkeys(["AD", "CZ", "ES", "MD", "PK", "RO", "SA", "SE", "SK", "TN", "VG"], 24),
    **dict.fromkeys(["LY", "PT", "ST"], 25),
    **dict.fromkeys(["IS", "TR"], 26),
    **dict.fromkeys(["BI", "DJ", "FR", "GR", "IT", "MC", "MR", "SM"], 27),
    **dict.fromkeys(["AL", "AZ", "BY", "CY", "DO", "GT", "HN", "HU", "LB", "NI", "PL", "SV"], 28),
    **dict.fromkeys(["BR", "EG", "PS", "QA", "UA"], 29),
    **dict.fromkeys(["JO", "KW", "MU", "YE"], 30),
    **dict.fromkeys(["MT", "SC"], 31),
    **dict.fromkeys(["LC"], 32),
    **dict.fromkeys(["RU"], 33),
}


def resident_id_valid(number: str) -> bool:
    """A mainland-China resident ID: a real birth date and the MOD 11-2 check character."""
    if len(number) != 18 or not number[:17].isdigit() or not number.isascii():
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


def iban_valid(iban: str) -> bool:
    """ISO 13616: the country's length and the ISO 7064 mod-97 check (spaces are ignored)."""
    iban = iban.replace(" ", "").upper()
    if not (iban.isascii() and iban.isalnum()) or _IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    if not iban[2:4].isdigit():
        return False
    return int("".join(str(int(c, 36)) for c in iban[4:] + iban[:4])) % 97 == 1


# --- the fold: what the rules read instead of the text ---------------------------------------------------

_SKIPPED = "\x00"  # what zero-width, format and combining characters fold to; dropped from the folded text
_DOTS = "\u3002\uff61\u00b7\u30fb\uff65"  # 。 ｡ · ・ ･


def _fold_char(char: str) -> str:
    category = unicodedata.category(char)
    if category in ("Mn", "Me", "Cf"):
        return _SKIPPED
    digit = unicodedata.decimal(char, None)
    if digit is not None:
        return str(digit)
    if char in _DOTS:
        return "."
    if category in ("Zs", "Zl", "Zp"):
        return " "
    if category == "Pd" or char == "\u2212":
        return "-"
    compatible = unicodedata.normalize("NFKC", char)
    return compatible if len(compatible) == 1 and compatible.isascii() else char


class _FoldTable(dict[int, str]):
    """For str.translate: filled as characters are first seen (at most 65,536 kept)."""

    def __missing__(self, code: int) -> str:
        folded = _fold_char(chr(code))
        if len(self) < 65_536:
            self[code] = folded
        return folded


_FOLD = _FoldTable()


def _kept_as_they_are() -> str:
    """A regex class of characters the fold keeps: ASCII but NUL, CJK ideographs, and those of the blocks
    news and tweets write in (Latin, punctuation, currency, symbols, CJK punctuation, emoji) it keeps."""
    ranges = ["\x01-\x7f", "\u3400-\u4dbf", "\u4e00-\u9fff"]
    blocks = ((0x80, 0x250), (0x2000, 0x2C00), (0x3000, 0x3100), (0xFF00, 0xFFF0), (0x1F000, 0x1FB00))
    for low, high in blocks:
        first = None
        for code in range(low, high + 1):
            kept = code < high and _fold_char(chr(code)) == chr(code)
            if kept and first is None:
                first = code
            elif not kept and first is not None:
                ranges.append(f"{re.escape(chr(first))}-{re.escape(chr(code - 1))}")
                first = None
    return "".join(ranges)


# Most texts hold nothing the fold changes (tweets' curly quotes and emoji included): one C-level scan.
_MAY_FOLD = re.compile(f"[^{_kept_as_they_are()}]")


def _fold(text: str) -> tuple[str, list[int] | None]:
    """The text as the rules read it, and for each of its characters the index in `text` (None when
    they are the same: nothing was skipped)."""
    if (text.isascii() and _SKIPPED not in text) or not _MAY_FOLD.search(text):
        return text, None
    folded = text.translate(_FOLD)
    if _SKIPPED not in folded:
        return folded, None
    index = [i for i, char in enumerate(folded) if char != _SKIPPED]
    return folded.replace(_SKIPPED, ""), index


# --- maskers: the masked form of a match in the folded text, None when it is not personal data -------------


def _hide(text: str, hidden: Callable[[int, int], bool], chars: str = "0123456789") -> str:
    """`*` for the i-th of the n `chars` in text where hidden(i, n); everything else stays."""
    n = sum(c in chars for c in text)
    out, i = [], 0
    for char in text:
        if char in chars:
            out.append("*" if hidden(i, n) else char)
            i += 1
        else:
            out.append(char)
    return "".join(out)


def _keep_last(text: str, keep: int) -> str:
    """Every digit but the last `keep` becomes '*'; separators stay."""
    return _hide(text, lambda i, n: i < n - keep)


_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _mask_iban(match: re.Match[str]) -> str | None:
    text = match.group(0)
    if not iban_valid(re.sub(r"[ -]", "", text)):
        return text  # IBAN-shaped: claimed as it is, so no card is read into its groups
    return _hide(text, lambda i, n: 2 <= i < n - 4, _ALNUM)


def _mask_id(match: re.Match[str]) -> str | None:
    text = match.group(0)
    if not resident_id_valid(re.sub(r"[ .-]", "", text)):
        return None
    return _hide(text, lambda i, n: 3 <= i < 14, _ALNUM)


def _mask_email(match: re.Match[str]) -> str | None:
    run = match.group("local")
    local = run
    if not run.isascii() and run[-1].isascii():  # 邮箱john@...: the address starts after the Chinese
        tail = re.search(r"[\x21-\x7e]*\Z", run)
        if tail and tail.group(0)[:1].isalnum():
            local = tail.group(0)
    return f"{run[: len(run) - len(local)]}{local[0]}***@{match.group('domain')}"


def _id_shaped(digits: str) -> bool:
    try:
        return (
            len(digits) == 18 and date(*map(int, (digits[6:10], digits[10:12], digits[12:14]))).year >= 1900
        )
    except ValueError:
        return False


def _card_number(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and not _id_shaped(digits) and luhn_valid(digits)


def _mask_card(match: re.Match[str]) -> str | None:
    text = match.group(0)
    if _card_number(re.sub(r"\D", "", text)):
        return _keep_last(text, 4)
    if match.group("tail"):  # 4-4-4-4 and a short group that is not part of it
        head = text[: match.start("tail") - match.start()]
        if _card_number(re.sub(r"\D", "", head)):
            return _keep_last(head, 4) + match.group("tail")
    return None


def _mask_mobile(match: re.Match[str]) -> str | None:
    cut = match.start("number") - match.start()
    text = match.group(0)
    return text[:cut] + _hide(text[cut:], lambda i, n: 3 <= i < 7)


def _mask_phone(match: re.Match[str]) -> str | None:
    """Keeps the country or area code (up to the first separator) and the last four digits."""
    text = match.group(0)
    if not 8 <= sum(c.isdigit() for c in text) <= 15:
        return None
    code = re.match(r"\+?\d+(?=[ .-])", text)
    keep = code.end() if code else 0
    return text[:keep] + _keep_last(text[keep:], 4)


_PHONE_WORD = re.compile(
    r"(?i)(?:(?<![a-z])(?:call|phone|tel|cell|mobile|text|sms|whatsapp|fax|contact|hotline)|电话|手机|联系|致电|热线)"
    r"[^0-9]{0,12}\Z"
)


def _mask_phone_after_word(match: re.Match[str]) -> str | None:
    if not _PHONE_WORD.search(match.string, max(0, match.start() - 40), match.start()):
        return None
    return _keep_last(match.group(0), 4)


# --- the rules ----------------------------------------------------------------------------------------------

# ASCII letters and digits only: Chinese text writes numbers right against its characters (手机13812345678).
# Nor a hyphen after a letter or digit (ORD-2024... is part of a longer code), nor a digit and a dot (0.4...).
_BEFORE = r"(?<![0-9A-Za-z_])(?<![0-9A-Za-z_]-)(?<![0-9]\.)"
_AFTER = r"(?![0-9A-Za-z_])(?!\.[0-9])"


def _iban_pattern() -> re.Pattern[str]:
    by_length: dict[int, list[str]] = {}
    for country, length in sorted(_IBAN_LENGTHS.items()):
        by_length.setdefault(length, []).append(country)
    branches = []
    for length, countries in sorted(by_length.items()):
        bban = length - 4
        grouped = rf"(?:[ -][A-Z0-9]{{4}}){{{bban // 4}}}" + (
            rf"[ -][A-Z0-9]{{{bban % 4}}}" if bban % 4 else ""
        )
        branches.append(rf"(?:{'|'.join(countries)})[0-9]{{2}}(?:[A-Z0-9]{{{bban}}}|{grouped})")
    return re.compile(
        rf"(?i)(?=[A-Z]{{2}}[0-9]{{2}})(?<![0-9A-Za-z_])(?:{'|'.join(branches)})(?![0-9A-Za-z_])"
    )


_LOCAL = r"\w.!$%'*+^`{|}~-"

Rule = tuple[str, str, re.Pattern[str], Callable[[re.Match[str]], str | None]]

# Each rule: its kind, a character a text must hold for the rule to look at it, the pattern and the masker.
# A pattern starts with a lookahead for its first character: the regex engine then skips the positions
# where it cannot start, three times faster than trying the lookbehinds at every one.
_RULES: tuple[Rule, ...] = (
    ("iban", "", _iban_pattern(), _mask_iban),
    (
        "resident_id",
        "",
        re.compile(
            r"(?=[0-9])(?<![0-9])(?<![0-9][.-])(?:[0-9]{17}"
            r"|[0-9]{6}(?P<sep>[ .-])(?:[0-9]{8}|[0-9]{4}(?P=sep)[0-9]{4})(?P=sep)[0-9]{3})[0-9Xx]"
            r"(?![0-9Xx])(?!\.[0-9])"
        ),
        _mask_id,
    ),
    (
        "email",
        "@",
        re.compile(
            rf"(?<![{_LOCAL}])(?P<local>[{_LOCAL}]+)@(?P<domain>(?:[^\W_](?:[\w-]{{0,61}}[^\W_])?\.)+"
            r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}|[^\W\d_]{2,63}))(?![\w-])"
        ),
        _mask_email,
    ),
    (
        "mobile",
        "",
        re.compile(
            r"(?=[0-9+])(?<![0-9A-Za-z_+])(?:(?:\+|00)86[ .-]?)?"
            r"(?P<number>1[3-9][0-9](?:[0-9]{8}|(?P<sep>[ .-])[0-9]{4}(?P=sep)[0-9]{4}))" + _AFTER
        ),
        _mask_mobile,
    ),
    (
        "card",
        "",
        re.compile(
            r"(?=[0-9])(?<!\+)"
            + _BEFORE
            + r"(?:[0-9]{13,19}"
            + r"|[0-9]{4}(?P<sep>[ .-])[0-9]{4}(?P=sep)[0-9]{4}(?P=sep)"
            + r"(?:[0-9]{4}(?P<tail>(?P=sep)[0-9]{1,3})?|[0-9]{1,7})"
            + r"|[0-9]{4}(?P<amex>[ .-])[0-9]{6}(?P=amex)[0-9]{4,5})"
            + _AFTER
        ),
        _mask_card,
    ),
    (
        "landline",
        "-",
        re.compile(r"(?=0)" + _BEFORE + r"0[0-9]{2,3}-(?:[0-9]{7,8}|[0-9]{3,4}-[0-9]{4})(?!-[0-9])" + _AFTER),
        _mask_phone,
    ),
    (
        "international_phone",
        "+",
        re.compile(r"(?=\+)(?<![0-9A-Za-z_+])\+[0-9]{1,3}(?:[ .-]?\(?[0-9]{1,4}\)?){2,5}" + _AFTER),
        _mask_phone,
    ),
    (
        "nanp_phone",
        "",
        re.compile(
            r"(?=[0-9(])(?<![0-9A-Za-z_])"
            r"(?:\([0-9]{3}\) ?[0-9]{3}[-. ]|[0-9]{3}[-.][0-9]{3}[-.]|[2-9][0-9]{2} [2-9][0-9]{2} )[0-9]{4}"
            + _AFTER
        ),
        _mask_phone,
    ),
    (
        "phone_after_word",
        "",
        re.compile(r"(?=[0-9])(?<![0-9A-Za-z_+])(?:1[ .-]?)?[2-9][0-9]{2}[2-9][0-9]{6}" + _AFTER),
        _mask_phone_after_word,
    ),
)

# Every rule's match, in the folded text, holds an @, or at least eight digits with nothing but separators
# between them, at most three (a phone's eight are the fewest; seven leave a margin), or is an IBAN: two
# letters, two digits and eight letters or digits, compact or in two groups. One C-level scan rules a
# text out before the rules look at it: tweets and news nearly all carry some digit (a date, a price, a
# short link).
_MAYBE_PERSONAL = re.compile(
    r"@|[0-9](?:(?:[ ().+-]{0,3}[0-9]){6}"  # (an IBAN's branch starts at its check digits: a digit first is
    r"|(?<=[A-Za-z]{2}[0-9])[0-9](?:[A-Za-z0-9]{8}|[ -][A-Za-z0-9]{4}[ -][A-Za-z0-9]{4}))"  # twice as fast)
)


def _find(
    text: str, folded: str, index: list[int] | None, rules: tuple[Rule, ...] = _RULES
) -> list[tuple[int, int, str, str]]:
    starts: list[int] = []  # the stretches claimed so far, in text order, never overlapping
    ends: list[int] = []
    found: list[tuple[int, int, str, str]] = []
    for kind, needs, pattern, masker in rules:
        if needs not in folded:
            continue
        for match in pattern.finditer(folded):
            start, end = match.span()
            at = bisect_right(starts, start)
            if (at and ends[at - 1] > start) or (at < len(starts) and starts[at] < end):
                continue
            masked = masker(match)
            if masked is None:
                continue
            starts.insert(at, start)
            ends.insert(at, end)
            if masked != match.group(0):
                found.append((start, end, kind, masked))
    out = []
    for start, end, kind, masked in sorted(found):
        first, last = (index[start], index[end - 1] + 1) if index else (start, end)
        if len(masked) == end - start:  # star the original: its full-width and skipped characters stay
            original = list(text[first:last])
            for i, char in enumerate(masked):
                if char == "*" and folded[start + i] != "*":
                    original[(index[start + i] if index else start + i) - first] = "*"
            masked = "".join(original)
        out.append((first, last, kind, masked))
    return out


def find_personal_data(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, kind, masked) for every stretch a rule claims and masks, in text order."""
    return _find(text, *_fold(text))


def _claims(text: str, rules: tuple[Rule, ...] = _RULES) -> list[tuple[int, int, str, str]]:
    folded, index = _fold(text)
    if not _MAYBE_PERSONAL.search(folded):
        return []  # most texts leave here
    return _find(text, folded, index, rules)


def _apply(text: str, spans: list[tuple[int, int, str, str]]) -> str:
    if not spans:
        return text
    out, last = [], 0
    for start, end, _, masked in spans:
        out += [text[last:start], masked]
        last = end
    out.append(text[last:])
    return "".join(out)


def mask(text: str) -> str:
    """The text with every piece of personal data masked (unchanged when there is none)."""
    return _apply(text, _claims(text))


# --- links and sources ------------------------------------------------------------------------------------

_PATH_RULES = tuple(rule for rule in _RULES if rule[0] in ("iban", "resident_id", "email"))
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_SAFE = "*@:!$'(),~"  # kept as they are when a masked part is percent-encoded again


def _mask_after(context: str, text: str, rules: tuple[Rule, ...] = _RULES) -> str:
    """The text masked as if read right after `context` (a name that may be a phone word)."""
    if not context:
        return _apply(text, _claims(text, rules))
    skip = len(context) + 1  # no rule's match holds an '=', so none spans both sides
    spans = _claims(f"{context}={text}", rules)
    return _apply(text, [(s - skip, e - skip, k, m) for s, e, k, m in spans if s >= skip])


def _mask_part(raw: str, context: str = "", rules: tuple[Rule, ...] = _RULES, safe: str = _SAFE) -> str:
    """A percent-encoded part of a link: unchanged, or masked and encoded again (a '+' is encoded where
    it means a space, in a query)."""
    decoded = unquote(raw)
    masked = _mask_after(context, decoded, rules)
    if masked == decoded and "+" in raw:  # a form's '+' is a space: 138+1234+5678
        spaced = unquote_plus(raw)
        if (masked_spaced := _mask_after(context, spaced, rules)) != spaced:
            masked = masked_spaced
    return raw if masked == decoded else quote(masked, safe=safe)


def _mask_query(query: str) -> str:
    parts = re.split(r"([&;])", query)
    for i in range(0, len(parts), 2):
        name, equals, value = parts[i].partition("=")
        parts[i] = _mask_part(name) + equals + (_mask_part(value, unquote_plus(name)) if equals else "")
    return "".join(parts)


def _mask_path(path: str) -> str:
    return "/".join(_mask_part(part, rules=_PATH_RULES, safe=_SAFE + "+") for part in path.split("/"))


def mask_url(url: str | None) -> str | None:
    """The link with personal data masked in its query, fragment and user:pass@ part; scheme, host and
    path stay (only e-mail addresses, resident IDs and IBANs in the path are masked). None stays None."""
    if not url:
        return url
    rest, hashed, fragment = url.partition("#")
    rest, asked, query = rest.partition("?")
    scheme = _SCHEME.match(rest)
    head = scheme.group(0) if scheme else ""
    rest = rest[len(head) :]
    if rest.startswith("//"):
        cut = rest.find("/", 2)
        cut = len(rest) if cut < 0 else cut
        authority, path = rest[:cut], rest[cut:]
        if "@" in authority:
            authority = "//***@" + authority.rpartition("@")[2]
        rest = authority + _mask_path(path)
    elif head and not rest.startswith("/"):  # mailto:, tel:, sms: - all of it is an address
        rest = _mask_part(rest, head[:-1], safe=_SAFE + "+")
    else:
        rest = _mask_path(rest)
    return head + rest + (asked and "?" + _mask_query(query)) + (hashed and "#" + _mask_query(fragment))


def mask_source(source: str | None) -> str | None:
    """A source handle with personal data masked (weibo:13812345678 -> weibo:138****5678); it is read as
    if after a phone word, and a source that is a link is masked as one. None stays None."""
    if not source:
        return source
    if "://" in source:
        return mask_url(source)
    return _mask_after("phone", source)
