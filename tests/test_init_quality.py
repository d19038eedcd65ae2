"""Initialization-quality study: each numeric piece against a known answer or an independent oracle."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch.nn.utils import vector_to_parameters

from persist.errors import ConfigError, DataError
from persist.init_quality import InitQualityConfig
from persist.init_quality.geometry import gradient_norms, hessian_traces
from persist.init_quality.local_topology import LocalTopologyConfig, diagram_summary, local_features
from persist.init_quality.outcomes import InitTrainingConfig, train_inits
from persist.init_quality.prediction import PredictionConfig, compare, score_feature_sets, verdict
from persist.init_quality.samples import (
    InitScheme,
    draw_inits,
    parse_scheme,
    seeded_generator,
    slice_directions,
)
from persist.init_quality.surrogate import SurrogateConfig, fit_surrogate
from persist.init_quality.target import DigitsTask, build_target, load_digits_task
from persist.phases.init_quality import run_all, run_stage, stage_figures
from persist.topology.point_cloud import graph_sublevel_diagrams, knn_edges


@pytest.fixture(scope="module")
def net():
    return build_target((64, 16, 10))


@pytest.fixture(scope="module")
def task():
    return load_digits_task()


def _finite_bars(diagram: np.ndarray) -> set[tuple[float, float]]:
    return {(float(b), float(d)) for b, d in diagram if np.isfinite(d)}


# --- target network ------------------------------------------------------------------------------


def test_vmap_losses_equal_a_per_vector_loop(net, task):
    params = torch.cat([draw_inits(net, InitScheme(f, s), 3, seeded_generator(0, i))
                        for i, (f, s) in enumerate([("kaiming", 1.0), ("normal", 0.5)])])
    batched = net.losses(params, task.x_train, task.y_train, chunk_size=4)
    acc = net.accuracies(params, task.x_train, task.y_train)
    module = copy.deepcopy(net.module)
    for i, flat in enumerate(params):
        vector_to_parameters(flat, module.parameters())
        logits = module(task.x_train)
        assert batched[i].item() == pytest.approx(F.cross_entropy(logits, task.y_train).item(), rel=1e-5)
        assert acc[i].item() == pytest.approx((logits.argmax(1) == task.y_train).float().mean().item())


def test_hidden_unit_permutation_keeps_every_loss(net, task):
    params = draw_inits(net, InitScheme("xavier"), 6, seeded_generator(0, 0))
    permuted = net.permute_hidden_units(params, torch.Generator().manual_seed(1))
    assert not torch.allclose(permuted, params)
    assert torch.allclose(permuted.sort(dim=1).values, params.sort(dim=1).values)  # same entries, moved
    torch.testing.assert_close(net.losses(permuted, task.x_train, task.y_train),
                               net.losses(params, task.x_train, task.y_train), rtol=1e-5, atol=1e-6)


def test_digits_split_is_standardized_on_train_only(task):
    assert task.x_train.shape[1] == 64 and len(task.y_train) + len(task.y_test) == 1797
    assert len(task.y_test) == 450 and set(task.y_test.tolist()) == set(range(10))  # persist.data's 25 % split
    assert task.x_train.mean(0).abs().max() < 1e-5
    assert abs(task.x_test.mean().item()) > 1e-4  # test set not re-centred with its own statistics


def test_the_study_holds_out_its_own_test_fraction_of_the_same_fixed_split():
    study = load_digits_task(test_fraction=InitQualityConfig().test_fraction)
    assert len(study.y_test) == 540 and len(study.y_train) == 1797 - 540  # ceil(0.3 x 1797) held out
    again = load_digits_task(test_fraction=0.3)
    assert torch.equal(study.x_test, again.x_test)  # the split seed is fixed, not the study's seed


def test_the_template_is_the_package_mlp():
    from persist.models import create_model

    registry = create_model("mlp", num_classes=10, in_channels=1, image_size=8, width=0.0625)  # 256 x 1/16 = 16
    template = build_target((64, 16, 16, 10)).module
    assert [type(m) for m in registry][1:] == [type(m) for m in template]
    assert [p.shape for p in registry.parameters()] == [p.shape for p in template.parameters()]


# --- initialization schemes and slices -----------------------------------------------------------


@pytest.mark.parametrize("family, std", [("normal", 0.3), ("xavier", math.sqrt(2 / (64 + 16))),
                                         ("kaiming", math.sqrt(2 / 64)), ("uniform", 0.3 / math.sqrt(3))])
def test_scheme_first_layer_spread(net, family, std):
    w = draw_inits(net, InitScheme(family, 0.3 if family in ("normal", "uniform") else 1.0), 200,
                   seeded_generator(1, 0))
    first = w[:, net.slices[0]]
    assert first.std().item() == pytest.approx(std, rel=0.02)
    assert w[:, net.slices[1]].abs().max() == 0  # biases start at zero


def test_orthogonal_scheme_is_orthonormal(net):
    w = draw_inits(net, InitScheme("orthogonal", 2.0), 5, seeded_generator(2, 0))
    w1 = net.unflatten(w)["0.weight"]  # (5, 16, 64): orthonormal rows, times the gain
    torch.testing.assert_close(w1 @ w1.transpose(1, 2), 4.0 * torch.eye(16).expand(5, 16, 16), atol=1e-5, rtol=0)


def test_parse_scheme():
    assert parse_scheme("normal:0.1") == InitScheme("normal", 0.1)
    assert parse_scheme("kaiming") == InitScheme("kaiming", 1.0)
    with pytest.raises(ConfigError, match="schemes entry 'he'"):
        parse_scheme("he")
    with pytest.raises(ConfigError, match="scale must be > 0"):
        parse_scheme("normal:-1")


def test_slice_directions_are_filter_normalized(net):
    w0 = draw_inits(net, InitScheme("normal", 0.7), 3, seeded_generator(3, 0))
    d = slice_directions(net, w0, 2, seeded_generator(3, 1))
    for sl, shape in zip(net.slices, net.shapes, strict=True):
        if len(shape) == 1:
            assert d[..., sl].abs().max() == 0
            continue
        rows_w = w0[:, None, sl].unflatten(-1, shape).norm(dim=-1).expand(-1, 2, -1)
        torch.testing.assert_close(d[..., sl].unflatten(-1, shape).norm(dim=-1), rows_w)


# --- local topology ------------------------------------------------------------------------------


def test_graph_sublevel_path_has_known_bars():
    values = np.array([3, 1, 4, 0.5, 5, 2, 6], dtype=float)
    edges = np.array([[i, i + 1] for i in range(6)])
    h0, h1 = graph_sublevel_diagrams(values, edges)
    assert _finite_bars(h0) == {(1.0, 4.0), (2.0, 5.0)}
    assert h0[~np.isfinite(h0[:, 1]), 0].tolist() == [0.5]  # the one essential class, born at the min
    assert len(h1) == 0


def test_graph_sublevel_ring_hole_is_filled_by_triangles():
    # a ring 0..5 with low loss around a high centre (vertex 6): the ring closes at 5 and its hole
    # is filled when the centre's triangles enter at 10, a (5, 10) H1 bar; the bare graph keeps it.
    values = np.array([0, 1, 2, 3, 4, 5, 10], dtype=float)
    ring = [[i, (i + 1) % 6] for i in range(6)]
    spokes = [[i, 6] for i in range(6)]
    edges = np.array(ring + spokes)
    assert _finite_bars(graph_sublevel_diagrams(values, edges, clique_dim=2)[1]) == {(5.0, 10.0)}
    h1_graph = graph_sublevel_diagrams(values, edges, clique_dim=1)[1]
    assert len(h1_graph) == 6 and not np.isfinite(h1_graph[:, 1]).any()  # E - V + 1 cycles, never filled


def test_knn_edges_on_an_irregular_line():
    points = np.array([[0.0], [1.0], [3.0], [6.0], [10.0]])
    assert knn_edges(points, 1).tolist() == [[0, 1], [1, 2], [2, 3], [3, 4]]


def test_diagram_summary_known_values():
    # two unit bars, a zero-length one (counted, no share of the entropy) and an essential one (curve only)
    diagram = np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 2.0], [0.5, np.inf]])
    stats, curve = diagram_summary(diagram, np.array([-1, 0, 0.5, 1, 2, 3]))
    assert curve.tolist() == [0, 1, 2, 2, 1, 1]
    assert stats["n_bars"] == 3 and stats["total"] == 2.0 and stats["max"] == 1.0
    assert stats["entropy"] == pytest.approx(math.log(2))
    assert stats["betti_peak"] == 2 and stats["betti_peak_at"] == 0.5
    assert diagram_summary(np.array([[0.0, 3.0]]), np.array([0.0]))[0]["entropy"] == 0.0


def test_double_well_gives_the_known_basin_bar():
    # f(x) = (x^2 - 1)^2 + 0.3 x on a line: the right well is the shallower one; its basin is born at
    # its minimum and merges at the barrier's top. Both are read off the sampled values directly.
    x = np.linspace(-2, 2, 401)
    f = (x**2 - 1) ** 2 + 0.3 * x
    right_min = f[x > 0].min()
    barrier = f[(x > x[np.argmin(f)]) & (x < x[x > 0][np.argmin(f[x > 0])])].max()
    feats = local_features(x[:, None], f, LocalTopologyConfig(knn=2)).features
    assert feats["sublevel_h0_n_bars"] == 1
    assert feats["sublevel_h0_max"] == pytest.approx((barrier - right_min) / f.std())
    assert feats["sublevel_h1_n_bars"] == 0


def test_features_follow_the_samples_not_their_order():
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(80, 2))
    losses = np.sin(3 * coords[:, 0]) + np.cos(2 * coords[:, 1]) + 0.3 * coords[:, 0] ** 2
    cfg = LocalTopologyConfig(knn=6)
    base = local_features(coords, losses, cfg).features
    perm = rng.permutation(80)
    same = local_features(coords[perm], losses[perm], cfg).features
    assert same == pytest.approx(base, rel=1e-9, abs=1e-12)
    misaligned = local_features(coords, losses[perm], cfg).features  # the seed project's bug
    assert misaligned != pytest.approx(base, rel=1e-3)
    with pytest.raises(DataError, match="one value per row"):
        local_features(coords, losses[:-1], cfg)


# --- geometry baselines --------------------------------------------------------------------------


def test_gradient_norm_and_hutchinson_trace_against_autograd():
    torch.manual_seed(0)
    small = build_target((4, 3, 2), activation="tanh")  # tanh: non-zero second derivatives everywhere
    x, y = torch.randn(20, 4), torch.randint(0, 2, (20,))
    params = torch.randn(3, small.n_params)
    # probes sqrt(P) e_i over every i make Hutchinson exact: mean_i P H_ii = tr(H)
    probes = math.sqrt(small.n_params) * torch.eye(small.n_params)
    traces = hessian_traces(small, params, x, y, probes, chunk_size=2)
    norms = gradient_norms(small, params, x, y)
    for i, w in enumerate(params):
        hess = torch.autograd.functional.hessian(lambda v: small.loss(v, x, y), w)
        assert traces[i].item() == pytest.approx(torch.trace(hess).item(), rel=1e-4)
        w_ = w.clone().requires_grad_()
        (g,) = torch.autograd.grad(small.loss(w_, x, y), w_)
        assert norms[i].item() == pytest.approx(g.norm().item(), rel=1e-5)


# --- surrogate -----------------------------------------------------------------------------------


def test_surrogate_fidelity_separates_signal_from_shuffled_targets():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 6)).astype(np.float32)
    t = np.sin(x[:, 0]) + x[:, 1] * x[:, 2] + 0.5 * x[:, 3]
    cfg = SurrogateConfig(hidden=(64, 64), epochs=60, batch_size=64, lr=3e-3)
    groups = np.arange(600)
    learn = fit_surrogate(torch.tensor(x), torch.tensor(t, dtype=torch.float32), groups, cfg, seed=0)
    shuffled = fit_surrogate(torch.tensor(x), torch.tensor(rng.permutation(t), dtype=torch.float32), groups, cfg, 0)
    assert learn.metrics["test_r2"] > 0.8 and learn.metrics["test_spearman"] > 0.8
    assert shuffled.metrics["test_r2"] < 0.1


def test_surrogate_test_split_keeps_groups_whole():
    x = torch.randn(60, 3)
    groups = np.repeat(np.arange(12), 5)
    fit = fit_surrogate(x, x[:, 0], groups, SurrogateConfig(hidden=(8,), epochs=1), seed=0)
    held = set(groups[fit.test_index])
    assert held and all((groups[fit.test_index] == g).sum() == 5 for g in held)


# --- training outcomes ---------------------------------------------------------------------------


def test_training_rows_together_equals_each_alone(net, task):
    small = DigitsTask(task.x_train[:200], task.y_train[:200], task.x_test, task.y_test)
    inits = torch.cat([draw_inits(net, InitScheme("normal", s), 1, seeded_generator(5, i))
                       for i, s in enumerate((0.05, 1.0, 3.0))])  # 3.0 triggers the per-row clip
    cfg = InitTrainingConfig(epochs=2, batch_size=50, clip_norm=1.0)
    together = train_inits(net, inits, small, cfg, torch.Generator().manual_seed(0))
    for i in range(3):
        alone = train_inits(net, inits[i:i + 1], small, cfg, torch.Generator().manual_seed(0))
        torch.testing.assert_close(together[i:i + 1], alone, rtol=1e-4, atol=1e-5)


# --- prediction ----------------------------------------------------------------------------------


def test_nested_cv_finds_signal_and_reports_a_loss_plainly():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(40, 3))
    y = 2 * table[:, 0] + 0.1 * rng.normal(size=40)
    cfg = PredictionConfig(outer_folds=4, inner_folds=2, seeds=2, forest_trees=20, forest_leaf_grid=(1, 3),
                           importance_repeats=2)
    sets = {"signal": ["a"], "noise": ["b", "c"]}
    scores = score_feature_sets(table, ["a", "b", "c"], y, sets, cfg, importance_for=("signal",))
    by = {(s.feature_set, s.model): s for s in scores}
    assert by["signal", "ridge"].r2.min() > 0.95 and by["signal", "forest"].r2.min() > 0.7
    assert by["noise", "ridge"].r2.max() < 0.1 and by["noise", "forest"].r2.max() < 0.2
    assert by["signal", "ridge"].importance["a"] > 1.0  # shuffling the only signal destroys R^2
    comparison = compare(scores, {"noise"}, {"signal"})
    assert not comparison.wins and "does NOT beat" in verdict(comparison, "noise", "signal")


# --- the study -----------------------------------------------------------------------------------


def _tiny() -> InitQualityConfig:
    return InitQualityConfig(
        schemes=("normal:0.1", "normal:1", "kaiming", "orthogonal"),
        pool_inits_per_scheme=12,
        pool_perturbations=2,
        inits_per_scheme=3,
        local_points=24,
        hutchinson_probes=2,
        surrogate=SurrogateConfig(hidden=(32,), epochs=3),
        training=InitTrainingConfig(epochs=1),
        prediction=PredictionConfig(outer_folds=3, inner_folds=2, seeds=2, forest_trees=10,
                                    forest_leaf_grid=(2,), importance_repeats=2),
    )


def test_all_stages_run_end_to_end(tmp_path):
    metrics = run_all(_tiny(), tmp_path)
    assert all(np.isfinite(v) for v in metrics.values()), {k: v for k, v in metrics.items() if not np.isfinite(v)}
    assert metrics["samples/n_inits"] == 12 and metrics["samples/n_params"] == 1210
    for name in ("samples.npz", "inits.npz", "surrogate.pt", "local.npz", "features.npz", "outcomes.npz",
                 "prediction.json", "report.md", *(f"stage{s}.json" for s in range(1, 6))):
        assert (tmp_path / name).stat().st_size > 0, name
    figures = {name: fig for stage in range(1, 6) for name, fig in stage_figures(stage, _tiny(), tmp_path).items()}
    assert {"initial_loss_by_scheme", "surrogate_fit", "betti_curves", "local_landscape", "test_loss_by_scheme",
            "prediction_scores", "importance_ridge"} <= set(figures)
    assert all(isinstance(fig, Figure) and fig.axes for fig in figures.values())
    local = np.load(tmp_path / "local.npz")
    assert local["coords"].shape == (12, 24, 2) and local["real"].shape == local["surrogate"].shape == (12, 24)
    report = (tmp_path / "report.md").read_text()
    assert "## Verdict" in report and "topology" in report
    assert json.loads((tmp_path / "stage5.json").read_text())["metrics"] == pytest.approx(
        {k: v for k, v in metrics.items() if k.startswith("prediction/")})


def test_missing_upstream_output_is_a_one_line_error(tmp_path):
    with pytest.raises(DataError, match=r"inits.npz is missing; run init-quality stage 1 first"):
        run_stage(3, _tiny(), tmp_path)
    with pytest.raises(ConfigError, match="stage must be one of"):
        run_stage(6, _tiny(), tmp_path)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="radius"):
        InitQualityConfig(radius=0)
    with pytest.raises(ConfigError, match="prediction.models"):
        PredictionConfig(models=("svm",))
    with pytest.raises(ConfigError, match="schemes entry 'he:2'"):
        InitQualityConfig(schemes=("he:2",))


def test_phase_logs_metrics_and_figures_and_reuses_a_finished_stage(tracking):
    from mlflow.tracking import MlflowClient

    from persist.phases.init_quality import run_init_quality

    run_id, metrics = run_init_quality(_tiny(), [1], progress=False)
    again_id, again = run_init_quality(_tiny(), [1], progress=False)  # read back from stage1.json
    assert again == metrics and again_id != run_id
    client = MlflowClient()
    logged = client.get_run(again_id).data.metrics
    assert logged["init_quality/samples/n_inits"] == 12
    figures = [a.path for a in client.list_artifacts(again_id, "init_quality/figures")]
    assert figures == ["init_quality/figures/initial_loss_by_scheme.png"]
