"""TEMPORARY stand-in for ``persist.topology.grid_topology`` until the topology branch is merged.

Same signature and result type as the library entry point the topology engineer builds (issue 15); it
reproduces only today's science (the sup-norm floor of the two data halves, lower-star diagrams in any
dimension through GUDHI's n-dimensional cubical complexes) so the landscape phase runs end to end.
Delete this file once ``persist/topology/grid_topology.py`` exists; the phase imports that first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gudhi
import numpy as np

from persist.config import TopologyConfig
from persist.topology import grid_baselines, lower_star_diagrams, noise_floor, summarize


@dataclass
class GridTopology:
    diagrams: dict[int, np.ndarray]
    floors: dict[str, float]
    floor_used: str
    summary: dict[str, float]
    merge_tree: Any = None
    meta: dict = field(default_factory=dict)


def _diagrams(values: np.ndarray, cfg: TopologyConfig) -> dict[int, np.ndarray]:
    if values.ndim in (2, 3):
        connectivity = cfg.connectivity if values.ndim == 2 else None
        backend = cfg.backend if values.ndim == 2 else "gudhi"
        return dict(lower_star_diagrams(values, connectivity, backend))
    cubical = gudhi.CubicalComplex(top_dimensional_cells=values)  # T-construction: (3^n - 1) neighbours
    cubical.compute_persistence()
    out = {}
    for k in range(values.ndim):
        bars = np.asarray(cubical.persistence_intervals_in_dimension(k), dtype=np.float64).reshape(-1, 2)
        bars = bars[bars[:, 1] > bars[:, 0]]
        out[k] = bars[np.lexsort((bars[:, 1], bars[:, 0]))]
    return out


def inputs_needed(cfg: TopologyConfig) -> tuple[bool, bool]:
    """``(halves, per_example)`` the phase should produce for this config (the shim never bootstraps)."""
    return cfg.noise_floor < 0 and cfg.noise_source == "subset", False


def grid_topology(values: np.ndarray, halves: tuple[np.ndarray, np.ndarray] | None,
                  per_example: np.ndarray | None, cfg: TopologyConfig) -> GridTopology:
    """Diagrams H0..H_{d-1} of the sublevel filtration and the counts above the noise floor."""
    values = np.asarray(values, dtype=np.float64)
    diagrams = _diagrams(values, cfg)
    floors: dict[str, float] = {}
    if cfg.noise_floor >= 0:
        floors["given"] = float(cfg.noise_floor)
        used = "given"
    elif halves is not None and cfg.noise_source == "subset":
        floors["halves_sup"] = noise_floor(*halves)
        used = "halves_sup"
    else:
        floors["none"] = 0.0
        used = "none"
    summary = summarize(diagrams, dims=tuple(range(values.ndim)), eps=floors[used])
    finite = values[np.isfinite(values)]
    summary.update(grid_baselines(values) if values.ndim in (2, 3) else
                   {"grid_mean": float(finite.mean()), "grid_min": float(finite.min()),
                    "grid_max": float(finite.max()), "grid_mean_above_min": float(finite.mean() - finite.min())})
    summary["noise_floor"] = floors[used]
    summary["nonfinite_nodes"] = float((~np.isfinite(values)).sum())
    return GridTopology(diagrams, floors, used, summary, None, {"shim": True})
