"""Landscape library: directions, grids (fast vs reference), resume, paths, figures."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn as nn

from persist.errors import ConfigError
from persist.landscape import (
    Directions,
    evaluate_grid,
    evaluate_grid_reference,
    evaluate_path,
    load_grid,
    random_direction,
    random_directions,
    save_grid,
)
from persist.models import create_model
from persist.training.evaluation import evaluate


def _bn_stats(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN running statistics, so eval mode really differs from train mode."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.num_batches_tracked.fill_(7)
    return model


@pytest.fixture
def cnn() -> nn.Module:
    torch.manual_seed(0)
    return _bn_stats(create_model("cnn", num_classes=3, in_channels=1, image_size=8, width=0.125))


@pytest.fixture
def mlp() -> nn.Module:
    torch.manual_seed(0)
    return create_model("mlp", num_classes=3, in_channels=1, image_size=8, width=0.125)


@pytest.fixture
def data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(40, 1, 8, 8, generator=g), torch.randint(0, 3, (40,), generator=g)


def _flat(d: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in d.values()])


# ---------------------------------------------------------------- directions


def test_filter_normalization_gives_each_filter_its_weights_norm(cnn):
    d = random_directions(cnn, (1, 2)).d1
    for name, p in cnn.named_parameters():
        if p.dim() > 1:
            dn = d[name].flatten(1).norm(dim=1)
            pn = p.detach().flatten(1).norm(dim=1)
            torch.testing.assert_close(dn, pn, rtol=1e-6, atol=0)


def test_filter_normalization_scales_exactly_with_a_rescaled_filter(cnn, data):
    x, y = data
    before = random_directions(cnn, (1, 2))
    scaled = create_model("cnn", num_classes=3, in_channels=1, image_size=8, width=0.125)
    scaled.load_state_dict(cnn.state_dict())
    with torch.no_grad():  # filter 2 times 2; its BN statistics follow, so the network computes the same function
        scaled.features[0][0].weight[2] *= 2
        scaled.features[0][1].running_mean[2] *= 2
        scaled.features[0][1].running_var[2] *= 4
    for m in (cnn, scaled):
        m.features[0][1].eps = 0.0
    after = random_directions(scaled, (1, 2))
    name = "features.0.0.weight"
    for d_before, d_after in ((before.d1, after.d1), (before.d2, after.d2)):
        assert torch.equal(d_after[name][2], 2 * d_before[name][2])
        assert torch.equal(d_after[name][[0, 1, 3]], d_before[name][[0, 1, 3]])
        assert all(torch.equal(d_after[n], d_before[n]) for n in d_before if n != name)
    # so theta* + a*d1 + b*d2 is the same function of (a, b) for both parameterizations
    g1 = evaluate_grid(cnn, before, x, y, resolution=3, span=0.5, method="foreach")
    g2 = evaluate_grid(scaled, after, x, y, resolution=3, span=0.5, method="foreach")
    np.testing.assert_allclose(g2.loss, g1.loss, rtol=1e-5)


def test_layer_weight_and_none_normalizations(mlp):
    names = [n for n, _ in mlp.named_parameters()]
    g = torch.Generator().manual_seed(5)
    raw = torch.randn(sum(p.numel() for p in mlp.parameters()), generator=g, dtype=torch.float64)
    none = random_direction(mlp, 5, normalization="none", one_d="filter")
    torch.testing.assert_close(_flat(none), raw.float(), rtol=0, atol=0)
    layer = random_direction(mlp, 5, normalization="layer", one_d="filter")
    weight = random_direction(mlp, 5, normalization="weight", one_d="filter")
    for name, p in mlp.named_parameters():
        torch.testing.assert_close(layer[name].norm(), p.detach().norm(), rtol=1e-6, atol=0)
        torch.testing.assert_close(weight[name], none[name] * p.detach().abs(), rtol=1e-6, atol=0)
    assert names == list(layer)


def test_one_d_policy_zeroes_biases_and_norm_parameters_or_scales_them(cnn):
    ignore = random_directions(cnn, (1, 2), one_d="ignore")
    perturb = random_directions(cnn, (1, 2), one_d="filter")
    one_d = [n for n, p in cnn.named_parameters() if p.dim() <= 1]
    assert set(one_d) == {"features.0.1.weight", "features.0.1.bias", "features.2.1.weight", "features.2.1.bias",
                          "features.4.1.weight", "features.4.1.bias", "fc.bias"}
    params = dict(cnn.named_parameters())
    for n in one_d:
        assert not ignore.d1[n].any() and not ignore.d2[n].any()
        torch.testing.assert_close(perturb.d1[n].norm(), params[n].detach().norm(), rtol=1e-6, atol=0)
    assert ignore.record["zeroed_tensors"] == one_d
    assert ignore.record["zeroed_elements"] == sum(params[n].numel() for n in one_d) == 4 + 4 + 8 + 8 + 16 + 16 + 3
    assert perturb.record["zeroed_elements"] == 0
    # multi-dimensional tensors are drawn identically under both policies
    assert torch.equal(ignore.d1["fc.weight"], perturb.d1["fc.weight"])


def test_orthogonalization_makes_directions_perpendicular(cnn):
    plain = random_directions(cnn, (3, 4))
    ortho = random_directions(cnn, (3, 4), orthogonalize=True)
    d1, d2 = _flat(ortho.d1).double(), _flat(ortho.d2).double()
    assert abs(float(d1 @ d2)) / float(d1.norm() * d2.norm()) < 1e-6
    assert abs(plain.record["cosine"]) > 1e-3  # without it the random pair is measurably oblique
    assert abs(ortho.record["cosine"]) < 1e-12 and ortho.record["cosine_drawn"] == plain.record["cosine"]
    assert torch.equal(_flat(ortho.d1), _flat(plain.d1))


def test_directions_are_seeded_and_independent_of_global_rng_and_device(cnn):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = random_directions(cnn, (10, 11))
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is neither used nor advanced
    torch.manual_seed(999)
    second = random_directions(cnn, (10, 11))
    assert torch.equal(_flat(first.d1), _flat(second.d1)) and torch.equal(_flat(first.d2), _flat(second.d2))
    other = random_directions(cnn, (10, 12))
    assert torch.equal(_flat(other.d1), _flat(first.d1)) and not torch.equal(_flat(other.d2), _flat(first.d2))
    # drawn and normalized on CPU in float64: the model's dtype/device changes only the final rounding
    double = create_model("cnn", num_classes=3, in_channels=1, image_size=8, width=0.125).double()
    double.load_state_dict(cnn.state_dict())
    in64 = random_directions(double, (10, 11))
    assert in64.d1["fc.weight"].dtype == torch.float64
    assert torch.equal(_flat(in64.d1).float(), _flat(first.d1))
    assert first.record["seeds"] == [10, 11] and first.record["normalization"] == "filter"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_directions_identical_on_cuda(cnn):
    cpu = random_directions(cnn, (10, 11))
    gpu = random_directions(cnn.cuda(), (10, 11))
    assert torch.equal(_flat(gpu.d1).cpu(), _flat(cpu.d1)) and torch.equal(_flat(gpu.d2).cpu(), _flat(cpu.d2))


def test_direction_arguments_are_checked(mlp):
    with pytest.raises(ConfigError, match="normalization"):
        random_directions(mlp, (1, 2), normalization="filtre")
    with pytest.raises(ConfigError, match="one_d"):
        random_directions(mlp, (1, 2), one_d="zero")
    with pytest.raises(ConfigError, match="seeds"):
        random_directions(mlp, (1, 1))


# ---------------------------------------------------------------- grids


def test_center_node_equals_the_models_own_evaluation(cnn, data):
    x, y = data
    expected = evaluate(cnn, x, y, batch_size=16)
    dirs = random_directions(cnn, (1, 2))
    for method in ("vmap", "foreach"):
        grid = evaluate_grid(cnn, dirs, x, y, resolution=5, batch_size=16, points_per_step=4, method=method)
        i, j = grid.center
        assert (i, j) == (2, 2) and grid.alphas[i] == 0.0 and grid.betas[j] == 0.0
        assert grid.loss[i, j] == pytest.approx(expected["loss"], rel=1e-6)
        assert grid.accuracy[i, j] == expected["accuracy"]
        assert grid.loss.dtype == np.float64 and grid.loss.shape == (5, 5)
        np.testing.assert_allclose(grid.alphas, np.linspace(-1, 1, 5), rtol=0, atol=1e-15)
        assert np.array_equal(grid.alphas, -grid.alphas[::-1]) and np.array_equal(grid.betas, grid.alphas)


@pytest.mark.parametrize("method", ["vmap", "foreach", "auto"])
def test_fast_paths_match_the_per_node_reference(cnn, data, method, monkeypatch):
    x, y = data
    dirs0 = random_directions(cnn, (1, 2), one_d="filter")
    monkeypatch.setattr("persist.landscape.nodes.PROBE_ON_CPU", False)  # the rule, when probing is switched off
    by_rule = evaluate_grid(cnn, dirs0, x, y, resolution=3, batch_size=16, points_per_step=3, method="auto")
    assert by_rule.meta["method"] == "foreach" and by_rule.meta["auto"] == {"rule": "cpu"}
    monkeypatch.setattr("persist.landscape.nodes.PROBE_ON_CPU", True)  # the default: measured on CPU too
    dirs = random_directions(cnn, (1, 2), one_d="filter")
    reference = evaluate_grid_reference(cnn, dirs, x, y, resolution=5, span=0.8, batch_size=16)
    fast = evaluate_grid(cnn, dirs, x, y, resolution=5, span=0.8, batch_size=16, points_per_step=3, method=method)
    np.testing.assert_allclose(fast.loss, reference.loss, rtol=1e-5)
    assert np.abs(fast.accuracy - reference.accuracy).max() <= 1 / len(x)
    assert fast.meta["method"] in ("vmap", "foreach") and reference.meta["method"] == "reference"
    assert np.ptp(reference.loss) > 0.05  # the slice is not flat, so the comparison means something
    if method == "auto":
        auto = fast.meta["auto"]
        assert auto["rule"] == "measured" and fast.meta["method"] == min(
            ("vmap", "foreach"), key=lambda m: auto[f"{m}_seconds_per_node"])
        for batch_size in (16, 64):  # the probe's result stands in for the first step when data is one batch
            kwargs = dict(resolution=5, span=0.8, batch_size=batch_size, points_per_step=3)
            auto_grid = evaluate_grid(cnn, dirs, x, y, method="auto", **kwargs)
            forced = evaluate_grid(cnn, dirs, x, y, method=auto_grid.meta["method"], **kwargs)
            assert np.array_equal(auto_grid.loss, forced.loss)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_hot_path_never_syncs_with_the_host(cnn, data):
    from persist.landscape.nodes import NodeEvaluator
    from persist.landscape.parameters import parameter_layout

    x, y = (t.cuda() for t in data)
    model = cnn.cuda().eval()
    layout = parameter_layout(model)
    evaluator = NodeEvaluator(model, layout, x, y, batch_size=8)
    nodes = layout.flatten(dict(model.named_parameters())).repeat(3, 1)
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.no_grad():
            for method in ("vmap", "foreach"):
                evaluator.run(method, nodes)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_grid_restores_state_dict_and_training_flag(cnn, data):
    x, y = data
    cnn.train()
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    dirs = random_directions(cnn, (1, 2), one_d="filter")
    evaluate_grid(cnn, dirs, x, y, resolution=3, method="foreach")
    evaluate_grid(cnn, dirs, x, y, resolution=3, method="vmap")
    evaluate_grid_reference(cnn, dirs, x, y, resolution=3)
    evaluate_path(cnn, before, {k: v * 1.5 if v.is_floating_point() else v for k, v in before.items()}, x, y,
                  num_points=3, method="foreach")
    after = cnn.state_dict()
    assert cnn.training
    assert set(after) == set(before)
    assert all(torch.equal(after[k], before[k]) for k in before)
    assert int(after["features.0.1.num_batches_tracked"]) == 7


def test_grid_is_evaluated_in_eval_mode(cnn, data):
    """Train-mode BN (the published code's mode) would give a different centre loss."""
    import copy

    x, y = data
    with torch.no_grad():
        train_mode = nn.functional.cross_entropy(copy.deepcopy(cnn).train()(x), y).item()
    cnn.train()
    grid = evaluate_grid(cnn, random_directions(cnn, (1, 2)), x, y, resolution=3, method="foreach")
    assert grid.loss[1, 1] == pytest.approx(evaluate(cnn, x, y)["loss"], rel=1e-6)
    assert abs(grid.loss[1, 1] - train_mode) > 1e-3


def test_nonfinite_losses_are_kept_as_inf_and_counted(mlp, data):
    x, y = data
    dirs = random_directions(mlp, (1, 2))
    grid = evaluate_grid(mlp, dirs, x, y, resolution=5, span=1e36, method="vmap", points_per_step=5)
    finite = np.isfinite(grid.loss)
    assert not np.isnan(grid.loss).any()
    assert grid.meta["nonfinite_count"] == int((~finite).sum()) > 0
    assert grid.meta["nan_count"] > 0  # overflowing logits give NaN losses, which must become +inf
    assert np.all(grid.loss[~finite] == np.inf)
    assert finite[2, 2] and grid.loss[2, 2] == pytest.approx(evaluate(mlp, x, y)["loss"], rel=1e-6)


def test_reduced_precision_is_explicit_and_recorded(cnn, data):
    x, y = data
    dirs = random_directions(cnn, (1, 2))
    fp32 = evaluate_grid(cnn, dirs, x, y, resolution=3, method="foreach")
    bf16 = evaluate_grid(cnn, dirs, x, y, resolution=3, precision="bf16", method="vmap")
    assert fp32.meta["precision"] == "fp32" and not fp32.meta["cudnn_tf32"] and not fp32.meta["matmul_tf32"]
    assert bf16.meta["precision"] == "bf16"
    np.testing.assert_allclose(bf16.loss, fp32.loss, rtol=3e-2)
    assert not np.array_equal(bf16.loss, fp32.loss)


def test_grid_arguments_are_checked(mlp, data):
    x, y = data
    dirs = random_directions(mlp, (1, 2))
    even = evaluate_grid(mlp, dirs, x, y, resolution=4, method="foreach")  # warned once, by LandscapeConfig
    assert 0.0 not in even.alphas
    for kwargs, match in [({"resolution": 1}, "resolution"), ({"span": 0.0}, "span"),
                          ({"precision": "fp8"}, "precision"), ({"method": "jit"}, "method"),
                          ({"batch_size": 0}, "batch_size"), ({"points_per_step": 0}, "points_per_step")]:
        with pytest.raises(ConfigError, match=match):
            evaluate_grid(mlp, dirs, x, y, **kwargs)
    wrong = Directions.pair({"x": torch.zeros(1)}, dirs.d2, {})
    with pytest.raises(ConfigError, match="directions.d1"):
        evaluate_grid(mlp, wrong, x, y, resolution=3)
    with pytest.raises(ConfigError, match="x and y"):
        evaluate_grid(mlp, dirs, x, y[:5], resolution=3)


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_is_bitwise_identical(mlp, data, tmp_path):
    x, y = data
    dirs = random_directions(mlp, (1, 2))
    kwargs = dict(resolution=7, span=0.7, batch_size=16, points_per_step=4, method="vmap", chunk_nodes=10)
    full = evaluate_grid(mlp, dirs, x, y, **kwargs)

    def stop_after_three(chunk: int, done: int, total: int) -> None:
        if done == 3:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        evaluate_grid(mlp, dirs, x, y, chunk_dir=tmp_path, on_chunk=stop_after_three, **kwargs)
    assert len(list(tmp_path.glob("chunk_*.npz"))) == 3
    assert not list(tmp_path.glob("*.tmp"))
    resumed = evaluate_grid(mlp, dirs, x, y, chunk_dir=tmp_path, **kwargs)
    assert resumed.meta["chunks_resumed"] == 3 and resumed.meta["num_chunks"] == 5
    assert resumed.meta["nodes_evaluated"] == 49 - 30
    assert np.array_equal(resumed.loss, full.loss) and np.array_equal(resumed.accuracy, full.accuracy)
    again = evaluate_grid(mlp, dirs, x, y, chunk_dir=tmp_path, **kwargs)  # everything on disk: no evaluation
    assert again.meta["nodes_evaluated"] == 0 and np.array_equal(again.loss, full.loss)


def test_resume_refuses_a_different_config(mlp, data, tmp_path):
    x, y = data
    dirs = random_directions(mlp, (1, 2))
    evaluate_grid(mlp, dirs, x, y, resolution=3, method="foreach", chunk_dir=tmp_path)
    with pytest.raises(ConfigError, match="different config"):
        evaluate_grid(mlp, dirs, x, y, resolution=3, span=0.5, method="foreach", chunk_dir=tmp_path)
    with pytest.raises(ConfigError, match="different config"):
        evaluate_grid(mlp, random_directions(mlp, (1, 3)), x, y, resolution=3, method="foreach", chunk_dir=tmp_path)
    with pytest.raises(ConfigError, match="started with 'foreach'"):
        evaluate_grid(mlp, dirs, x, y, resolution=3, method="vmap", chunk_dir=tmp_path)
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(ConfigError, match="no manifest"):
        evaluate_grid(mlp, dirs, x, y, resolution=3, method="foreach", chunk_dir=tmp_path)


def test_save_and_load_grid_round_trip(mlp, data, tmp_path):
    x, y = data
    grid = evaluate_grid(mlp, random_directions(mlp, (1, 2)), x, y, resolution=3, method="foreach")
    save_grid(grid, tmp_path / "landscape")
    back = load_grid(tmp_path / "landscape")
    assert np.array_equal(back.loss, grid.loss) and np.array_equal(back.alphas, grid.alphas)
    assert back.meta["directions"]["seeds"] == [1, 2] and back.meta["method"] == "foreach"


def test_save_and_load_an_nd_grid_with_per_example_losses(mlp, data, tmp_path):
    x, y = data
    grid = evaluate_grid(mlp, random_directions(mlp, (1, 2, 3)), x, y, resolution=3, method="foreach",
                         per_example=True)
    grid = replace(grid, meta={**grid.meta, "directions_record": {"family": "random"}})
    save_grid(grid, tmp_path / "landscape")
    assert sorted(p.name for p in (tmp_path / "landscape").iterdir()) == ["grid.npz", "meta.json"]
    back = load_grid(tmp_path / "landscape")
    assert back.dims == 3 and back.loss.shape == (3, 3, 3)
    for a, b in zip(back.axes, grid.axes, strict=True):
        assert np.array_equal(a, b)
    assert np.array_equal(back.loss, grid.loss) and np.array_equal(back.accuracy, grid.accuracy)
    assert np.array_equal(back.per_example, grid.per_example) and back.per_example.shape == (3, 3, 3, len(x))
    assert back.meta["directions_record"] == {"family": "random"} and back.meta["dims"] == 3


# ---------------------------------------------------------------- paths


def _perturbed(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: (v + 0.3 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone())
            for k, v in model.state_dict().items()}


def test_path_endpoints_equal_evaluating_the_endpoints(cnn, data):
    x, y = data
    start = {k: v.clone() for k, v in cnn.state_dict().items()}
    end = _perturbed(cnn, 3)
    end_model = create_model("cnn", 3, 1, 8, 0.125)
    end_model.load_state_dict(end)
    for method in ("vmap", "foreach"):
        path = evaluate_path(cnn, start, end, x, y, num_points=5, batch_size=16, method=method, points_per_step=2)
        np.testing.assert_array_equal(path.ts, np.linspace(0, 1, 5))
        assert path.loss[0] == pytest.approx(evaluate(cnn, x, y, 16)["loss"], rel=1e-6)
        assert path.loss[-1] == pytest.approx(evaluate(end_model, x, y, 16)["loss"], rel=1e-6)
        assert path.accuracy[-1] == evaluate(end_model, x, y, 16)["accuracy"]
        assert "features.0.1.running_var" in path.meta["interpolated_buffers"]


def test_path_midpoint_interpolates_parameters_and_floating_buffers(cnn, data):
    x, y = data
    start = {k: v.clone() for k, v in cnn.state_dict().items()}
    end = _perturbed(cnn, 4)
    mid_model = create_model("cnn", 3, 1, 8, 0.125)
    mid_model.load_state_dict({k: (torch.lerp(v, end[k], 0.5) if v.is_floating_point() else v)
                               for k, v in start.items()})
    path = evaluate_path(cnn, start, end, x, y, num_points=3, batch_size=16, method="vmap")
    assert path.loss[1] == pytest.approx(evaluate(mid_model, x, y, 16)["loss"], rel=1e-5)
    # parameters only: buffers stay the model's own
    params_only = {k: v for k, v in end.items() if k in dict(cnn.named_parameters())}
    path2 = evaluate_path(cnn, start, params_only, x, y, num_points=3, method="foreach")
    assert path2.meta["interpolated_buffers"] == []


def test_path_barrier_and_argument_checks(mlp, data):
    x, y = data
    start = {k: v.clone() for k, v in mlp.state_dict().items()}
    path = evaluate_path(mlp, start, {k: -v for k, v in start.items()}, x, y, num_points=5)
    chord = np.linspace(path.loss[0], path.loss[-1], 5)
    assert path.barrier == pytest.approx(max(float(np.max(path.loss - chord)), 0.0))
    with pytest.raises(ConfigError, match="end lacks parameter"):
        evaluate_path(mlp, start, {}, x, y)
    with pytest.raises(ConfigError, match="num_points"):
        evaluate_path(mlp, start, start, x, y, num_points=1)


# ---------------------------------------------------------------- figures


def _bowl() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.linspace(-1, 1, 7)
    b = np.linspace(-1, 1, 9)
    loss = (a[:, None] - 0.34) ** 2 + 2 * (b[None, :] + 0.5) ** 2 + 0.1
    return a, b, loss


def test_contour_marks_the_minimum_and_masks_inf():
    from persist.plots.landscape import plot_contour

    a, b, loss = _bowl()
    loss[0, 0] = np.inf
    fig = plot_contour(a, b, loss, title="bowl")
    ax = fig.axes[0]
    marker = [line for line in ax.lines if line.get_label() == "minimum"][0]
    i, j = np.unravel_index(np.argmin(loss), loss.shape)
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (a[i], b[j]) == (a[4], b[2])
    assert ax.get_xlabel() == "α (direction 1)" and ax.get_title() == "bowl"


def test_heatmap_surface_and_path_figures():
    from persist.plots.landscape import plot_heatmap, plot_path, plot_surface

    a, b, loss = _bowl()
    heat = plot_heatmap(a, b, loss, log_scale=True)
    image = heat.axes[0].images[0]
    assert image.get_array().shape == (9, 7)  # betas on the vertical axis
    np.testing.assert_allclose(image.get_array()[2, 3], np.log10(loss[3, 2]))
    surface = plot_surface(a, b, loss)
    assert surface.axes[0].name == "3d"
    path = plot_path(np.linspace(0, 1, 5), np.array([0.1, 0.5, 0.9, 0.6, 0.2]), np.array([1, 0.8, 0.5, 0.7, 0.9]))
    line = path.axes[0].lines[0]
    np.testing.assert_array_equal(line.get_ydata(), [0.1, 0.5, 0.9, 0.6, 0.2])
    assert len(path.axes) == 2  # accuracy on a twin axis
