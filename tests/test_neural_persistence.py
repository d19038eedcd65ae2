"""Neural persistence: hand-computed graphs, independent MST oracles, the paper's qualitative findings,
the conv approximation against exact unrolling, and the training hooks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy.sparse.csgraph import minimum_spanning_tree

from persist.errors import ConfigError, ModelError
from persist.neural_persistence import (
    NeuralPersistenceEarlyStopping,
    NeuralPersistenceTracker,
    PatienceRule,
    conv_input_sizes,
    layer_persistence,
    neural_persistence,
    persistence_diagram,
    spanning_forest_weights,
)
from persist.neural_persistence import graph as graph_module
from persist.neural_persistence.layers import UnrolledConvGraph, unrolled_conv_edges
from persist.plots.neural_persistence import plot_np_trajectory, plot_stopping_comparison


def _linear(weight: list[list[float]]) -> nn.Linear:
    w = torch.tensor(weight, dtype=torch.float64)
    layer = nn.Linear(w.shape[1], w.shape[0], bias=False).double()
    with torch.no_grad():
        layer.weight.copy_(w)
    return layer


def _union_find_deaths(edges: list[tuple[float, int, int]], n_vertices: int) -> list[float]:
    """Textbook Kruskal on the descending filtration: the independent oracle for small graphs."""
    parent = list(range(n_vertices))

    def find(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    deaths = []
    for weight, u, v in sorted(edges, key=lambda e: -e[0]):
        ru, rv = find(u), find(v)
        if ru != rv:
            parent[ru] = rv
            deaths.append(weight)
    return deaths


# ----- hand-computed graphs ---------------------------------------------------------------------------

def test_two_by_two_layer_matches_hand_computed_spanning_tree():
    # |w| / 0.9 = [[1, 2/9], [5/9, 1/9]]; the maximum spanning tree takes 1, 5/9 and 2/9 (1/9 closes a cycle).
    layer = _linear([[0.9, -0.2], [0.5, 0.1]])
    deaths = spanning_forest_weights(layer.weight.abs() / 0.9)
    np.testing.assert_allclose(deaths.numpy(), [1.0, 5 / 9, 2 / 9], rtol=1e-12)
    np.testing.assert_allclose(persistence_diagram(layer.weight.abs() / 0.9), [[1, 1], [1, 5 / 9], [1, 2 / 9]])
    values = neural_persistence(nn.Sequential(layer))
    assert values["np/0/persistence"] == pytest.approx(math.sqrt(65) / 9, rel=1e-12)
    assert values["np/0/normalized"] == pytest.approx(math.sqrt(65) / 9 / math.sqrt(3), rel=1e-12)
    assert values["np/mean_normalized"] == pytest.approx(math.sqrt(65) / 9 / math.sqrt(3), rel=1e-12)
    assert values["np/0/weight_std"] == pytest.approx(np.std([0.9, -0.2, 0.5, 0.1]), rel=1e-12)
    assert values["np/0/weight_norm"] == pytest.approx(math.sqrt((1 + 4 / 81 + 25 / 81 + 1 / 81) / 4), rel=1e-12)


def test_zero_weights_are_edges_that_die_at_zero():
    # One edge at 1 (lifetime 0) and three zero edges joining the other vertices (lifetime 1 each).
    values = neural_persistence(nn.Sequential(_linear([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])))
    assert values["np/0/persistence"] == pytest.approx(math.sqrt(3))
    assert values["np/0/normalized"] == pytest.approx(math.sqrt(3) / 2)


def test_p_norms_of_the_diagram():
    deaths = torch.tensor([1.0, 5 / 9, 2 / 9], dtype=torch.float64)
    assert layer_persistence(deaths, 1.0).item() == pytest.approx(11 / 9)
    assert layer_persistence(deaths, math.inf).item() == pytest.approx(7 / 9)
    model = nn.Sequential(_linear([[0.9, -0.2], [0.5, 0.1]]))
    assert neural_persistence(model, p=1.0)["np/0/normalized"] == pytest.approx(11 / 27)


def test_weights_are_normalized_by_the_network_maximum():
    # Layer 2 alone would have deaths {1, 1/2}; under the network max 2 they halve to {1/2, 1/4}.
    model = nn.Sequential(_linear([[2.0]]), _linear([[1.0, 0.5]]))
    values = neural_persistence(model)
    assert values["np/0/persistence"] == pytest.approx(0.0)
    assert values["np/1/persistence"] == pytest.approx(math.sqrt(0.25 + 0.5625))
    assert values["np/total"] == pytest.approx(math.sqrt(0.8125))
    scaled = nn.Sequential(_linear([[20.0]]), _linear([[10.0, 5.0]]))
    assert neural_persistence(scaled)["np/1/persistence"] == pytest.approx(values["np/1/persistence"])


# ----- oracles on random layers -----------------------------------------------------------------------

def _scipy_oracle_deaths(w: np.ndarray) -> np.ndarray:
    """Maximum spanning tree via scipy on the symmetric (m+k) x (m+k) adjacency of 2 - w."""
    m, k = w.shape
    adjacency = np.zeros((m + k, m + k))
    adjacency[:m, m:] = 2.0 - w
    tree = minimum_spanning_tree(adjacency)
    return np.sort(2.0 - tree.data)[::-1]


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (9, 1), (13, 40), (40, 13), (64, 64)])
@pytest.mark.parametrize("kind", ["gaussian", "ties"])
def test_boruvka_and_kruskal_match_a_scipy_oracle(shape, kind, monkeypatch):
    gen = torch.Generator().manual_seed(sum(shape))
    w = torch.randn(shape, generator=gen, dtype=torch.float64).abs()
    if kind == "ties":  # quantized and pruned weights: many exact ties, including zeros
        w = torch.randint(0, 3, shape, generator=gen).double() / 2
    w = w / w.max() if w.max() > 0 else w
    expected = _scipy_oracle_deaths(w.numpy())
    boruvka = spanning_forest_weights(w, "boruvka")
    np.testing.assert_allclose(boruvka.numpy(), expected, atol=1e-14)
    assert torch.equal(boruvka, spanning_forest_weights(w, "kruskal"))
    monkeypatch.setattr(graph_module, "_compacts", lambda device: False)  # the sync-free accelerator path
    assert torch.equal(boruvka, spanning_forest_weights(w, "boruvka"))


def test_model_values_agree_between_methods():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 50), nn.ReLU(), nn.Linear(50, 20), nn.Conv2d(4, 6, 3))
    assert neural_persistence(model, method="boruvka") == neural_persistence(model, method="kruskal")


@pytest.mark.parametrize("seed", range(4))
def test_normalized_values_lie_in_unit_interval(seed):
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(20, 30), nn.Linear(30, 5))
    with torch.no_grad():
        model[0].weight.copy_(torch.randn(30, 20, generator=gen) ** 3)  # heavy tails: large NP
        model[1].weight.copy_(torch.rand(5, 30, generator=gen) * 1e-3)  # tiny next to the network max
    values = neural_persistence(model)
    normalized = [v for k, v in values.items() if k.endswith("/normalized")]
    assert all(0.0 <= v <= 1.0 for v in normalized)
    assert values["np/1/normalized"] > 0.99  # every lifetime close to 1
    assert neural_persistence(nn.Sequential(_linear([[0.0, 0.0]])))["np/0/normalized"] == pytest.approx(1.0)
    assert neural_persistence(nn.Sequential(_linear([[3.0, -3.0]])))["np/0/normalized"] == pytest.approx(0.0)


# ----- the paper's qualitative findings ---------------------------------------------------------------

def _train_digits_mlp(epochs: int) -> nn.Module:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16
    y = torch.tensor(digits.target)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    assert (model(x).argmax(1) == y).float().mean() > 0.95
    return model


def _random_like(model: nn.Module, kind: str, seed: int) -> nn.Module:
    """Same shapes and per-layer standard deviations as ``model``, i.i.d. Gaussian or uniform entries."""
    gen = torch.Generator().manual_seed(seed)
    layers = []
    for layer in (m for m in model.modules() if isinstance(m, nn.Linear)):
        std = layer.weight.detach().std()
        if kind == "gaussian":
            w = torch.randn(layer.weight.shape, generator=gen) * std
        else:
            w = (torch.rand(layer.weight.shape, generator=gen) * 2 - 1) * std * math.sqrt(3)
        layers.append(nn.Linear(w.shape[1], w.shape[0]))
        with torch.no_grad():
            layers[-1].weight.copy_(w)
    return nn.Sequential(*layers)


def test_trained_above_gaussian_above_uniform_as_the_paper_reports():
    trained = _train_digits_mlp(epochs=20)
    mean = {"trained": neural_persistence(trained)["np/mean_normalized"]}
    for kind in ("gaussian", "uniform"):
        mean[kind] = float(np.mean([neural_persistence(_random_like(trained, kind, s))["np/mean_normalized"]
                                    for s in range(3)]))
    assert mean["trained"] > mean["gaussian"] + 0.05
    assert mean["gaussian"] > mean["uniform"] + 0.1


# ----- convolutions -----------------------------------------------------------------------------------

def _jacobian_edges(conv: nn.Conv2d, size: tuple[int, int]) -> tuple[list[tuple[float, int, int]], int]:
    """Edges of the unrolled conv read off its Jacobian (weights have no zeros, so non-zero = edge)."""
    basis = torch.eye(conv.in_channels * size[0] * size[1], dtype=torch.float64)
    with torch.no_grad():
        conv_no_bias = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                                 conv.padding, conv.dilation, conv.groups, bias=False).double()
        conv_no_bias.weight.copy_(conv.weight)
        jac = conv_no_bias(basis.reshape(-1, conv.in_channels, *size)).reshape(basis.shape[0], -1)
    n_in = jac.shape[0]
    rows, cols = torch.nonzero(jac, as_tuple=True)
    edges = [(abs(jac[r, c].item()), r.item(), n_in + c.item()) for r, c in zip(rows, cols, strict=True)]
    return edges, n_in + jac.shape[1]


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("kwargs", [dict(padding=1), dict(stride=2, padding=1, dilation=2, groups=2),
                                    dict(padding="same", dilation=2), dict(padding="same"), dict(stride=(2, 1))])
def test_exact_unrolled_conv_matches_the_jacobian_graph(kwargs):
    torch.manual_seed(1)
    conv = nn.Conv2d(4, 6, (3, 2), **kwargs).double()
    size = (7, 6)
    edges, n_vertices = _jacobian_edges(conv, size)
    w_max = conv.weight.abs().max()
    expected = sorted(_union_find_deaths([(w / w_max.item(), u, v) for w, u, v in edges], n_vertices), reverse=True)
    assert len(unrolled_conv_edges(conv, size)[0]) == len(edges)
    deaths = UnrolledConvGraph("c", conv, size).deaths(w_max, "auto")
    np.testing.assert_allclose(deaths.numpy(), expected, rtol=1e-12)


def test_conv_approximation_is_the_large_input_limit_of_exact_unrolling():
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 16, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight.normal_()
    model = nn.Sequential(conv)
    approx = neural_persistence(model)["np/0/normalized"]
    exact = {s: neural_persistence(model, conv_input_sizes={"0": (s, s)})["np/0/normalized"] for s in (4, 8, 16)}
    gaps = [exact[s] - approx for s in (4, 8, 16)]
    assert gaps[0] > gaps[1] > gaps[2] > 0  # boundary merges shrink like 1 / size
    richardson = 2 * exact[16] - exact[8]  # removes the 1 / size term
    assert richardson == pytest.approx(approx, rel=0.02)


def test_conv_input_sizes_come_from_a_forward_pass_without_touching_batchnorm():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.MaxPool2d(2), nn.Conv2d(2, 3, 3))
    model.train()
    sizes = conv_input_sizes(model, torch.randn(2, 1, 10, 8))
    assert sizes == {"0": (10, 8), "3": (5, 4)}
    assert model.training and model[1].num_batches_tracked.item() == 0


# ----- attention ---------------------------------------------------------------------------------------

def test_attention_projections_per_head_are_slices_of_the_packed_weights():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(8, 2)
    values = neural_persistence(nn.ModuleDict({"attn": mha}), per_head=True)
    w_max = torch.cat([mha.in_proj_weight.flatten(), mha.out_proj.weight.flatten()]).abs().max()
    q, k, v = mha.in_proj_weight.detach().chunk(3)
    slices = {"q": q, "k": k, "v": v}
    for name, weight in slices.items():
        for h in range(2):
            deaths = spanning_forest_weights(weight[4 * h:4 * (h + 1)].abs() / w_max)
            expected = layer_persistence(deaths, 2.0).item() / math.sqrt(4 + 8 - 1)
            assert values[f"np/attn.{name}.head{h}/normalized"] == pytest.approx(expected, rel=1e-6)
    out = mha.out_proj.weight.detach()
    deaths = spanning_forest_weights(out[:, 4:].abs() / w_max)
    assert values["np/attn.out_proj.head1/normalized"] == pytest.approx(
        layer_persistence(deaths, 2.0).item() / math.sqrt(11), rel=1e-6)
    assert len([k for k in values if k.endswith("/normalized")]) == 8
    whole = neural_persistence(nn.ModuleDict({"attn": mha}))
    assert {k for k in whole if k.endswith("/normalized")} == {
        f"np/attn.{n}/normalized" for n in ("q", "k", "v", "out_proj")}


def test_layer_filter_and_errors():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    values = neural_persistence(model, layer_filter=lambda name, m: name != "2")
    assert "np/0/normalized" in values and "np/2/normalized" not in values
    with pytest.raises(ModelError, match="layer_filter"):
        neural_persistence(nn.Sequential(nn.ReLU()))
    with pytest.raises(ConfigError, match="p must be"):
        neural_persistence(model, p=0.5)
    with pytest.raises(ConfigError, match="conv_input_sizes"):
        neural_persistence(model, conv_input_sizes={"9": (4, 4)})


# ----- hooks ------------------------------------------------------------------------------------------

def test_patience_rule_stops_on_a_plateau_but_not_on_a_rising_series():
    plateau = PatienceRule(patience=3, min_delta=0.01)
    fired = [plateau.update(v) for v in [0.1, 0.2, 0.3, 0.305, 0.30, 0.309, 0.5]]
    assert fired == [False, False, False, False, False, True, True]
    rising = PatienceRule(patience=2, min_delta=0.01)
    assert not any(rising.update(0.1 + 0.02 * i) for i in range(50))
    delayed = PatienceRule(patience=1, burn_in=2)
    assert [delayed.update(v) for v in [5.0, 4.0, 3.0, 3.0]] == [False, False, False, True]
    loss = PatienceRule(patience=2, mode="min")
    assert [loss.update(v) for v in [1.0, 0.5, 0.6, 0.7]] == [False, False, False, True]
    with pytest.raises(ConfigError, match="patience"):
        PatienceRule(patience=0)


def test_early_stopping_hook_on_a_frozen_and_on_a_sparsifying_network():
    frozen = nn.Sequential(nn.Linear(5, 3))
    hook = NeuralPersistenceEarlyStopping(patience=2)
    for epoch in range(10):
        hook.on_epoch_end(epoch, frozen, {})
        if hook.should_stop():
            break
    assert hook.stopped_epoch == 2 and len(hook.history) == 3

    star = _linear([[i / 10 for i in range(1, 11)]])  # a star: every edge is in the tree
    hook = NeuralPersistenceEarlyStopping(patience=1, min_delta=1e-6)
    for epoch in range(9):
        with torch.no_grad():
            star.weight[0, epoch] = 0.0  # one more zero each epoch: NP strictly grows
        hook.on_epoch_end(epoch, nn.Sequential(star), {})
    assert hook.stopped_epoch is None and not hook.should_stop()
    values = [v for _, v in hook.history]
    assert values == sorted(values) and len(set(values)) == 9


def test_tracker_logs_expected_keys_every_n_steps():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 2))
    calls: list[tuple[dict[str, float], int]] = []
    tracker = NeuralPersistenceTracker(every_n_steps=2, log_fn=lambda metrics, step: calls.append((metrics, step)))
    for step in range(1, 7):
        tracker.on_step_end(step, model)
    assert [step for _, step in calls] == [2, 4, 6]
    expected = neural_persistence(model)
    keys = {"np/0/normalized", "np/2/normalized", "np/mean_normalized", "np/total", "np/mean_weight_std",
            "np/mean_weight_norm"}
    assert set(calls[0][0]) == keys
    assert all(calls[0][0][k] == pytest.approx(expected[k]) for k in keys)
    with pytest.raises(ConfigError, match="every_n_steps"):
        NeuralPersistenceTracker(every_n_steps=0, log_fn=print)


# ----- plots ------------------------------------------------------------------------------------------

def test_plots_draw_the_given_series():
    fig = plot_np_trajectory([1, 2, 3], {"np/0/normalized": [0.1, 0.2, 0.3], "np/mean_normalized": [0.2, 0.3, 0.4]})
    lines = fig.axes[0].get_lines()
    assert [list(line.get_ydata()) for line in lines] == [[0.1, 0.2, 0.3], [0.2, 0.3, 0.4]]
    fig = plot_stopping_comparison([0, 1, 2], [0.1, 0.2, 0.2], [1.0, 0.8, 0.9], np_stop=2, val_stop=1)
    assert [list(line.get_ydata()) for line in fig.axes[0].get_lines()][0] == [0.1, 0.2, 0.2]
    assert [list(line.get_ydata()) for line in fig.axes[1].get_lines()][0] == [1.0, 0.8, 0.9]
