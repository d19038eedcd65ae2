"""Landscape phase: per slice a child run with the grid, its persistence and figures; curvature once.

The loss grid is evaluated on two disjoint halves of the evaluation data. Their size-weighted mean is
exactly the full-data grid (mean cross-entropy is linear in the examples), so the noise floor of the
persistence diagrams comes at no extra cost: bars shorter than the disagreement of the halves are
reported separately from those above it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from persist.config import RunConfig, config_hash
from persist.data import TaskData
from persist.devices import resolve_device
from persist.errors import ConfigError
from persist.landscape import LandscapeGrid, evaluate_grid, random_directions
from persist.landscape.resume import tensor_digest
from persist.phases.common import clear_workdir, load_trained_model, run_tags, task_of, workdir
from persist.phases.records import log_slice_figures, log_task_split, member_label, run_name
from persist.plots.landscape import plot_contour, plot_heatmap, plot_surface
from persist.plots.topology import plot_barcode, plot_diagram
from persist.topology import (NoiseFloor, aggregate_summaries, grid_baselines, h0_zero_birth_total,
                              lower_star_diagrams, noise_floor, pairwise_distances, summarize)
from persist.tracking import log_arrays, log_figure, log_json, log_metrics, phase_run, set_tags

SECTIONS = ("landscape", "topology", "curvature")


def landscape_hash(cfg: RunConfig, train_run_id: str) -> str:
    return config_hash(cfg, SECTIONS) + f"-{train_run_id[:8]}"


def grid_key(cfg: RunConfig, train_run_id: str) -> str:
    """The resumable grid chunks depend on the landscape section and the model only, so changing a
    curvature or topology setting never recomputes a grid."""
    return config_hash(cfg, ["landscape"]) + f"-{train_run_id[:8]}"


def evaluation_data(task: TaskData, split: str, subset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples every grid node is evaluated on: a fixed prefix of one split (no sampling noise)."""
    if split not in ("test", "val", "train"):
        raise ConfigError(f"landscape.split must be test, val or train, got '{split}'")
    x, y = getattr(task, f"x_{split}"), getattr(task, f"y_{split}")
    return (x[:subset], y[:subset]) if subset > 0 else (x, y)


@dataclass
class Slice:
    grid: LandscapeGrid
    diagrams: dict[int, np.ndarray]
    summary: dict[str, float]
    noise: NoiseFloor


def slice_grid(model: nn.Module, cfg: RunConfig, x: torch.Tensor, y: torch.Tensor, k: int, chunks: Path,
               progress: bool) -> tuple[LandscapeGrid, NoiseFloor, dict]:
    """Grid of slice ``k`` and its noise floor, from the two half-data grids (resumable by chunk)."""
    ls = cfg.landscape
    seeds = (ls.seed + 2 * k, ls.seed + 2 * k + 1)
    directions = random_directions(model, seeds, ls.normalization, ls.one_d, ls.orthogonalize)
    options = dict(resolution=ls.resolution, span=ls.span, batch_size=ls.batch_size, precision=ls.precision,
                   method=ls.method, progress=progress)
    if cfg.topology.noise_source not in ("subset", "none"):
        raise ConfigError(f"topology.noise_source must be subset or none, got '{cfg.topology.noise_source}'")
    use_halves = cfg.topology.noise_floor < 0 and cfg.topology.noise_source == "subset" and len(x) >= 2
    if not use_halves:
        grid = evaluate_grid(model, directions, x, y, chunk_dir=chunks / f"slice{k}", **options)
        value = max(cfg.topology.noise_floor, 0.0)
        return grid, NoiseFloor(value, "given" if cfg.topology.noise_floor >= 0 else "none"), directions.record
    half = len(x) // 2
    parts = [evaluate_grid(model, directions, xs, ys, chunk_dir=chunks / f"slice{k}-half{i}",
                           **options) for i, (xs, ys) in enumerate(((x[:half], y[:half]), (x[half:], y[half:])))]
    w = half / len(x)
    combined = LandscapeGrid(parts[0].alphas, parts[0].betas, w * parts[0].loss + (1 - w) * parts[1].loss,
                             w * parts[0].accuracy + (1 - w) * parts[1].accuracy,
                             {**parts[0].meta, "halves": [parts[0].meta, parts[1].meta]})
    diverged = ~np.isfinite(parts[0].loss) | ~np.isfinite(parts[1].loss)  # +inf in either half is +inf overall
    halves = [np.where(diverged, np.inf, part.loss) for part in parts]
    noise = NoiseFloor(noise_floor(*halves), "measured on two disjoint halves of the evaluation data: "
                                    "2 * max|L_half1 - L_half2|")
    return combined, noise, directions.record


def topology_of(grid: LandscapeGrid, cfg: RunConfig, noise: NoiseFloor) -> tuple[dict[int, np.ndarray], dict]:
    diagrams = lower_star_diagrams(grid.loss, cfg.topology.connectivity, cfg.topology.backend)
    summary = summarize(diagrams, eps=noise.value)
    summary.update(grid_baselines(grid.loss))
    # the published quantity is undefined where the loss diverged; report that rather than stop the phase
    finite = bool(np.isfinite(grid.loss).all())
    summary["h0_zero_birth_total"] = h0_zero_birth_total(grid.loss) if finite else float("nan")
    summary["noise_floor"] = noise.value
    summary["nonfinite_nodes"] = float((~np.isfinite(grid.loss)).sum())
    return diagrams, summary


def log_slice(s: Slice, record: dict, cfg: RunConfig, data_meta: dict, title: str) -> None:
    g = s.grid
    log_arrays("landscape/grid.npz", alphas=g.alphas, betas=g.betas, loss=g.loss, accuracy=g.accuracy)
    log_json({"directions": record, "grid": g.meta, "data": data_meta, "config": asdict(cfg.landscape)},
             "landscape/meta.json")
    for dim, diagram in s.diagrams.items():
        log_arrays(f"persistence/h{dim}.npy", diagram=diagram)
    log_json({"backend": cfg.topology.backend, "connectivity": cfg.topology.connectivity,
              "filtration": "sublevel set (lower star), vertex births = loss values",
              "noise_floor": s.noise.value, "noise_floor_source": s.noise.source,
              "essential_policy": "the global-minimum H0 bar is reported separately (h0_essential_birth) and "
                                  "excluded from totals"}, "persistence/meta.json")
    log_metrics(s.summary, prefix="topology/")
    centre = g.center
    log_metrics({"center_loss": g.loss[centre], "center_accuracy": g.accuracy[centre],
                 "seconds": g.meta.get("seconds", float("nan"))}, prefix="landscape/")
    finite = g.loss[np.isfinite(g.loss)]
    wide = finite.size > 0 and finite.max() > 20 * max(finite.min(), 1e-12)  # a basin inside steep walls
    log_figure(plot_contour(g.alphas, g.betas, g.loss, log_scale=wide, title=title), "figures/contour.png")
    log_figure(plot_heatmap(g.alphas, g.betas, g.loss, log_scale=wide, title=title), "figures/heatmap.png")
    log_figure(plot_surface(g.alphas, g.betas, g.loss, title=title), "figures/surface.png")
    log_figure(plot_diagram(s.diagrams, eps=s.noise.value, title=title), "figures/diagram.png")
    log_figure(plot_barcode(s.diagrams, eps=s.noise.value, title=title), "figures/barcode.png")
    log_slice_figures(g.alphas, g.betas, g.loss, s.diagrams, s.noise.value, title)


def log_curvature(model: nn.Module, cfg: RunConfig, x: torch.Tensor, y: torch.Tensor) -> None:
    """Curvature baselines once per model (they do not depend on the slice); failures become tags."""
    from persist.curvature import measure_curvature, measure_options

    c = cfg.curvature
    options = {"trace_probes": c.probes, "eigen_tol": c.eigen_tol, "directions": c.barrier_directions}
    known = {opt for name in c.measures for opt in measure_options(name)}
    values, failures = measure_curvature(model, x[: c.subset], y[: c.subset], measures=c.measures,
                                         batch_size=c.batch_size, seed=cfg.seed,
                                         **{k: v for k, v in options.items() if k in known})
    log_metrics({**values, "subset_size": min(c.subset, len(x))}, prefix="curvature/")
    if failures:
        set_tags({f"persist.curvature_failed.{name}": reason[:500] for name, reason in failures.items()})


def run_landscape(cfg: RunConfig, train_run_id: str, progress: bool = True, rank: int = 0) -> str:
    """Slices, persistence and curvature of a trained model; returns the landscape run id.

    Under torchrun every rank evaluates its share of each grid; only rank 0 touches the tracking store.
    """
    device = resolve_device(cfg.device)
    model, train_cfg = load_trained_model(train_run_id, device)
    model.eval()
    data = train_cfg.data
    task = task_of(train_cfg, "A", device)
    x, y = evaluation_data(task, cfg.landscape.split, cfg.landscape.subset)
    data_meta = {"dataset": data.dataset, "task": "A", "split": cfg.landscape.split, "size": len(x),
                 "sha256": tensor_digest([x, y])}
    if cfg.landscape.resolution % 2 == 0:
        import warnings

        warnings.warn("landscape.resolution is even: the trained weights are not a grid node", stacklevel=2)
    key = landscape_hash(cfg, train_run_id)
    chunks = workdir("landscape", grid_key(cfg, train_run_id))
    if rank != 0:
        for k in range(cfg.landscape.slices):
            slice_grid(model, cfg, x, y, k, chunks, progress=False)
        return ""
    tags = run_tags(train_cfg, **{"persist.config_hash": key, "persist.upstream_run_id": train_run_id})
    label = f"{member_label(train_cfg)} s{train_cfg.seed}"
    with phase_run("landscape", cfg, tags, run_name=run_name("landscape", train_cfg)) as run:
        log_task_split(task, cfg.landscape.split, x, y)
        if cfg.curvature.enabled:
            started = time.perf_counter()
            log_curvature(model, cfg, task.x_train, task.y_train)
            log_metrics({"curvature_seconds": time.perf_counter() - started}, prefix="landscape/")
        slices = []
        for k in range(cfg.landscape.slices):
            with phase_run("landscape_slice", None, {**tags, "persist.slice": str(k)}, run_name=f"slice random-{k}",
                           reopen_finished=True):
                grid, noise, record = slice_grid(model, cfg, x, y, k, chunks, progress)
                diagrams, summary = topology_of(grid, cfg, noise)
                s = Slice(grid, diagrams, summary, noise)
                log_slice(s, record, cfg, data_meta, f"{label} slice random-{k}")
                slices.append(s)
        log_metrics(aggregate_summaries([s.summary for s in slices]), prefix="topology/")
        if len(slices) > 1:
            for dim in (0, 1):
                d = pairwise_distances([s.diagrams for s in slices], dim)
                log_metrics({f"h{dim}_bottleneck_between_slices": float(d[np.triu_indices(len(slices), 1)].mean())},
                            prefix="topology/")
    if rank == 0 and not _distributed():
        clear_workdir("landscape", grid_key(cfg, train_run_id))
    return run.info.run_id


def _distributed() -> bool:
    """Other ranks may still read their chunks; under torchrun the scratch stays for the next run."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()
