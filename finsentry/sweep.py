"""`backtest run --sweep RULE.FIELD=START:STOP:STEP`: one number of one rule, changed run by run.

FIELD is a variable the rule's condition compares with one number (`negative_ratio` in
`negative_ratio >= 0.6 and count >= 20`) or one of its durations in seconds. The change is made on the
parsed rule: the number's text is replaced in the condition, which is parsed again, and the rule is
validated again, so a value the rules file would refuse is refused here with the same reason.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

from pydantic import ValidationError

from alerts.rules import Rule
from finsentry.alert_quality import RuleQuality

DURATIONS = ("for", "window", "baseline", "repeat_interval")  # the rule's aliases, values in seconds
MAX_VALUES = 50  # each value is a whole replay


class SweepError(ValueError):
    """A sweep that cannot run; the message names the rule and field."""


@dataclass(frozen=True)
class Sweep:
    rule: str
    field: str
    values: list[float]


def parse_sweep(spec: str, rules: list[Rule]) -> Sweep:
    """`company-negative-surge.negative_ratio=0.5:0.9:0.05`, checked against the rules it will change."""
    target, equals, span = spec.partition("=")
    name, dot, field = target.rpartition(".")  # rule names may hold dots, fields do not
    if not equals or not dot:
        raise SweepError(f"--sweep {spec!r}: expected RULE.FIELD=START:STOP:STEP")
    by_name = {r.name: r for r in rules}
    if name not in by_name:
        raise SweepError(f"--sweep: unknown rule {name!r}; known: {', '.join(by_name)}")
    values = sweep_values(span)
    for value in values:  # refuse a bad field or value before any replay runs
        substitute(by_name[name], field, value)
    return Sweep(name, field, values)


def sweep_values(span: str) -> list[float]:
    """START:STOP:STEP, both ends included."""
    try:
        start, stop, step = (float(part) for part in span.split(":"))
    except ValueError as exc:
        raise SweepError(f"--sweep: {span!r} is not START:STOP:STEP (three numbers)") from exc
    if step <= 0 or stop < start:
        raise SweepError(f"--sweep: {span!r} needs STEP > 0 and STOP >= START")
    count = int((stop - start) / step + 1e-9) + 1  # the tolerance keeps STOP when float steps land short
    if count > MAX_VALUES:
        raise SweepError(f"--sweep: {span!r} is {count} values; at most {MAX_VALUES}")
    return [round(start + i * step, 10) for i in range(count)]


def substitute(rule: Rule, field: str, value: float) -> Rule:
    """The rule with FIELD set to VALUE, validated as the rules file would be."""
    data = rule.model_dump(by_alias=True) | {"condition": rule.condition.source}
    if field in DURATIONS:
        if not float(value).is_integer():
            raise SweepError(f"--sweep: rule {rule.name!r}: {field} takes whole seconds, not {value:g}")
        data[field] = int(value)
    elif field in rule.condition.fields:
        data["condition"] = replace_number(rule, field, value)
    else:
        known = [*DURATIONS, *sorted(v for v in rule.condition.fields if len(_numbers(rule, v)) == 1)]
        raise SweepError(f"--sweep: rule {rule.name!r} has no field {field!r}; known: {', '.join(known)}")
    try:
        return Rule.model_validate(data)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise SweepError(f"--sweep: rule {rule.name!r}: {field}={value:g}: {reason}") from exc


def replace_number(rule: Rule, variable: str, value: float) -> str:
    """The condition's text with the one number compared with `variable` replaced."""
    numbers = _numbers(rule, variable)
    source = rule.condition.source.strip()  # the tree's offsets are into the stripped text
    if len(numbers) != 1:
        count = "no number" if not numbers else f"{len(numbers)} numbers"
        raise SweepError(
            f"--sweep: rule {rule.name!r}: {variable} is compared with {count} in `{source}`;"
            " a swept variable needs exactly one"
        )
    [node] = numbers
    lines = source.splitlines(keepends=True)
    line = lines[node.lineno - 1].encode()  # col offsets count UTF-8 bytes
    text = str(int(value)) if float(value).is_integer() else repr(float(value))
    lines[node.lineno - 1] = (line[: node.col_offset] + text.encode() + line[node.end_col_offset :]).decode()
    return "".join(lines)


def _numbers(rule: Rule, variable: str) -> list[ast.expr]:
    """The number nodes directly compared with `variable` anywhere in the condition."""
    found = []
    for node in ast.walk(rule.condition.tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for i, operand in enumerate(operands):
                if isinstance(operand, ast.Name) and operand.id == variable:
                    found += [n for n in operands[max(0, i - 1) : i + 2] if _is_number(n)]
    return found


def _is_number(node: ast.expr) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) in (int, float)


@dataclass(frozen=True)
class SweepRow:
    value: float
    quality: RuleQuality  # the swept rule's, on its own replay
