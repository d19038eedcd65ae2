"""Everything the landscape phase reports about one loss grid's topology, from one call.

:func:`grid_topology` takes the full-data loss grid (1 to 4 dimensions), optionally the grids of two
disjoint halves of the evaluation data and the per-example losses, and returns the diagrams H0..H_{n-1}
of the chosen filtration, every noise floor that the inputs allow, the floor the ``*_above_eps``
statistics use (and why, if the requested one was unavailable), the merge tree, and the flat summary the
phase logs. The floors (see :mod:`persist.topology.noise` and :mod:`persist.topology.bootstrap`):

* ``stability``: ``2 max |L_half1 - L_half2|`` (one number for all dimensions; safe and blunt).
* ``bottleneck``: ``2 d_B`` between the two halves' diagrams, per homology dimension.
* ``bootstrap``: ``2 c_k``, ``c_k`` the (1 - alpha) quantile of the bootstrap distance (Fasy et al. 2014),
  from the per-example losses, per homology dimension.
* ``fixed``: ``topology.noise_floor``, given in filtration units; ``none``: 0.

Counts and totals above *every* measured floor are in the summary under names that say which floor
(``h1_count_above_bottleneck``); the ``_above_eps`` names keep the 2-D phase's metric names and use
``floor_used``. Floors are in filtration units: log-loss floors are log ratios.

How the landscape phase uses it, per grid::

    halves_wanted, per_example_wanted = inputs_needed(cfg.topology)
    topo = grid_topology(loss, (loss_half1, loss_half2), per_example, cfg.topology)
    log_metrics(topo.summary, prefix="topology/")                  # flat floats, NaN where a floor was not measured
    log_json(topo.meta(), "persistence/meta.json")                 # floor_used, floor_fallback, floors, eps, ...
    plot_landscape_profile(topo.merge_tree, eps=topo.eps[0])      # persist.plots.topology
    plot_diagram(topo.diagrams, eps=topo.noise_floor)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from persist.config import TopologyConfig
from persist.errors import ConfigError, DataError
from persist.topology.baselines import grid_baselines, h0_zero_birth_total
from persist.topology.bootstrap import bootstrap_distances, bootstrap_floor
from persist.topology.diagrams import Diagrams, lifetimes
from persist.topology.lower_star import FACE_CONNECTIVITY, FULL_CONNECTIVITY, lower_star_diagrams, validated_grid
from persist.topology.merge_tree import MergeTree, merge_tree
from persist.topology.noise import bottleneck_floor, noise_floor
from persist.topology.summaries import summarize

FLOORS = ("stability", "bottleneck", "bootstrap", "fixed", "none")
MEASURED_FLOORS = ("stability", "bottleneck", "bootstrap")
FILTRATIONS = ("loss", "log_loss")
FALLBACK = {"bootstrap": "bottleneck", "bottleneck": "none", "stability": "none", "fixed": "none"}
ESSENTIAL_POLICY = "the global-minimum H0 bar is reported separately (h0_essential_birth) and excluded from totals"


@dataclass
class GridTopology:
    """The topology of one grid.

    ``floors`` holds every floor measured, per homology dimension where it is measured per dimension
    (``bottleneck_h{k}``, ``bootstrap_h{k}``), and one number per floor name (``stability``, ``bottleneck``,
    ``bootstrap``, ``fixed``, ``none``; the largest over dimensions for per-dimension floors), so
    ``floors[floor_used]`` is always defined and equals :attr:`noise_floor`. ``eps`` is the per-dimension
    floor of ``floor_used`` that the ``*_above_eps`` statistics use.
    """

    diagrams: dict[int, np.ndarray]
    floors: dict[str, float]
    floor_used: str
    summary: dict[str, float]
    merge_tree: MergeTree
    eps: dict[int, float] = field(default_factory=dict)
    floor_requested: str = ""
    fallback: str = ""  # why floor_used differs from floor_requested ("" when it does not)
    filtration: str = "loss"
    bootstrap: np.ndarray | None = None  # (samples, dims) bootstrap distances when the bootstrap floor ran
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def noise_floor(self) -> float:
        """The largest per-dimension floor used: one conservative number for figures."""
        return max(self.eps.values(), default=0.0)

    def meta(self) -> dict[str, Any]:
        """JSON-ready record of how the diagrams and floors were made (``persistence/meta.json``)."""
        return {
            **self.info,
            "filtration": self.filtration,
            "floor_requested": self.floor_requested,
            "floor_used": self.floor_used,
            "floor_fallback": self.fallback,
            "floor_source": floor_source(self.floor_used, self.info.get("bootstrap_distance", "")),
            "noise_floor": self.noise_floor,
            "eps": {f"h{k}": v for k, v in self.eps.items()},
            "floors": self.floors,
            "essential_policy": ESSENTIAL_POLICY,
        }


def requested_floor(cfg: TopologyConfig) -> str:
    """The floor ``cfg`` asks for, reconciling the older ``noise_floor`` / ``noise_source`` fields:
    ``noise_floor >= 0`` means ``fixed``; ``noise_source=none`` (no half grids) means ``none`` for the
    floors that need the halves."""
    if cfg.floor == "fixed" or cfg.noise_floor >= 0:  # TopologyConfig checked that the two agree
        return "fixed"
    if cfg.noise_source == "none" and cfg.floor in ("stability", "bottleneck"):
        return "none"
    return cfg.floor


def inputs_needed(cfg: TopologyConfig) -> tuple[bool, bool]:
    """``(halves, per_example)``: which optional inputs of :func:`grid_topology` the phase should produce.

    The halves cost no extra forward pass (the full grid is their weighted mean) and give the stability
    and bottleneck floors; per-example losses (``grid.shape + (n_examples,)``) are needed only by the
    bootstrap floor.
    """
    floor = requested_floor(cfg)
    return cfg.noise_source == "subset" and floor != "fixed", floor == "bootstrap"


def filtration_values(grid: np.ndarray, filtration: str) -> np.ndarray:
    """Map a loss grid to filtration values: the loss itself, or its log (``+inf`` stays ``+inf``).

    On log-loss, a basin's depth is the log of a loss ratio, so a basin at loss 0.01 under a rim at 0.02
    is as deep as one at 1 under a rim at 2, and the steep high-loss rim no longer dominates the floors.
    """
    if filtration not in FILTRATIONS:
        raise ConfigError(f"topology.filtration must be one of {' | '.join(FILTRATIONS)}, got '{filtration}'")
    values = validated_grid(grid)
    if filtration == "loss":
        return values
    finite = np.isfinite(values)
    if (values[finite] <= 0).any():
        raise DataError("topology.filtration=log_loss needs positive losses; the grid has values <= 0")
    return np.log(values)


def full_connectivity(ndim: int, connectivity: int) -> int:
    """The n-D neighbour count for ``topology.connectivity``, which names the choice by its 2-D count."""
    if connectivity == 8 or connectivity == FULL_CONNECTIVITY[ndim]:
        return FULL_CONNECTIVITY[ndim]
    if connectivity == 4 or connectivity == FACE_CONNECTIVITY[ndim]:
        return FACE_CONNECTIVITY[ndim]
    raise ConfigError(f"topology.connectivity must be 8 (full) or 4 (face), got {connectivity}")


def floor_source(floor: str, distance: str = "") -> str:
    """One line saying how a floor is measured, for logs and figures."""
    return {
        "stability": "2 * max|L_half1 - L_half2| over the grid (two disjoint halves of the evaluation data)",
        "bottleneck": "2 * bottleneck distance between the two data halves' diagrams, per homology dimension",
        "bootstrap": f"2 * (1 - alpha) quantile of the {distance or 'bottleneck'} distance between the bootstrap "
        + "and sample diagrams (Fasy et al. 2014), per homology dimension",
        "fixed": "given (topology.noise_floor)",
        "none": "no floor (0)",
    }[floor]


def grid_topology(
    values: np.ndarray,
    halves: tuple[np.ndarray, np.ndarray] | None,
    per_example: np.ndarray | None,
    cfg: TopologyConfig,
) -> GridTopology:
    """Diagrams, noise floors, merge tree and summary of one n-D loss grid (1 to 4 dimensions).

    Args:
        values: full-data loss grid; ``+inf`` marks diverged nodes (never in the filtration).
        halves: loss grids of two disjoint halves of the evaluation data (same shape, ``+inf`` at the same
            nodes), or ``None``: then the stability and bottleneck floors are unavailable.
        per_example: per-example losses, shape ``values.shape + (n_examples,)``, or ``None``: then the
            bootstrap floor is unavailable. Only read when ``cfg.floor == "bootstrap"``.
        cfg: the topology section (filtration, connectivity, backend, floor and its parameters).

    Returns:
        :class:`GridTopology`. When the requested floor cannot be measured from the inputs it falls back
        (bootstrap -> bottleneck -> none) and ``fallback`` says why.
    """
    loss = validated_grid(values)
    dims = tuple(range(loss.ndim))
    requested = requested_floor(cfg)
    connectivity = full_connectivity(loss.ndim, cfg.connectivity)
    f = filtration_values(loss, cfg.filtration)
    diagrams = lower_star_diagrams(f, connectivity, cfg.backend)
    per_dim: dict[str, dict[int, float]] = {}
    floors: dict[str, float] = {}
    if halves is not None:
        a, b = (filtration_values(_same_shape(h, loss.shape, "halves"), cfg.filtration) for h in halves)
        stability = noise_floor(a, b)
        per_dim["stability"] = {k: stability for k in dims}
        floors["stability"] = stability
        per_dim["bottleneck"] = bottleneck_floor(
            lower_star_diagrams(a, connectivity, cfg.backend), lower_star_diagrams(b, connectivity, cfg.backend), dims
        )
        floors.update({f"bottleneck_h{k}": v for k, v in per_dim["bottleneck"].items()})
    distances = None
    if requested == "bootstrap" and per_example is not None:
        losses = np.asarray(per_example)
        if losses.shape[:-1] != loss.shape:
            raise DataError(f"per_example shape {losses.shape} is not values.shape {loss.shape} + (n_examples,)")
        distances = bootstrap_distances(
            losses,
            cfg.bootstrap_samples,
            cfg.bootstrap_distance,
            dims,
            lambda grid: filtration_values(grid, cfg.filtration),
            cfg.bootstrap_seed,
            connectivity,
            cfg.backend,
        )
        per_dim["bootstrap"] = bootstrap_floor(distances, cfg.bootstrap_alpha, dims)
        floors.update({f"bootstrap_h{k}": v for k, v in per_dim["bootstrap"].items()})
    if requested == "fixed":
        per_dim["fixed"] = {k: float(cfg.noise_floor) for k in dims}
        floors["fixed"] = float(cfg.noise_floor)
    used, fallback = _resolve(requested, per_dim)
    eps = per_dim[used] if used != "none" else {k: 0.0 for k in dims}
    for name in ("bottleneck", "bootstrap"):  # one conservative number per floor too: floors[floor_used] always works
        if name in per_dim:
            floors[name] = max(per_dim[name].values())
    floors["none"] = 0.0
    tree = merge_tree(f, connectivity)
    summary = _summary(loss, diagrams, dims, eps, per_dim, tree)
    info = {
        "connectivity": connectivity,
        "construction": diagrams.meta.get("construction"),
        "backend": cfg.backend,
        "dims": loss.ndim,
        "shape": list(loss.shape),
        "filtration_values": "sublevel sets of "
        + ("log(loss)" if cfg.filtration == "log_loss" else "loss")
        + ", vertex births = values (lower star)",
    }
    if distances is not None:
        assert per_example is not None  # the bootstrap distances come from the per-example losses
        info.update(
            bootstrap_samples=cfg.bootstrap_samples,
            bootstrap_alpha=cfg.bootstrap_alpha,
            bootstrap_distance=cfg.bootstrap_distance,
            bootstrap_seed=cfg.bootstrap_seed,
            n_examples=int(np.shape(per_example)[-1]),
        )
    return GridTopology(
        diagrams, floors, used, summary, tree, eps, requested, fallback, cfg.filtration, distances, info
    )


def _summary(
    loss: np.ndarray,
    diagrams: Diagrams,
    dims: tuple[int, ...],
    eps: dict[int, float],
    per_dim: dict[str, dict[int, float]],
    tree: MergeTree,
) -> dict[str, float]:
    """The flat metric dict: the 2-D phase's names, plus per-dimension and per-floor names."""
    summary = summarize(diagrams, dims=dims, eps=eps)
    summary.update(grid_baselines(loss))
    if loss.ndim == 2:  # the published quantity; undefined where the loss diverged
        summary["h0_zero_birth_total"] = h0_zero_birth_total(loss) if np.isfinite(loss).all() else float("nan")
    summary["noise_floor"] = max(eps.values())
    summary["nonfinite_nodes"] = float((~np.isfinite(loss)).sum())
    for k in dims:
        summary[f"noise_floor_h{k}"] = eps[k]
    nan = float("nan")
    summary["noise_floor_stability"] = per_dim["stability"][0] if "stability" in per_dim else nan
    for name in MEASURED_FLOORS:
        floor = per_dim.get(name)
        for k in dims:
            if name != "stability":
                summary[f"noise_floor_{name}_h{k}"] = floor[k] if floor else nan
            life = lifetimes(diagrams[k])
            above = life[life > floor[k]] if floor else np.empty(0)
            summary[f"h{k}_count_above_{name}"] = float(above.size) if floor else nan
            summary[f"h{k}_total_above_{name}"] = float(above.sum()) if floor else nan
    summary["merge_tree_minima"] = float(tree.leaves.size)
    summary["basins_above_eps"] = float(tree.pruned(eps[0]).leaves.size)
    return summary


def _resolve(requested: str, per_dim: dict[str, dict[int, float]]) -> tuple[str, str]:
    """The first measured, finite floor along the fallback chain, and the reasons for every step taken."""
    reasons = []
    floor = requested
    while floor != "none" and (floor not in per_dim or not all(np.isfinite(v) for v in per_dim[floor].values())):
        if floor not in per_dim:
            missing = "per-example losses" if floor == "bootstrap" else "the two half-data grids"
            reasons.append(f"{floor} needs {missing}, which were not given")
        else:
            reasons.append(f"{floor} floor is infinite (the diagrams differ in essential bars)")
        floor = FALLBACK[floor]
    return floor, "; ".join(reasons) + (f"; used {floor}" if reasons else "")


def _same_shape(grid: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    arr = np.asarray(grid, dtype=np.float64)
    if arr.shape != shape:
        raise DataError(f"{name} grid shape {arr.shape} does not match values shape {shape}")
    return arr
