"""Figures for the initialization-quality study; each function takes arrays and returns a Figure."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure


def plot_surrogate_fit(true: np.ndarray, pred: np.ndarray, label: str = "log loss") -> Figure:
    """Held-out surrogate predictions against the real values, with the identity line."""
    fig = Figure(figsize=(4.5, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.scatter(true, pred, s=6, alpha=0.5)
    lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], color="k", lw=1)
    ax.set(xlabel=f"real {label}", ylabel=f"surrogate {label}", title="surrogate on held-out inits")
    return fig


def plot_local_landscape(coords: np.ndarray, real: np.ndarray, surrogate: np.ndarray, title: str = "") -> Figure:
    """One local slice (first two coordinates) coloured by the real and by the surrogate loss."""
    fig = Figure(figsize=(9, 4), layout="constrained")
    for ax, values, name in zip(fig.subplots(1, 2), (real, surrogate), ("real loss", "surrogate loss"), strict=True):
        sc = ax.scatter(coords[:, 0], coords[:, 1], c=values, s=12, cmap="viridis")
        fig.colorbar(sc, ax=ax)
        ax.set(xlabel="a1 (filter-normalized)", ylabel="a2", title=f"{title} {name}".strip())
    return fig


def plot_betti_curves(
    thresholds: dict[str, np.ndarray], curves: dict[str, np.ndarray], groups: np.ndarray, group_names: list[str]
) -> Figure:
    """Mean Betti curve per group, one panel per (filtration, dimension) key; curves[key] is (M, T)."""
    keys = list(curves)
    fig = Figure(figsize=(4 * len(keys), 3.5), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(keys)))
    for ax, key in zip(axes, keys, strict=True):
        for g, name in enumerate(group_names):
            if (groups == g).any():
                ax.plot(thresholds[key], curves[key][groups == g].mean(0), label=name)
        ax.set(title=key, xlabel="threshold", ylabel="mean Betti number")
    axes[-1].legend(fontsize="x-small")
    return fig


def plot_outcomes_by_scheme(values: np.ndarray, groups: np.ndarray, group_names: list[str], ylabel: str) -> Figure:
    """One jittered column of points per group with its median marked."""
    fig = Figure(figsize=(1 + 0.9 * len(group_names), 4), layout="constrained")
    ax = fig.subplots()
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(values))
    ax.scatter(groups + jitter, values, s=10, alpha=0.7)
    for g in range(len(group_names)):
        if (groups == g).any():
            ax.hlines(np.median(values[groups == g]), g - 0.3, g + 0.3, color="k")
    ax.set_xticks(range(len(group_names)), group_names, rotation=45, ha="right")
    ax.set(ylabel=ylabel)
    return fig


def plot_prediction_scores(labels: list[str], r2: np.ndarray, spearman: np.ndarray) -> Figure:
    """Mean ± sd over seeds of R^2 and Spearman per (feature set, model); r2 and spearman are (K, seeds)."""
    y = np.arange(len(labels))
    fig = Figure(figsize=(10, 0.35 * len(labels) + 1.5), layout="constrained")
    for ax, values, name in zip(fig.subplots(1, 2, sharey=True), (r2, spearman), ("R^2", "Spearman"), strict=True):
        sd = values.std(1, ddof=1) if values.shape[1] > 1 else np.zeros(len(values))
        ax.barh(y, values.mean(1), xerr=sd, color="tab:blue", alpha=0.8)
        ax.axvline(0, color="k", lw=1)
        ax.set(xlabel=f"out-of-fold {name}")
    fig.axes[0].set_yticks(y, labels)
    return fig


def plot_importance(names: list[str], drops: np.ndarray, top: int = 15) -> Figure:
    """Largest permutation importances (mean drop in R^2 when a feature is shuffled)."""
    order = np.argsort(drops)[::-1][:top][::-1]
    fig = Figure(figsize=(6, 0.3 * len(order) + 1.5), layout="constrained")
    ax = fig.subplots()
    ax.barh(np.arange(len(order)), drops[order])
    ax.set_yticks(np.arange(len(order)), [names[i] for i in order])
    ax.set(xlabel="mean drop in R^2 (permutation)")
    return fig
