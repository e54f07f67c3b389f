"""The crossover picture: monthly cost against tokens/day for each strategy."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

from . import cost_figures  # noqa: E402
from .economics import DAYS_PER_MONTH, Analysis, sweep  # noqa: E402

NODE_LABELS = (2, 3, 5, 10, 20, 50, 100)
# API lines take these in turn; black, grey and dark violet are kept for the self-hosted strategies.
API_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:cyan", "tab:pink", "tab:olive", "navy",
               "darkgoldenrod", "teal", "crimson", "tab:brown", "mediumseagreen", "slateblue")
SELF_HOSTED_STYLES = {"self-host, on-demand": ("black", "-."), "self-host, spot batch": ("0.45", "--"),
                      "hybrid": ("darkviolet", ":")}


def plot(analysis: Analysis, out: Path, ignore_capacity: bool = False) -> Path:
    workload = analysis.workload
    volumes = [10 ** (6 + i / 40) for i in range(0, 4 * 40 + 1)]  # 1M .. 10B tokens/day
    runs = sweep(workload, volumes, ignore_capacity, analysis.as_of)
    xs = [volume for volume, _ in runs]
    models = cost_figures.api_models()
    figure, axes = plt.subplots(figsize=(12, 7), dpi=110)
    # Log axes first: every position placed below is then in its final coordinates.
    axes.set_xscale("log")
    axes.set_yscale("log")
    priced = [s for s in analysis.strategies if s.monthly_usd is not None]
    colours = iter(API_COLOURS * 3)
    for strategy in priced:
        # A gap (NaN) where the strategy cannot be priced at that volume.
        costs = [_or_gap(run.strategy(strategy.name).monthly_usd) for _, run in runs]
        if strategy.kind == "api" and strategy.api_model is not None:
            model = models[strategy.api_model]
            if model.retired_on(analysis.as_of):
                axes.plot(xs, costs, linestyle=":", linewidth=1.0, color="0.6",
                          label=f"{strategy.name} (RETIRED {model.retires})")
            elif not model.is_azure_openai:
                axes.plot(xs, costs, "-", linewidth=2.4, color=next(colours),
                          label=f"{strategy.name} ({model.provider}: the same model)")
            else:
                axes.plot(xs, costs, "-", linewidth=1.3, color=next(colours), label=strategy.name)
            continue
        colour, style = SELF_HOSTED_STYLES.get(strategy.name, ("black", "-."))
        axes.plot(xs, costs, style, drawstyle="steps-post", linewidth=2.2, color=colour, label=strategy.name)
        if strategy.name == "self-host, on-demand":
            _label_node_steps(axes, runs, strategy.name, colour)
    _mark_crossovers(axes, analysis, runs)
    axes.axvline(workload.tokens_per_day, color="grey", linestyle="--", linewidth=1)
    axes.text(workload.tokens_per_day, 0.02, " this workload", rotation=90, fontsize=8, color="grey",
              ha="right", va="bottom", transform=blended_transform_factory(axes.transData, axes.transAxes))
    axes.set_xlabel("tokens per day (prompt + completion)")
    axes.set_ylabel("USD per month")
    node = analysis.node
    axes.set_title(f"Llama 3.3 70B on {node.instance_type} ({node.region}, ${node.on_demand_hourly:g}/h, "
                   f"{node.requests_per_second:.2f} req/s per node) vs APIs, as of {analysis.as_of}\n"
                   f"{workload.prompt_tokens}+{workload.completion_tokens} tokens/request, "
                   f"peak x{workload.peak_to_average:g}, batch {workload.batch_share:.0%}, "
                   f"schema-strict {workload.schema_strict_share:.0%}; dotted grey: retired, never recommended",
                   fontsize=9)
    axes.grid(True, which="both", alpha=0.25)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)
    return out


def _or_gap(value: float | None) -> float:
    return float("nan") if value is None else value


def _label_node_steps(axes, runs, name: str, color: str) -> None:
    """Tick each added node; name a few counts, set below the step so the text clears the lines."""
    previous = None
    for volume, run in runs:
        strategy = run.strategy(name)
        if previous is not None and strategy.nodes != previous and strategy.monthly_usd is not None:
            if strategy.nodes <= 12:
                axes.plot(volume, strategy.monthly_usd, "|", color=color, markersize=10)
            if strategy.nodes in NODE_LABELS:
                axes.annotate(f"{strategy.nodes} nodes", (volume, strategy.monthly_usd), textcoords="offset points",
                              xytext=(3, -14), fontsize=7, color=color,
                              bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))
        previous = strategy.nodes


def _mark_crossovers(axes, analysis: Analysis, runs) -> None:
    if not runs:
        return
    low, high = runs[0][0], runs[-1][0]
    models = cost_figures.api_models()
    shown = 0
    for cross in analysis.crossovers:
        model = models[cross.model]
        if cross.tokens_per_day is None or not low <= cross.tokens_per_day <= high or model.retired_on(analysis.as_of):
            continue
        price = model.prices[analysis.workload.api_deployment]
        cost = price.per_token(analysis.workload.prompt_tokens, analysis.workload.completion_tokens,
                               analysis.workload.cached_prompt_share) * cross.tokens_per_day * DAYS_PER_MONTH
        axes.plot(cross.tokens_per_day, cost, "o", color="black", markersize=4)
        # Labels form a list in the empty upper-left corner, each with a line to its point.
        axes.annotate(f"crossover {cross.model}: {cross.tokens_per_day / 1e6:,.0f}M tokens/day",
                      (cross.tokens_per_day, cost), textcoords="axes fraction", xytext=(0.03, 0.95 - 0.05 * shown),
                      va="top",
                      fontsize=7, arrowprops=dict(arrowstyle="-", color="0.4", linewidth=0.6),
                      bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="0.7", alpha=0.95))
        shown += 1
