"""The comparison as a PNG: one panel per figure, a bar per backend."""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from .results import BackendResult

COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


def plot(results: list[BackendResult], out: Path, title: str) -> Path:
    names = [r.backend for r in results]
    colours = [COLOURS[i % len(COLOURS)] for i in range(len(results))]
    figure, axes = plt.subplots(2, 3, figsize=(13, 7.5), dpi=100)
    panels = [
        ("Code correctness: HumanEval pass@1 (%)", [_pct(r.pass_rate) for r in results], "{:.1f}%"),
        ("Instruction following: schema-strict (%)", [_pct(r.schema_ok_rate) for r in results], "{:.1f}%"),
        ("First-token latency p50 (ms)", [r.ttft_p50_ms for r in results], "{:,.0f}"),
        ("Streaming tokens/s p50", [r.tokens_per_second_p50 for r in results], "{:,.1f}"),
        ("USD per 1M tokens", [r.usd_per_1m_tokens for r in results], "${:,.2f}"),
        ("Errors (% of requests)", [_pct(r.errors / r.requests if r.requests else None) for r in results], "{:.1f}%"),
    ]
    for axis, (label, values, fmt) in zip(axes.flat, panels):
        heights = [v if v is not None else 0.0 for v in values]
        bars = axis.bar(names, heights, color=colours)
        if label.startswith("First-token"):
            # p95 as a whisker above the p50 bar.
            p95 = [r.ttft_p95_ms for r in results]
            for bar, high in zip(bars, p95):
                if high is not None:
                    x = bar.get_x() + bar.get_width() / 2
                    axis.plot([x, x], [bar.get_height(), high], color="black", linewidth=1)
                    axis.plot([x - 0.08, x + 0.08], [high, high], color="black", linewidth=1)
                    axis.annotate(f"p95 {high:,.0f}", (x, high), textcoords="offset points", xytext=(0, 3),
                                  ha="center", fontsize=8)
        for bar, value, result in zip(bars, values, results):
            text = "n/a" if value is None else fmt.format(value)
            if label.startswith("Errors") and value is not None:
                text += f" ({result.errors}/{result.requests})"
            axis.annotate(text, (bar.get_x() + bar.get_width() / 2, bar.get_height()), textcoords="offset points",
                          xytext=(0, 3 if not label.startswith("First-token") else -12), ha="center", fontsize=9)
        if label.startswith("Errors"):
            axis.set_ylim(0, max(10.0, max(heights) * 1.2))
        elif label.endswith("(%)"):
            axis.set_ylim(0, 110)
        else:
            top = max([h for h in heights] + [high for high in ([r.ttft_p95_ms or 0 for r in results]
                                                               if label.startswith("First-token") else [])] + [1e-9])
            axis.set_ylim(0, top * 1.2)
        axis.set_title(label, fontsize=10)
        axis.tick_params(axis="x", labelsize=9)
        axis.grid(axis="y", alpha=0.3)
    figure.suptitle(textwrap.fill(title, 150), fontsize=11)
    figure.tight_layout()
    figure.savefig(out)
    plt.close(figure)
    return out


def _pct(rate: float | None) -> float | None:
    return None if rate is None else rate * 100
