"""Figures for the analysis phase: rank scatter, correlation heatmap, forest plot, LOAO predictions.

Pure functions: arrays, DataFrames or an AnalysisResult in, matplotlib Figures out; nothing is saved
or logged (persist/phases/analysis.py does that).
Rank statistics are shown on ranks as well as raw values, because a raw-scale scatter of
measures spanning three orders of magnitude hides exactly the ordering the test uses.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterator, Literal, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy.stats import rankdata

import persist.plots  # noqa: F401  (selects the Agg backend)
from persist.stats.report import SYMBOL, format_p, format_r

if TYPE_CHECKING:
    from persist.stats.analysis import AnalysisResult

_POINT = "#2b6ca3"
_FIT = "#c0392b"
_PALETTE = ("#2b6ca3", "#d35400", "#27ae60", "#8e44ad", "#7f8c8d", "#c0392b")


def rank_scatter(
    x: np.ndarray,
    y: np.ndarray,
    labels: Sequence[str],
    x_name: str,
    y_name: str,
    stats_text: str = "",
) -> Figure:
    """Raw values beside mid-ranks with an OLS rank fit.

    A non-negative axis spanning more than 100x is drawn on a log scale (symlog, linear below the
    smallest positive value, when zeros are present) so clustered small values stay readable.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    fig, (raw, ranked) = plt.subplots(1, 2, figsize=(10.5, 4.4), layout="constrained")
    _labelled_points(raw, x, y, labels)
    for axis, values in (("x", x), ("y", y)):
        _log_scale_if_wide(raw, axis, values)
    raw.set(xlabel=x_name, ylabel=y_name, title="values")

    rx, ry = rankdata(x), rankdata(y)
    _labelled_points(ranked, rx, ry, labels)
    if np.ptp(rx) > 0:
        slope, intercept = np.polyfit(rx, ry, 1)
        grid = np.array([rx.min() - 0.5, rx.max() + 0.5])
        ranked.plot(grid, intercept + slope * grid, color=_FIT, lw=1.6, zorder=1, label="OLS on ranks")
        ranked.legend(loc="lower right", frameon=False, fontsize=8)
    ranked.set(xlabel=f"rank of {x_name}", ylabel=f"rank of {y_name}", title="ranks (what the test uses)")
    if stats_text:
        ranked.text(0.03, 0.97, stats_text, transform=ranked.transAxes, va="top", ha="left", fontsize=9,
                    bbox={"boxstyle": "round,pad=0.4", "fc": "white", "ec": "0.8"})
    for ax in (raw, ranked):
        _style(ax)
    fig.suptitle(f"{y_name} vs {x_name} (n = {len(x)})", fontsize=12)
    return fig


def correlation_heatmap(r: pd.DataFrame, p: pd.DataFrame | None = None, title: str = "") -> Figure:
    """Predictors (rows) x outcomes (columns) coefficients on a symmetric diverging scale.

    Stars mark p < 0.05 / 0.01 / 0.001 of the ``p`` table given (pass corrected p-values to
    make the stars mean family-wise significance); empty cells are untested.
    """
    values = r.to_numpy(float)
    fig, ax = plt.subplots(figsize=(1.6 + 1.25 * values.shape[1], 1.2 + 0.5 * values.shape[0]), layout="constrained")
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            stars = _stars(p.to_numpy(float)[i, j]) if p is not None else ""
            ax.text(j, i, f"{v:+.2f}{stars}", ha="center", va="center", fontsize=9,
                    color="white" if abs(v) > 0.6 else "black")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in r.columns], rotation=30, ha="right")
    ax.set_yticks(range(values.shape[0]), [str(i) for i in r.index])
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.colorbar(image, ax=ax, shrink=0.85, label="rank correlation")
    ax.set_title(title or "rank correlations", fontsize=11)
    return fig


def forest_plot(
    labels: Sequence[str],
    r: np.ndarray,
    ci_low: np.ndarray,
    ci_high: np.ndarray,
    groups: Sequence[str] | None = None,
    highlight: np.ndarray | None = None,
    xlabel: str = "rank correlation",
    title: str = "",
) -> Figure:
    """Effects with CIs, one row each; filled markers for ``highlight`` (e.g. corrected p < alpha)."""
    r, lo, hi = (np.asarray(a, float) for a in (r, ci_low, ci_high))
    groups = list(groups) if groups is not None else [""] * len(r)
    highlight = np.zeros(len(r), bool) if highlight is None else np.asarray(highlight, bool)
    colors = {g: _PALETTE[k % len(_PALETTE)] for k, g in enumerate(dict.fromkeys(groups))}
    fig, ax = plt.subplots(figsize=(7.5, 1.0 + 0.32 * len(r)), layout="constrained")
    ypos = np.arange(len(r))[::-1]
    for k in range(len(r)):
        c = colors[groups[k]]
        ax.plot([lo[k], hi[k]], [ypos[k]] * 2, color=c, lw=1.8, solid_capstyle="round")
        ax.plot(r[k], ypos[k], "o", ms=6.5, color=c, mfc=c if highlight[k] else "white", mew=1.6)
    ax.axvline(0, color="0.4", lw=0.9, ls="--", zorder=0)
    ax.set_yticks(ypos, list(labels))
    ax.set_xlim(-1.05, 1.05)
    ax.set(xlabel=xlabel, ylim=(-0.7, len(r) - 0.3))
    if len(colors) > 1:
        handles = [plt.Line2D([], [], color=c, marker="o", lw=1.8, label=g) for g, c in colors.items()]
        fig.legend(handles=handles, loc="outside lower center", ncol=min(len(colors), 4), frameon=False, fontsize=9)
    _style(ax, grid_axis="x")
    ax.set_title(title or "effects with confidence intervals (filled: significant after correction)", fontsize=10)
    return fig


def prediction_plot(
    observed: np.ndarray,
    predictions: Mapping[str, np.ndarray],
    labels: Sequence[str],
    target_name: str,
    scores: Mapping[str, str] | None = None,
) -> Figure:
    """Held-out predicted vs observed target, one panel per model, with the identity line."""
    observed = np.asarray(observed, float)
    fig, axes = plt.subplots(1, len(predictions), figsize=(3.9 * len(predictions), 4.0), layout="constrained",
                             squeeze=False, sharex=True, sharey=True)
    everything = np.concatenate([observed, *(np.asarray(v, float) for v in predictions.values())])
    span = (everything.min(), everything.max())
    pad = 0.05 * (span[1] - span[0] or 1.0)
    limits = (span[0] - pad, span[1] + pad)
    for ax, (name, yhat) in zip(axes[0], predictions.items(), strict=True):
        ax.plot(limits, limits, color="0.6", lw=1, ls="--", zorder=0)
        _labelled_points(ax, observed, np.asarray(yhat, float), labels)
        ax.set(xlim=limits, ylim=limits, xlabel=f"observed {target_name}", title=name)
        if scores and name in scores:
            ax.text(0.04, 0.96, scores[name], transform=ax.transAxes, va="top", fontsize=9,
                    bbox={"boxstyle": "round,pad=0.35", "fc": "white", "ec": "0.8"})
        _style(ax)
    axes[0][0].set_ylabel(f"held-out prediction of {target_name}")
    fig.suptitle("leave-one-architecture-out predictions", fontsize=12)
    return fig


def analysis_figures(result: AnalysisResult) -> Iterator[tuple[str, Figure]]:
    """Every figure of an analysis as (file name, figure), one at a time so the caller can save and
    close each before the next is drawn: heatmap, forest plot, one rank scatter per Spearman test
    on all rows, and the held-out predictions. Forest-plot rows without an interval (see the
    interval policy) show the point only."""
    res = result.results
    main = res[(res["subset"] == "all") & res["r"].notna()]
    spear = main[main["method"] == "spearman"]
    if not spear.empty:
        r = spear.pivot(index="predictor", columns="outcome", values="r")
        p = spear.pivot(index="predictor", columns="outcome", values=result.p_column).loc[r.index, r.columns]
        yield "heatmap.png", correlation_heatmap(r, p, f"Spearman rho (stars: uncorrected {result.p_column})")
    if not main.empty:
        corrected = main["p_corrected"].to_numpy(float) < result.spec.alpha
        labels = [f"{p} ({SYMBOL[m]}, {c})"
                  for p, m, c in zip(main["predictor"], main["method"], main["ci_method"], strict=True)]
        yield "forest.png", forest_plot(labels, main["r"], main["ci_low"], main["ci_high"],
                                        groups=list(main["outcome"]), highlight=corrected)
    for row in spear.itertuples():
        yield f"scatter_{_slug(row.predictor)}__{_slug(row.outcome)}.png", _scatter(result, row)
    if result.prediction is not None:
        yield "prediction.png", _prediction_figure(result)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")


def _scatter(result: AnalysisResult, row) -> Figure:
    data = result.table[[result.spec.label, row.predictor, row.outcome]].dropna()
    text = (f"rho = {format_r(row.r, row.ci_low, row.ci_high)} ({row.ci_method})\n"
            f"p = {format_p(row.p)}, p_perm = {format_p(row.p_perm)}\n"
            f"n = {row.n}; tied values: x {row.ties_x:g}, y {row.ties_y:g}")
    return rank_scatter(data[row.predictor].to_numpy(), data[row.outcome].to_numpy(),
                        list(data[result.spec.label].astype(str)), row.predictor, row.outcome, text)


def _prediction_figure(result: AnalysisResult) -> Figure:
    pred, declared = result.prediction, result.spec.prediction
    assert pred is not None and declared is not None  # drawn only for a result with a prediction
    target = declared.target
    scores = {}
    for m, r2, rho in pred.scores[["model", "r2", "spearman"]].to_numpy():
        if not np.isfinite(r2):
            scores[m] = "not scored:\nequals intercept-only"
        else:
            scores[m] = f"R^2 = {r2:+.2f}" + (f"\nrho = {rho:+.2f}" if np.isfinite(rho) else "")
    models = list(pred.scores["model"])
    return prediction_plot(pred.predictions[target].to_numpy(), {m: pred.predictions[m].to_numpy() for m in models},
                           list(pred.predictions[result.spec.label].astype(str)), target, scores)


def _labelled_points(ax: Axes, x: np.ndarray, y: np.ndarray, labels: Sequence[str]) -> None:
    ax.scatter(x, y, s=36, color=_POINT, alpha=0.85, edgecolor="white", linewidth=0.6, zorder=3)
    for k, (xi, yi, text) in enumerate(zip(x, y, labels, strict=True)):
        ax.annotate(str(text), (xi, yi), xytext=(4, 4 if k % 2 == 0 else -9), textcoords="offset points",
                    fontsize=7, color="0.25")


def _log_scale_if_wide(ax: Axes, axis: str, values: np.ndarray) -> None:
    positive = values[values > 0]
    if np.any(values < 0) or len(positive) < 2 or positive.max() / positive.min() <= 100:
        return
    setter = getattr(ax, f"set_{axis}scale")
    if np.all(values > 0):
        setter("log")
    else:
        setter("symlog", linthresh=float(positive.min()), linscale=0.5)


def _style(ax: Axes, grid_axis: Literal["both", "x", "y"] = "both") -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(True, axis=grid_axis, color="0.92", lw=0.8)
    ax.set_axisbelow(True)


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""
