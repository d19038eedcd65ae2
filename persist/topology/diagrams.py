"""Persistence diagrams as plain arrays, and the essential-bar policy.

A diagram of one homology dimension is a float64 ``(n, 2)`` array of ``(birth, death)`` rows; a bar that
never dies in the finite part of the filtration has ``death = inf`` (an *essential* bar). Totals over
essential bars are infinite, so every summary treats them separately (see :func:`split_essential`).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from persist.errors import DataError


class Diagrams(dict[int, np.ndarray]):
    """Diagrams per homology dimension (``{0: (n0, 2), 1: (n1, 2), ...}``) plus how they were computed.

    It is a plain ``dict`` so it indexes, iterates and pickles like one; ``meta`` (connectivity,
    construction, backend, ...) travels with it so the caller can log the convention next to the numbers,
    since H0/H1 of a landscape depend on the connectivity chosen.
    """

    def __init__(self, bars: Mapping[int, np.ndarray], meta: Mapping[str, Any] | None = None) -> None:
        super().__init__({int(k): as_diagram(v) for k, v in bars.items()})
        self.meta: dict[str, Any] = dict(meta or {})


def as_diagram(bars: Any) -> np.ndarray:
    """Return ``bars`` as a float64 ``(n, 2)`` array, so empty diagrams keep their shape."""
    arr = np.asarray(bars, dtype=np.float64)
    if arr.size == 0:
        return np.empty((0, 2), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DataError(f"diagram must have shape (n, 2), got {arr.shape}")
    return arr


def split_essential(diagram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a diagram into its finite bars ``(n, 2)`` and the births of its essential bars ``(m,)``.

    Essential bars carry a birth but no lifetime; mixing them into totals gives infinity, and dropping
    them silently (as persim's distances do) hides a real difference between diagrams.
    """
    arr = as_diagram(diagram)
    essential = np.isinf(arr[:, 1])
    return arr[~essential], arr[essential, 0]


def lifetimes(diagram: np.ndarray) -> np.ndarray:
    """Lifetimes ``death - birth`` of the finite bars."""
    finite, _ = split_essential(diagram)
    return finite[:, 1] - finite[:, 0]


def close_essential(diagram: np.ndarray, death: float) -> np.ndarray:
    """Give essential bars the finite ``death`` (e.g. the grid maximum) so they enter totals.

    This is the usual convention when a finite total over all bars is wanted: on a grid the filtration
    ends at the maximum value, where every essential class is still alive.
    """
    arr = as_diagram(diagram).copy()
    arr[np.isinf(arr[:, 1]), 1] = death
    return arr
