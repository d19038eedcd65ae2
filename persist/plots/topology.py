"""Persistence diagrams, barcodes and landscape profiles of loss landscapes (pure functions returning Figures).

Essential bars never die, so they are drawn on their own "inf" line (diagram) or as arrows running off
the axis (barcode), never at some arbitrary finite value that a reader could mistake for a death.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from persist.topology.diagrams import as_diagram, split_essential
from persist.topology.merge_tree import MergeTree

DIMENSION_COLORS = ("#3366aa", "#cc4455", "#229988", "#aa7722")
INF_LABEL = "∞"


def plot_diagram(diagrams: Mapping[int, np.ndarray], eps: float | None = None, title: str | None = None) -> Figure:
    """Birth-death scatter of all dimensions; essential bars as triangles on a dashed "inf" line.

    Points far from the diagonal are deep basins (H0) or wide loops (H1); ``eps`` shades the band of
    lifetimes at or below the noise floor, where points are not reproducible.
    """
    lo, hi, inf = _value_range(diagrams)
    pad = 0.04 * (inf - lo)
    fig = Figure(figsize=(5.2, 5.0), layout="constrained")
    ax = fig.add_subplot()
    line = np.array([lo - pad, inf + pad])
    ax.plot(line, line, color="0.35", lw=0.9, zorder=1)
    if eps:
        ax.fill_between(line, line, line + eps, color="0.88", lw=0, zorder=0, label=f"noise floor ε = {eps:.3g}")
    ax.axhline(inf, color="0.45", lw=0.8, ls=(0, (4, 3)), zorder=1)
    for k in sorted(diagrams):
        finite, essential = split_essential(diagrams[k])
        color = _color(k)
        ax.scatter(finite[:, 0], finite[:, 1], s=22, color=color, alpha=0.8, edgecolors="white", linewidths=0.4,
                   zorder=3, label=f"H{k}  ({len(finite)} finite)")
        if essential.size:
            ax.scatter(essential, np.full(essential.size, inf), s=70, marker="^", color=color, edgecolors="black",
                       linewidths=0.8, zorder=4, label=f"H{k}  ({essential.size} essential)")
    ticks = [t for t in MaxNLocator(6).tick_values(lo, hi) if lo - pad <= t <= hi]
    ax.set_yticks([*ticks, inf], [f"{t:g}" for t in ticks] + [INF_LABEL])
    ax.set_xlim(lo - pad, inf + pad)
    ax.set_ylim(lo - pad, inf + pad)
    ax.set_aspect("equal")
    ax.set_xlabel("birth (loss)")
    ax.set_ylabel("death (loss)")
    _style(ax, title or "Persistence diagram")
    ax.legend(loc="lower right", frameon=False, fontsize=8)
    return fig


def plot_barcode(
    diagrams: Mapping[int, np.ndarray], eps: float | None = None, title: str | None = None, max_bars: int = 60
) -> Figure:
    """One barcode panel per dimension, longest bars on top; essential bars are arrows off the right edge.

    Only the ``max_bars`` longest bars of each dimension are drawn (the panel title says so), since a
    rugged landscape has thousands of near-zero bars; bars at or below ``eps`` are drawn faded.
    """
    dims = sorted(diagrams)
    lo, _, inf = _value_range(diagrams)
    pad = 0.04 * (inf - lo)
    rows = [min(max_bars, len(as_diagram(diagrams[k]))) for k in dims]
    height = 1.0 + sum(0.6 + 0.09 * r for r in rows)
    fig = Figure(figsize=(6.4, min(height, 11.0)), layout="constrained")
    axes = fig.subplots(max(len(dims), 1), 1, sharex=True, squeeze=False,
                        height_ratios=[r + 4 for r in rows] or None)[:, 0]
    for ax, k in zip(axes, dims, strict=False):  # no dims: one empty panel, no pairs
        _draw_bars(ax, as_diagram(diagrams[k]), k, eps, inf, max_bars)
    for ax in axes:
        ax.set_xlim(lo - pad, inf + pad)
        _style(ax, None)
    bottom = axes[-1]
    ticks = [t for t in MaxNLocator(6).tick_values(lo, inf) if lo - pad <= t < inf - pad]
    bottom.set_xticks([*ticks, inf], [f"{t:g}" for t in ticks] + [INF_LABEL])
    bottom.set_xlabel("filtration value (loss)")
    fig.suptitle(title or "Barcode", x=0.02, ha="left", fontsize=11, fontweight="bold")
    return fig


def plot_landscape_profile(
    tree: MergeTree,
    eps: float | None = None,
    max_leaves: int = 40,
    title: str | None = None,
    ylabel: str = "loss",
) -> Figure:
    """Topological landscape profile of a merge tree: each basin a valley, nested as the basins merge.

    A valley's floor is its minimum, its rim the saddle where it merges into an older basin, so its depth
    is the basin's persistence (H0 bar); its width is the number of grid nodes in the basin when it merges,
    so wide valleys are large basins (Oesterling et al. 2013; Geniesse et al. 2024). Only the ``max_leaves``
    most persistent basins are drawn (the caption says how many there are); minima of basins at or below
    the noise floor ``eps`` are grey. Works for grids of any dimension, which is its point: a 3-D or 4-D
    landscape cannot be drawn as a surface, its merge tree can.
    """
    shown = tree.top(max_leaves)
    kids = shown.children()
    persistence = shown.branch_persistence()
    lo = float(shown.height.min()) if shown.n_nodes else 0.0
    hi = float(shown.height.max()) if shown.n_nodes else 1.0
    top = hi + 0.15 * max(hi - lo, 1e-12)
    xs: list[float] = []
    ys: list[float] = []
    minima: list[tuple[float, float, bool]] = []

    def valley(node: int, x0: float, width: float, rim: float) -> None:
        h = float(shown.height[node])
        if not kids[node]:
            xs.extend([x0, x0 + width / 2, x0 + width])
            ys.extend([rim, h, rim])
            minima.append((x0 + width / 2, h, bool(persistence[node] > (eps or 0.0))))
            return
        inner = min(width, float(sum(max(shown.size[k], 1) for k in kids[node])))
        margin = (width - inner) / 2
        xs.append(x0)
        ys.append(rim)
        x = x0 + margin
        for k in kids[node]:
            w = inner * max(shown.size[k], 1) / sum(max(shown.size[c], 1) for c in kids[node])
            valley(k, x, w, h)
            x += w
        xs.append(x0 + width)
        ys.append(rim)

    x = 0.0
    for root in shown.roots:
        # the part of a region above its last saddle is no basin: a narrow rim instead of its full size
        inner = sum(max(int(shown.size[k]), 1) for k in kids[root]) or max(int(shown.size[root]), 1)
        width = float(min(max(shown.size[root], 1), 1.1 * inner))
        valley(int(root), x, width, top)
        x += width
    fig = Figure(figsize=(7.0, 4.2), layout="constrained")
    ax = fig.add_subplot()
    floor = lo - 0.05 * (top - lo)
    ax.fill_between(xs, ys, floor, color="#c9d9ee", lw=0, zorder=1)
    ax.plot(xs, ys, color=DIMENSION_COLORS[0], lw=1.3, zorder=2)
    if minima:
        mx, my, real = (np.array(v) for v in zip(*minima, strict=True))
        ax.scatter(mx[real], my[real], s=28, color=DIMENSION_COLORS[1], zorder=3, label="minimum above the floor")
        ax.scatter(mx[~real], my[~real], s=18, color="0.6", zorder=3, label="minimum at or below the floor")
    ax.set_xlim(0, max(x, 1.0))
    ax.set_ylim(floor, top)
    ax.set_xlabel("grid nodes (valley width = basin size)")
    ax.set_ylabel(ylabel)
    n_leaves, n_all = len(shown.leaves), len(tree.leaves)
    caption = f"{n_all} basins" if n_leaves == n_all else f"{n_leaves} most persistent of {n_all} basins"
    if eps:
        caption += f"; noise floor ε = {eps:.3g}"
    ax.set_title(caption, loc="right", fontsize=8, color="0.3")
    _style(ax, title or "Topological landscape profile")
    if minima:
        ax.legend(loc="upper center", ncols=2, frameon=False, fontsize=8)
    return fig


def _draw_bars(ax: Axes, diagram: np.ndarray, k: int, eps: float | None, inf: float, max_bars: int) -> None:
    length = np.where(np.isinf(diagram[:, 1]), np.inf, diagram[:, 1] - diagram[:, 0])
    shown = diagram[np.argsort(-length, kind="stable")[:max_bars]]
    y = np.arange(len(shown))
    color = _color(k)
    width = float(np.clip(160 / max(len(shown), 1), 1.2, 5.0))
    essential = np.isinf(shown[:, 1])
    noise = ~essential & (shown[:, 1] - shown[:, 0] <= (eps or 0.0))
    for mask, alpha in ((~essential & ~noise, 0.9), (noise, 0.3)):
        ax.hlines(y[mask], shown[mask, 0], shown[mask, 1], color=color, lw=width, alpha=alpha)
    if essential.any():
        ax.hlines(y[essential], shown[essential, 0], inf, color=color, lw=width * 1.3)
        ax.scatter(np.full(essential.sum(), inf), y[essential], marker=">", s=45, color=color, zorder=3)
    ax.set_ylim(max(len(shown), 1) - 0.4, -0.6)
    ax.set_yticks([])
    ax.set_ylabel(f"H{k}", rotation=0, ha="right", va="center", fontweight="bold", color=color)
    total = len(diagram)
    caption = f"{total} bars" if len(shown) == total else f"{len(shown)} longest of {total} bars"
    if eps:
        caption += f"; faded: lifetime ≤ ε = {eps:.3g}"
    ax.set_title(caption, loc="left", fontsize=8, color="0.3")


def _value_range(diagrams: Mapping[int, np.ndarray]) -> tuple[float, float, float]:
    """Smallest birth, largest finite value, and where to draw "inf" (a margin above the largest)."""
    arrays = [as_diagram(d) for d in diagrams.values()]
    values = np.concatenate([a.ravel() for a in arrays]) if arrays else np.empty(0)
    values = values[np.isfinite(values)]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return lo, hi, hi + 0.12 * (hi - lo)


def _color(k: int) -> str:
    return DIMENSION_COLORS[k % len(DIMENSION_COLORS)]


def _style(ax: Axes, title: str | None) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(alpha=0.25, lw=0.6)
    ax.set_axisbelow(True)
    if title:
        ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
