"""What a workload costs self-hosting Llama 3.3 70B against pay-per-token APIs, and the cheapest
option deployable on a date.

  hybrid-llm-crossover --workload data/workloads/default.yaml [--format table|json] [--plot out.png]
  hybrid-llm-crossover --tokens-per-day 2e8 --api-model gpt-5-mini --api-model gpt-5.5
  hybrid-llm-crossover --tokens-per-day 2e8 --api-deployment dataZone   # data residency prices
  hybrid-llm-crossover --tokens-per-day 5e7 --as-of 2026-09-01            # what was deployable then
  hybrid-llm-crossover --tokens-per-day 5e7 --node-hourly 23 --ignore-capacity   # the naive break-even
  hybrid-llm-crossover --prometheus http://127.0.0.1:9090 --window 1d             # live, from the gateway

Prices, lifecycle dates and node throughput come from data/figures.yaml.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

from hybridllm.errors import UserError
from hybridllm.layout import require_checkout


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr like every other input error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: command line: {message} (see --help)\n")


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise UserError("command line", f"--as-of is {text!r}, not a date", "write it like 2026-11-27") from None


def _writable(path: Path) -> Path:
    """Refuse an unwritable --plot path before the slow work (matplotlib, the sweep) starts."""
    if path.is_dir():
        raise UserError("command line", f"--plot {path} is a directory", "give a file name ending in .png")
    existing = path.parent
    while not existing.exists():
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise OSError(f"{existing} is not a folder")
        if path.exists():
            with path.open("ab"):
                pass
        else:
            # Probe the nearest existing folder with a file that is removed at once: permission bits
            # alone do not say (root, read-only mounts, /proc).
            with tempfile.NamedTemporaryFile(dir=existing, prefix=".crossover-probe-"):
                pass
    except OSError as exc:
        raise UserError("command line", f"--plot {path} cannot be written ({getattr(exc, 'strerror', None) or exc})",
                        "pick a path in a folder you can write to") from None
    return path


def parser() -> argparse.ArgumentParser:
    p = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workload", type=Path, help="workload YAML (keys as in data/workloads/default.yaml)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument("--plot", type=Path, help="write the cost picture to this PNG")
    p.add_argument("--as-of", help="evaluation date YYYY-MM-DD: models retired by then are never recommended "
                   "(default: today)")
    p.add_argument("--tokens-per-day", help="prompt + completion tokens per day")
    p.add_argument("--prompt-tokens", help="prompt tokens of an average request")
    p.add_argument("--completion-tokens", help="completion tokens of an average request")
    p.add_argument("--api-model", action="append", help="API model to compare (repeatable; default: all)")
    p.add_argument("--reference-model", help="the Azure OpenAI model the hybrid sends its API share to")
    p.add_argument("--api-deployment", help="globalStandard (default) or dataZone (data-residency prices)")
    p.add_argument("--region", help="price region of the nodes, e.g. eastus")
    p.add_argument("--capacity-basis", help="sustainable (latency SLO, default) or saturation node throughput")
    p.add_argument("--node-hourly", help="on-demand USD/hour of a node")
    p.add_argument("--spot-hourly", help="spot USD/hour of a node")
    p.add_argument("--engineering-hours", help="engineering hours per month")
    p.add_argument("--ignore-capacity", action="store_true",
                   help="naive fixed-cost crossover: one node serves any volume")
    p.add_argument("--prometheus", help="read observed traffic from this Prometheus HTTP API")
    p.add_argument("--window", default="1d", help="live mode: the window to read (Prometheus duration)")
    p.add_argument("--nodes", default="customer=1,batch=1:spot",
                   help="live mode: nodes per path, e.g. customer=2,batch=1:spot")
    return p


def run(args: argparse.Namespace) -> str:
    from hybridllm.workload import workload_from

    as_of = _date(args.as_of) if args.as_of else datetime.date.today()
    if args.prometheus:
        from hybridllm.live import live_report

        return live_report(args.prometheus, args.window, args.nodes,
                           workload_from(args.workload, args, require_volume=False), args.format, as_of)
    from hybridllm.economics import analyse
    from hybridllm.report import table

    workload = workload_from(args.workload, args)
    plot_path = _writable(args.plot) if args.plot else None
    analysis = analyse(workload, ignore_capacity=args.ignore_capacity, today=as_of)
    if plot_path:
        from hybridllm.cost_plot import plot

        try:
            plot(analysis, plot_path, args.ignore_capacity)
        except OSError as exc:
            raise UserError("command line", f"--plot {plot_path} cannot be written: {exc.strerror or exc}") from None
        print(f"wrote {plot_path}", file=sys.stderr)
    return json.dumps(analysis.as_json(), indent=2, allow_nan=False) if args.format == "json" else table(analysis)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        require_checkout()
        print(run(args))
    except UserError as exc:
        print(f"error: {exc.where}: {exc.problem}" + (f" (fix: {exc.fix})" if exc.fix else ""), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
