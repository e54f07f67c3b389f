"""The crossover picture: monthly cost against tokens/day for each strategy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from .economics import Analysis, analyse  # noqa: E402


def plot(analysis: Analysis, out: Path, ignore_capacity: bool = False) -> Path:
    workload = analysis.workload
    volumes = [10 ** (6 + i / 40) for i in range(0, 4 * 40 + 1)]  # 1M .. 10B tokens/day
    runs = [analyse(replace(workload, tokens_per_day=v), ignore_capacity) for v in volumes]
    names = [s.name for s in analysis.strategies]
    figure, axes = plt.subplots(figsize=(10, 6.5), dpi=120)
    for index, name in enumerate(names):
        costs = [next(s for s in run.strategies if s.name == name).monthly_usd for run in runs]
        style = "-" if name.startswith("API") else "-."
        line, = axes.plot(volumes, costs, style, drawstyle="steps-post" if not name.startswith("API") else "default",
                          label=name, linewidth=1.8)
        if name == "self-host, on-demand":
            # Mark where one more node is needed.
            previous = None
            for volume, run in zip(volumes, runs):
                nodes = next(s for s in run.strategies if s.name == name).nodes
                if previous is not None and nodes != previous and nodes <= 12:
                    axes.plot(volume, next(s for s in run.strategies if s.name == name).monthly_usd, "|",
                              color=line.get_color(), markersize=12)
                if previous is not None and nodes != previous and nodes in (2, 3, 5, 10, 20, 50, 100):
                        axes.annotate(f"{nodes} nodes", (volume, next(s for s in run.strategies
                                      if s.name == name).monthly_usd), textcoords="offset points", xytext=(2, 6),
                                      fontsize=7, color=line.get_color())
                previous = nodes
    for cross in analysis.crossovers:
        if cross.tokens_per_day and volumes[0] <= cross.tokens_per_day <= volumes[-1]:
            point = analyse(replace(workload, tokens_per_day=cross.tokens_per_day), ignore_capacity)
            cost = next(s for s in point.strategies if s.name == f"API only: {cross.model}").monthly_usd
            axes.plot(cross.tokens_per_day, cost, "o", color="black")
            axes.annotate(f"crossover {cross.model}\n{cross.tokens_per_day / 1e6:,.0f}M tokens/day",
                          (cross.tokens_per_day, cost), textcoords="offset points", xytext=(6, -24), fontsize=8)
    axes.axvline(workload.tokens_per_day, color="grey", linestyle=":", linewidth=1)
    axes.annotate("this workload", (workload.tokens_per_day, axes.get_ylim()[0]), rotation=90, fontsize=8,
                  color="grey", textcoords="offset points", xytext=(-10, 10))
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("tokens per day (prompt + completion)")
    axes.set_ylabel("USD per month")
    node = analysis.node
    axes.set_title(f"Llama 3.3 70B on {node.instance_type} ({node.region}, ${node.on_demand_hourly}/h on-demand) "
                   f"vs Azure OpenAI\n{workload.prompt_tokens}+{workload.completion_tokens} tokens/request, "
                   f"peak x{workload.peak_to_average}, batch {workload.batch_share:.0%}, "
                   f"schema-strict {workload.schema_strict_share:.0%}", fontsize=10)
    axes.grid(True, which="both", alpha=0.25)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)
    plt.close(figure)
    return out
