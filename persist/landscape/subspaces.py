"""Subspaces that see more than a random plane: Hessian eigenvectors, training-trajectory PCA, mode planes.

Random filter-normalized directions see the mean curvature and rarely a saddle (Boettcher and Wheeler
2022). These families choose the directions from the model or its history instead; each returns a
:class:`~persist.landscape.directions.Directions` that :func:`persist.landscape.evaluate_grid` evaluates
through the same chunked, resumable, sharded path as a random slice.

Scaling. A filter-normalized random direction has the Euclidean norm of the weights it perturbs
(``reference_norm``: ``||theta*||`` over the tensors such a direction perturbs, i.e. without the 1-D
tensors under ``one_d='ignore'``). Hessian eigenvectors and trajectory components are unit vectors; they
are multiplied by that reference norm, so a grid step of 1 moves the weights as far as a step of 1 along
a random slice of the same model and spans are comparable across families. Scaling keeps an eigenvector
an eigenvector (filter-normalizing it would not), and 1-D tensors keep their eigenvector components.
Both norms (unit and scaled) are in the record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn

from persist.errors import ConfigError
from persist.landscape.directions import Directions
from persist.landscape.parameters import FlatLayout, parameter_layout

MODE_MARGIN = 0.25  # the modes plane extends this share of the points' extent beyond them on each side


def reference_norm(model: nn.Module, one_d: str = "ignore") -> float:
    """Euclidean norm of a filter-normalized direction of ``model`` (= the norm of the weights it perturbs)."""
    params = [p.detach().double() for p in model.parameters() if p.dim() > 1 or one_d != "ignore"]
    if not params:
        raise ConfigError("the model has only 1-D parameters: no filter-normalized scale to match")
    return float(torch.sqrt(sum((p.square().sum() for p in params), torch.zeros((), dtype=torch.float64))))


def _to_model(layout: FlatLayout, flat: torch.Tensor, model: nn.Module) -> dict[str, torch.Tensor]:
    like = next(model.parameters())
    return {n: t.to(like.device, like.dtype).clone() for n, t in layout.unflatten(flat).items()}


def hessian_directions(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    k: int = 2,
    *,
    negative: bool = False,
    batch_size: int = 128,
    tol: float = 1e-4,
    maxiter: int = 200,
    seed: int = 0,
    one_d: str = "ignore",
    cache: str | Path | None = None,
) -> Directions:
    """Top-``k`` eigenvectors of the Hessian of the mean cross-entropy over ``(x, y)`` at the model's weights.

    Lanczos (ARPACK, :func:`persist.curvature.extreme_eigenvalues`) on forward-over-reverse HVPs in eval
    mode. ``negative`` replaces the last direction with the eigenvector of the most negative eigenvalue
    (a saddle direction, if there is one). Eigenvalues, residuals ``||Hu - lambda u||`` and convergence are
    recorded. ``cache`` (a ``.npz`` path) stores the eigenpairs, so a resumed run skips the solver.
    """
    from persist.curvature import extreme_eigenvalues, flat_hvp, make_objective, measurement_mode
    from persist.curvature.hvp import flatten

    if not 1 <= k <= 4:
        raise ConfigError(f"hessian directions: k must be 1 to 4, got {k}")
    layout = parameter_layout(model)
    if any(not p.requires_grad for p in model.parameters()):
        raise ConfigError("hessian directions need every parameter trainable (requires_grad=True)")
    cached = _load_eigen(cache, k, negative)
    from_cache = cached is not None
    if cached is None:
        with measurement_mode(model):
            obj = make_objective(model, x, y, batch_size)
            matvec, like = flat_hvp(obj), flatten(obj.params)
            solve: dict[str, Any] = dict(tol=tol, maxiter=maxiter, seed=seed)
            parts = []
            if k - int(negative) > 0:
                parts.append(extreme_eigenvalues(matvec, like, k=k - int(negative), which="LA", **solve))
            if negative:
                parts.append(extreme_eigenvalues(matvec, like, k=1, which="SA", **solve))
        cached = {"values": np.concatenate([p.values for p in parts]),
                  "residuals": np.concatenate([p.residuals for p in parts]),
                  "converged": np.concatenate([p.converged for p in parts]),
                  "vectors": np.concatenate([p.vectors for p in parts], axis=1),
                  "matvecs": np.array(sum(p.matvecs for p in parts)), "num_samples": np.array(len(x))}
        if not np.isfinite(cached["values"]).all():
            raise ConfigError("Lanczos found no Hessian eigenpair (ARPACK failed twice); raise curvature.subset "
                              "or landscape.hessian_tol")
        _save_eigen(cache, cached, k, negative)
    scale = reference_norm(model, one_d)
    units = torch.from_numpy(cached["vectors"].T.copy())  # (k, P) float64, unit norm
    units = units / units.norm(dim=1, keepdim=True)
    vectors = tuple(_to_model(layout, scale * u, model) for u in units)
    record = {
        "family": "hessian",
        "eigenvalues": cached["values"].tolist(),
        "residuals": cached["residuals"].tolist(),
        "converged": [bool(c) for c in cached["converged"]],
        "which": ["LA"] * (k - int(negative)) + (["SA"] if negative else []),
        "matvecs": int(cached["matvecs"]),
        "num_samples": int(cached["num_samples"]),
        "tol": tol,
        "num_parameters": layout.size,
        "norm_unit": 1.0,
        "norm_scaled": scale,
        "norm_theta": float(torch.sqrt(sum((p.detach().double().square().sum() for p in model.parameters()),
                                           torch.zeros((), dtype=torch.float64)))),
        "scaling": "unit eigenvector x reference_norm (the norm of a filter-normalized direction of this model, "
                   f"one_d={one_d}); a grid step of 1 moves the weights as far as one along a random slice",
        "from_cache": from_cache,
    }
    return Directions(vectors, record)


def _load_eigen(cache: str | Path | None, k: int, negative: bool) -> dict | None:
    if cache is None or not Path(cache).is_file():
        return None
    with np.load(cache) as data:
        found = {key: data[key] for key in data.files}
    if found["vectors"].shape[1] != k or bool(found["negative"]) != negative:
        return None
    return found


def _save_eigen(cache: str | Path | None, found: dict, k: int, negative: bool) -> None:
    if cache is None:
        return
    from persist.landscape.resume import atomic_write

    Path(cache).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(cache), lambda fh: np.savez(fh, negative=np.array(negative), **found))


def trajectory_pca(snapshots: torch.Tensor, center: torch.Tensor, k: int) -> tuple[torch.Tensor, np.ndarray,
                                                                                      np.ndarray]:
    """Principal components of ``snapshots - center`` (rows are flat parameter vectors), float64.

    Returns ``(components (k, P) unit rows, explained variance ratios (k,), path coordinates (N, k))``.
    The Gram matrix ``M M^T`` (N x N) is decomposed instead of ``M`` itself, so the cost is ``O(N^2 P)``
    and memory ``O(NP)``: exact, and cheap for the tens of snapshots a training run keeps. Signs are
    fixed so each component's largest-magnitude entry is positive (deterministic across solvers).
    Variance is about ``center`` (theta*), as in Li et al. (2018) section 7, not about the mean.
    """
    m = snapshots.double() - center.double()
    if m.dim() != 2 or len(m) < k:
        raise ConfigError(f"trajectory directions need at least {k} snapshots (train.snapshots), got {len(m)}")
    values, vectors = torch.linalg.eigh(m @ m.T)
    order = torch.argsort(values, descending=True)
    values, vectors = values[order].clamp_min(0), vectors[:, order]
    if not values[k - 1] > 1e-12 * max(float(values[0]), 1e-300):  # below: rounding noise, not a direction
        raise ConfigError(f"the trajectory spans fewer than {k} dimensions; lower landscape.dims")
    components = (m.T @ vectors[:, :k]) / values[:k].sqrt()  # (P, k)
    components = components / components.norm(dim=0, keepdim=True)
    signs = torch.sign(components.gather(0, components.abs().argmax(0, keepdim=True)))
    components = components * signs
    explained = (values[:k] / values.sum()).numpy()
    return components.T.contiguous(), explained, (m @ components).numpy()


def trajectory_directions(model: nn.Module, snapshots: Sequence[Mapping[str, torch.Tensor]], k: int = 2, *,
                          one_d: str = "ignore") -> Directions:
    """PCA directions of the training path (parameter snapshots) around the model's weights theta*.

    The record holds the explained variance ratios and the path's coordinates in grid units, so the
    path can be drawn on the slice.
    """
    if not 1 <= k <= 4:
        raise ConfigError(f"trajectory directions: k must be 1 to 4, got {k}")
    layout = parameter_layout(model)
    for i, s in enumerate(snapshots):
        missing = [n for n in layout.names if n not in s]
        if missing:
            raise ConfigError(f"snapshot {i} lacks parameter '{missing[0]}' of the model")
    stacked = torch.stack([layout.flatten(s).double().cpu() for s in snapshots])
    center = layout.flatten(dict(model.named_parameters())).double().cpu()
    components, explained, path = trajectory_pca(stacked, center, k)
    scale = reference_norm(model, one_d)
    vectors = tuple(_to_model(layout, scale * c, model) for c in components)
    record = {
        "family": "trajectory",
        "num_snapshots": len(snapshots),
        "explained_variance_ratio": explained.tolist(),
        "explained_variance_total": float(explained.sum()),
        "path": (path / scale).tolist(),
        "centered_on": "theta* (the model's weights), Li et al. 2018 section 7",
        "norm_unit": 1.0,
        "norm_scaled": scale,
        "scaling": f"unit principal component x reference_norm (one_d={one_d})",
    }
    return Directions(vectors, record)


def _snap(axis: np.ndarray, required: Sequence[float]) -> np.ndarray:
    """``axis`` with its nearest node moved onto each required coordinate.

    When two required coordinates would share a node (a point much closer to A than the plane is wide:
    a short forgetting path beside a distant other seed), :func:`_anchored_axis` gives each its own
    node instead.
    """
    axis = axis.copy()
    used: dict[int, float] = {}
    for value in required:
        i = int(np.argmin(np.abs(axis - value)))
        if i in used and abs(used[i] - value) > 1e-12:
            return _anchored_axis(axis, required)
        axis[i], used[i] = value, value
    if np.any(np.diff(axis) <= 0):
        return _anchored_axis(axis, required)
    return axis


def _anchored_axis(axis: np.ndarray, required: Sequence[float]) -> np.ndarray:
    """A strictly increasing axis with the same ends whose nodes include every required coordinate.

    Each value takes its nearest node, pushed to the next free one on a collision; nodes between
    anchors are spaced linearly, so the axis is uniform in pieces. Sublevel-set persistence depends
    only on node adjacency, so the uneven spacing changes the picture's scale, not the diagram.
    """
    values = sorted(set(required))
    n = len(axis)
    if len(values) > n - 2:
        raise ConfigError("landscape.resolution is too small to give each mode its own grid node; raise it")
    index = [int(np.argmin(np.abs(axis - v))) for v in values]
    for k in range(len(index)):  # forward: strictly increasing, inside the ends
        index[k] = max(index[k], index[k - 1] + 1 if k else 1)
    for k in reversed(range(len(index))):  # backward: leave room for the later values and the last node
        index[k] = min(index[k], index[k + 1] - 1 if k + 1 < len(index) else n - 2)
    anchors = [0, *index, n - 1]
    levels = [min(axis[0], values[0] - 1e-9), *values, max(axis[-1], values[-1] + 1e-9)]
    return np.interp(np.arange(n), anchors, levels)


def mode_directions(model: nn.Module, state_b: Mapping[str, torch.Tensor], state_c: Mapping[str, torch.Tensor],
                    resolution: int, *, margin: float = MODE_MARGIN) -> Directions:
    """The plane through theta_A (the model), theta_B and theta_C with each of the three as a grid node.

    Gram-Schmidt (Garipov et al. 2018): ``d1 = theta_B - theta_A``; ``d2`` is the part of ``theta_C -
    theta_A`` orthogonal to d1, rescaled to ``||d1||`` so both axes share one unit. Then A = (0, 0),
    B = (1, 0) and C = (c1, c2) exactly, and each axis is a uniform grid over the points' extent plus
    ``margin`` of it on each side, with the nearest nodes moved onto the points' coordinates. Floating
    buffers (BatchNorm statistics) follow the same affine combination, so each point's node has that
    model's own buffers and its loss is that model's own loss.
    """
    layout = parameter_layout(model)
    for name, state in (("B", state_b), ("C", state_c)):
        for key, shape in zip(layout.names, layout.shapes, strict=True):
            if key not in state or tuple(state[key].shape) != tuple(shape):
                raise ConfigError(f"mode {name} does not match the model's parameter '{key}' (another architecture?)")
    flat = [layout.flatten(s).double().cpu() for s in (dict(model.named_parameters()), state_b, state_c)]
    d1, dc = flat[1] - flat[0], flat[2] - flat[0]
    n1 = float(d1.norm())
    if n1 == 0:
        raise ConfigError("modes A and B are the same parameter vector; choose three different runs")
    c1 = float(dc @ d1) / n1**2
    w = dc - c1 * d1
    c2 = float(w.norm()) / n1
    if c2 < 1e-9:
        raise ConfigError("the three modes are collinear; they span no plane")
    d2 = w / c2  # norm n1, so C = A + c1 d1 + c2 d2
    extent_a = max(1.0, c1) - min(0.0, c1)
    axis_a = np.linspace(min(0.0, c1) - margin * extent_a, max(1.0, c1) + margin * extent_a, resolution)
    axis_b = np.linspace(-margin * c2, (1 + margin) * c2, resolution)
    axes = (_snap(axis_a, [0.0, 1.0, c1]), _snap(axis_b, [0.0, c2]))
    buffers = _mode_buffers(model, state_b, state_c, c1, c2)
    record = {
        "family": "modes",
        "coordinates": {"A": [0.0, 0.0], "B": [1.0, 0.0], "C": [c1, c2]},
        "nodes": {"A": [int(np.argmin(np.abs(axes[0]))), int(np.argmin(np.abs(axes[1])))],
                  "B": [int(np.argmin(np.abs(axes[0] - 1.0))), int(np.argmin(np.abs(axes[1])))],
                  "C": [int(np.argmin(np.abs(axes[0] - c1))), int(np.argmin(np.abs(axes[1] - c2)))]},
        "distance_AB": n1,
        "distance_AC": float(dc.norm()),
        "distance_BC": float((flat[2] - flat[1]).norm()),
        "margin": margin,
        "buffers": "floating buffers combined with the same coefficients" if buffers else "none",
        "construction": "Gram-Schmidt, Garipov et al. 2018; d2 rescaled to ||d1||",
    }
    return Directions((_to_model(layout, d1, model), _to_model(layout, d2, model)), record, axes, buffers)


def _mode_buffers(model: nn.Module, state_b: Mapping[str, torch.Tensor], state_c: Mapping[str, torch.Tensor],
                  c1: float, c2: float) -> tuple[dict[str, torch.Tensor], ...] | None:
    """Buffer displacements e1, e2 with A + c1 e1 + c2 e2 = C's buffers (fixed integer buffers excluded)."""
    names = [n for n, b in model.named_buffers() if b.is_floating_point() and n in state_b and n in state_c]
    if not names:
        return None
    own = dict(model.named_buffers())
    e1 = {n: (state_b[n].to(own[n]).double() - own[n].double()) for n in names}
    e2 = {n: (state_c[n].to(own[n]).double() - own[n].double() - c1 * e1[n]) / c2 for n in names}
    return tuple({n: t.to(own[n].dtype) for n, t in e.items()} for e in (e1, e2))
