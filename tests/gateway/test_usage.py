"""gateway/usage.py: token counts read from whatever an upstream put in `usage`, never raising."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.usage import TokenCounts, token_counts


@pytest.mark.parametrize("usage,expected", [
    ({"prompt_tokens": 11, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 3}}, (8, 3, 5, True)),
    ({"prompt_tokens": 10, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 50}}, (0, 10, 5, False)),
    ({"prompt_tokens": 10.0, "completion_tokens": 5.5}, (10, 0, 0, False)),
    ({"prompt_tokens": "10", "completion_tokens": 5}, (0, 0, 5, False)),
    ({"prompt_tokens": True, "completion_tokens": -1}, (0, 0, 0, False)),
    ({"prompt_tokens": 2 ** 62}, (0, 0, 0, False)),
    ({"prompt_tokens": 4, "prompt_tokens_details": None}, (4, 0, 0, True)),
    ({"prompt_tokens": 4, "prompt_tokens_details": "x"}, (4, 0, 0, False)),
    (None, (0, 0, 0, True)),
    ("lots", (0, 0, 0, False)),
])
def test_token_counts(usage: Any, expected: tuple[int, int, int, bool]) -> None:
    assert token_counts(usage) == TokenCounts(*expected)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                           max_leaves=8)
usage_like = st.fixed_dictionaries({}, optional={"prompt_tokens": json_values, "completion_tokens": json_values,
                                                 "prompt_tokens_details": json_values | st.fixed_dictionaries(
                                                     {}, optional={"cached_tokens": json_values})})


@given(usage_like | json_values)
def test_counts_are_never_negative_and_cached_never_exceeds_the_prompt(usage: Any) -> None:
    counts = token_counts(usage)
    assert counts.uncached_prompt >= 0 and counts.cached_prompt >= 0 and counts.completion >= 0
