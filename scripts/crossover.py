#!/usr/bin/env python3
"""Where self-hosting Llama 3.3 70B beats Azure OpenAI for a workload, capacity-aware.

  python scripts/crossover.py --workload data/workloads/default.yaml [--format table|json] [--plot out.png]
  python scripts/crossover.py --tokens-per-day 2e8 --api-model gpt-4o
  python scripts/crossover.py --tokens-per-day 5e7 --node-hourly 23 --ignore-capacity   # the naive break-even
  python scripts/crossover.py --prometheus http://127.0.0.1:9090 --window 1d           # live, from the gateway

Prices and capacities come from data/figures.yaml.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hybridllm.economics import Workload, analyse
from hybridllm.errors import UserError
from hybridllm.report import table, workload_from


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workload", type=Path, help="workload YAML (keys as in data/workloads/default.yaml)")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    parser.add_argument("--plot", type=Path, help="write the cost picture to this PNG")
    parser.add_argument("--tokens-per-day", type=float)
    parser.add_argument("--prompt-tokens", type=int)
    parser.add_argument("--completion-tokens", type=int)
    parser.add_argument("--api-model", action="append", help="API model to compare with (repeatable)")
    parser.add_argument("--node-hourly", type=float, help="on-demand USD/hour of a node")
    parser.add_argument("--spot-hourly", type=float, help="spot USD/hour of a node")
    parser.add_argument("--engineering-hours", type=float, help="engineering hours per month")
    parser.add_argument("--ignore-capacity", action="store_true",
                        help="naive fixed-cost crossover: one node serves any volume")
    parser.add_argument("--prometheus", help="read observed traffic from this Prometheus HTTP API")
    parser.add_argument("--window", default="1d", help="live mode: the window to read (Prometheus duration)")
    parser.add_argument("--nodes", default="customer=1,batch=1:spot", help="live mode: nodes per path, e.g. customer=2,batch=1:spot")
    args = parser.parse_args(argv)
    try:
        if args.prometheus:
            from hybridllm.live import live_report

            workload = workload_from(args.workload, args, require_volume=False)
            print(live_report(args.prometheus, args.window, args.nodes, workload, args.format))
            return 0
        workload: Workload = workload_from(args.workload, args)
        analysis = analyse(workload, ignore_capacity=args.ignore_capacity)
        print(json.dumps(analysis.as_json(), indent=2) if args.format == "json" else table(analysis))
        if args.plot:
            from hybridllm.cost_plot import plot

            print(f"wrote {plot(analysis, args.plot, args.ignore_capacity)}", file=sys.stderr)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
