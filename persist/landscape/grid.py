"""Loss and accuracy over a 2-D slice ``theta* + a*d1 + b*d2`` of parameter space.

Every node is built in closed form, ``[1, a, b] @ [theta*; d1; d2]`` (no incremental accumulation,
which drifts; the centre row ``[1, 0, 0]`` is ``theta*`` bit for bit), and evaluated in eval mode
with fp32 loss sums on the device. Non-finite losses are kept as ``+inf`` (NaN becomes ``+inf``) and
counted: replacing them with finite values, as the published code did, manufactures plateaus that
persistent homology then reads as structure.

Nodes are numbered row-major (``loss[i, j]`` is at ``alphas[i], betas[j]``) and grouped into chunks of
``chunk_nodes``; chunks are the unit of resume (``chunk_dir``) and of sharding across ranks, and are
evaluated ``points_per_step`` nodes at a time.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn

from persist.errors import ConfigError
from persist.landscape.directions import Directions
from persist.landscape.distributed import broadcast_choice, gather_chunks, resolve_world, shard
from persist.landscape.nodes import (
    METHODS, PRECISIONS, Method, NodeEvaluator, Precision, check_choice, check_positive, choose_method,
    nonfinite_to_inf, tf32_policy,
)
from persist.landscape.parameters import FlatLayout, check_same_device, combine, parameter_layout, preserved_state
from persist.landscape.resume import ChunkStore, tensor_digest

ChunkCallback = Callable[[int, int, int], None]


@dataclass(frozen=True)
class LandscapeGrid:
    """``loss[i, j]`` and ``accuracy[i, j]`` at ``(alphas[i], betas[j])``; ``meta`` says how they were made."""

    alphas: np.ndarray
    betas: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    meta: dict = field(default_factory=dict)

    @property
    def center(self) -> tuple[int, int]:
        """Index of theta* (the node at a = b = 0; exact for odd resolutions)."""
        return int(np.argmin(np.abs(self.alphas))), int(np.argmin(np.abs(self.betas)))


def check_grid_args(resolution: int, span: float, batch_size: int, points_per_step: int, precision: str,
                     method: str, chunk_nodes: int | None) -> None:
    if not isinstance(resolution, int) or resolution < 2:
        raise ConfigError(f"resolution must be an integer >= 2, got {resolution!r}")
    if resolution % 2 == 0:
        warnings.warn(f"resolution={resolution} is even, so theta* (a = b = 0) is not a grid node; use an odd value",
                      stacklevel=3)
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
    """Directions must cover exactly the model's named parameters, with matching shapes."""
    for name, d in (("d1", directions.d1), ("d2", directions.d2)):
        if set(d) != set(layout.names):
            missing = sorted(set(layout.names) ^ set(d))[:3]
            raise ConfigError(f"directions.{name} does not match the model's parameters (e.g. {missing})")
        for key, shape in zip(layout.names, layout.shapes):
            if d[key].shape != shape:
                raise ConfigError(
                    f"directions.{name}['{key}'] has shape {tuple(d[key].shape)}, the model {tuple(shape)}")


def _node_coefficients(alphas: np.ndarray, betas: np.ndarray, device: torch.device, dtype: torch.dtype
                       ) -> torch.Tensor:
    """Row-major ``[1, a, b]`` per node, so node k's parameters are ``coefs[k] @ [theta*; d1; d2]``."""
    a, b = np.meshgrid(alphas, betas, indexing="ij")
    coefs = np.stack([np.ones(a.size), a.reshape(-1), b.reshape(-1)], axis=1)
    return torch.tensor(coefs, dtype=dtype, device=device)


def _resume_config(model: nn.Module, directions: Directions, x: torch.Tensor, y: torch.Tensor, **settings) -> dict:
    """Everything that determines the grid's values, digested so a foreign chunk_dir is detected."""
    state = model.state_dict()
    return {
        **settings,
        "model_digest": tensor_digest(state.values()) + ":" + ",".join(state),
        "data_digest": tensor_digest([x, y]),
        "directions_digest": tensor_digest([*directions.d1.values(), *directions.d2.values()]),
    }


@torch.no_grad()
def evaluate_grid(
    model: nn.Module,
    directions: Directions,
    x: torch.Tensor,
    y: torch.Tensor,
    resolution: int = 51,
    span: float = 1.0,
    batch_size: int = 512,
    points_per_step: int = 8,
    precision: Precision = "fp32",
    progress: bool = False,
    chunk_dir: str | Path | None = None,
    *,
    method: Method = "auto",
    chunk_nodes: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    on_chunk: ChunkCallback | None = None,
) -> LandscapeGrid:
    """Mean cross-entropy and top-1 accuracy at every node of a ``resolution``² grid over [-span, span]².

    ``precision``: ``fp32`` (IEEE, TF32 off), ``tf32``, or ``bf16``/``fp16`` autocast for the forward
    pass; losses are summed in fp32 either way and the choice is recorded. ``method``: ``vmap``
    (``points_per_step`` nodes per forward), ``foreach`` (one node per forward) or ``auto`` (the faster
    on this device and model, timed once on one batch). ``chunk_dir`` makes the run resumable;
    ``chunk_nodes`` (default: one grid row) sets the resume/sharding unit, and ``on_chunk(chunk, done,
    total)`` is called after each finished chunk. Under torchrun each rank evaluates its share of the
    chunks and every rank returns the full grid.
    """
    began = time.perf_counter()
    check_grid_args(resolution, span, batch_size, points_per_step, precision, method, chunk_nodes)
    rank, world_size = resolve_world(rank, world_size)
    device = check_same_device(model, x, y)
    layout = parameter_layout(model)
    dtype = next(model.parameters()).dtype
    check_directions(directions, layout)
    d1, d2 = (layout.flatten(d).to(device, dtype) for d in (directions.d1, directions.d2))
    alphas = betas = grid_axis(resolution, span)
    coefs = _node_coefficients(alphas, betas, device, dtype)
    num_nodes = resolution * resolution
    chunk_nodes = chunk_nodes or resolution
    settings = dict(resolution=resolution, span=float(span), batch_size=batch_size, points_per_step=points_per_step,
                    chunk_nodes=chunk_nodes, precision=precision, num_samples=len(x))
    store = ChunkStore(chunk_dir, _resume_config(model, directions, x, y, **settings)) if chunk_dir else None

    with preserved_state(model), tf32_policy(precision) as tf32:
        basis = torch.stack([layout.flatten(dict(model.named_parameters())), d1, d2])
        evaluator = NodeEvaluator(model, layout, x, y, batch_size, precision)

        def nodes(lo: int, hi: int) -> torch.Tensor:
            return combine(coefs[lo:hi], basis)

        plan = _ChunkPlan(num_nodes, chunk_nodes, points_per_step)
        first_step = plan.steps(0)[0]
        probe_began = time.perf_counter()
        chosen, probe, probed = _resolve_method(method, store, rank, world_size,
                                                lambda: choose_method(evaluator, nodes(*first_step)))
        seconds_probe = time.perf_counter() - probe_began
        known = {first_step: probed} if probed is not None else {}

        def run_step(lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
            return known.pop((lo, hi)) if (lo, hi) in known else evaluator.run(chosen, nodes(lo, hi))

        eval_began = time.perf_counter()
        results, resumed, evaluated = _evaluate_chunks(plan, shard(plan.num_chunks, rank, world_size), run_step,
                                                       len(x), store, on_chunk, progress and rank == 0)
        seconds_eval = time.perf_counter() - eval_began

    results = gather_chunks(results, world_size)
    loss, nonfinite = nonfinite_to_inf(np.concatenate([results[c][0] for c in range(plan.num_chunks)]))
    loss = loss.reshape(resolution, resolution)
    accuracy = np.concatenate([results[c][1] for c in range(plan.num_chunks)]).reshape(resolution, resolution)
    meta = {
        **settings,
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
        "seconds": time.perf_counter() - began,
        "directions": directions.record,
    }
    if store:
        meta["config_hash"] = store.hash
    return LandscapeGrid(alphas, betas, loss, accuracy, meta)


def _resolve_method(method: str, store: ChunkStore | None, rank: int, world_size: int,
                    probe: Callable[[], tuple[str, dict, tuple | None]]) -> tuple[str, dict, tuple | None]:
    """The evaluation method all ranks use: the one a resumed chunk_dir was started with, else the
    requested one, else (``auto``) rank 0's measurement, broadcast once. Recorded in the manifest.
    Also returns the probe's result for the first step when it can stand in for a regular run."""
    stored = store.stored_method() if store else None
    if stored is not None and method not in ("auto", stored):
        raise ConfigError(f"method='{method}' but chunk_dir {store.directory} was started with '{stored}'; "
                          "use that method or a new chunk_dir")
    chosen, evidence, probed = stored or method, {}, None
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
                     ) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], int, int]:
    """Per-chunk (loss, accuracy) on the host, plus how many chunks were resumed and nodes evaluated.

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
            results[chunk] = (torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
            evaluated += hi - lo
            if store:
                results[chunk] = _to_host(*results[chunk], num_samples)
                store.save(chunk, *results[chunk])
        bar.update()
        if on_chunk is not None:
            on_chunk(chunk, done, len(chunks))
    bar.close()
    host = {c: (r if isinstance(r[0], np.ndarray) else _to_host(*r, num_samples)) for c, r in results.items()}
    return host, resumed, evaluated


def _to_host(loss_sum: torch.Tensor, correct: torch.Tensor, n: int) -> tuple[np.ndarray, np.ndarray]:
    return (loss_sum.cpu().numpy().astype(np.float64) / n, correct.cpu().numpy().astype(np.float64) / n)


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="landscape chunks", disable=not enabled)
