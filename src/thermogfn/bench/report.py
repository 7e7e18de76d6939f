"""Tables (CSV + markdown) and plots (PNG) of benchmark results: mean and spread over seeds."""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from thermogfn.plots import pyplot
from thermogfn.rundir import atomic_write_text


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values (std nan for fewer than two)."""
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return math.nan, math.nan
    m = sum(vals) / len(vals)
    return m, (sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else math.nan


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def summary_table(rows: list[dict[str, Any]], key: str, metrics: list[str], digits: int = 3) -> str:
    """Markdown: one row per (method, key value), ``mean ± std`` over seeds for each metric (the mean alone
    where there is one seed)."""
    groups: dict[tuple[str, Any], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        for m in metrics:
            groups[(r["method"], r[key])][m].append(r[m])
    lines = [f"| method | {key} | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 2) + "|"]
    for (method, k), vals in groups.items():
        cells = []
        for m in metrics:
            mu, sd = mean_std(vals[m])
            spread = "" if math.isnan(sd) else f" ± {sd:.2g}"
            cells.append("n/a" if math.isnan(mu) else f"{mu:.{digits}g}{spread}")
        lines.append(f"| {method} | {k} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def band_plot(curves: dict[str, list[tuple[list[float], list[float]]]], xlabel: str, ylabel: str, path: Path,
              logx: bool = False) -> Path:
    """One line per method (mean over seeds) with a min-max band; ``curves[method] = [(xs, ys) per seed]``."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for method, per_seed in curves.items():
        xs = per_seed[0][0]
        n = min(len(ys) for _, ys in per_seed)
        xs = xs[:n]
        cols = [[ys[i] for _, ys in per_seed] for i in range(n)]
        mean = [sum(c) / len(c) for c in cols]
        ax.plot(xs, mean, label=method)
        ax.fill_between(xs, [min(c) for c in cols], [max(c) for c in cols], alpha=0.2)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
