"""Landscape phase: per slice a child run with the grid, its persistence and figures; curvature once.

A slice is a grid of 1 to 4 dimensions along one direction family (``landscape.directions``): seeded
random planes, Hessian eigenvectors, training-trajectory PCA, or the plane through three models. The loss
grid is evaluated on two disjoint halves of the evaluation data; their size-weighted mean is exactly the
full-data grid (mean cross-entropy is linear in the examples), so the halves come at no extra cost and the
topology library (:func:`persist.topology.grid_topology.grid_topology`) turns them, and optionally the
per-example losses, into noise floors. A resumed run skips finished slices and finished curvature.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, replace
from itertools import combinations
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from persist.artifacts import LANDSCAPE_DIR, PERSISTENCE_META, SNAPSHOTS, checkpoint, persistence_diagram
from persist.checkpoint import load_checkpoint
from persist.config import RunConfig, config_hash
from persist.data import TaskData
from persist.devices import resolve_device
from persist.errors import ConfigError, UpstreamRunNotFound
from persist.forgetting.head import narrow_classifier
from persist.landscape import Directions, LandscapeGrid, evaluate_grid, grid_options, random_directions
from persist.landscape.resume import tensor_digest
from persist.landscape.storage import save_grid
from persist.landscape.subspaces import hessian_directions, mode_directions, trajectory_directions
from persist.models import get_classifier
from persist.phases.common import clear_workdir, load_trained_model, run_tags, task_of, workdir
from persist.phases.records import log_slice_figures, log_task_split, member_label, run_name
from persist.phases.table import PHASE_TABLE
from persist.plots.landscape import plot_contour, plot_heatmap, plot_profile, plot_surface
from persist.plots.topology import plot_barcode, plot_diagram, plot_landscape_profile
from persist.topology import aggregate_summaries, pairwise_distances
from persist.topology.grid_topology import GridTopology, grid_topology, inputs_needed
from persist.tracking import (
    downloaded,
    get_run,
    log_arrays,
    log_directory,
    log_figure,
    log_json,
    log_metrics,
    phase_run,
    set_tags,
)

SECTIONS = PHASE_TABLE["landscape"].sections
SLICE_DONE = "persist.slice_complete"
CURVATURE_DONE = "persist.curvature_complete"  # a resumed landscape run skips finished curvature


def landscape_hash(cfg: RunConfig, train_run_id: str) -> str:
    return config_hash(cfg, SECTIONS) + f"-{train_run_id[:8]}"


def grid_key(cfg: RunConfig, train_run_id: str) -> str:
    """The resumable grid chunks depend on the landscape section and the model only, so changing a
    curvature or topology setting never recomputes a grid (except that a bootstrap floor needs the
    per-example losses kept)."""
    return config_hash(cfg, ["landscape"]) + f"-{train_run_id[:8]}" + ("-pe" if keep_per_example(cfg) else "")


def keep_per_example(cfg: RunConfig) -> bool:
    """Per-example losses when asked for, or when the topology's noise floor resamples examples."""
    return cfg.landscape.per_example or inputs_needed(cfg.topology)[1]


def num_slices(cfg: RunConfig) -> int:
    """Random families draw ``slices`` planes; the others are deterministic, so one slice."""
    return cfg.landscape.slices if cfg.landscape.directions == "random" else 1


def evaluation_data(task: TaskData, split: str, subset: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples every grid node is evaluated on: a fixed prefix of one split (no sampling noise)."""
    x, y = getattr(task, f"x_{split}"), getattr(task, f"y_{split}")
    return (x[:subset], y[:subset]) if subset > 0 else (x, y)


def _snapshots(train_run_id: str) -> list[dict[str, torch.Tensor]]:
    try:
        with downloaded(train_run_id, checkpoint(SNAPSHOTS)) as path:
            return [dict(s) for s in load_checkpoint(path)["snapshots"]]
    except UpstreamRunNotFound:
        raise ConfigError(f"train run {train_run_id} kept no parameter snapshots; retrain with "
                          "--set train.snapshots=10 for landscape.directions=trajectory") from None


def _mode_models(run_ids: tuple[str, ...], device: torch.device) -> list[nn.Module]:
    """Models of ``RUN`` or ``RUN:checkpoint`` (default checkpoint ``best``)."""
    models = []
    for ref in run_ids:
        run_id, _, name = ref.partition(":")
        model, _ = load_trained_model(run_id, device, name or "best", phases=("train", "forgetting"))
        models.append(model.eval())
    classes = get_classifier(models[0]).out_features
    for later in models[1:]:  # a forgetting run's theta_B: its task-A rows (the task-masked view)
        if get_classifier(later).out_features > classes:
            narrow_classifier(later, classes)
    return models


def slice_directions(model: nn.Module, cfg: RunConfig, task: TaskData, k: int, chunks: Path, train_run_id: str,
                     modes: list[nn.Module] | None) -> Directions:
    """The directions of slice ``k`` of the configured family (Hessian eigenpairs cached in the scratch)."""
    ls, c = cfg.landscape, cfg.curvature
    if ls.directions == "random":
        seeds = tuple(ls.seed + ls.dims * k + i for i in range(ls.dims))
        return random_directions(model, seeds, ls.normalization, ls.one_d, ls.orthogonalize)
    if ls.directions == "hessian":
        return hessian_directions(model, task.x_train[: c.subset], task.y_train[: c.subset], ls.dims,
                                  negative=ls.hessian_negative, batch_size=c.batch_size, tol=ls.hessian_tol,
                                  seed=cfg.seed, one_d=ls.one_d,
                                  cache=chunks / f"hessian-n{c.subset}-b{c.batch_size}.npz")  # curvature not in key
    if ls.directions == "trajectory":
        return trajectory_directions(model, _snapshots(train_run_id), ls.dims, one_d=ls.one_d)
    assert modes is not None
    return mode_directions(model, modes[1].state_dict(), modes[2].state_dict(), ls.resolution)


def slice_grid(model: nn.Module, cfg: RunConfig, directions: Directions, x: torch.Tensor, y: torch.Tensor, k: int,
               chunks: Path, progress: bool) -> tuple[LandscapeGrid, tuple[np.ndarray, np.ndarray] | None]:
    """Grid of slice ``k`` from its two half-data grids (resumable by chunk), and the halves' losses."""
    options = {**grid_options(cfg.landscape), "progress": progress, "per_example": keep_per_example(cfg),
               "measure_limit": True}
    if len(x) < 2:
        return evaluate_grid(model, directions, x, y, chunk_dir=chunks / f"slice{k}", **options), None
    half = len(x) // 2
    parts = [evaluate_grid(model, directions, xs, ys, chunk_dir=chunks / f"slice{k}-half{i}", **options)
             for i, (xs, ys) in enumerate(((x[:half], y[:half]), (x[half:], y[half:])))]
    w = half / len(x)
    per_example = None
    if keep_per_example(cfg):
        per_example = np.concatenate([parts[0].per_example, parts[1].per_example], axis=-1)
    meta = {**parts[0].meta, "halves": [parts[0].meta, parts[1].meta], "num_samples": len(x)}
    seconds = sum(p.meta["seconds_evaluation"] for p in parts)
    evaluated = parts[0].meta["nodes_evaluated"]  # both halves together make one full-data evaluation per node
    meta["nodes_per_second"] = evaluated / seconds if evaluated and seconds > 0 else None
    forward = sum(p.meta["forward_seconds"] for p in parts)
    meta["forward_seconds"], meta["forward_nodes_per_second"] = forward, 1.0 / forward
    meta["limit_ratio"] = meta["nodes_per_second"] * forward if meta["nodes_per_second"] else None
    cpu = sum(p.meta["cpu_seconds_evaluation"] for p in parts)
    forward_cpu = sum(p.meta["forward_cpu_seconds"] for p in parts)
    meta["limit_ratio_cpu"] = evaluated * forward_cpu / cpu if evaluated and cpu > 0 else None
    combined = LandscapeGrid(parts[0].axes, w * parts[0].loss + (1 - w) * parts[1].loss,
                             w * parts[0].accuracy + (1 - w) * parts[1].accuracy, meta, per_example)
    diverged = ~np.isfinite(parts[0].loss) | ~np.isfinite(parts[1].loss)  # +inf in either half is +inf overall
    halves = (np.where(diverged, np.inf, parts[0].loss), np.where(diverged, np.inf, parts[1].loss))
    return combined, halves


def topology_of(grid: LandscapeGrid, halves: tuple[np.ndarray, np.ndarray] | None, cfg: RunConfig) -> GridTopology:
    """The topology library's reading of the grid; the half-data grids only when the config asks for them."""
    halves_wanted, _ = inputs_needed(cfg.topology)
    return grid_topology(grid.loss, halves if halves_wanted else None, grid.per_example, cfg.topology)


def _labels(family: str, i: int, j: int) -> tuple[str, str]:
    names = {"hessian": "eigenvector", "trajectory": "PC", "modes": "mode axis"}.get(family, "direction")
    return f"{names} {i + 1}", f"{names} {j + 1}"


def log_figures(g: LandscapeGrid, topo: GridTopology, record: dict, title: str) -> None:
    """Contour and heatmap of every 2-D plane through theta* (one for a 2-D grid), surface for 2-D grids,
    a profile for 1-D ones, and the persistence diagram and barcode."""
    family = record.get("family", "random")
    if g.dims == 1:
        log_figure(plot_profile(g.axes[0], g.loss, g.accuracy, title=title), "figures/profile.png")
    for i, j in combinations(range(g.dims), 2):
        plane = g.plane(i, j)
        finite = plane[np.isfinite(plane)]
        wide = finite.size > 0 and finite.max() > 20 * max(finite.min(), 1e-12)  # a basin inside steep walls
        suffix = "" if g.dims == 2 else f"_{i + 1}{j + 1}"
        path = None
        if family == "trajectory" and record.get("path"):
            path = np.asarray(record["path"])[:, [i, j]]
        points = {n: tuple(v) for n, v in record["coordinates"].items()} if family == "modes" else None
        labels = _labels(family, i, j)
        log_figure(plot_contour(g.axes[i], g.axes[j], plane, log_scale=wide, title=title, path=path, points=points,
                                labels=labels), f"figures/contour{suffix}.png")
        log_figure(plot_heatmap(g.axes[i], g.axes[j], plane, log_scale=wide, title=title, labels=labels),
                   f"figures/heatmap{suffix}.png")
    if g.dims == 2:
        log_figure(plot_surface(g.axes[0], g.axes[1], g.loss, title=title), "figures/surface.png")
    eps = topo.floors[topo.floor_used]
    log_figure(plot_diagram(topo.diagrams, eps=eps, title=title), "figures/diagram.png")
    log_figure(plot_barcode(topo.diagrams, eps=eps, title=title), "figures/barcode.png")
    log_figure(plot_landscape_profile(topo.merge_tree, eps=eps, title=title), "figures/landscape_profile.png")
    if g.dims >= 2:  # the interactive surface of the first plane through theta*
        log_slice_figures(g.axes[0], g.axes[1], g.plane(0, 1), topo.diagrams, eps, title)


def log_slice(g: LandscapeGrid, topo: GridTopology, record: dict, cfg: RunConfig, data_meta: dict, title: str) -> None:
    meta = {**g.meta, "directions": record, "data": data_meta, "config": asdict(cfg.landscape)}
    with tempfile.TemporaryDirectory() as tmp:  # exactly what persist.landscape.load_grid reads back
        save_grid(replace(g, meta=meta), tmp)
        log_directory(tmp, LANDSCAPE_DIR)
    for dim, diagram in topo.diagrams.items():
        log_arrays(persistence_diagram(dim), diagram=diagram)
    log_json({**topo.meta(), "dims": g.dims}, PERSISTENCE_META)
    log_metrics(topo.summary, prefix="topology/")
    throughput = {k: g.meta.get(k) for k in ("nodes_per_second", "forward_nodes_per_second", "limit_ratio",
                                             "limit_ratio_cpu")}
    log_metrics({"center_loss": g.loss[g.center], "center_accuracy": g.accuracy[g.center],
                 "seconds": g.meta.get("seconds", float("nan")), "nodes": float(g.loss.size),
                 **{k: v for k, v in throughput.items() if v is not None}}, prefix="landscape/")
    if record.get("explained_variance_ratio"):
        log_metrics({f"explained_variance_{i + 1}": v for i, v in enumerate(record["explained_variance_ratio"])},
                    prefix="landscape/")
    if record.get("eigenvalues"):
        log_metrics({f"direction_eigenvalue_{i + 1}": v for i, v in enumerate(record["eigenvalues"])},
                    prefix="landscape/")
    log_figures(g, topo, record, title)


def log_curvature(model: nn.Module, cfg: RunConfig, x: torch.Tensor, y: torch.Tensor) -> None:
    """Curvature baselines once per model (they do not depend on the slice); failures become tags."""
    from persist.curvature import measure_curvature

    values, failures = measure_curvature(model, x, y, cfg.curvature, seed=cfg.seed)
    log_metrics({**values, "subset_size": min(cfg.curvature.subset, len(x))}, prefix="curvature/")
    if failures:
        set_tags({f"persist.curvature_failed.{name}": reason[:500] for name, reason in failures.items()})


def _finished_slice(run_id: str, dims: int) -> tuple[dict[int, np.ndarray], dict[str, float]] | None:
    """Diagrams and summary of a slice a previous (killed) run already logged completely, else None."""
    run = get_run(run_id)
    if run.data.tags.get(SLICE_DONE) != "1":
        return None
    summary = {k.removeprefix("diag/")[len("topology/"):]: v for k, v in run.data.metrics.items()
               if k.removeprefix("diag/").startswith("topology/")}  # key metrics and diagnostics alike
    diagrams = {}
    for d in range(dims):
        with downloaded(run_id, persistence_diagram(d)) as path:
            diagrams[d] = np.load(path)
    return diagrams, summary


def run_landscape(cfg: RunConfig, train_run_id: str, progress: bool = True, rank: int = 0) -> str:
    """Slices, persistence and curvature of a trained model; returns the landscape run id.

    Under torchrun every rank evaluates its share of each grid; only rank 0 touches the tracking store.
    """
    device = resolve_device(cfg.device)
    model, train_cfg = load_trained_model(train_run_id, device)
    modes = None
    if cfg.landscape.directions == "modes":
        modes = _mode_models(cfg.landscape.run_ids, device)
        model = modes[0]  # the plane's origin theta_A
    model.eval()
    data = train_cfg.data
    task = task_of(train_cfg, "A", device)
    x, y = evaluation_data(task, cfg.landscape.split, cfg.landscape.subset)
    data_meta = {"dataset": data.dataset, "task": "A", "split": cfg.landscape.split, "size": len(x),
                 "sha256": tensor_digest([x, y])}
    chunks = workdir("landscape", grid_key(cfg, train_run_id))
    if rank != 0:
        for k in range(num_slices(cfg)):
            directions = slice_directions(model, cfg, task, k, chunks, train_run_id, modes)
            slice_grid(model, cfg, directions, x, y, k, chunks, progress=False)
        return ""
    key = landscape_hash(cfg, train_run_id)
    tags = run_tags(train_cfg, **{"persist.config_hash": key, "persist.upstream_run_id": train_run_id,
                                  "persist.directions": cfg.landscape.directions})
    label = f"{member_label(train_cfg)} s{train_cfg.seed}"
    family = cfg.landscape.directions
    with phase_run("landscape", cfg, tags, run_name=run_name("landscape", train_cfg)) as run:
        log_task_split(task, cfg.landscape.split, x, y)
        if cfg.curvature.enabled and get_run(run.info.run_id).data.tags.get(CURVATURE_DONE) != "1":
            started = time.perf_counter()
            log_curvature(model, cfg, task.x_train, task.y_train)
            log_metrics({"curvature_seconds": time.perf_counter() - started}, prefix="landscape/")
            set_tags({CURVATURE_DONE: "1"})
        diagrams, summaries = [], []
        for k in range(num_slices(cfg)):
            with phase_run("landscape_slice", None, {**tags, "persist.slice": str(k)}, run_name=f"slice {family}-{k}",
                           reopen_finished=True) as slice_run:
                done = _finished_slice(slice_run.info.run_id, cfg.landscape.dims)
                if done is None:
                    directions = slice_directions(model, cfg, task, k, chunks, train_run_id, modes)
                    grid, halves = slice_grid(model, cfg, directions, x, y, k, chunks, progress)
                    topo = topology_of(grid, halves, cfg)
                    log_slice(grid, topo, directions.record, cfg, data_meta, f"{label} slice {family}-{k}")
                    set_tags({SLICE_DONE: "1"})
                    done = topo.diagrams, topo.summary
            diagrams.append(done[0])
            summaries.append(done[1])
        log_metrics(aggregate_summaries(summaries), prefix="topology/")
        if len(diagrams) > 1:
            for dim in range(cfg.landscape.dims):
                d = pairwise_distances(diagrams, dim)
                log_metrics({f"h{dim}_bottleneck_between_slices": float(d[np.triu_indices(len(diagrams), 1)].mean())},
                            prefix="topology/")
    if rank == 0 and not _distributed():
        clear_workdir("landscape", grid_key(cfg, train_run_id))
    return run.info.run_id


def _distributed() -> bool:
    """Other ranks may still read their chunks; under torchrun the scratch stays for the next run."""
    return torch.distributed.is_available() and torch.distributed.is_initialized()
