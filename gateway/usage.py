"""Token counts from an upstream's `usage` object, read defensively: the answer has already been
relayed to the client by the time usage is counted, so nothing in it may raise or count
negative tokens. A count that is not a whole, non-negative, plausible number is left out."""

from __future__ import annotations

from typing import Any, NamedTuple

# More tokens than any context window holds: a count past this is garbage, not usage.
_MAX_TOKENS = 100_000_000


class TokenCounts(NamedTuple):
    uncached_prompt: int
    cached_prompt: int
    completion: int
    well_formed: bool  # False when something had to be left out (worth a log line)


def _count(value: Any) -> int | None:
    if type(value) is int:  # not bool, which is an int too
        return value if 0 <= value <= _MAX_TOKENS else None
    if type(value) is float and value.is_integer() and 0 <= value <= _MAX_TOKENS:
        return int(value)
    return None


def token_counts(usage: Any) -> TokenCounts:
    if usage is None:
        return TokenCounts(0, 0, 0, True)
    if not isinstance(usage, dict):
        return TokenCounts(0, 0, 0, False)
    well_formed = True
    counts = []
    for name in ("prompt_tokens", "completion_tokens"):
        value = usage.get(name)
        count = _count(value) if value is not None else 0
        if count is None:
            well_formed, count = False, 0
        counts.append(count)
    prompt, completion = counts
    cached = 0
    details = usage.get("prompt_tokens_details")
    if isinstance(details, dict):
        value = details.get("cached_tokens")
        if value is not None:
            read = _count(value)
            if read is None:
                well_formed = False
            else:
                cached = read
    elif details is not None:
        well_formed = False
    if cached > prompt:
        well_formed, cached = False, prompt
    return TokenCounts(prompt - cached, cached, completion, well_formed)
