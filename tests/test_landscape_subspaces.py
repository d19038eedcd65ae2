"""Direction families (Hessian eigenvectors, trajectory PCA, mode planes) and n-dimensional grids."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from persist.errors import ConfigError
from persist.landscape import evaluate_grid, evaluate_grid_reference, random_directions
from persist.landscape.subspaces import (
    hessian_directions,
    mode_directions,
    reference_norm,
    trajectory_directions,
    trajectory_pca,
)


def _net(seed: int, bn: bool = False, dtype=torch.float64) -> nn.Module:
    torch.manual_seed(seed)
    layers = [nn.Linear(6, 7)] + ([nn.BatchNorm1d(7)] if bn else []) + [nn.Tanh(), nn.Linear(7, 3)]
    return nn.Sequential(*layers).to(dtype).eval()


def _data(dtype=torch.float64, n: int = 48):
    g = torch.Generator().manual_seed(3)
    return torch.randn(n, 6, generator=g).to(dtype), torch.randint(0, 3, (n,), generator=g)


def _flat(d: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in d.values()])


def _loss_at(model: nn.Module, flat: torch.Tensor, x, y) -> torch.Tensor:
    from torch.func import functional_call

    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    views = (c.view(s) for c, s in zip(flat.split([s.numel() for s in shapes]), shapes, strict=True))
    parts = dict(zip(names, views, strict=True))
    return F.cross_entropy(functional_call(model, parts, (x,)), y)


def _dense_hessian(model, x, y) -> tuple[torch.Tensor, torch.Tensor]:
    theta = _flat(dict(model.named_parameters())).detach()
    return theta, torch.autograd.functional.hessian(lambda t: _loss_at(model, t, x, y), theta)


# ---------------------------------------------------------------- hessian


def test_hessian_directions_are_eigenvectors_and_match_the_curvature_of_the_loss():
    model, (x, y) = _net(0), _data()
    dirs = hessian_directions(model, x, y, k=3, negative=True, batch_size=16, tol=1e-8)
    theta, hessian = _dense_hessian(model, x, y)  # the oracle: autograd's dense Hessian
    exact = torch.linalg.eigvalsh(hessian)
    record = dirs.record
    assert record["which"] == ["LA", "LA", "SA"] and all(record["converged"])
    np.testing.assert_allclose(record["eigenvalues"], [exact[-1], exact[-2], exact[0]], rtol=1e-6)
    assert record["norm_scaled"] == pytest.approx(reference_norm(model))
    for vector, lam in zip(dirs.vectors, record["eigenvalues"], strict=True):
        v = _flat(vector)
        assert float(v.norm()) == pytest.approx(record["norm_scaled"], rel=1e-12)  # the documented scaling
        u = v / v.norm()
        assert float((hessian @ u - lam * u).norm()) <= 1e-3 * abs(lam)
        h = 1e-3  # central second difference of the loss along the unit eigenvector
        second = (_loss_at(model, theta + h * u, x, y) - 2 * _loss_at(model, theta, x, y)
                  + _loss_at(model, theta - h * u, x, y)) / h**2
        assert float(second) == pytest.approx(lam, rel=0.02)


def test_hessian_eigenpairs_are_cached_for_a_resumed_run(tmp_path):
    model, (x, y) = _net(0), _data()
    first = hessian_directions(model, x, y, k=2, batch_size=16, tol=1e-8, cache=tmp_path / "h.npz")
    again = hessian_directions(model, x, y, k=2, batch_size=16, tol=1e-8, cache=tmp_path / "h.npz")
    assert not first.record["from_cache"] and again.record["from_cache"]
    assert all(torch.equal(_flat(a), _flat(b)) for a, b in zip(first.vectors, again.vectors, strict=True))


# ---------------------------------------------------------------- trajectory


def test_trajectory_pca_recovers_a_planted_plane():
    g = torch.Generator().manual_seed(0)
    basis, _ = torch.linalg.qr(torch.randn(300, 2, generator=g, dtype=torch.float64))
    t = torch.arange(12, dtype=torch.float64) * (2 * np.pi / 12)
    coords = torch.stack([3 * torch.cos(t), torch.sin(t)], dim=1)  # variances 9:1 about the centre
    center = torch.randn(300, generator=g, dtype=torch.float64)
    components, explained, path = trajectory_pca(center + coords @ basis.T, center, 2)
    assert abs(float(components[0] @ basis[:, 0])) == pytest.approx(1.0, abs=1e-12)
    assert abs(float(components[1] @ basis[:, 1])) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(explained, [0.9, 0.1], atol=1e-12)
    np.testing.assert_allclose(np.abs(path), np.abs(coords.numpy()), atol=1e-10)
    with pytest.raises(ConfigError, match="fewer than 3"):
        trajectory_pca(center + coords @ basis.T, center, 3)


def test_trajectory_directions_scale_and_path_in_grid_units():
    model = _net(1)
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    g = torch.Generator().manual_seed(5)
    u = {n: torch.randn(p.shape, generator=g, dtype=p.dtype) for n, p in theta.items()}
    snapshots = [{n: theta[n] + s * u[n] for n in theta} for s in (2.0, 1.0, 0.5)]
    dirs = trajectory_directions(model, snapshots, k=1)
    scale = reference_norm(model)
    assert float(_flat(dirs.vectors[0]).norm()) == pytest.approx(scale)
    assert dirs.record["explained_variance_ratio"] == pytest.approx([1.0])
    norm_u = float(_flat(u).norm())
    np.testing.assert_allclose(np.abs(dirs.record["path"]), [[2 * norm_u / scale], [norm_u / scale],
                                                             [0.5 * norm_u / scale]], rtol=1e-10)


# ---------------------------------------------------------------- modes


@pytest.mark.parametrize("bn", [False, True])
def test_mode_plane_has_each_model_on_a_node_with_its_own_loss(bn):
    models = [_net(seed, bn=bn, dtype=torch.float32) for seed in (0, 1, 2)]
    x, y = _data(torch.float32, 40)
    if bn:  # distinct running statistics per model
        for i, m in enumerate(models):
            m.train()
            m(x + i)
            m.eval()
    dirs = mode_directions(models[0], models[1].state_dict(), models[2].state_dict(), resolution=9)
    grid = evaluate_grid(models[0], dirs, x, y, resolution=9, batch_size=64, method="foreach")
    for name, model in zip("ABC", models, strict=True):
        i, j = dirs.record["nodes"][name]
        assert [grid.axes[0][i], grid.axes[1][j]] == dirs.record["coordinates"][name]
        with torch.no_grad():
            own = float(F.cross_entropy(model(x).double(), y))
        assert abs(grid.loss[i, j] - own) <= 1e-6
    assert grid.center == tuple(dirs.record["nodes"]["A"])


def test_a_short_forgetting_path_beside_a_distant_seed_still_gets_its_own_nodes():
    """theta_B 1/20 of the way to theta_C along d1: a uniform 9-node axis would put A and B on one node."""
    a, b = _net(0), _net(1)
    x, y = _data()
    state_a, state_b = a.state_dict(), b.state_dict()
    tilt = _net(2).state_dict()
    far = {n: state_a[n] + 20 * (state_b[n] - state_a[n]) + 0.5 * (tilt[n] - state_a[n]) for n in state_a}
    dirs = mode_directions(a, state_b, far, resolution=9)
    grid = evaluate_grid(a, dirs, x, y, resolution=9, batch_size=64, method="foreach")
    assert all(np.all(np.diff(axis) > 0) for axis in grid.axes) and grid.axes[0][[0, -1]].tolist() == pytest.approx(
        [-0.25 * dirs.record["coordinates"]["C"][0], 1.25 * dirs.record["coordinates"]["C"][0]])
    nodes = [tuple(dirs.record["nodes"][name]) for name in "ABC"]
    assert len(set(nodes)) == 3
    for name, state in zip("ABC", (state_a, state_b, far), strict=True):
        i, j = dirs.record["nodes"][name]
        assert [grid.axes[0][i], grid.axes[1][j]] == pytest.approx(dirs.record["coordinates"][name], abs=1e-12)
        own = _loss_at(a, _flat({n: state[n] for n, _ in a.named_parameters()}), x, y)
        assert grid.loss[i, j] == pytest.approx(float(own), rel=1e-6)  # the grid sums losses in float32


def test_mode_plane_refuses_collinear_or_mismatched_models():
    a, b = _net(0), _net(1)
    mid = {n: (p + q) / 2 for (n, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True)}
    with pytest.raises(ConfigError, match="collinear"):
        mode_directions(a, b.state_dict(), mid, resolution=9)
    other = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3)).double()
    with pytest.raises(ConfigError, match="does not match"):
        mode_directions(a, b.state_dict(), other.state_dict(), resolution=9)


# ---------------------------------------------------------------- n-D grids


@pytest.mark.parametrize("dims, resolution", [(1, 7), (3, 3), (4, 3)])
def test_nd_grid_matches_the_per_node_reference(dims, resolution):
    model, (x, y) = _net(0, dtype=torch.float32), _data(torch.float32)
    dirs = random_directions(model, tuple(range(1, dims + 1)))
    fast = evaluate_grid(model, dirs, x, y, resolution=resolution, span=0.5, batch_size=16, points_per_step=4,
                         method="vmap", per_example=True)
    slow = evaluate_grid_reference(model, dirs, x, y, resolution=resolution, span=0.5, batch_size=16)
    assert fast.loss.shape == (resolution,) * dims and fast.per_example.shape == (resolution,) * dims + (len(x),)
    np.testing.assert_allclose(fast.loss, slow.loss, rtol=1e-5)
    np.testing.assert_array_equal(fast.accuracy, slow.accuracy)
    np.testing.assert_allclose(fast.per_example.mean(-1), fast.loss, rtol=1e-5)
    with torch.no_grad():
        centre = float(F.cross_entropy(model(x), y))
    assert fast.loss[fast.center] == pytest.approx(centre, rel=1e-6)


class _Interrupt(Exception):
    pass


def test_nd_resume_is_bitwise_identical_with_per_example_losses(tmp_path):
    model, (x, y) = _net(0, dtype=torch.float32), _data(torch.float32)
    dirs = random_directions(model, (1, 2, 3))
    kwargs = dict(resolution=5, span=0.5, batch_size=16, points_per_step=4, method="vmap", per_example=True)
    full = evaluate_grid(model, dirs, x, y, **kwargs)

    def stop(chunk: int, done: int, total: int) -> None:
        if done == 7:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        evaluate_grid(model, dirs, x, y, chunk_dir=tmp_path, on_chunk=stop, **kwargs)
    resumed = evaluate_grid(model, dirs, x, y, chunk_dir=tmp_path, **kwargs)
    assert resumed.meta["chunks_resumed"] == 7 and resumed.meta["num_chunks"] == 25
    assert np.array_equal(resumed.loss, full.loss) and np.array_equal(resumed.per_example, full.per_example)


def test_grid_records_throughput_against_the_forward_only_limit():
    model, (x, y) = _net(0, dtype=torch.float32), _data(torch.float32)
    grid = evaluate_grid(model, random_directions(model, (1, 2)), x, y, resolution=3, measure_limit=True)
    meta = grid.meta
    assert meta["nodes_per_second"] > 0 and meta["forward_nodes_per_second"] > 0
    assert meta["limit_ratio"] == pytest.approx(meta["nodes_per_second"] / meta["forward_nodes_per_second"])


def test_plane_through_theta_star_of_a_3d_grid():
    model, (x, y) = _net(0, dtype=torch.float32), _data(torch.float32)
    grid = evaluate_grid(model, random_directions(model, (1, 2, 3)), x, y, resolution=3, method="foreach")
    assert np.array_equal(grid.plane(0, 2), grid.loss[:, 1, :])
    with pytest.raises(ConfigError):
        grid.plane(1, 1)


def test_too_many_directions_are_refused():
    model = _net(0, dtype=torch.float32)
    with pytest.raises(ConfigError, match="1 to 4"):
        random_directions(model, (1, 2, 3, 4, 5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        random_directions(model, (7,))  # one direction is a valid (1-D) slice


# ---------------------------------------------------------------- training snapshots


def test_snapshot_epochs_span_the_initial_weights_to_the_last_epoch():
    from persist.training.loop import snapshot_epochs

    assert snapshot_epochs(15, 0) == []
    assert snapshot_epochs(15, 1) == [14]
    assert snapshot_epochs(15, 4) == [-1, 4, 9, 14]
    assert snapshot_epochs(2, 8) == [-1, 0, 1]  # never more than there are epochs


def test_training_keeps_snapshots_across_a_resume(tmp_path):
    from persist.config import TrainConfig
    from persist.data import load_task
    from persist.models import create_model
    from persist.training import BaseHook, train

    cfg = TrainConfig(epochs=3, batch_size=64, lr=0.05, warmup_epochs=1, snapshots=3)
    task = load_task("digits", "A", seed=0)

    def fresh():
        torch.manual_seed(0)
        return create_model("mlp", task.num_classes, task.in_channels, task.image_size, width=0.125)

    class Crash(BaseHook):
        def on_epoch_end(self, epoch, model, metrics):
            if epoch == 0:
                raise KeyboardInterrupt

    model = fresh()
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    reference = train(cfg, model, task, seed=0)
    assert reference.snapshot_epochs == [-1, 0, 2]
    assert all(torch.equal(initial[n], reference.snapshots[0][n]) for n in initial)
    assert all(torch.equal(p.detach(), reference.snapshots[-1][n]) for n, p in model.named_parameters())
    with pytest.raises(KeyboardInterrupt):
        train(cfg, fresh(), task, seed=0, checkpoint_path=tmp_path / "s.pt", hooks=[Crash()])
    resumed = train(cfg, fresh(), task, seed=0, checkpoint_path=tmp_path / "s.pt")
    assert resumed.snapshot_epochs == reference.snapshot_epochs
    for a, b in zip(resumed.snapshots, reference.snapshots, strict=True):
        assert all(torch.equal(a[n], b[n]) for n in a)
