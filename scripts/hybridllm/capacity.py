"""How much one GPU node serves, for a given request shape.

Prefill (the prompt) is compute-bound and processed many tokens at a time; decode (the
completion) is one step per token. They cost a node different amounts of time, so a node is
modelled by two rates fitted to measurements (data/figures.yaml, nodeThroughput):

    node-seconds per request = prompt tokens / prefill rate + completion tokens / decode rate
"""

from __future__ import annotations

from dataclasses import dataclass

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class NodeThroughput:
    prefill_tokens_per_second: float
    decode_tokens_per_second: float
    basis: str  # sustainable (at a latency SLO) or saturation
    slo: str

    def seconds_per_request(self, prompt_tokens: float, completion_tokens: float) -> float:
        return prompt_tokens / self.prefill_tokens_per_second + completion_tokens / self.decode_tokens_per_second

    def requests_per_second(self, prompt_tokens: float, completion_tokens: float) -> float:
        return 1 / self.seconds_per_request(prompt_tokens, completion_tokens)

    def tokens_per_second(self, prompt_tokens: float, completion_tokens: float) -> float:
        """Prompt plus completion tokens per second the node carries at this shape."""
        return (prompt_tokens + completion_tokens) * self.requests_per_second(prompt_tokens, completion_tokens)

    def tokens_per_day(self, prompt_tokens: float, completion_tokens: float) -> float:
        return self.tokens_per_second(prompt_tokens, completion_tokens) * SECONDS_PER_DAY
