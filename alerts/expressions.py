"""A small, safe expression language for rule conditions: no eval, only what rules need.

    negative_ratio >= 0.6 and count >= 20
    negative_zscore >= 3 or (negative > 50 and not positive > 10)
    negative_surprise >= 6 and negative >= 5

Numbers, the window's field names, comparisons, + - * /, and, or, not, parentheses. An expression is
parsed once (Python's own parser, then checked node by node against this whitelist) and evaluated
by walking the tree.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

FIELDS = (
    "count",
    "negative",
    "neutral",
    "positive",
    "negative_ratio",
    "positive_ratio",
    "mean_score",
    "negative_zscore",
    "negative_surprise",
    "count_surprise",
)

_COMPARE: dict[type, Callable[[float, float], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_ARITHMETIC: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: lambda a, b: a / b if b else 0.0,
}


class ExpressionError(ValueError):
    """A condition that is not in the language, with the column of the offending part."""


@dataclass(frozen=True)
class Expression:
    source: str
    tree: ast.expr
    fields: frozenset[str]

    @classmethod
    def parse(cls, source: str) -> Expression:
        try:
            tree = ast.parse(source.strip(), mode="eval").body
        except SyntaxError as exc:
            raise ExpressionError(f"not a valid expression at column {exc.offset}: {exc.msg}") from exc
        except ValueError as exc:  # e.g. a NUL character, which the parser refuses outright
            raise ExpressionError(f"not a valid expression: {exc}") from exc
        used = frozenset(_check(tree))
        return cls(source, tree, used)

    def evaluate(self, values: Mapping[str, float]) -> bool:
        return bool(_eval(self.tree, values))


def _check(node: ast.AST) -> set[str]:
    """Returns the field names used; raises for anything outside the language."""
    where = f" at column {getattr(node, 'col_offset', 0) + 1}"
    if isinstance(node, ast.BoolOp):
        return set().union(*(_check(v) for v in node.values))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not | ast.USub):
        return _check(node.operand)
    if isinstance(node, ast.Compare):
        if not all(type(op) in _COMPARE for op in node.ops):
            raise ExpressionError(f"only < <= > >= == != compare{where}")
        return set().union(_check(node.left), *(_check(c) for c in node.comparators))
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _ARITHMETIC:
            raise ExpressionError(f"only + - * / are allowed{where}")
        return _check(node.left) | _check(node.right)
    if isinstance(node, ast.Name):
        if node.id not in FIELDS:
            raise ExpressionError(f"unknown field {node.id!r}{where}; known: {', '.join(FIELDS)}")
        return {node.id}
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return set()
    raise ExpressionError(f"{type(node).__name__.lower()} is not allowed{where}")


def _eval(node: ast.AST, values: Mapping[str, float]) -> float | bool:
    if isinstance(node, ast.BoolOp):
        results = (bool(_eval(v, values)) for v in node.values)
        return all(results) if isinstance(node.op, ast.And) else any(results)
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, values)
        return (not operand) if isinstance(node.op, ast.Not) else -operand
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _eval(comparator, values)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BinOp):
        return _ARITHMETIC[type(node.op)](_eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.Name):
        return values[node.id]
    assert isinstance(node, ast.Constant)  # noqa: S101 - narrows a type; no check rests on it
    return node.value
