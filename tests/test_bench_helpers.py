"""The benchmark's arithmetic (the benchmarks themselves are scripts, not tests)."""

from __future__ import annotations

import math

from hybridllm.bench import Sample, bucket_quantile


def test_bucket_quantile_uses_the_observations_between_two_scrapes() -> None:
    before = {0.0005: 10.0, 0.001: 10.0, 0.005: 10.0, math.inf: 10.0}
    # 100 new observations: 60 under 0.5 ms, 39 under 1 ms, 1 under 5 ms.
    after = {0.0005: 70.0, 0.001: 109.0, 0.005: 110.0, math.inf: 110.0}
    assert bucket_quantile(before, after, 0.5) == 0.0005
    assert bucket_quantile(before, after, 0.99) == 0.001
    assert bucket_quantile(before, after, 1.0) == 0.005


def test_sample_percentiles() -> None:
    sample = Sample(latencies=[i / 1000 for i in range(1, 101)], errors=0, elapsed=1.0)
    assert sample.percentile(0.5) == 0.051 and sample.percentile(0.99) == 0.1
