"""Loss-landscape figures: contour, heatmap, 3-D surface and 1-D path.

Arrays follow :class:`persist.landscape.LandscapeGrid`: ``loss[i, j]`` is at ``(alphas[i], betas[j])``,
drawn with alpha on the horizontal axis. Non-finite losses are masked (left blank), never clipped to
a finite value, so a diverged region is visible as a hole rather than disguised as a plateau.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, NullFormatter

CMAP = "viridis"


def _surface(loss: np.ndarray, log_scale: bool) -> np.ma.MaskedArray:
    """Loss transposed to (beta, alpha) image order, masked where non-finite (or non-positive on a log scale)."""
    z = np.asarray(loss, dtype=np.float64).T
    bad = ~np.isfinite(z) | ((z <= 0) if log_scale else False)
    return np.ma.masked_array(z, mask=bad)


def _minimum(alphas: np.ndarray, betas: np.ndarray, loss: np.ndarray) -> tuple[float, float, float]:
    z = np.where(np.isfinite(loss), loss, np.inf)
    i, j = np.unravel_index(np.argmin(z), z.shape)
    return float(alphas[i]), float(betas[j]), float(z[i, j])


def _style(ax, title: str, labels: tuple[str, str] = ("α (direction 1)", "β (direction 2)")) -> None:
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title)
    ax.set_aspect("equal")


def plot_contour(alphas: np.ndarray, betas: np.ndarray, loss: np.ndarray, *, levels: int = 30,
                 log_scale: bool = False, title: str = "", path: np.ndarray | None = None,
                 points: dict[str, tuple[float, float]] | None = None,
                 labels: tuple[str, str] = ("α (direction 1)", "β (direction 2)")) -> Figure:
    """Filled contours with iso-lines; the grid minimum (star) and theta* (cross) marked.

    ``path`` ``(N, 2)``: a projected trajectory drawn as a line from its first point to its last;
    ``points``: named coordinates (e.g. the three models of a mode plane) marked and labelled.
    """
    z = _surface(loss, log_scale)
    fig, ax = plt.subplots(figsize=(5.4, 5.0), constrained_layout=True)
    if log_scale:
        lo, hi = float(z.min()), float(z.max())
        bounds = np.geomspace(lo, hi if hi > lo else lo * 1.01, levels)
        filled = ax.contourf(alphas, betas, z, levels=bounds, cmap=CMAP, norm=LogNorm())
    else:
        filled = ax.contourf(alphas, betas, z, levels=levels, cmap=CMAP)
    drawn = np.asarray(filled.levels)
    ax.contour(alphas, betas, z, levels=drawn[::3], colors="white", linewidths=0.5, alpha=0.6)
    bar = fig.colorbar(filled, ax=ax, label="loss" + (" (log scale)" if log_scale else ""))
    if log_scale:
        bar.set_ticks(np.geomspace(drawn[0], drawn[-1], 6).tolist())
        bar.ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
    a, b, value = _minimum(alphas, betas, loss)
    ax.plot([a], [b], marker="*", color="#E24A33", markersize=13, markeredgecolor="white", ls="none",
            label="minimum")
    ax.plot([0.0], [0.0], marker="X", color="white", markeredgecolor="black", markersize=8, ls="none", label="θ*")
    ax.annotate(f"{value:.3g}", (a, b), textcoords="offset points", xytext=(7, 6), color="white", fontsize=8)
    if path is not None and len(path):
        path = np.asarray(path, dtype=np.float64)
        ax.plot(path[:, 0], path[:, 1], color="#FFD92F", lw=1.4, marker="o", markersize=3, label="training path")
        ax.plot(path[:1, 0], path[:1, 1], marker="s", color="#FFD92F", markeredgecolor="black", ls="none")
    for name, (pa, pb) in (points or {}).items():
        ax.plot([pa], [pb], marker="o", color="#E24A33", markeredgecolor="white", markersize=8, ls="none")
        ax.annotate(name, (pa, pb), textcoords="offset points", xytext=(6, -12), color="white", fontsize=10,
                    fontweight="bold")
    _style(ax, title, labels)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8, frameon=False)
    return fig


def plot_heatmap(alphas: np.ndarray, betas: np.ndarray, loss: np.ndarray, *, log_scale: bool = False,
                 title: str = "", labels: tuple[str, str] = ("α (direction 1)", "β (direction 2)")) -> Figure:
    """The grid as an image, one pixel per node (log10 of the loss when ``log_scale``)."""
    z = _surface(loss, log_scale)
    z = np.ma.log10(z) if log_scale else z
    da, db = (alphas[1] - alphas[0]) / 2, (betas[1] - betas[0]) / 2
    fig, ax = plt.subplots(figsize=(5.4, 4.6), constrained_layout=True)
    image = ax.imshow(z, origin="lower", cmap=CMAP, interpolation="nearest",
                      extent=(alphas[0] - da, alphas[-1] + da, betas[0] - db, betas[-1] + db))
    fig.colorbar(image, ax=ax, label="log10 loss" if log_scale else "loss")
    _style(ax, title, labels)
    return fig


def plot_surface(alphas: np.ndarray, betas: np.ndarray, loss: np.ndarray, *, log_scale: bool = False,
                 title: str = "") -> Figure:
    """3-D surface of the loss over the slice (non-finite nodes left out)."""
    z = _surface(loss, log_scale)
    z = np.ma.log10(z) if log_scale else z
    aa, bb = np.meshgrid(alphas, betas)
    fig = plt.figure(figsize=(6, 4.8), constrained_layout=True)
    ax = fig.add_subplot(projection="3d")
    ax.plot_surface(aa, bb, z.filled(np.nan), cmap=CMAP, linewidth=0, antialiased=True, rcount=200, ccount=200)
    ax.set(xlabel="α", ylabel="β", zlabel="log10 loss" if log_scale else "loss", title=title)
    ax.view_init(elev=35, azim=-60)
    return fig


def plot_path(ts: np.ndarray, loss: np.ndarray, accuracy: np.ndarray | None = None, *,
              labels: tuple[str, str] = ("start", "end"), title: str = "") -> Figure:
    """Loss (and accuracy on a twin axis) along a linear interpolation, with the chord between endpoints."""
    fig, ax = plt.subplots(figsize=(5.6, 3.6), constrained_layout=True)
    ax.plot(ts, loss, color="#4C72B0", marker="o", markersize=3, label="loss")
    ax.plot([ts[0], ts[-1]], [loss[0], loss[-1]], color="#4C72B0", ls=":", lw=1, label="chord")
    ax.set(xlabel=f"t  ({labels[0]} → {labels[1]})", ylabel="loss", title=title)
    ax.set_xticks([ts[0], ts[-1]], [f"0\n{labels[0]}", f"1\n{labels[1]}"], minor=False)
    ax.grid(alpha=0.3)
    ax.spines[["top"]].set_visible(False)
    if accuracy is not None:
        twin = ax.twinx()
        twin.plot(ts, accuracy, color="#DD8452", marker="s", markersize=3, label="accuracy")
        twin.set(ylabel="accuracy", ylim=(0, 1.02))
        twin.spines[["top"]].set_visible(False)
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(handles=handles, frameon=False, fontsize=8, loc="upper center")
    else:
        ax.legend(frameon=False, fontsize=8)
    return fig


def plot_profile(axis: np.ndarray, loss: np.ndarray, accuracy: np.ndarray | None = None, *, title: str = "",
                 label: str = "t (direction 1)") -> Figure:
    """A 1-D grid: loss (and accuracy) along one direction through theta* (t = 0 marked)."""
    fig, ax = plt.subplots(figsize=(5.6, 3.6), constrained_layout=True)
    z = np.where(np.isfinite(loss), loss, np.nan)
    ax.plot(axis, z, color="#4C72B0", marker="o", markersize=3, label="loss")
    ax.axvline(0.0, color="black", lw=0.8, ls=":", label="θ*")
    ax.set(xlabel=label, ylabel="loss", title=title)
    ax.grid(alpha=0.3)
    if accuracy is not None:
        twin = ax.twinx()
        twin.plot(axis, accuracy, color="#DD8452", marker="s", markersize=3)
        twin.set(ylabel="accuracy", ylim=(0, 1.02))
    ax.legend(frameon=False, fontsize=8)
    return fig
