"""Curvature measures against closed forms: a quadratic ½θᵀAθ, logistic regression, and every registered model."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from persist.curvature import (
    epsilon_sharpness,
    extreme_eigenvalues,
    filter_box,
    filter_normalized_directions,
    fisher_trace,
    flat_hvp,
    hessian_trace,
    hessian_vector_product,
    hutchinson_trace,
    hutchpp_trace,
    list_measures,
    loss_barrier,
    make_objective,
    measure_curvature,
    measurement_mode,
    top_eigenvalues,
)
from persist.curvature import fisher as fisher_module
from persist.errors import ConfigError
from persist.models import arch_info, create_model, list_models


# ----------------------------------------------------------------------------- quadratic ½θᵀAθ
def quadratic(eigenvalues: np.ndarray, seed: int = 0):
    """A symmetric matrix with the given spectrum, and its Hessian matvec obtained through torch.func."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((len(eigenvalues), len(eigenvalues))))
    a = torch.from_numpy((q * eigenvalues) @ q.T)
    theta = {"theta": torch.from_numpy(rng.standard_normal(len(eigenvalues)))}

    def loss(p):
        return 0.5 * p["theta"] @ a @ p["theta"]

    return a, (lambda v: hessian_vector_product(loss, theta, {"theta": v})["theta"]), theta["theta"]


def rows(matvec):
    """The matvec applied row by row through vmap, as the trace estimators call it."""
    return torch.func.vmap(matvec)


def test_hvp_of_quadratic_is_a_times_v():
    a, matvec, like = quadratic(np.linspace(-1.0, 3.0, 40))
    v = torch.randn(40, dtype=torch.float64)
    torch.testing.assert_close(matvec(v), a @ v, rtol=1e-12, atol=1e-12)


def test_hutchinson_recovers_trace_with_a_calibrated_standard_error():
    spectrum = np.linspace(-2.0, 10.0, 60)
    a, matvec, like = quadratic(spectrum)
    out = hutchinson_trace(rows(matvec), like, probes=400, seed=1, probe_batch=64)
    off_diagonal = float((a**2).sum() - (torch.diagonal(a) ** 2).sum())
    theory_se = math.sqrt(2 * off_diagonal / 400)  # Var(vᵀAv) = 2 Σ_{i≠j} A_ij² for Rademacher v
    assert abs(out["trace"] - spectrum.sum()) < 4 * theory_se
    assert out["trace_se"] == pytest.approx(theory_se, rel=0.2)
    assert out["matvecs"] == 400


def test_hutchpp_is_exact_when_the_sketch_spans_a_low_rank_hessian():
    spectrum = np.zeros(80)
    spectrum[:7] = [9.0, 5.0, 4.0, 2.0, 1.0, -0.5, -3.0]
    _, matvec, like = quadratic(spectrum)
    out = hutchpp_trace(rows(matvec), like, matvecs=30, seed=3, probe_batch=4)  # 10 sketch columns >= rank 7
    assert out["trace"] == pytest.approx(spectrum.sum(), abs=1e-9)
    assert out["trace_se"] < 1e-9
    assert out["matvecs"] == 30


def test_lanczos_top_eigenvalues_are_exact_and_converged():
    spectrum = np.concatenate([[7.0, 6.5, 3.0], np.linspace(-1.0, 1.0, 97)])
    _, matvec, like = quadratic(spectrum)
    res = extreme_eigenvalues(matvec, like, k=3, which="LA", tol=1e-10, maxiter=200)
    np.testing.assert_allclose(res.values, [7.0, 6.5, 3.0], rtol=1e-9)
    assert res.converged.all() and (res.residuals < 1e-8).all()


def test_largest_magnitude_differs_from_largest_algebraic_when_a_negative_eigenvalue_dominates():
    spectrum = np.concatenate([[-9.0, 4.0], np.linspace(-1.0, 1.0, 98)])
    _, matvec, like = quadratic(spectrum)
    la = extreme_eigenvalues(matvec, like, k=1, which="LA", tol=1e-10, maxiter=200)
    lm = extreme_eigenvalues(matvec, like, k=1, which="LM", tol=1e-10, maxiter=200)
    assert la.values[0] == pytest.approx(4.0, rel=1e-9)
    assert lm.values[0] == pytest.approx(-9.0, rel=1e-9)


def test_small_problems_use_the_exact_dense_spectrum():
    spectrum = np.array([5.0, -6.0, 1.0, 0.5, 0.0])
    _, matvec, like = quadratic(spectrum)
    res = extreme_eigenvalues(matvec, like, k=2, which="LA")
    np.testing.assert_allclose(res.values, [5.0, 1.0], rtol=1e-12)
    assert res.matvecs == 5 + 2  # the matrix, then one explicit residual per pair
    assert res.converged.all()


def test_an_unconverged_eigenvalue_is_flagged_not_reported_as_converged():
    spectrum = np.concatenate([[1.0, 0.99], np.linspace(-1.0, 0.98, 298)])  # a nearly degenerate top
    _, matvec, like = quadratic(spectrum)
    hopeless = extreme_eigenvalues(matvec, like, k=1, which="LA", tol=1e-8, maxiter=1, ncv=6)
    assert hopeless.converged.tolist() == [False] and np.isnan(hopeless.values[0])
    # ARPACK gives up at tol; the estimate from the looser retry is kept but flagged, with a residual that
    # bounds its distance to an eigenvalue (here the top one)
    rough = extreme_eigenvalues(matvec, like, k=1, which="LA", tol=1e-3, maxiter=1, ncv=6)
    assert rough.converged.tolist() == [False]
    assert rough.residuals[0] > 10 * 1e-3 * abs(rough.values[0])
    assert abs(rough.values[0] - 1.0) <= rough.residuals[0]


# ----------------------------------------------------------------------------- logistic regression
def logistic_problem(n=50, d=10, classes=4, seed=0, fit=False):
    """A float64 softmax regression with random features; optionally trained to its (unique) minimum."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = torch.randint(0, classes, (n,), generator=gen)
    model = nn.Linear(d, classes).double()
    with torch.no_grad():
        model.weight.copy_(0.5 * torch.randn(classes, d, generator=gen, dtype=torch.float64))
        model.bias.copy_(0.1 * torch.randn(classes, generator=gen, dtype=torch.float64))
    if fit:  # random labels: not separable, so a finite minimum exists (CE is convex in W, b)
        opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=500, tolerance_grad=1e-13,
                                tolerance_change=0, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            return loss

        opt.step(closure)
        grad_norm = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
        assert grad_norm < 1e-8
    return model, x, y


def exact_hessian(model: nn.Linear, x: torch.Tensor) -> np.ndarray:
    """Σ_i (diag p_i − p_i p_iᵀ) ⊗ x̃_i x̃_iᵀ / n with x̃ = [x, 1]: the softmax-regression Hessian, up to a
    permutation of the coordinates (which leaves trace and spectrum unchanged)."""
    with torch.no_grad():
        p = F.softmax(model(x), 1).numpy()
    xt = np.hstack([x.numpy(), np.ones((len(x), 1))])
    blocks = [np.kron(np.diag(pi) - np.outer(pi, pi), np.outer(xi, xi)) for pi, xi in zip(p, xt, strict=True)]
    return np.mean(blocks, axis=0)


def test_model_hessian_trace_and_top_eigenvalue_match_softmax_regression_closed_form():
    model, x, y = logistic_problem()
    h = exact_hessian(model, x)
    exact = np.sort(np.linalg.eigvalsh(h))[::-1]
    # batch_size 16 over 50 samples: the batch-weighted HVP must equal the Hessian of the subset mean
    pp = hessian_trace(model, x, y, batch_size=16, trace_probes=99, trace_method="hutch++")
    assert pp["hessian_trace"] == pytest.approx(np.trace(h), rel=1e-9)  # 33 sketch columns >= rank 33
    hutch = hessian_trace(model, x, y, batch_size=25, trace_probes=200, seed=5)
    assert abs(hutch["hessian_trace"] - np.trace(h)) < 4 * hutch["hessian_trace_se"]
    assert hutch["hessian_trace_se"] < 0.05 * np.trace(h)
    eig = top_eigenvalues(model, x, y, batch_size=16, top_k=2, eigen_tol=1e-10, eigen_maxiter=300)
    assert eig["lambda_max"] == pytest.approx(exact[0], rel=1e-8)
    assert eig["lambda_2"] == pytest.approx(exact[1], rel=1e-8)
    assert eig["lambda_abs_max"] == pytest.approx(exact[0], rel=1e-8)  # a PSD Hessian: they coincide
    assert eig["lambda_max_converged"] == eig["lambda_2_converged"] == 1.0


def test_fisher_traces_match_per_sample_gradient_closed_form():
    model, x, y = logistic_problem(n=2000, d=5, classes=3, seed=1)
    with torch.no_grad():
        p = F.softmax(model(x), 1)
    x_sq = (x**2).sum(1) + 1.0  # ‖x̃‖² with the bias input
    # ∇_W ℓ_i = (p_i − e_{y_i}) x_iᵀ and ∇_b ℓ_i = p_i − e_{y_i}, so ‖∇ℓ_i‖² = ‖p_i − e_{y_i}‖² ‖x̃_i‖²
    per_sample = ((p - F.one_hot(y, 3)) ** 2).sum(1) * x_sq
    # with y ~ p_i: E‖p_i − e_y‖² = 1 − ‖p_i‖², the true Fisher trace
    true_fisher = float(((1 - (p**2).sum(1)) * x_sq).mean())
    out = fisher_trace(model, x, y, batch_size=300, fisher_chunk=128, seed=2)
    assert out["fisher_trace_empirical"] == pytest.approx(float(per_sample.mean()), rel=1e-12)
    expected_se = float(per_sample.std() / math.sqrt(2000))
    assert out["fisher_trace_empirical_se"] == pytest.approx(expected_se, rel=1e-9)
    assert abs(out["fisher_trace_model"] - true_fisher) < 4 * out["fisher_trace_model_se"]
    assert out["fisher_trace_model_se"] < 0.03 * true_fisher
    assert out["fisher_samples"] == 2000


def subset_loss_at(model, x, y, shift):
    with torch.no_grad():
        return float(F.cross_entropy(F.linear(x, model.weight + shift["weight"], model.bias + shift["bias"]), y))


def test_barrier_equals_max_loss_increase_along_the_seeded_directions_on_the_same_data():
    model, x, y = logistic_problem(n=40, d=4, classes=3, fit=True)
    out = loss_barrier(model, x, y, batch_size=7, seed=4, directions=5, radius=0.6, radius_steps=3)
    base = subset_loss_at(model, x, y, {"weight": 0.0, "bias": 0.0})
    params = {n: p.detach() for n, p in model.named_parameters()}
    losses = [
        subset_loss_at(model, x, y, {n: r * t for n, t in d.items()})
        for d in filter_normalized_directions(params, 5, seed=4)
        for r in (0.2, 0.4, 0.6)
    ]
    assert out["barrier"] == pytest.approx(max(losses) - base, rel=1e-12)
    assert out["barrier_relative"] == pytest.approx((max(losses) - base) / base, rel=1e-12)
    assert out["barrier"] > 0 and min(losses) >= base  # at the minimum of a convex loss nothing is below it
    assert out["barrier_nonfinite"] == 0 and out["barrier_evaluations"] == 15


def test_filter_normalized_directions_match_filter_norms_and_zero_1d_parameters():
    params = {"w": torch.randn(6, 3, 2, 2), "b": torch.randn(6)}
    d = next(filter_normalized_directions(params, 1, seed=0))
    torch.testing.assert_close(d["w"].flatten(1).norm(dim=1), params["w"].flatten(1).norm(dim=1))
    assert torch.all(d["b"] == 0)
    d1 = next(filter_normalized_directions(params, 1, seed=0, include_1d=True))
    torch.testing.assert_close(d1["w"], d["w"])  # the bias policy never shifts the random stream
    assert float(d1["b"].norm()) == pytest.approx(float(params["b"].norm()), rel=1e-6)


def test_sharpness_at_a_minimum_equals_the_best_vertex_of_the_filter_normalized_box():
    model, x, y = logistic_problem(n=40, d=2, classes=2, seed=3, fit=True)
    params = {n: p.detach() for n, p in model.named_parameters()}
    eps = 0.05
    width = filter_box(params, eps)
    torch.testing.assert_close(width["weight"][:, 0], eps * params["weight"].norm(dim=1) / math.sqrt(2))
    assert torch.all(width["bias"] == 0)
    base = subset_loss_at(model, x, y, {"weight": 0.0, "bias": 0.0})
    # CE is convex in the weights, so its maximum over the box is at one of the 2^4 vertices
    vertices = [
        subset_loss_at(model, x, y, {"weight": width["weight"] * torch.tensor(s, dtype=torch.float64).view(2, 2),
                                     "bias": torch.zeros(2, dtype=torch.float64)})
        for s in itertools.product((-1.0, 1.0), repeat=4)
    ]
    out = epsilon_sharpness(model, x, y, batch_size=16, epsilon=eps, ascent_steps=10, seed=0)
    assert min(vertices) >= base
    assert out["sharpness_absolute"] == pytest.approx(max(vertices) - base, rel=1e-9)
    assert out["sharpness"] == pytest.approx(100 * (max(vertices) - base) / (1 + base), rel=1e-9)
    assert out["sharpness_nonfinite"] == 0


def test_overflowing_losses_are_counted_and_reported_as_infinite():
    model, x, y = logistic_problem(n=20, d=3, classes=3)
    barrier = loss_barrier(model.float(), x.float(), y, directions=3, radius=1e40, radius_steps=4)
    assert barrier["barrier"] == math.inf and barrier["barrier_relative"] == math.inf
    assert barrier["barrier_nonfinite"] == 12 and barrier["barrier_evaluations"] == 12
    assert math.isfinite(barrier["barrier_base_loss"])
    sharp = epsilon_sharpness(model, x.float(), y, epsilon=1e40, ascent_steps=3)
    assert sharp["sharpness"] == math.inf and sharp["sharpness_absolute"] == math.inf
    assert sharp["sharpness_nonfinite"] == 1  # the ascent stops at the first non-finite loss


# ----------------------------------------------------------------------------- models and the runner
class AttentionHardsigmoid(nn.Module):
    """Attention plus hardsigmoid: the two things double backward cannot differentiate twice."""

    def __init__(self) -> None:
        super().__init__()
        self.qkv, self.gate, self.head = nn.Linear(8, 24), nn.Hardsigmoid(), nn.Linear(8, 3)

    def forward(self, x):
        q, k, v = self.qkv(x.view(len(x), 8, 8)).chunk(3, dim=-1)
        a = F.scaled_dot_product_attention(q, k, v)
        return self.head((a * self.gate(2 * a)).mean(1))


def test_hvp_through_attention_and_hardsigmoid_matches_finite_differences():
    torch.manual_seed(0)
    model = AttentionHardsigmoid().double()
    x, y = torch.randn(4, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    obj = make_objective(model, x, y, batch_size=3)
    theta = torch.cat([p.detach().flatten() for p in model.parameters()])
    v = torch.randn_like(theta)

    def gradient(flat):
        torch.nn.utils.vector_to_parameters(flat, model.parameters())
        model.zero_grad()
        F.cross_entropy(model(x), y).backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    h = 1e-5
    fd = (gradient(theta + h * v) - gradient(theta - h * v)) / (2 * h)
    torch.nn.utils.vector_to_parameters(theta, model.parameters())
    with measurement_mode(model):
        hv = flat_hvp(obj)(v)
    torch.testing.assert_close(hv, fd, rtol=1e-5, atol=1e-7)


def cnn_with_used_buffers():
    torch.manual_seed(0)
    model = create_model("cnn", num_classes=3, in_channels=1, image_size=8, width=0.125)
    model.train()
    with torch.no_grad():
        model(torch.randn(16, 1, 8, 8))  # non-trivial running statistics
    return model


def test_state_dict_and_modes_are_unchanged_after_every_measure():
    model = cnn_with_used_buffers()
    model.features[1].eval()  # a mixed train/eval state must come back exactly
    before = {k: v.clone() for k, v in model.state_dict().items()}
    modes = [m.training for m in model.modules()]
    ids = [id(p) for p in model.parameters()]
    x, y = torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    values, failures = measure_curvature(
        model, x, y, batch_size=4, trace_probes=2, eigen_tol=0.1, eigen_ncv=3, eigen_maxiter=1, directions=2,
        radius_steps=2, ascent_steps=2,
    )
    assert failures == {}
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [m.training for m in model.modules()] == modes
    assert [id(p) for p in model.parameters()] == ids


def test_a_failing_measure_is_recorded_and_the_others_still_run(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("per-sample gradients exploded\nsecond line")

    monkeypatch.setattr(fisher_module, "per_sample_squared_grad_norms", broken)
    model = cnn_with_used_buffers()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2, 0, 1, 2])
    values, failures = measure_curvature(model, x, y, measures=("fisher_trace", "hessian_trace"), trace_probes=4)
    assert failures == {"fisher_trace": "RuntimeError: per-sample gradients exploded"}
    assert math.isfinite(values["hessian_trace"]) and "fisher_trace_empirical" not in values
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and model.training


def test_probe_batch_changes_speed_not_the_estimate():
    model, x, y = logistic_problem(n=12, d=3, classes=3)
    one = hessian_trace(model, x, y, batch_size=5, trace_probes=7, probe_batch=1, seed=9)
    many = hessian_trace(model, x, y, batch_size=5, trace_probes=7, probe_batch=3, seed=9)
    assert one["hessian_trace"] == pytest.approx(many["hessian_trace"], rel=1e-12)
    assert one["hessian_trace_se"] == pytest.approx(many["hessian_trace_se"], rel=1e-12)
    other = hessian_trace(model, x, y, batch_size=5, trace_probes=7, probe_batch=3, seed=10)
    assert other["hessian_trace"] != many["hessian_trace"]


def test_option_and_measure_errors_name_the_parameter():
    model, x, y = logistic_problem(n=10, d=3, classes=3)
    with pytest.raises(ConfigError, match="unknown curvature option 'trace_probs'"):
        measure_curvature(model, x, y, trace_probs=3)
    with pytest.raises(ConfigError, match="unknown curvature measure 'hessian'"):
        measure_curvature(model, x, y, measures=("hessian",))
    with pytest.raises(ConfigError, match="trace_method"):
        measure_curvature(model, x, y, measures=("hessian_trace",), trace_method="exact")
    with pytest.raises(ConfigError, match="x and y must have the same length"):
        measure_curvature(model, x, y[:5], measures=("hessian_trace",))


def test_default_measures_are_all_registered():
    assert set(list_measures()) >= {"hessian_trace", "top_eigenvalues", "fisher_trace", "sharpness", "barrier"}


@pytest.mark.parametrize("arch", list_models())
def test_every_registered_architecture_gives_finite_values_for_every_measure(arch):
    """Compatibility, not accuracy: each measure runs through the architecture (attention, hardsigmoid,
    BatchNorm, ...) and gives finite numbers. The Krylov budget is tiny to keep 20 architectures fast."""
    torch.manual_seed(0)
    model = create_model(arch, num_classes=3, in_channels=1, image_size=8, width=0.125)
    x, y = torch.randn(2, 1, 8, 8) if arch_info(arch).input == "2d" else torch.randn(2, 1, 8), torch.tensor([0, 2])
    values, failures = measure_curvature(
        model, x, y, measures=list_measures(), batch_size=2, trace_probes=2, probe_batch=2, eigen_tol=0.1,
        eigen_ncv=3, eigen_maxiter=1, largest_magnitude=False, directions=1, radius_steps=1, ascent_steps=1,
    )
    assert failures == {}
    assert math.isfinite(values["hessian_trace"]) and math.isfinite(values["lambda_max"])
    assert all(math.isfinite(v) for k, v in values.items() if not k.endswith("_se")), values


@pytest.mark.parametrize("arch", ["cnn", "convnext_tiny"])
def test_global_average_pool_needs_no_vmap_fallback_and_keeps_the_hvp(arch):
    """adaptive_avg_pool2d's backward calls as_strided_, which vmap cannot batch (a slow per-sample loop
    with a warning); measurement_mode evaluates the 1x1 pool as a spatial mean. Same Hessian products as
    plain forward-over-reverse outside the mode, no fallback warning in the batched trace or the Fisher."""
    torch.manual_seed(0)
    model = create_model(arch, num_classes=3, in_channels=1, image_size=8, width=0.125).double().eval()
    x, y = torch.randn(3, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2])
    obj = make_objective(model, x, y, batch_size=3)
    v = torch.randn(obj.dim, dtype=torch.float64)
    plain = flat_hvp(obj)(v)  # the real adaptive pool (single vector: no vmap involved)
    with measurement_mode(model):
        assert torch.allclose(flat_hvp(obj)(v), plain, rtol=1e-10, atol=1e-12)
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        measure_curvature(model.float(), x.float(), y, measures=["hessian_trace", "fisher_trace"], batch_size=3,
                          trace_probes=2, probe_batch=2)
    assert not [w for w in caught if "performance drop" in str(w.message)]
