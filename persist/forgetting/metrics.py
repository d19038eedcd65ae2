"""Forgetting metrics on an evaluation schedule: retention, AURC, backward transfer, Wilson intervals.

All functions take plain arrays so they can be checked on hand-built curves. Retention at a step that
is not on the schedule raises instead of silently using another step (the published analysis swapped
in the last step when step 100 was missing).
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Literal

import numpy as np

from persist.errors import ConfigError

AurcAxis = Literal["linear", "log"]


def retention(accuracy: np.ndarray, initial: float | None = None) -> np.ndarray:
    """Accuracy relative to step 0, ``acc(k) / acc(0)``.

    NaN where the initial accuracy is 0: retention of nothing is undefined, and reporting 0 (as the
    published code did) would rank an unlearned task as "fully forgotten".
    """
    accuracy = np.asarray(accuracy, dtype=np.float64)
    acc0 = float(accuracy[0]) if initial is None else float(initial)
    if acc0 <= 0.0:
        return np.full_like(accuracy, np.nan)
    return accuracy / acc0


def aurc(steps: np.ndarray, retained: np.ndarray, axis: AurcAxis = "linear") -> float:
    """Area under the retention curve by the trapezoid rule, divided by the schedule's span.

    ``axis="linear"`` integrates over steps, so late steps carry weight in proportion to their
    duration; ``axis="log"`` integrates over ``ln(1 + step)``, which weights the early collapse and the
    long tail by orders of magnitude instead. A curve that stays at 1 gives exactly 1 on both axes
    (values above 1 are possible if task-A accuracy rises). The schedule must start at step 0, so
    the first segment is counted (the published right-endpoint sum dropped it).
    """
    steps = np.asarray(steps, dtype=np.float64)
    retained = np.asarray(retained, dtype=np.float64)
    if steps.ndim != 1 or steps.shape != retained.shape or len(steps) < 2:
        raise ConfigError(
            f"aurc needs matching 1-D steps and retention with >= 2 points, got {steps.shape} and {retained.shape}")
    if steps[0] != 0 or np.any(np.diff(steps) <= 0):
        raise ConfigError("aurc steps must start at 0 and increase strictly")
    if axis == "log":
        x = np.log1p(steps)
    elif axis == "linear":
        x = steps
    else:
        raise ConfigError(f"aurc_axis must be 'linear' or 'log', got '{axis}'")
    area = float(np.sum(np.diff(x) * (retained[1:] + retained[:-1]) / 2.0))
    return area / float(x[-1] - x[0])


def backward_transfer(accuracy: np.ndarray) -> float:
    """Final minus initial task-A accuracy: negative means forgetting, in accuracy units."""
    accuracy = np.asarray(accuracy, dtype=np.float64)
    return float(accuracy[-1] - accuracy[0])


def wilson_interval(successes: np.ndarray | int, n: int, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion.

    Accuracies near 0 (task A after a collapse) are exactly where the normal-approximation interval
    breaks down and leaves [0, 1]; Wilson's stays inside and has near-nominal coverage there.
    """
    if n < 1:
        raise ConfigError(f"wilson_interval n must be >= 1, got {n}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    k = np.asarray(successes, dtype=np.float64)
    if np.any((k < 0) | (k > n)):
        raise ConfigError(f"wilson_interval successes must lie in [0, {n}]")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # The bounds at k = 0 and k = n are exactly 0 and 1; set them so rounding cannot leave 1e-17.
    lo = np.where(k == 0, 0.0, np.clip(centre - half, 0.0, 1.0))
    hi = np.where(k == n, 1.0, np.clip(centre + half, 0.0, 1.0))
    return lo, hi


