"""One bundle per language: route each text to its language's engine, by its `lang` or its script."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from foundation.language import base_language, script_language
from inference.engine import InferenceEngine, Prediction


class LanguageError(ValueError):
    """A language spec that cannot be used (bad `FINSENTRY_MODELS`, a language no bundle serves)."""


class LanguageModels:
    """The engines of a worker, one per language, behind one `apredict` that keeps the input order.

    A text goes to the engine of its `lang` when one serves that language, else to the one of its
    script, else to the default (first) language.
    """

    def __init__(self, engines: Mapping[str, InferenceEngine]) -> None:
        if not engines:
            raise LanguageError("no model: at least one language needs a bundle")
        self.engines = dict(engines)
        self.default = next(iter(self.engines))

    @classmethod
    def load(cls, folders: Mapping[str, Path], **engine_options: Any) -> LanguageModels:
        return cls({lang: InferenceEngine(folder, **engine_options) for lang, folder in folders.items()})

    @classmethod
    def single(cls, engine: InferenceEngine) -> LanguageModels:
        """One engine for every text, under the language its bundle declares (English when none)."""
        return cls({engine.bundle.language or "en": engine})

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self.engines)

    @property
    def versions(self) -> dict[str, str]:
        return {lang: engine.version for lang, engine in self.engines.items()}

    @property
    def version(self) -> str:
        """One line for logs: `en:v1 zh:v2` (or the version alone with one language)."""
        if len(self.engines) == 1:
            return self.engines[self.default].version
        return " ".join(f"{lang}:{v}" for lang, v in self.versions.items())

    def route(self, text: str, lang: str | None = None) -> str:
        declared = base_language(lang)
        if declared in self.engines:
            return declared
        if len(self.engines) == 1:
            return self.default
        by_script = script_language(text)
        return by_script if by_script in self.engines else self.default

    def engine(self, language: str) -> InferenceEngine:
        if language not in self.engines:
            raise LanguageError(
                f"no bundle serves language {language!r} (serving: {', '.join(self.engines)})"
            )
        return self.engines[language]

    def reload(self, language: str, bundle_dir: Path | str) -> str:
        return self.engine(language).reload(bundle_dir)

    async def apredict(
        self, texts: Sequence[str], langs: Sequence[str | None] | None = None
    ) -> list[tuple[str, Prediction]]:
        """(language, prediction) per text, in the input order; one engine call per language."""
        langs = langs if langs is not None else [None] * len(texts)
        groups: dict[str, list[int]] = {}
        for i, (text, lang) in enumerate(zip(texts, langs, strict=True)):
            groups.setdefault(self.route(text, lang), []).append(i)
        results: dict[int, tuple[str, Prediction]] = {}
        # Languages run one after another: each engine already uses every core it is given.
        for language, rows in groups.items():
            predictions = await self.engines[language].apredict([texts[i] for i in rows])
            results.update((i, (language, p)) for i, p in zip(rows, predictions, strict=True))
        return [results[i] for i in range(len(texts))]

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()
