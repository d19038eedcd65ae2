"""Forgetting curves: task-A accuracy (class-incremental and task-masked) and task-B accuracy per step."""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator

from persist.forgetting.curve import ForgettingCurve

# Okabe-Ito colours: distinguishable with colour-vision deficiencies and in grey scale.
_TASK_A, _TASK_B, _CHANCE = "#0072B2", "#D55E00", "#7f7f7f"


def plot_forgetting(curve: ForgettingCurve, title: str | None = None, confidence: float = 0.95) -> Figure:
    """Accuracy vs task-B step on a symlog axis (linear near 0, so step 0 is shown), with Wilson bands.

    Task A shares one colour in both variants (solid: class-incremental, dashed: task-masked), so
    the gap between them reads directly as the accuracy the task-B head's bias takes away.
    """
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    steps = curve.steps.astype(float)
    series = [
        ("task_a_acc", "task A, class-incremental", _TASK_A, "-", "o"),
        ("task_a_acc_masked", "task A, task-masked", _TASK_A, "--", "s"),
        ("task_b_acc", "task B, class-incremental", _TASK_B, "-", "^"),
    ]
    for name, label, colour, style, marker in series:
        lo, hi = curve.interval(name, confidence)
        ax.fill_between(steps, lo, hi, color=colour, alpha=0.15, linewidth=0)
        ax.plot(steps, getattr(curve, name), color=colour, linestyle=style, marker=marker, markersize=4, label=label)
    for chance, label in _chance_levels(curve):
        ax.axhline(chance, color=_CHANCE, linestyle=":", linewidth=1)
        ax.annotate(label, (1.0, chance), xycoords=("axes fraction", "data"), xytext=(-4, 3),
                    textcoords="offset points", ha="right", va="bottom", fontsize=8, color=_CHANCE)
    _symlog_steps(ax, steps)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("task-B training step (symlog; minor ticks = evaluation steps)")
    ax.set_ylabel("test accuracy")
    ax.grid(True, which="major", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    fig.legend(loc="outside lower center", ncols=3, frameon=False, fontsize=9)
    pct = int(round(confidence * 100))
    ax.set_title(title or f"Forgetting ({pct}% Wilson bands; n = {curve.n_task_a} task A, {curve.n_task_b} task B)",
                 fontsize=10)
    return fig


def _symlog_steps(ax: Axes, steps: np.ndarray) -> None:
    """Linear up to the decade below the first evaluation step, logarithmic after; ticks as plain step counts."""
    positive = steps[steps > 0]
    linthresh = 10.0 ** np.floor(np.log10(positive.min())) if len(positive) else 1.0
    top = max(float(steps.max()), linthresh)
    ax.set_xscale("symlog", linthresh=linthresh, linscale=0.4)
    ax.set_xlim(0, top * 1.08)
    decades = linthresh * 10.0 ** np.arange(int(np.floor(np.log10(top / linthresh))) + 1)
    ax.set_xticks([0.0, *decades], [f"{int(t):,}" for t in (0.0, *decades)])
    ax.xaxis.set_minor_locator(FixedLocator([s for s in steps if s > 0 and s not in decades]))


def _chance_levels(curve: ForgettingCurve) -> list[tuple[float, str]]:
    """Uniform guessing among each task's classes; one line if the two coincide."""
    a, b = 1.0 / curve.num_task_a_classes, 1.0 / curve.num_task_b_classes
    if np.isclose(a, b):
        return [(a, "chance within a task")]
    return [(a, "chance, task A"), (b, "chance, task B")]
