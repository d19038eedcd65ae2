"""Loss and accuracy over an n-D slice ``theta* + a1*d1 + ... + an*dn`` of parameter space (n = 1..4).

Every node is built in closed form, ``[1, a1, .., an] @ [theta*; d1; ..; dn]`` (no incremental
accumulation, which drifts; the centre row ``[1, 0, .., 0]`` is ``theta*`` bit for bit), and evaluated in eval mode
with fp32 loss sums on the device. Non-finite losses are kept as ``+inf`` (NaN becomes ``+inf``) and
counted: replacing them with finite values, as the published code did, manufactures plateaus that
persistent homology then reads as structure.

Nodes are numbered row-major (``loss[i, j, ..]`` is at ``axes[0][i], axes[1][j], ..``) and grouped into
chunks of ``chunk_nodes``; chunks are the unit of resume (``chunk_dir``) and of sharding across ranks, and
are evaluated ``points_per_step`` nodes at a time. A 2-D grid is the n = 2 case of this one code path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from persist.config import LandscapeConfig
from persist.errors import ConfigError
from persist.landscape.directions import Directions
from persist.landscape.distributed import broadcast_choice, gather_chunks, resolve_world, shard
from persist.landscape.nodes import (
    METHODS,
    PRECISIONS,
    Method,
    NodeEvaluator,
    Precision,
    check_choice,
    check_positive,
    choose_method,
    forward_limit,
    nonfinite_to_inf,
    tf32_policy,
)
from persist.landscape.parameters import FlatLayout, check_same_device, combine, parameter_layout, preserved_state
from persist.landscape.resume import ChunkStore, tensor_digest

ChunkCallback = Callable[[int, int, int], None]
MAX_DIMS = 4


@dataclass(frozen=True)
class LandscapeGrid:
    """``loss[i, j, ..]`` and ``accuracy[i, j, ..]`` at ``(axes[0][i], axes[1][j], ..)``; ``meta`` says how
    they were made. ``per_example`` (optional, shape ``loss.shape + (n_examples,)``, float32) holds each
    example's cross-entropy at each node, for resampling-based noise floors without a forward pass."""

    axes: tuple[np.ndarray, ...]
    loss: np.ndarray
    accuracy: np.ndarray
    meta: dict = field(default_factory=dict)
    per_example: np.ndarray | None = None

    @property
    def dims(self) -> int:
        return len(self.axes)

    @property
    def alphas(self) -> np.ndarray:
        return self.axes[0]

    @property
    def betas(self) -> np.ndarray:
        return self.axes[1]

    @property
    def center(self) -> tuple[int, ...]:
        """Index of theta* (the node at all coordinates 0; exact for odd resolutions)."""
        return tuple(int(np.argmin(np.abs(a))) for a in self.axes)

    def plane(self, i: int, j: int, values: np.ndarray | None = None) -> np.ndarray:
        """The 2-D slice of ``values`` (default: the loss) over axes ``i < j`` through theta*: every other
        axis held at its theta* index. ``plane(0, 1)`` of a 2-D grid is the grid itself."""
        values = self.loss if values is None else values
        if not 0 <= i < j < self.dims:
            raise ConfigError(f"plane axes must satisfy 0 <= i < j < {self.dims}, got ({i}, {j})")
        index = tuple(slice(None) if k in (i, j) else c for k, c in enumerate(self.center))
        return values[index]


def check_grid_args(resolution: int, span: float, batch_size: int, points_per_step: int, precision: str,
                     method: str, chunk_nodes: int | None) -> None:
    if not isinstance(resolution, int) or resolution < 2:
        raise ConfigError(f"resolution must be an integer >= 2, got {resolution!r}")
    if not np.isfinite(span) or span <= 0:
        raise ConfigError(f"span must be a positive finite number, got {span!r}")
    check_positive("batch_size", batch_size)
    check_positive("points_per_step", points_per_step)
    if chunk_nodes is not None:
        check_positive("chunk_nodes", chunk_nodes)
    check_choice("precision", precision, tuple(PRECISIONS))
    check_choice("method", method, METHODS)


def grid_axis(resolution: int, span: float) -> np.ndarray:
    """``linspace(-span, span, resolution)`` computed so it is exactly antisymmetric (a[k] == -a[-1-k]),
    with 0 exactly in the middle for odd resolutions (plain linspace is off by an ulp on one side)."""
    half = (resolution - 1) / 2
    return span * ((np.arange(resolution) - half) / half)


def check_directions(directions: Directions, layout: FlatLayout) -> None:
    """1 to 4 directions covering exactly the model's named parameters, with matching shapes."""
    if not 1 <= directions.dims <= MAX_DIMS:
        raise ConfigError(f"a grid needs 1 to {MAX_DIMS} directions, got {directions.dims}")
    for name, d in ((f"d{i + 1}", v) for i, v in enumerate(directions.vectors)):
        if set(d) != set(layout.names):
            missing = sorted(set(layout.names) ^ set(d))[:3]
            raise ConfigError(f"directions.{name} does not match the model's parameters (e.g. {missing})")
        for key, shape in zip(layout.names, layout.shapes, strict=True):
            if d[key].shape != shape:
                raise ConfigError(
                    f"directions.{name}['{key}'] has shape {tuple(d[key].shape)}, the model {tuple(shape)}")


def grid_axes(directions: Directions, resolution: int, span: float) -> tuple[np.ndarray, ...]:
    """The directions' own axes if they fix them, else the symmetric axis for every direction."""
    if directions.axes is None:
        return tuple(grid_axis(resolution, span) for _ in directions.vectors)
    axes = tuple(np.asarray(a, dtype=np.float64) for a in directions.axes)
    if len(axes) != directions.dims or any(a.ndim != 1 or len(a) < 2 or not np.isfinite(a).all() for a in axes):
        raise ConfigError(f"directions.axes must be {directions.dims} finite 1-D arrays of >= 2 coordinates")
    return axes


def _node_coefficients(axes: tuple[np.ndarray, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Row-major ``[1, a1, .., an]`` per node, so node k's parameters are ``coefs[k] @ [theta*; d1; ..; dn]``."""
    mesh = np.meshgrid(*axes, indexing="ij")
    coefs = np.stack([np.ones(mesh[0].size)] + [m.reshape(-1) for m in mesh], axis=1)
    return torch.tensor(coefs, dtype=dtype, device=device)


def _resume_config(model: nn.Module, directions: Directions, x: torch.Tensor, y: torch.Tensor, **settings) -> dict:
    """Everything that determines the grid's values, digested so a foreign chunk_dir is detected."""
    state = model.state_dict()
    return {
        **settings,
        "model_digest": tensor_digest(state.values()) + ":" + ",".join(state),
        "data_digest": tensor_digest([x, y]),
        "directions_digest": tensor_digest([t for v in (*directions.vectors, *(directions.buffers or ()))
                                            for t in v.values()]),
    }


DEFAULTS = LandscapeConfig()  # evaluate_grid's defaults are the config section's


def grid_options(config: LandscapeConfig) -> dict[str, Any]:
    """The :func:`evaluate_grid` keywords a :class:`LandscapeConfig` holds: ``evaluate_grid(model, dirs, x, y,
    **grid_options(cfg.landscape))`` evaluates the configured grid (further keywords may follow)."""
    return dict(resolution=config.resolution, span=config.span, batch_size=config.batch_size,
                points_per_step=config.points_per_step, precision=config.precision, method=config.method,
                per_example=config.per_example)


@torch.no_grad()
def evaluate_grid(
    model: nn.Module,
    directions: Directions,
    x: torch.Tensor,
    y: torch.Tensor,
    resolution: int = DEFAULTS.resolution,
    span: float = DEFAULTS.span,
    batch_size: int = DEFAULTS.batch_size,
    points_per_step: int = DEFAULTS.points_per_step,
    precision: Precision = DEFAULTS.precision,
    progress: bool = False,
    chunk_dir: str | Path | None = None,
    *,
    method: Method = DEFAULTS.method,
    chunk_nodes: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    on_chunk: ChunkCallback | None = None,
    per_example: bool = DEFAULTS.per_example,
    measure_limit: bool = False,
) -> LandscapeGrid:
    """Mean cross-entropy and top-1 accuracy at every node of a ``resolution``^n grid over [-span, span]^n,
    n = ``directions.dims`` (1..4), or over ``directions.axes`` when the directions fix their own axes.

    ``precision``: ``fp32`` (IEEE, TF32 off), ``tf32``, or ``bf16``/``fp16`` autocast for the forward
    pass; losses are summed in fp32 either way and the choice is recorded. ``method``: ``vmap``
    (``points_per_step`` nodes per forward), ``foreach`` (one node per forward) or ``auto`` (the faster
    on this device and model, timed once on one batch). ``chunk_dir`` makes the run resumable;
    ``chunk_nodes`` (default: one grid row, the last axis) sets the resume/sharding unit, and
    ``on_chunk(chunk, done, total)`` is called after each finished chunk. Under torchrun each rank
    evaluates its share of the chunks and every rank returns the full grid. ``per_example`` also keeps
    every example's loss at every node (``grid.per_example``). ``measure_limit`` times the model's plain
    forward pass over the same data (inference mode, same batches) and records the grid's throughput as a
    fraction of it (``meta["limit_ratio"]``): how close the evaluation runs to the forward-only limit.
    """
    began = time.perf_counter()
    check_grid_args(resolution, span, batch_size, points_per_step, precision, method, chunk_nodes)
    rank, world_size = resolve_world(rank, world_size)
    device = check_same_device(model, x, y)
    layout = parameter_layout(model)
    dtype = next(model.parameters()).dtype
    check_directions(directions, layout)
    vectors = [layout.flatten(d).to(device, dtype) for d in directions.vectors]
    axes = grid_axes(directions, resolution, span)
    shape = tuple(len(a) for a in axes)
    coefs = _node_coefficients(axes, device, dtype)
    num_nodes = int(np.prod(shape))
    chunk_nodes = chunk_nodes or shape[-1]
    settings = dict(resolution=resolution, span=float(span), dims=len(axes), shape=list(shape),
                    batch_size=batch_size, points_per_step=points_per_step, chunk_nodes=chunk_nodes,
                    precision=precision, num_samples=len(x), per_example=bool(per_example))
    resume_settings = dict(settings, axes_digest=tensor_digest([torch.from_numpy(np.concatenate(axes))]))
    store = ChunkStore(chunk_dir, _resume_config(model, directions, x, y, **resume_settings)) if chunk_dir else None

    with preserved_state(model), tf32_policy(precision) as tf32:
        basis = torch.stack([layout.flatten(dict(model.named_parameters())), *vectors])
        buffers, buffer_basis = _buffer_basis(model, directions, device, dtype)
        evaluator = NodeEvaluator(model, layout, x, y, batch_size, precision, buffers, per_example=per_example)

        def nodes(lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor | None]:
            return (combine(coefs[lo:hi], basis),
                    None if buffer_basis is None else combine(coefs[lo:hi], buffer_basis))

        plan = _ChunkPlan(num_nodes, chunk_nodes, points_per_step)
        first_step = plan.steps(0)[0]
        probe_began = time.perf_counter()
        chosen, probe, probed = _resolve_method(method, store, rank, world_size,
                                                lambda: choose_method(evaluator, *nodes(*first_step)))
        seconds_probe = time.perf_counter() - probe_began
        known = {first_step: probed} if probed is not None else {}

        def run_step(lo: int, hi: int) -> tuple:
            return known.pop((lo, hi)) if (lo, hi) in known else evaluator.run(chosen, *nodes(lo, hi))

        eval_began, eval_cpu = time.perf_counter(), time.process_time()
        results, resumed, evaluated = _evaluate_chunks(plan, shard(plan.num_chunks, rank, world_size), run_step,
                                                       len(x), store, on_chunk, progress and rank == 0)
        seconds_eval, cpu_eval = time.perf_counter() - eval_began, time.process_time() - eval_cpu
        limit = forward_limit(evaluator) if measure_limit else {}

    results = gather_chunks(results, world_size)
    ordered = [results[c] for c in range(plan.num_chunks)]
    loss, nonfinite = nonfinite_to_inf(np.concatenate([r[0] for r in ordered]))
    loss = loss.reshape(shape)
    accuracy = np.concatenate([r[1] for r in ordered]).reshape(shape)
    examples = np.concatenate([r[2] for r in ordered]).reshape(*shape, len(x)) if per_example else None
    rate = evaluated / seconds_eval if evaluated and seconds_eval > 0 else None
    meta = {
        **settings,
        "axes": [a.tolist() for a in axes],
        "method": chosen,
        "method_requested": method,
        "auto": probe,
        "num_chunks": plan.num_chunks,
        "chunks_resumed": resumed,
        "nodes_evaluated": evaluated,
        **nonfinite,
        "world_size": world_size,
        "device": str(device),
        "torch_version": torch.__version__,
        "loss_accumulation": "float32 sums on the device, divided in float64 on the host",
        **tf32,
        "seconds_probe": seconds_probe,
        "seconds_evaluation": seconds_eval,
        "seconds_per_node": seconds_eval / evaluated if evaluated else None,
        "nodes_per_second": rate,
        **limit,
        "limit_ratio": rate / limit["forward_nodes_per_second"] if rate and limit else None,
        # the same ratio in process CPU time: on a shared CPU, wall time also counts other jobs' time slices
        "cpu_seconds_evaluation": cpu_eval,
        "limit_ratio_cpu": (limit["forward_cpu_seconds"] * evaluated / cpu_eval if evaluated and cpu_eval > 0
                            and limit and limit["forward_cpu_seconds"] > 0 else None),
        "seconds": time.perf_counter() - began,
        "directions": directions.record,
    }
    if store:
        meta["config_hash"] = store.hash
    return LandscapeGrid(axes, loss, accuracy, meta, examples)


def _buffer_basis(model: nn.Module, directions: Directions, device: torch.device, dtype: torch.dtype
                  ) -> tuple[FlatLayout | None, torch.Tensor | None]:
    """Layout and ``[own; e1; ..; en]`` basis of the floating buffers the directions move (None if none)."""
    if not directions.buffers:
        return None, None
    own = {n: b for n, b in model.named_buffers() if n in directions.buffers[0]}
    if len(own) != len(directions.buffers[0]) or any(set(e) != set(own) for e in directions.buffers):
        raise ConfigError("directions.buffers must name the same floating buffers of the model in every direction")
    layout = FlatLayout.of(own)
    rows = [layout.flatten(own)] + [layout.flatten(e) for e in directions.buffers]
    return layout, torch.stack([r.to(device, dtype) for r in rows])


def _resolve_method(method: str, store: ChunkStore | None, rank: int, world_size: int,
                    probe: Callable[[], tuple[str, dict, tuple | None]]) -> tuple[str, dict, tuple | None]:
    """The evaluation method all ranks use: the one a resumed chunk_dir was started with, else the
    requested one, else (``auto``) rank 0's measurement, broadcast once. Recorded in the manifest.
    Also returns the probe's result for the first step when it can stand in for a regular run."""
    stored = store.stored_method() if store else None
    if store is not None and stored is not None and method not in ("auto", stored):
        raise ConfigError(f"method='{method}' but chunk_dir {store.directory} was started with '{stored}'; "
                          "use that method or a new chunk_dir")
    chosen = stored or method
    evidence: dict = {}
    probed: tuple | None = None
    if chosen == "auto":
        if rank == 0:
            chosen, evidence, probed = probe()
        chosen = broadcast_choice(chosen, world_size)
    if store:
        store.write_manifest(chosen)
    return chosen, evidence, probed


@dataclass(frozen=True)
class _ChunkPlan:
    """Row-major nodes cut into chunks (resume/shard unit), each evaluated a few nodes per step."""

    num_nodes: int
    chunk_nodes: int
    points_per_step: int

    @property
    def num_chunks(self) -> int:
        return -(-self.num_nodes // self.chunk_nodes)

    def bounds(self, chunk: int) -> tuple[int, int]:
        return chunk * self.chunk_nodes, min((chunk + 1) * self.chunk_nodes, self.num_nodes)

    def steps(self, chunk: int) -> list[tuple[int, int]]:
        lo, hi = self.bounds(chunk)
        return [(s, min(s + self.points_per_step, hi)) for s in range(lo, hi, self.points_per_step)]


def _evaluate_chunks(plan: _ChunkPlan, chunks: list[int], run_step: Callable, num_samples: int,
                     store: ChunkStore | None, on_chunk: ChunkCallback | None, progress: bool
                     ) -> tuple[dict[int, tuple[np.ndarray, np.ndarray, np.ndarray | None]], int, int]:
    """Per-chunk (loss, accuracy, per-example losses or None) on the host, plus how many chunks were
    resumed and nodes evaluated.

    Results stay on the device until the end unless they must be saved, so a run without a chunk_dir
    syncs with the host once.
    """
    results: dict[int, tuple] = {}
    resumed = evaluated = 0
    bar = _progress_bar(len(chunks), enabled=progress)
    for done, chunk in enumerate(chunks, start=1):
        lo, hi = plan.bounds(chunk)
        if store and store.has(chunk):
            results[chunk] = store.load(chunk, hi - lo)
            resumed += 1
        else:
            parts = [run_step(s, e) for s, e in plan.steps(chunk)]
            results[chunk] = tuple(None if p0 is None else torch.cat([p[k] for p in parts])
                                   for k, p0 in enumerate(parts[0]))
            evaluated += hi - lo
            if store:
                loss_sum, correct, per_example = results[chunk]
                results[chunk] = _to_host(loss_sum, correct, per_example, num_samples)
                store.save(chunk, *results[chunk])
        bar.update()
        if on_chunk is not None:
            on_chunk(chunk, done, len(chunks))
    bar.close()
    host = {c: (r if isinstance(r[0], np.ndarray) else _to_host(r[0], r[1], r[2], num_samples))
            for c, r in results.items()}
    return host, resumed, evaluated


def _to_host(loss_sum: torch.Tensor, correct: torch.Tensor, per_example: torch.Tensor | None, n: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    return (loss_sum.cpu().numpy().astype(np.float64) / n, correct.cpu().numpy().astype(np.float64) / n,
            None if per_example is None else per_example.cpu().numpy().astype(np.float32))


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="landscape chunks", disable=not enabled)
