"""Figures of the study report: pure functions of plain tables and arrays, each returning a figure.

Per-family scatter plots (predictor vs outcome, one labelled point per architecture), persistence
diagrams side by side, forgetting curves on a log-step axis, and the skip vs no-skip depth series.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

DEPTH = re.compile(r"^(resnet1d|plain1d)_(\d+)$")  # the Li et al. (2018) series, BatchNorm variants only


def family_scatter(table: pd.DataFrame, predictors: Sequence[str], outcome: str, label: str = "arch",
                   title: str = "") -> Figure:
    """One panel per predictor (e.g. one per direction family): per-architecture means with seed ranges."""
    fig = Figure(figsize=(4.2 * max(1, len(predictors)), 3.8))
    axes = fig.subplots(1, max(1, len(predictors)), squeeze=False)
    for ax, predictor in zip(axes[0], predictors, strict=False):
        if predictor not in table or outcome not in table:
            ax.set_title(f"{predictor}: not measured", fontsize=9)
            ax.axis("off")
            continue
        grouped = table.groupby(label)[[predictor, outcome]]
        mean, low, high = grouped.mean(), grouped.min(), grouped.max()
        ax.errorbar(mean[predictor], mean[outcome],
                    xerr=[mean[predictor] - low[predictor], high[predictor] - mean[predictor]],
                    yerr=[mean[outcome] - low[outcome], high[outcome] - mean[outcome]],
                    fmt="o", ms=4, lw=0.6, capsize=0)
        for name, row in mean.iterrows():
            ax.annotate(str(name), (row[predictor], row[outcome]), fontsize=6, xytext=(2, 2),
                        textcoords="offset points")
        ax.set_xlabel(predictor)
        ax.set_ylabel(outcome)
    fig.suptitle(title or f"{outcome} against each family's predictor (mean and range over seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def diagrams_grid(diagrams: Mapping[str, Mapping[int, np.ndarray]], floors: Mapping[str, float] | None = None,
                  columns: int = 4) -> Figure:
    """Persistence diagrams side by side, one panel per member (H0 and H1 markers), the floor as a band."""
    names = list(diagrams)
    rows = max(1, -(-len(names) // columns))
    fig = Figure(figsize=(3.0 * columns, 3.0 * rows))
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    for ax, name in zip(axes.ravel(), names, strict=False):
        finite = [d[np.isfinite(d).all(axis=1)] for d in map(_pairs, diagrams[name].values())]
        values = [float(v) for d in finite if d.size for v in (d.min(), d.max())] or [0.0, 1.0]
        pad = 0.05 * (max(values) - min(values) or 1.0)
        bottom, top = min(values) - pad, max(values) + pad
        ax.plot([bottom, top], [bottom, top], color="0.6", lw=0.8)
        floor = (floors or {}).get(name)
        if floor is not None and np.isfinite(floor) and floor > 0:
            ax.fill_between([bottom, top], [bottom, top], [bottom + floor, top + floor], color="0.85",
                            label="noise floor")
        for dim, marker in ((0, "o"), (1, "^")):
            d = _pairs(diagrams[name].get(dim, np.empty((0, 2))))
            d = d[np.isfinite(d).all(axis=1)]
            ax.scatter(d[:, 0], d[:, 1], s=10, marker=marker, label=f"H{dim} ({len(d)})")
        ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig


def _pairs(diagram: np.ndarray) -> np.ndarray:
    return np.asarray(diagram, dtype=float).reshape(-1, 2)


def retention_curves(table: pd.DataFrame, label: str = "arch", masked: bool = False) -> Figure:
    """Retention of task A against task-B steps (log axis, step 0 left out), mean over seeds per architecture,
    from the table's ``forgetting/ret_<step>`` (or ``ret_masked_<step>``) columns."""
    pattern = re.compile(r"^forgetting/ret_masked_(\d+)$" if masked else r"^forgetting/ret_(\d+)$")
    columns = sorted(((int(m.group(1)), c) for c in table.columns if (m := pattern.match(c)) and int(m.group(1)) > 0))
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    if columns:
        steps = [s for s, _ in columns]
        means = table.groupby(label)[[c for _, c in columns]].mean()
        for name, row in means.iterrows():
            ax.plot(steps, row.to_numpy(dtype=float), marker=".", lw=1, label=str(name))
        ax.set_xscale("log")
        ax.legend(fontsize=6, ncol=2)
    ax.set_xlabel("task-B steps")
    ax.set_ylabel("task-masked retention" if masked else "class-incremental retention")
    ax.set_title("Forgetting curves (mean over seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def depth_series(table: pd.DataFrame, families: Sequence[str], arch: str = "architecture") -> pd.DataFrame:
    """Per resnet1d_D / plain1d_D member and seed: depth, skip, and per family the count and total
    persistence of bars above the noise floor (H0 + H1). Long format: one row per member x seed x family."""
    rows = []
    for _, row in table.iterrows():
        match = DEPTH.match(str(row.get(arch, "")))
        if not match:
            continue
        for family in families:
            prefix = f"topology_{family}/"
            count = [row.get(f"{prefix}h{d}_count_above_eps_mean") for d in (0, 1)]
            total = [row.get(f"{prefix}h{d}_total_above_eps_mean") for d in (0, 1)]
            if all(v is None or pd.isna(v) for v in count):
                continue
            rows.append({"depth": int(match.group(2)), "skip": match.group(1) == "resnet1d", "family": family,
                         "seed": row.get("seed", 0), "count": float(np.nansum([v for v in count if v is not None])),
                         "total": float(np.nansum([v for v in total if v is not None]))})
    return pd.DataFrame(rows, columns=["depth", "skip", "family", "seed", "count", "total"])


def depth_series_figure(series: pd.DataFrame) -> Figure:
    """Count and total persistence above the floor against depth, skip (resnet1d) vs no skip (plain1d)."""
    families = list(dict.fromkeys(series["family"])) or ["(none)"]
    fig = Figure(figsize=(3.8 * len(families), 6))
    axes = fig.subplots(2, len(families), squeeze=False)
    for j, family in enumerate(families):
        part = series[series["family"] == family]
        for i, value in enumerate(("count", "total")):
            ax = axes[i][j]
            for skip, style in ((True, "o-"), (False, "s--")):
                sub = part[part["skip"] == skip]
                if sub.empty:
                    continue
                ax.scatter(sub["depth"], sub[value], s=8, alpha=0.4)
                means = sub.groupby("depth")[value].mean()
                ax.plot(means.index, means.to_numpy(), style, label="skip (resnet1d)" if skip else "no skip (plain1d)")
            ax.set_xlabel("depth")
            ax.set_ylabel(f"{value} above floor (H0+H1)")
            ax.set_title(family, fontsize=9)
            ax.legend(fontsize=7)
    fig.suptitle("Skip vs no-skip: bars above the noise floor against depth (Li et al. 2018)", fontsize=10)
    fig.tight_layout()
    return fig
