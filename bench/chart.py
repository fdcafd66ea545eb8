"""Draws bench/RESULTS.md's table as a chart: crops/s per reader, one panel
per workload and mode (warm page cache, cold disk), with the smaller
hardware limit as a line. `make bench` writes it beside RESULTS.md as
RESULTS.png; `python bench/chart.py RESULTS.md -o OUT.png` (or the
results.json beside the bench data) redraws one."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def panels(report: dict[str, Any]) -> list[tuple[str, str, dict[str, float], float | None]]:
    """(workload, mode, crops/s per reader that ran, smaller hardware
    limit) for every table of the report, in its order."""
    out = []
    for name, res in report.get("workloads", {}).items():
        for mode, runs in res.get("runs", {}).items():
            rates = {reader: r["crops"] / r["seconds"] for reader, r in runs.items() if "crops" in r and r.get("seconds")}
            disk = res.get("limit_disk_cold" if mode == "cold" else "limit_disk_warm")
            limits = [x for x in (disk, res.get("limit_decode")) if x is not None]
            out.append((name, mode, rates, min(limits) if limits else None))
    return out


def _number(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def panels_from_markdown(text: str) -> list[tuple[str, str, dict[str, float], float | None]]:
    """The same panels, read back from RESULTS.md's tables ("## workload:"
    then "### mode" then rows "| reader | crops/s | ..."), so that a chart
    can be drawn for results whose JSON was not kept."""
    out: list[tuple[str, str, dict[str, float], float | None]] = []
    workload = mode = None
    for line in text.splitlines():
        if line.startswith("## "):
            workload = line[3:].split(":")[0].strip() if ":" in line else None
            mode = None
        elif line.startswith("### ") and workload:
            mode = line[4:].strip()
            out.append((workload, mode, {}, None))
        elif line.startswith("|") and workload and mode and out:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) < 2 or cells[0] in ("reader", "") or set(cells[0]) <= set("-"):
                continue
            rate = _number(cells[1])
            name, m, rates, limit = out[-1]
            if cells[0].startswith("hardware limit"):
                if rate is not None:
                    out[-1] = (name, m, rates, rate if limit is None else min(limit, rate))
            elif rate is not None:
                rates[cells[0]] = rate
    return [p for p in out if p[2]]


def draw(report: dict[str, Any] | str, out: str) -> "Figure":
    """Writes the chart of a results.json report (or RESULTS.md's text) as
    a PNG to out and returns the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tables = panels_from_markdown(report) if isinstance(report, str) else panels(report)
    if not tables:
        raise ValueError("the report has no workload runs to chart")
    fig = Figure(figsize=(4.2 * len(tables), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(tables), squeeze=False)[0]
    for ax, (name, mode, rates, limit) in zip(axes, tables):
        readers = list(rates)
        colors = ["tab:orange" if r.startswith("ours") else "tab:blue" for r in readers]
        bars = ax.bar(range(len(readers)), [rates[r] for r in readers], color=colors)
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_xticks(range(len(readers)), readers, rotation=30, ha="right", fontsize=8)
        if limit is not None:
            ax.axhline(limit, color="black", linestyle="--", linewidth=1, label=f"hardware limit {limit:.1f}")
            ax.legend(fontsize=7, loc="upper left")
        ax.set_ylim(0, 1.15 * max([*rates.values(), limit or 0]))
        ax.set_title(f"{name}, {mode}", fontsize=10)
        ax.set_ylabel("crops/s")
    fig.suptitle("make bench: crops/s per reader (higher is better; orange: lsio-loader)", fontsize=10)
    fig.savefig(out, format="png", dpi=100)
    return fig


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("results", help="RESULTS.md, or the results.json bench/run.py writes")
    p.add_argument("-o", "--out", required=True, help="PNG to write")
    args = p.parse_args()
    with open(args.results) as f:
        draw(json.load(f) if args.results.endswith(".json") else f.read(), args.out)


if __name__ == "__main__":
    main()
