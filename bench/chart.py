"""The PNG chart: throughput (top row) and latency (bottom row, p50 solid, p99 pale behind it,
log scale so that one bad p99 does not flatten the rest) per variant and request, one column
per load mode. matplotlib's Agg backend: no display."""

from __future__ import annotations

import pathlib

import matplotlib as mpl

mpl.use("Agg")

import matplotlib.pyplot as plt  # after the backend is chosen

from bench.load import LABELS


def write(
    summary: dict, modes: list[str], requests: list[str], path: pathlib.Path, title: str
) -> None:
    variants = list(summary)
    width = 0.8 / max(len(variants), 1)
    colors = plt.get_cmap("tab10").colors
    fig, axes = plt.subplots(
        2, len(modes), figsize=(6.5 * len(modes), 8), squeeze=False, sharex=True
    )
    for col, mode in enumerate(modes):
        rps_ax, lat_ax = axes[0][col], axes[1][col]
        for i, variant in enumerate(variants):
            by_request = summary[variant].get(mode, {})
            xs = [r + (i - (len(variants) - 1) / 2) * width for r in range(len(requests))]
            rps = [by_request.get(q, {}).get("rps", 0.0) for q in requests]
            p50 = [by_request.get(q, {}).get("p50_ms", 0.0) for q in requests]
            p99 = [by_request.get(q, {}).get("p99_ms", 0.0) for q in requests]
            color = colors[i % len(colors)]
            rps_ax.bar(xs, rps, width, label=variant, color=color)
            lat_ax.bar(xs, p99, width, color=color, alpha=0.35)
            lat_ax.bar(xs, p50, width, color=color)
        rps_ax.set_title(LABELS[mode])
        rps_ax.set_ylabel("requests/s (median)")
        lat_ax.set_ylabel("latency ms (log): p50 solid, p99 pale")
        lat_ax.set_yscale("log")
        lat_ax.set_xticks(range(len(requests)), [LABELS[q] for q in requests], fontsize=8)
        for ax in (rps_ax, lat_ax):
            ax.grid(axis="y", alpha=0.3)
            ax.set_axisbelow(True)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(variants), 6), fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
