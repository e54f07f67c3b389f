"""scripts/compare.py's command line: flags, their checks, and the two modes (an evaluation run
through the gateway, or the live view from Prometheus)."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import math
import os
import re
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any, NoReturn

from ..errors import UserError
from ..layout import require_checkout

KEY_ENV = "HYBRID_LLM_GATEWAY_KEY"
DEFAULT_BACKENDS = "vllm-customer,azure-openai"
_BACKEND = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")

USAGE = f"""Compare the gateway's backends on the same evaluation set, or on live traffic.

  python scripts/compare.py --gateway http://127.0.0.1:8080 --key sk-... [--backends vllm-customer,azure-openai]
        [--suite humaneval|schema|all] [--limit N] [--concurrency N] [--format table|json] [--plot out.png]
  python scripts/compare.py --prometheus http://prometheus:9090 --window 1d [--route customer]

The key (--key, or {KEY_ENV}) needs backendOverride: every request is pinned to one backend
with the x-llm-backend header. Backends named vllm-* are priced as self-hosted nodes, the others
at the list price of --api-model; prices and throughput come from data/figures.yaml.
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr like every other input error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: command line: {message} (see --help)\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="compare.py", description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    run = p.add_argument_group("evaluation run")
    run.add_argument("--gateway", help="the gateway's base URL, e.g. http://127.0.0.1:8080")
    run.add_argument("--key", help=f"a gateway key with backendOverride (default: ${KEY_ENV})")
    run.add_argument("--backends", default=DEFAULT_BACKENDS, help=f"comma-separated (default {DEFAULT_BACKENDS})")
    run.add_argument("--suite", choices=["humaneval", "schema", "all"], default="all")
    run.add_argument("--limit", help="only the first N items of each suite")
    run.add_argument("--concurrency", default="4", help="requests in flight per backend (default 4)")
    run.add_argument("--model", help="the public model name to send (default: the first the gateway lists)")
    run.add_argument("--timeout", default="300", help="seconds for one whole request (default 300)")
    run.add_argument("--max-tokens", default="1024", help="completion tokens per answer (default 1024)")
    run.add_argument("--temperature", default="0",
                     help="sampling temperature (default 0); `default` sends none, for models that accept no other")
    run.add_argument("--exec-timeout", default="10",
                     help="seconds of wall-clock and CPU time for one generated program (default 10)")
    run.add_argument("--plot", type=Path, help="write the comparison picture to this PNG")
    live = p.add_argument_group("live view")
    live.add_argument("--prometheus", help="read the gateway's metrics from this Prometheus HTTP API")
    live.add_argument("--window", default="1d", help="the window to read (Prometheus duration, default 1d)")
    live.add_argument("--route", help="only this route's traffic (e.g. a split route)")
    cost = p.add_argument_group("pricing (data/figures.yaml)")
    cost.add_argument("--api-model", action="append",
                      help="the model API backends are priced as (default: the cheapest deployable Azure OpenAI model)")
    cost.add_argument("--api-deployment", help="globalStandard (default) or dataZone")
    cost.add_argument("--region", help="price region of the self-hosted node (default eastus)")
    cost.add_argument("--capacity-basis", help="sustainable (default) or saturation node throughput")
    cost.add_argument("--node-hourly", help="on-demand USD/hour of a node, instead of the figures")
    cost.add_argument("--as-of", help="date for model lifecycles, YYYY-MM-DD (default today)")
    p.add_argument("--format", choices=["table", "json"], default="table")
    return p


def _whole(text: str, flag: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UserError("command line", f"{flag} is {text!r}, not a whole number", f"give {low} to {high}") from None
    if not low <= value <= high:
        raise UserError("command line", f"{flag} is {value}", f"give {low} to {high}")
    return value


def _seconds(text: str, flag: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 < value <= 3600:
        raise UserError("command line", f"{flag} is {text!r}", "give a number of seconds above 0 and at most 3600")
    return value


def _temperature(text: str) -> float | None:
    if text == "default":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= 2:
        raise UserError("command line", f"--temperature is {text!r}", "give 0 to 2, or `default` to send none")
    return value


def _url(text: str, flag: str) -> str:
    parsed = urllib.parse.urlparse(text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UserError("command line", f"{flag} is {text!r}, not an http(s) URL", "write it like http://127.0.0.1:8080")
    return text.rstrip("/")


def _backends(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    bad = [name for name in names if not _BACKEND.match(name)]
    if bad or not names:
        raise UserError("command line", f"--backends has {', '.join(map(repr, bad)) or 'nothing'}",
                        "name the gateway's backends, comma-separated, e.g. vllm-customer,azure-openai")
    if len(set(names)) != len(names):
        raise UserError("command line", f"--backends names a backend twice ({text})", "name each backend once")
    return names


def _writable(path: Path) -> Path:
    """Refuse an unwritable --plot path before the run (which can take long) starts."""
    if path.is_dir():
        raise UserError("command line", f"--plot {path} is a directory", "give a file name ending in .png")
    folder = path.parent if str(path.parent) else Path(".")
    try:
        if not folder.is_dir():
            raise OSError(f"{folder} is not an existing folder")
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".compare-probe-"):
            pass
    except OSError as exc:
        raise UserError("command line", f"--plot {path} cannot be written ({getattr(exc, 'strerror', None) or exc})",
                        "pick a path in an existing folder you can write to") from None
    return path


def _as_of(text: str | None) -> datetime.date:
    if text is None:
        return datetime.date.today()
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise UserError("command line", f"--as-of is {text!r}, not a date", "write it like 2026-11-27") from None


def _workload(args: argparse.Namespace) -> Any:
    from ..workload import workload_from

    if args.api_model and len(args.api_model) > 1:
        raise UserError("command line", "--api-model is given more than once", "price API backends as one model")
    return workload_from(None, args, require_volume=False)


def _live(args: argparse.Namespace) -> str:
    from .live import observe
    from .report import LIVE_ROWS, grid

    for flag, given in (("--gateway", args.gateway), ("--plot", args.plot), ("--limit", args.limit)):
        if given is not None:
            raise UserError("command line", f"{flag} is for an evaluation run, not the live view (--prometheus)",
                            f"drop {flag}, or drop --prometheus")
    url = _url(args.prometheus, "--prometheus")
    backends = _backends(args.backends) if args.backends != DEFAULT_BACKENDS else None
    results, context = observe(url, args.window, args.route, _workload(args), _as_of(args.as_of), backends)
    if args.format == "json":
        import json

        return json.dumps({**{k: v for k, v in context.items() if k != "headline"},
                           "backends": {r.backend: _live_json(r) for r in results}}, indent=2)
    return "\n".join([context["headline"], ""] + grid(LIVE_ROWS, results) + [""]
                     + [f"Tokens/s: {context['tokens_per_second_basis']}"]
                     + [f"Priced, {r.backend}: {r.cost_basis}" for r in results])


def _live_json(result: Any) -> dict[str, Any]:
    document = result.as_json()
    for offline_only in ("pass_rate", "code_problems", "code_passed", "schema_ok_rate", "schema_tasks", "schema_ok",
                         "schema_ok_rate_response_format", "schema_ok_rate_prompt_only", "code_outcomes", "error_kinds"):
        document.pop(offline_only)
    return document


def _evaluation(args: argparse.Namespace) -> str:
    from .evaluate import evaluate, plan
    from .runner import Target
    from .sandbox import Limits

    if args.gateway is None:
        raise UserError("command line", "no --gateway", "give the gateway's URL (an evaluation run) or --prometheus "
                        "(the live view)")
    if args.route is not None:
        raise UserError("command line", "--route is for the live view", "drop --route, or use --prometheus")
    gateway = _url(args.gateway, "--gateway")
    key = args.key or os.environ.get(KEY_ENV)
    if not key:
        raise UserError("command line", f"no gateway key: neither --key nor {KEY_ENV} is set",
                        "give a key with backendOverride: true")
    backends = _backends(args.backends)
    concurrency = _whole(args.concurrency, "--concurrency", 1, 256)
    limit = _whole(args.limit, "--limit", 1, 100_000) if args.limit is not None else None
    timeout = _seconds(args.timeout, "--timeout")
    max_tokens = _whole(args.max_tokens, "--max-tokens", 16, 100_000)
    temperature = _temperature(args.temperature)
    exec_timeout = _seconds(args.exec_timeout, "--exec-timeout")
    plot_path = _writable(args.plot) if args.plot else None
    workload, as_of = _workload(args), _as_of(args.as_of)
    from .cost import pricing
    from .report import as_json, table
    from .results import summarise

    prices = {backend: pricing(backend, workload, as_of) for backend in backends}  # bad pricing flags fail first
    chosen = plan(args.suite, limit)
    target = Target(gateway, key, args.model or "", timeout, max_tokens, temperature)
    evaluation = asyncio.run(evaluate(target, backends, chosen, concurrency, Limits(seconds=exec_timeout)))
    summary = summarise(evaluation.samples, prices)
    results = [summary[backend] for backend in backends]
    sets = []
    if chosen.problems:
        sets.append(f"HumanEval {len(chosen.problems)} problems")
    if chosen.tasks:
        sets.append(f"schema-strict {len(chosen.tasks)} tasks ({sum(t.response_format for t in chosen.tasks)} with "
                    "response_format)")
    context = {
        "headline": f"Through {gateway} (model {evaluation.model}): {', '.join(sets)}; {concurrency} in flight per "
                    f"backend; {as_of}",
        "gateway": gateway, "model": evaluation.model, "date": as_of.isoformat(), "suite": args.suite,
        "humaneval_problems": len(chosen.problems), "schema_tasks": len(chosen.tasks), "concurrency": concurrency,
        "sandbox": list(evaluation.sandbox_layers),
    }
    if plot_path:
        from .plot import plot

        try:
            plot(results, plot_path, f"The same evaluation set through the gateway, each backend pinned: {', '.join(sets)}. "
                 f"Model {evaluation.model}, {concurrency} in flight per backend, {as_of}.")
        except OSError as exc:
            raise UserError("command line", f"--plot {plot_path} cannot be written: {exc.strerror or exc}") from None
        print(f"wrote {plot_path}", file=sys.stderr)
    if args.format == "json":
        samples = [{"backend": s.backend, "suite": s.suite, "id": s.item, "error": s.error,
                    "ttft_ms": None if s.ttft is None else s.ttft * 1000, "tokens_per_second": s.tokens_per_second,
                    "completion_tokens": s.completion_tokens, **s.extra} for s in evaluation.samples]
        return as_json(results, context, samples)
    return table(results, context)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        require_checkout()
        print(_live(args) if args.prometheus else _evaluation(args))
    except UserError as exc:
        print(f"error: {exc.where}: {exc.problem}" + (f" (fix: {exc.fix})" if exc.fix else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
