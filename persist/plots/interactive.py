"""Interactive (plotly) loss-landscape and persistence figures: pure functions returning ``go.Figure``.

They mirror the PNGs of :mod:`persist.plots.landscape` and :mod:`persist.plots.topology` but can be
rotated, zoomed and hovered: the 3-D surface marks θ* (the trained weights, the grid centre), and every
persistence pair shows its birth, death and lifetime on hover. Non-finite losses are left as holes,
essential bars sit on an "∞" line, as in the static figures.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from persist.topology.diagrams import as_diagram, split_essential

DIMENSION_COLORS = ("#3366aa", "#cc4455", "#229988", "#aa7722")


def surface_figure(alphas: np.ndarray, betas: np.ndarray, loss: np.ndarray, title: str = "") -> go.Figure:
    """3-D loss surface over (α, β) with θ* (α = β = 0) marked; ``loss[i, j]`` is at ``(alphas[i], betas[j])``."""
    z = np.asarray(loss, dtype=np.float64)
    shown = np.where(np.isfinite(z), z, np.nan).T  # plotly: rows are y (β), columns x (α); NaN is a hole
    i, j = int(np.argmin(np.abs(alphas))), int(np.argmin(np.abs(betas)))
    fig = go.Figure(go.Surface(x=alphas, y=betas, z=shown, colorscale="Viridis", colorbar={"title": "loss"},
                               hovertemplate="α=%{x:.3f}<br>β=%{y:.3f}<br>loss=%{z:.5g}<extra></extra>"))
    fig.add_trace(go.Scatter3d(x=[alphas[i]], y=[betas[j]], z=[z[i, j]], mode="markers+text", text=["θ*"],
                               textposition="top center", marker={"size": 6, "color": "red", "symbol": "diamond"},
                               name="θ* (trained weights)",
                               hovertemplate="θ*<br>loss=%{z:.5g}<extra></extra>"))
    fig.update_layout(title=title or "Loss surface", scene={"xaxis_title": "α (direction 1)",
                                                             "yaxis_title": "β (direction 2)", "zaxis_title": "loss"},
                      margin={"l": 0, "r": 0, "t": 40, "b": 0}, showlegend=True, legend={"x": 0, "y": 1})
    return fig


def _infinity(diagrams: Mapping[int, np.ndarray]) -> tuple[float, float]:
    """Smallest finite value and where "∞" is drawn (a margin above the largest finite value)."""
    values = np.concatenate([as_diagram(d).ravel() for d in diagrams.values()] or [np.empty(0)])
    values = values[np.isfinite(values)]
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1.0
    return lo, hi + 0.12 * (hi - lo)


def diagram_figure(diagrams: Mapping[int, np.ndarray], eps: float | None = None, title: str = "") -> go.Figure:
    """Birth-death scatter per dimension with hover; essential classes on the "∞" line, noise band shaded."""
    lo, inf = _infinity(diagrams)
    fig = go.Figure()
    line = [lo, inf]
    fig.add_trace(go.Scatter(x=line, y=line, mode="lines", line={"color": "grey", "width": 1}, hoverinfo="skip",
                             showlegend=False))
    if eps:
        fig.add_trace(go.Scatter(x=line + line[::-1], y=[lo + eps, inf + eps, inf, lo], fill="toself", mode="lines",
                                 fillcolor="rgba(150,150,150,0.2)", line={"width": 0}, hoverinfo="skip",
                                 name=f"noise floor ε = {eps:.3g}"))
    for k in sorted(diagrams):
        finite, essential = split_essential(diagrams[k])
        color = DIMENSION_COLORS[k % len(DIMENSION_COLORS)]
        fig.add_trace(go.Scatter(
            x=finite[:, 0], y=finite[:, 1], mode="markers", marker={"color": color, "size": 7},
            name=f"H{k} ({len(finite)} finite)", customdata=finite[:, 1] - finite[:, 0],
            hovertemplate=(f"H{k}<br>birth=%{{x:.5g}}<br>death=%{{y:.5g}}<br>lifetime=%{{customdata:.5g}}"
                           "<extra></extra>")))
        if essential.size:
            fig.add_trace(go.Scatter(
                x=essential, y=np.full(essential.size, inf), mode="markers", name=f"H{k} ({essential.size} essential)",
                marker={"color": color, "size": 11, "symbol": "triangle-up", "line": {"width": 1, "color": "black"}},
                hovertemplate=f"H{k} essential<br>birth=%{{x:.5g}}<br>death=∞<extra></extra>"))
    fig.add_hline(y=inf, line_dash="dash", line_color="grey", annotation_text="∞", annotation_position="left")
    pad = 0.04 * (inf - lo)
    fig.update_layout(title=title or "Persistence diagram", xaxis_title="birth (loss)", yaxis_title="death (loss)",
                      xaxis_range=[lo - pad, inf + pad], yaxis_range=[lo - pad, inf + pad], template="plotly_white")
    return fig


def barcode_figure(diagrams: Mapping[int, np.ndarray], eps: float | None = None, title: str = "",
                   max_bars: int = 60) -> go.Figure:
    """Bars (longest first) per dimension with hover; essential bars run to "∞"; the ``max_bars`` longest shown."""
    _, inf = _infinity(diagrams)
    fig = go.Figure()
    row = 0
    for k in sorted(diagrams):
        diagram = as_diagram(diagrams[k])
        length = np.where(np.isinf(diagram[:, 1]), np.inf, diagram[:, 1] - diagram[:, 0])
        shown = diagram[np.argsort(-length, kind="stable")[:max_bars]]
        color = DIMENSION_COLORS[k % len(DIMENSION_COLORS)]
        xs: list[float | None] = []
        ys: list[float | None] = []
        texts: list[str | None] = []
        for birth, death in shown:
            end = inf if np.isinf(death) else death
            faded = not np.isinf(death) and eps is not None and death - birth <= eps
            label = (f"H{k} birth={birth:.5g} death={'∞' if np.isinf(death) else f'{death:.5g}'}"
                     + ("" if np.isinf(death) else f" lifetime={death - birth:.5g}") + (" (≤ ε)" if faded else ""))
            xs += [birth, end, None]
            ys += [row, row, None]
            texts += [label, label, None]
            row += 1
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", line={"color": color, "width": 4},
                                 marker={"size": 3}, name=f"H{k} ({len(shown)} of {len(diagram)} bars)",
                                 text=texts, hoverinfo="text"))
        row += 2
    fig.add_vline(x=inf, line_dash="dash", line_color="grey", annotation_text="∞")
    fig.update_layout(title=title or "Barcode", xaxis_title="filtration value (loss)", template="plotly_white",
                      yaxis={"autorange": "reversed", "showticklabels": False})
    return fig


def html_page(figures: Sequence[go.Figure], title: str = "", plotlyjs: str | bool = True) -> str:
    """One HTML page holding several figures with plotly.js included once (``True``: embedded, works
    offline; ``"cdn"``: a small file that needs the internet)."""
    parts = [fig.to_html(full_html=False, include_plotlyjs=plotlyjs if i == 0 else False)
             for i, fig in enumerate(figures)]
    head = f"<meta charset='utf-8'><title>{title}</title>"
    return f"<!DOCTYPE html><html><head>{head}</head><body>{''.join(parts)}</body></html>"
