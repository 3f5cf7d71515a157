"""Per-class gIoU / cIoU bar chart (matplotlib, Agg canvas; matplotlib is an optional [dev] extra)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from gear_edge.errors import MissingDependencyError


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingDependencyError(
            "the eval plot needs matplotlib: pip install 'gear-edge[dev]' (or pip install matplotlib), "
            "or skip the plot (gear-edge eval --no-plot)"
        ) from exc
    return Figure, FigureCanvasAgg


def plot_per_class(summary: dict[str, Any], path: str | os.PathLike, *, title: str = "") -> Path:
    """Grouped bars of gIoU and cIoU per class plus "all"; the sample count is written under each class."""
    from gear_edge.data_engine.journal import write_atomic

    Figure, FigureCanvasAgg = _matplotlib()  # noqa: N806
    classes = list(summary.get("by_class", {}))
    rows = [(c, summary["by_class"][c]) for c in classes] + [("all", summary)]
    labels = [f"{c}\n(n={d['n']})" for c, d in rows]
    g = [d["gIoU"] or 0.0 for _, d in rows]
    ci = [d["cIoU"] or 0.0 for _, d in rows]
    fig = Figure(figsize=(max(6.0, 1.1 * len(rows) + 2), 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(len(rows)))
    w = 0.38
    b1 = ax.bar([x - w / 2 for x in xs], g, w, label="gIoU", color="#4C72B0")
    b2 = ax.bar([x + w / 2 for x in xs], ci, w, label="cIoU", color="#DD8452")
    for bars in (b1, b2):
        for b in bars:
            ax.annotate(f"{b.get_height():.2f}", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 1), textcoords="offset points")
    ax.set_xticks(xs)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("IoU")
    ax.set_title(title or "gIoU / cIoU per class")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return write_atomic(path, buf.getvalue())
