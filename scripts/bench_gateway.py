#!/usr/bin/env python3
"""Benchmark the latency the gateway adds over calling the upstream directly.

Starts a stub upstream and the gateway (one worker) as processes on 127.0.0.1, then sends the
same requests straight to the stub and through the gateway, alternating rounds, at each
concurrency. Prints p50 and p99 for both and the difference, for non-streaming requests and for
time to first token when streaming, then the gateway's maximum requests per second. The "own"
columns read the gateway's own llm_gateway_added_latency_seconds histogram (bucket upper bounds):
its processing time alone, without the extra network hop and the event loop's queueing.

  python scripts/bench_gateway.py [--requests 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from hybridllm.bench import Servers, added_latency_buckets, bucket_quantile, median_of_rounds, run_load


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000,
                        help="requests per round and concurrency (at most 200 at concurrency 1)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating direct/gateway rounds")
    parser.add_argument("--concurrency", default="1,32,256")
    parser.add_argument("--pin-cpus", action="store_true",
                        help="run the gateway alone on CPU 0 and the stub and load generator on the rest")
    parser.add_argument("--upstream-delay", type=float, default=0.05,
                        help="seconds the stub waits before answering, like a model's prefill (0: a flood)")
    args = parser.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]

    with Servers(args.upstream_delay, args.pin_cpus) as servers:
        print(f"stub upstream answers after {args.upstream_delay * 1e3:.0f} ms; {args.requests} requests x "
              f"{args.rounds} rounds per cell; p50/p99 are medians over rounds"
              + ("; gateway pinned to CPU 0, stub and load generator to the rest" if servers.pin else "") + "\n")
        asyncio.run(run_load(servers.via_gateway, 16, 500))  # warm up both paths
        asyncio.run(run_load(servers.direct, 16, 500))
        print(f"{'mode':<14}{'conc':>5} | {'direct p50':>10} {'gateway p50':>11} {'added p50':>10} | "
              f"{'direct p99':>10} {'gateway p99':>11} {'added p99':>10} | {'own p50 <=':>10} {'own p99 <=':>10}  (ms)")
        for stream in (False, True):
            for concurrency in levels:
                direct, gateway = [], []
                # One request at a time is slow with a delayed upstream; 200 already gives a p99.
                count = min(args.requests, 200) if concurrency == 1 else args.requests
                own_before = added_latency_buckets(servers.gateway_port)
                for _ in range(args.rounds):
                    direct.append(asyncio.run(run_load(servers.direct, concurrency, count, stream)))
                    gateway.append(asyncio.run(run_load(servers.via_gateway, concurrency, count, stream)))
                own_after = added_latency_buckets(servers.gateway_port)
                own50 = bucket_quantile(own_before, own_after, 0.5) * 1e3
                own99 = bucket_quantile(own_before, own_after, 0.99) * 1e3
                errors = sum(s.errors for s in direct + gateway)
                d50, g50 = median_of_rounds(direct, 0.5) * 1e3, median_of_rounds(gateway, 0.5) * 1e3
                d99, g99 = median_of_rounds(direct, 0.99) * 1e3, median_of_rounds(gateway, 0.99) * 1e3
                mode = "stream TTFT" if stream else "chat"
                print(f"{mode:<14}{concurrency:>5} | {d50:>10.2f} {g50:>11.2f} {g50 - d50:>10.2f} | "
                      f"{d99:>10.2f} {g99:>11.2f} {g99 - d99:>10.2f} | {own50:>10.2f} {own99:>10.2f}"
                      + (f"  errors={errors}" if errors else ""))
        samples = [asyncio.run(run_load(servers.via_gateway, 64, args.requests * 2)) for _ in range(args.rounds)]
        rps = max(len(s.latencies) / s.elapsed for s in samples)
        direct_rps = max(len(s.latencies) / s.elapsed for s in
                         [asyncio.run(run_load(servers.direct, 64, args.requests * 2)) for _ in range(args.rounds)])
        print(f"\nmax requests/s at concurrency 64 (upstream delay included): gateway (1 worker) {rps:,.0f}, stub direct {direct_rps:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
