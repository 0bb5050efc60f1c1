"""Alert rules from a YAML file, validated at load with the line and the reason of every error.

rules:
  - name: company-negative-surge
    scope: entity            # entity | topic | source | global
    window: 15m
    condition: negative_ratio >= 0.6 and count >= 20
    for: 2m                  # how long the condition must hold before the alert fires
    severity: critical       # info | warning | critical
    labels: {team: risk}
    receivers: [slack-risk]
    repeat_interval: 4h
  - name: company-negative-zscore
    scope: entity
    window: 15m
    baseline: 24h            # needed by negative_zscore
    condition: negative_zscore >= 3 and count >= 10
    receivers: [slack-risk]
  - name: company-negative-surprise
    scope: entity
    window: 15m
    baseline: 24h            # so are negative_surprise and count_surprise (-log10 of a tail probability)
    condition: negative_surprise >= 6 and negative >= 5
    receivers: [slack-risk]
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alerts.expressions import Expression, ExpressionError

DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
# Figures of the windows before the current one (alerts/evaluate.py, alerts/surprise.py).
BASELINE_FIELDS = ("negative_zscore", "negative_surprise", "count_surprise")


class RulesError(ValueError):
    """A rules file that cannot be used: `path:line: rule 'name': field: reason`."""


def parse_duration(value: Any) -> int:
    if isinstance(value, int) and value >= 0:
        return value
    match = DURATION.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a duration like 30s, 15m, 2h or 1d")
    return int(match.group(1)) * UNITS[match.group(2)]


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, populate_by_name=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    scope: Literal["entity", "topic", "source", "global"]
    window_s: int = Field(alias="window", gt=0)
    baseline_s: int | None = Field(None, alias="baseline")
    condition: Expression
    for_s: int = Field(0, alias="for", ge=0)
    severity: Literal["info", "warning", "critical"] = "warning"
    labels: dict[str, str] = Field(default_factory=dict)
    receivers: list[str] = Field(min_length=1)
    repeat_interval_s: int = Field(4 * 3_600, alias="repeat_interval", gt=0)

    @field_validator("window_s", "baseline_s", "for_s", "repeat_interval_s", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return None if value is None else parse_duration(value)

    @field_validator("condition", mode="before")
    @classmethod
    def _condition(cls, value: Any) -> Expression:
        if isinstance(value, Expression):
            return value
        try:
            return Expression.parse(str(value))
        except ExpressionError as exc:
            raise ValueError(str(exc)) from exc

    @model_validator(mode="after")
    def _baseline(self) -> Rule:
        needing = [f for f in BASELINE_FIELDS if f in self.condition.fields]
        if needing:
            if self.baseline_s is None:
                raise ValueError(f"{needing[0]} needs a baseline window (e.g. baseline: 24h)")
            if self.baseline_s < 2 * self.window_s:
                raise ValueError("the baseline must span at least two windows")
        return self


def load_rules(path: Path) -> list[Rule]:
    text = path.read_text(encoding="utf-8")
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise RulesError(f"{path}:{line}: not valid YAML: {exc.problem or exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RulesError(f"{path}:1: expected a mapping with a `rules:` list")
    rules_node = next(v for k, v in root.value if k.value == "rules")
    rules, names = [], set()
    for node, item in zip(rules_node.value, data["rules"], strict=True):
        line = node.start_mark.line + 1
        key_lines = {k.value: k.start_mark.line + 1 for k, _ in node.value} if hasattr(node, "value") else {}
        name = item.get("name", "?") if isinstance(item, dict) else "?"
        try:
            rule = Rule.model_validate(item)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0]) if error["loc"] else ""
            where = key_lines.get(field, line)
            reason = error["msg"].removeprefix("Value error, ")
            raise RulesError(f"{path}:{where}: rule {name!r}: {field or 'rule'}: {reason}") from exc
        if rule.name in names:
            raise RulesError(f"{path}:{line}: rule {rule.name!r}: name is used twice")
        names.add(rule.name)
        rules.append(rule)
    return rules
