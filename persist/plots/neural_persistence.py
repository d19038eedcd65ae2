"""Figures for neural persistence: its course during training, and NP- versus validation-loss stopping."""

from __future__ import annotations

from typing import Mapping, Sequence

from matplotlib.figure import Figure

MEAN_KEY = "np/mean_normalized"


def plot_np_trajectory(steps: Sequence[float], series: Mapping[str, Sequence[float]], xlabel: str = "step") -> Figure:
    """Normalized NP per layer (thin) and its mean (bold) against training time, to spot change points."""
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    for key, values in series.items():
        bold = key == MEAN_KEY
        label = "mean" if bold else key.removeprefix("np/").removesuffix("/normalized")
        ax.plot(steps, values, lw=2.2 if bold else 1.0, color="black" if bold else None, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("normalized neural persistence")
    ax.legend(fontsize="small", ncol=2)
    fig.tight_layout()
    return fig


def plot_stopping_comparison(
    epochs: Sequence[float],
    np_values: Sequence[float],
    val_losses: Sequence[float],
    np_stop: float | None,
    val_stop: float | None,
) -> Figure:
    """Mean normalized NP and validation loss per epoch, with the epoch at which each rule stops."""
    fig = Figure(figsize=(6.4, 5.0))
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(epochs, np_values, color="tab:blue")
    top.set_ylabel("mean normalized NP")
    bottom.plot(epochs, val_losses, color="tab:orange")
    bottom.set_ylabel("validation loss")
    bottom.set_xlabel("epoch")
    for ax in (top, bottom):
        if np_stop is not None:
            ax.axvline(np_stop, color="tab:blue", ls="--", label="NP stop")
        if val_stop is not None:
            ax.axvline(val_stop, color="tab:orange", ls=":", label="validation stop")
    top.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_np_layers(values: Mapping[str, float], title: str = "") -> Figure:
    """Normalized NP per layer beside the weight-spread baseline (NP is known to track it in deep layers)."""
    layers = [k.removeprefix("np/").removesuffix("/normalized") for k in values
              if k.endswith("/normalized") and k != MEAN_KEY]
    normalized = [values[f"np/{name}/normalized"] for name in layers]
    spread = [values.get(f"np/{name}/weight_std", float("nan")) for name in layers]
    fig = Figure(figsize=(max(6.4, 0.45 * len(layers) + 2), 4.2))
    ax = fig.add_subplot()
    positions = range(len(layers))
    ax.bar(positions, normalized, color="tab:blue", label="normalized NP")
    ax.axhline(values.get(MEAN_KEY, float("nan")), color="black", lw=1.2, ls="--", label="mean over layers")
    ax.set_ylim(0, 1)
    ax.set_ylabel("normalized neural persistence")
    ax.set_xticks(list(positions), layers, rotation=60, ha="right", fontsize="small")
    twin = ax.twinx()
    twin.plot(list(positions), spread, "o-", color="tab:orange", label="weight std")
    twin.set_ylabel("weight standard deviation")
    handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    ax.legend(handles, [str(h.get_label()) for h in handles], fontsize="small", loc="upper right")
    ax.set_title(title)
    fig.tight_layout()
    return fig
