"""What the reachability check costs per profile (monitoring on): the analyser's one-off import,
then per profile the render for reference, a check with an empty cache and a repeated check.
Prints a table; not a test: python -m hybridllm.validation.reachability_bench"""

from __future__ import annotations

import statistics
import time

from ..profiles import load_profile, profile_names
from ..rendering import render_profile
from . import nca_connectivity
from .findings import Document, Source
from .reachability import check

MONITORING = {"monitoring": {"serviceMonitor": True}}
RUNS = 5


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f}"


def main() -> None:
    started = time.perf_counter()
    import nca.NetworkConfig.NetworkConfig  # noqa: F401  (the one-off cost every process pays once)

    print(f"{nca_connectivity.analyser_version()}: import {_ms(time.perf_counter() - started)} ms (once per process)")
    print(f"median of {RUNS} runs, milliseconds")
    print(f"{'profile':<18}{'pods':>6}{'policies':>10}{'render':>10}{'check':>10}{'cached':>10}  findings")
    total = 0.0
    for name in profile_names():
        began = time.perf_counter()
        rendering = render_profile(load_profile(name), MONITORING)
        rendered = time.perf_counter() - began
        documents = [Document(Source(o.template), o.obj, o.embedded_in) for o in rendering.objects]
        cold, warm = [], []
        for _ in range(RUNS):
            nca_connectivity._CACHE.clear()
            began = time.perf_counter()
            report = check(documents)
            cold.append(time.perf_counter() - began)
            began = time.perf_counter()
            check(documents)
            warm.append(time.perf_counter() - began)
        total += statistics.median(cold)
        print(f"{name:<18}{report.pods:>6}{report.policies:>10}{_ms(rendered):>10}"
              f"{_ms(statistics.median(cold)):>10}{_ms(statistics.median(warm)):>10}  {len(report.findings)}")
    print(f"all profiles, empty cache: {_ms(total)} ms")


if __name__ == "__main__":
    main()
