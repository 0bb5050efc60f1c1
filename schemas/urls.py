"""Links from crawled messages: only absolute http(s) URLs that a browser reads the way we do.

A crawled `url` ends up as a link's `href` in the console and in Slack. Browsers forgive a lot before
they decide a scheme (leading spaces, tabs and newlines anywhere, upper case, entities in markup), so the
check is done on a normalised form and refuses anything with whitespace or control characters inside.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit

SCHEMES = ("http", "https")
MAX_URL_CHARS = 2048


class BadUrl(ValueError):
    """A crawled link that is not an absolute http(s) URL, with the reason."""


def normalise_url(raw: str) -> str:
    """The URL trimmed and with its scheme lower-cased; BadUrl when it is not a safe absolute http(s) URL."""
    url = raw.strip()
    if not url:
        raise BadUrl("is empty")
    if len(url) > MAX_URL_CHARS:
        raise BadUrl(f"longer than {MAX_URL_CHARS} characters")
    for char in url:
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            raise BadUrl(f"contains whitespace or a control character (U+{ord(char):04X})")
    scheme, colon, rest = url.partition(":")
    if not colon or scheme.lower() not in SCHEMES:
        raise BadUrl("must be an absolute http or https URL")
    if not rest.startswith("//") or "\\" in rest:
        raise BadUrl("must be an absolute http or https URL (scheme://host/...)")
    url = scheme.lower() + ":" + rest
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as exc:
        raise BadUrl(f"cannot be parsed ({exc})") from exc
    if not parts.hostname:
        raise BadUrl("has no host")
    if "@" in parts.netloc:
        raise BadUrl("carries a user name or password before its host")  # https://bank.com@evil.example
    return url


def safe_link(value: object) -> str | None:
    """The URL if it may be shown as a link, None otherwise: for values stored before they were checked."""
    if not isinstance(value, str):
        return None
    try:
        return normalise_url(value)
    except BadUrl:
        return None
