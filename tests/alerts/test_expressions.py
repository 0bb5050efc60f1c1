"""The rule expression language: what it accepts, what it refuses and why, and how it evaluates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.expressions import Expression, ExpressionError

VALUES = {
    "count": 30,
    "negative": 20,
    "neutral": 6,
    "positive": 4,
    "negative_ratio": 2 / 3,
    "positive_ratio": 4 / 30,
    "mean_score": -0.4,
    "negative_zscore": 3.5,
    "negative_surprise": 7.2,
    "count_surprise": 2.5,
}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("negative_ratio >= 0.6 and count >= 20", True),
        ("negative_ratio >= 0.6 and count >= 40", False),
        ("negative_zscore >= 3 or count > 1000", True),
        ("not positive > 10", True),
        ("negative - positive > 2 * neutral", True),
        ("0.5 < negative_ratio < 0.7", True),
        ("mean_score < -0.5", False),
        ("negative / 0 == 0", True),
        ("negative_surprise >= 6 and negative >= 5", True),
        ("negative_surprise >= 8 or count_surprise > 3", False),
    ],
)
def test_evaluates(source: str, expected: bool) -> None:
    assert Expression.parse(source).evaluate(VALUES) is expected


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("negatve_ratio > 0.5", "unknown field 'negatve_ratio'"),
        ("__import__('os').system('x')", "call is not allowed"),
        ("count.real > 1", "attribute is not allowed"),
        ("count ** 2 > 1", "only + - * /"),
        ("count in [1, 2]", "only < <= > >= == != compare"),
        ("count >", "not a valid expression"),
        ("'a' < 'b'", "constant is not allowed"),
        ("count\x00 > 1", "not a valid expression"),
    ],
)
def test_refuses_with_a_reason(source: str, reason: str) -> None:
    with pytest.raises(ExpressionError, match=reason.replace("*", r"\*").replace("+", r"\+")):
        Expression.parse(source)


@given(st.text(max_size=40))
def test_arbitrary_text_is_parsed_or_refused_never_run(source: str) -> None:
    try:
        expression = Expression.parse(source)
    except ExpressionError:
        return
    assert expression.fields <= set(VALUES)
    assert expression.evaluate(VALUES) in (True, False)
