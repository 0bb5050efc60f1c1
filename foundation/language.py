"""Which language a text is in, for routing it to its model: the declared `lang`, else the script."""

from __future__ import annotations

import re

# CJK Unified Ideographs (and extension A), the CJK punctuation block and full-width forms.
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\u3000-\u303f\uff00-\uffef]")
_LETTER = re.compile(r"\w", re.UNICODE)
# Chinese financial text mixes in tickers, numbers and English names; a fifth of CJK letters is Chinese.
CJK_SHARE = 0.2


def script_language(text: str) -> str:
    """Chinese (zh) when a large enough share of the letters are CJK, else English (en)."""
    letters = len(_LETTER.findall(text))
    if not letters:
        return "en"
    return "zh" if len(_CJK.findall(text)) / letters >= CJK_SHARE else "en"


def base_language(lang: str | None) -> str | None:
    """`zh-CN`, `zh-Hant` and `ZH` are all `zh`."""
    return lang.split("-", 1)[0].lower() if lang else None


def text_language(text: str, declared: str | None, served: tuple[str, ...] | None = None) -> str:
    """The declared language when it is served (or nothing restricts it), else the script's."""
    language = base_language(declared)
    if language and (served is None or language in served):
        return language
    return script_language(text)
