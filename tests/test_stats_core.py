"""Statistics core against independent oracles: scipy, closed forms, exact enumeration."""

from itertools import permutations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from persist.stats import rank_statistics as rs
from persist.stats.bootstrap import bootstrap_ci
from persist.stats.correlation import correlate
from persist.stats.influence import leave_one_out
from persist.stats.intervals import confidence_interval
from persist.stats.multiple import adjust_pvalues, correct_families
from persist.stats.permutation import permutation_matrix, permutation_test
from persist.stats.prediction import predict_leave_one_out
from persist.stats.regression import rank_regression, variance_inflation


def tied_data(seed: int, n: int = 14) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlated x, y, z with heavy ties, like H1 totals with several exact zeros."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n)
    x = np.round(np.maximum(0, z + rng.normal(size=n)), 1)
    y = np.round(z + 0.5 * x + rng.normal(size=n), 0)
    return x, y, z


def closed_form_partial(x, y, z):
    """r_xy.z = (r_xy - r_xz r_yz) / sqrt((1 - r_xz^2)(1 - r_yz^2)) on Spearman coefficients."""
    rxy, rxz, ryz = (stats.spearmanr(a, b)[0] for a, b in ((x, y), (x, z), (y, z)))
    return (rxy - rxz * ryz) / np.sqrt((1 - rxz**2) * (1 - ryz**2))


# --- point estimates ------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorized_statistics_match_scipy_and_closed_form(seed):
    x, y, z = tied_data(seed)
    assert rs.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0], abs=1e-12)
    assert rs.kendall(x, y) == pytest.approx(stats.kendalltau(x, y)[0], abs=1e-12)
    assert rs.partial_spearman(x, y, z) == pytest.approx(closed_form_partial(x, y, z), abs=1e-10)
    # along an axis: each row of a stacked array is its own sample
    X, Y = np.stack([x, y, z]), np.stack([y, z, x])
    expected = [stats.kendalltau(a, b)[0] for a, b in zip(X, Y, strict=True)]
    np.testing.assert_allclose(rs.kendall(X, Y, axis=-1), expected, atol=1e-12)


def test_constant_resample_is_nan_not_zero():
    assert np.isnan(rs.spearman(np.ones(5), np.arange(5.0)))
    assert np.isnan(rs.kendall(np.ones(5), np.arange(5.0)))
    assert np.isnan(rs.partial_spearman(np.ones(5), np.arange(5.0), np.array([1.0, 3, 2, 5, 4])))


@pytest.mark.parametrize("method", ["spearman", "kendall"])
def test_correlate_matches_scipy(method):
    x, y, _ = tied_data(3)
    ref = stats.spearmanr(x, y) if method == "spearman" else stats.kendalltau(x, y)
    out = correlate(x, y, method)
    assert (out.r, out.p, out.n) == (pytest.approx(ref[0], abs=1e-12), pytest.approx(ref[1], rel=1e-9), 14)


def test_partial_correlate_matches_closed_form_and_t_test():
    x, y, z = tied_data(4)
    out = correlate(x, y, "partial_spearman", (z,))
    r = closed_form_partial(x, y, z)
    p = 2 * stats.t.sf(abs(r) * np.sqrt((14 - 3) / (1 - r**2)), df=14 - 3)
    assert out.r == pytest.approx(r, abs=1e-10)
    assert out.p == pytest.approx(p, rel=1e-6)


# --- permutation tests ------------------------------------------------------------------------


def exact_permutation_p(x, y):
    """Two-sided p over all n! relabellings of y (the observed one included)."""
    r = abs(stats.spearmanr(x, y)[0])
    null = [abs(stats.spearmanr(x, y[list(perm)])[0]) for perm in permutations(range(len(y)))]
    return np.mean(np.array(null) >= r - 1e-12)


def test_permutation_p_matches_exact_enumeration():
    x = np.array([1.0, 2, 3, 4, 5, 6])
    y = np.array([2.0, 1, 4, 3, 6, 5])
    exact = exact_permutation_p(x, y)  # 0.0167 (12 of 720)
    mc = permutation_test("spearman", x, y, n_permutations=20_000, seed=1).p
    assert mc == pytest.approx(exact, abs=4 * np.sqrt(exact * (1 - exact) / 20_000) + 1e-4)


@pytest.mark.parametrize("method", ["spearman", "kendall", "partial_spearman"])
def test_planted_monotone_effect_gives_the_smallest_possible_p(method):
    rng = np.random.default_rng(0)
    x = rng.normal(size=14)
    z = (rng.normal(size=14),) if method == "partial_spearman" else ()
    test = permutation_test(method, x, x**3, z, n_permutations=999, seed=0)
    assert test.p == pytest.approx(1 / 1000)  # p = (0 + 1)/(B + 1): never 0
    assert test.statistic == pytest.approx(1.0)


def test_observed_statistics_equal_the_point_estimates():
    x, y, z = tied_data(5)
    for method, cov in (("spearman", ()), ("kendall", ()), ("partial_spearman", (z,))):
        assert permutation_test(method, x, y, cov, n_permutations=10).statistic == pytest.approx(
            correlate(x, y, method, cov).r, abs=1e-10)


def null_rejection_rate(method: str, n_datasets: int = 200) -> float:
    rejections = 0
    for seed in range(n_datasets):
        rng = np.random.default_rng(1000 + seed)
        z = rng.normal(size=14)
        if method == "partial_spearman":
            # x and y both driven by z, independent given z: marginally correlated, partially null
            x, y, cov = z + 0.5 * rng.normal(size=14), z + 0.5 * rng.normal(size=14), (z,)
        else:
            x, y, cov = np.round(rng.exponential(size=14), 1), rng.normal(size=14), ()
        rejections += permutation_test(method, x, y, cov, n_permutations=499, seed=seed).p < 0.05
    return rejections / n_datasets


@pytest.mark.parametrize("method", ["spearman", "kendall", "partial_spearman"])
def test_null_p_values_reject_at_the_nominal_rate(method):
    low, high = stats.binom.interval(0.999, 200, 0.05)
    assert low / 200 <= null_rejection_rate(method) <= high / 200


def test_permutation_matrix_is_seeded_and_shared():
    a, b = permutation_matrix(14, 50, seed=3), permutation_matrix(14, 50, seed=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.sort(a, axis=1), np.tile(np.arange(14), (50, 1)))
    x, y, _ = tied_data(6)
    assert permutation_test("spearman", x, y, permutations=a).p == permutation_test(
        "spearman", x, y, n_permutations=50, seed=3).p


# --- bootstrap --------------------------------------------------------------------------------


def test_bootstrap_percentile_interval_equals_a_scipy_loop_on_the_same_resamples():
    x, y, _ = tied_data(7)
    ours = bootstrap_ci("spearman", x, y, n_bootstrap=400, seed=11, ci_method="percentile")
    idx = np.random.default_rng(11).integers(0, 14, size=(400, 14))  # the resamples bootstrap_ci draws
    loop = [stats.spearmanr(x[i], y[i])[0] for i in idx]
    assert (ours.low, ours.high) == pytest.approx(tuple(np.nanquantile(loop, [0.025, 0.975])), abs=1e-12)
    assert ours.method == "percentile" and ours.undefined_share == np.mean(np.isnan(loop))


def test_bca_matches_scipy_when_no_resample_is_undefined():
    rng = np.random.default_rng(8)
    x = rng.normal(size=20)
    y = x + rng.normal(size=20)
    ours = bootstrap_ci("spearman", x, y, n_bootstrap=20_000, seed=0)
    ref = stats.bootstrap((x, y), lambda a, b, axis=-1: rs.spearman(a, b, axis=axis), paired=True,
                          vectorized=True, n_resamples=20_000, method="BCa", rng=np.random.default_rng(1))
    assert ours.method == "bca" and ours.undefined_share == 0
    assert (ours.low, ours.high) == pytest.approx(tuple(ref.confidence_interval), abs=0.02)  # Monte Carlo error


def test_paired_bootstrap_keeps_a_strong_association():
    rng = np.random.default_rng(8)
    x = rng.normal(size=20)
    y = x + 0.3 * rng.normal(size=20)
    r = stats.spearmanr(x, y)[0]
    ci = bootstrap_ci("spearman", x, y, n_bootstrap=1000, seed=0)
    assert 0.6 < ci.low < r < ci.high <= 1.0  # an unpaired resample would centre near 0


def test_a_perfect_correlation_gets_no_interval_rather_than_a_degenerate_one():
    x = np.arange(14.0)
    ci = bootstrap_ci("spearman", x, 2 * x, n_bootstrap=200, seed=0)
    assert (ci.low, ci.high, ci.method) == (1.0, 1.0, "bca")  # every resample is +1
    policy = confidence_interval("spearman", x, 2 * x, n_bootstrap=200)
    assert policy.method == "none" and np.isnan(policy.low) and "|r| = 1" in policy.note


# --- corrections ------------------------------------------------------------------------------


def test_corrections_match_hand_computed_values():
    p = np.array([0.01, 0.02, 0.04, 0.3])
    np.testing.assert_allclose(adjust_pvalues(p, "bonferroni"), [0.04, 0.08, 0.16, 1.0])
    np.testing.assert_allclose(adjust_pvalues(p, "holm"), [0.04, 0.06, 0.08, 0.3])
    np.testing.assert_allclose(adjust_pvalues(p, "fdr_bh"), [0.04, 0.04, 0.04 * 4 / 3, 0.3])
    # an undefined test counts as p = 1: the family keeps its declared size
    np.testing.assert_allclose(adjust_pvalues(np.array([0.01, np.nan, 0.02]), "bonferroni"), [0.03, np.nan, 0.06])
    np.testing.assert_allclose(adjust_pvalues(np.array([0.01, np.nan, 0.02]), "holm"), [0.03, np.nan, 0.04])


def test_corrections_stay_within_each_family():
    res = pd.DataFrame({"family": ["a", "a", "b", "", "b"], "p_perm": [0.01, 0.04, 0.03, 0.001, 0.02]})
    out = correct_families(res, "p_perm", ("holm", "bonferroni"))
    np.testing.assert_allclose(out["p_bonferroni"], [0.02, 0.08, 0.06, np.nan, 0.04])
    np.testing.assert_allclose(out["p_holm"], [0.02, 0.04, 0.04, np.nan, 0.04])  # b: max(2*0.02, 0.03)


# --- influence, regression, VIF ---------------------------------------------------------------


def test_leave_one_out_matches_a_scipy_loop():
    x, y, _ = tied_data(9)
    labels = np.array([f"m{i}" for i in range(14)])
    infl = leave_one_out(x, y, labels, "spearman", alpha=0.05)
    loop = [stats.spearmanr(np.delete(x, i), np.delete(y, i)) for i in range(14)]
    np.testing.assert_allclose(infl.folds["r"], [r[0] for r in loop], atol=1e-12)
    full = stats.spearmanr(x, y)[0]
    assert infl.most_influential == labels[np.argmax([abs(r[0] - full) for r in loop])]
    assert infl.n_significant == sum(r[1] < 0.05 for r in loop)


def test_vif_is_the_diagonal_of_the_inverse_correlation_matrix():
    rng = np.random.default_rng(10)
    a = rng.normal(size=(30, 3)) @ np.array([[1, 0.6, 0.2], [0, 1, 0.5], [0, 0, 1]])
    np.testing.assert_allclose(variance_inflation(a), np.diag(np.linalg.inv(np.corrcoef(a, rowvar=False))), rtol=1e-9)
    x, y, _ = tied_data(11)
    rho = stats.spearmanr(x, y)[0]
    ranks = np.column_stack([stats.rankdata(x), stats.rankdata(y)])
    assert variance_inflation(ranks)[0] == pytest.approx(1 / (1 - rho**2))


def test_rank_regression_matches_least_squares_on_ranks():
    x, y, z = tied_data(12)
    table = pd.DataFrame({"x": x, "z": z, "y": y})
    table.loc[3, "z"] = np.nan  # dropped for this model only
    fit = rank_regression(table, "y", ("x", "z")).set_index("term")
    data = table.dropna()
    design = np.column_stack([np.ones(13), stats.rankdata(data["x"]), stats.rankdata(data["z"])])
    target = stats.rankdata(data["y"])
    beta, *_ = np.linalg.lstsq(design, target, rcond=None)
    resid = target - design @ beta
    se = np.sqrt(np.diag(np.linalg.inv(design.T @ design)) * (resid @ resid) / (13 - 3))
    np.testing.assert_allclose(fit.loc[["Intercept", "x", "z"], "coef"], beta, rtol=1e-9)
    np.testing.assert_allclose(fit.loc[["x", "z"], "p"], 2 * stats.t.sf(np.abs(beta / se)[1:], 10), rtol=1e-6)
    assert fit["r2"].iloc[0] == pytest.approx(1 - resid @ resid / np.sum((target - target.mean()) ** 2))
    assert fit["n"].iloc[0] == 13


# --- prediction -------------------------------------------------------------------------------


def closed_form_loo_ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    """Leave-one-out predictions of ridge on standardized features with an unpenalized intercept."""
    out = np.empty_like(y)
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        mu, sd = x[keep].mean(0), x[keep].std(0)
        xs = (x[keep] - mu) / sd
        beta = np.linalg.solve(xs.T @ xs + alpha * np.eye(x.shape[1]), xs.T @ (y[keep] - y[keep].mean()))
        out[i] = y[keep].mean() + ((x[i] - mu) / sd) @ beta
    return out


def test_loao_prediction_matches_closed_form_ridge_and_the_intercept_floor():
    rng = np.random.default_rng(13)
    n = 14
    table = pd.DataFrame({"arch": [f"a{i}" for i in range(n)], "f1": rng.normal(size=n), "f2": rng.normal(size=n)})
    table["y"] = 2 * table["f1"] + 0.3 * rng.normal(size=n)
    res = predict_leave_one_out(table, "y", {"both": ("f1", "f2"), "noise": ("f2",)}, "arch",
                                alphas=(3.0,), transform="standard")
    expected = closed_form_loo_ridge(table[["f1", "f2"]].to_numpy(), table["y"].to_numpy(), 3.0)
    np.testing.assert_allclose(res.predictions["both"], expected, rtol=1e-8)
    scores = res.scores.set_index("model")
    assert scores.loc["intercept_only", "r2"] == pytest.approx(1 - (n / (n - 1)) ** 2)
    assert scores.loc["both", "r2"] > 0.8 > scores.loc["noise", "r2"]
    assert scores.loc["both", "n"] == n


def test_loao_holds_out_every_row_of_an_architecture():
    rng = np.random.default_rng(14)
    table = pd.DataFrame({"arch": np.repeat([f"a{i}" for i in range(6)], 2), "f": rng.normal(size=12)})
    table["y"] = table["f"] + 0.1 * rng.normal(size=12)
    res = predict_leave_one_out(table, "y", {"f": ("f",)}, "arch", alphas=(1.0,), transform="standard")
    # with both rows of a group held out, the prediction for a row is the same as a fit without its twin
    twin_out = closed_form_loo_ridge_groups(table, 1.0)
    np.testing.assert_allclose(res.predictions["f"], twin_out, rtol=1e-8)


def closed_form_loo_ridge_groups(table: pd.DataFrame, alpha: float) -> np.ndarray:
    out = np.empty(len(table))
    for g in table["arch"].unique():
        test = (table["arch"] == g).to_numpy()
        x, y = table["f"].to_numpy()[:, None], table["y"].to_numpy()
        mu, sd = x[~test].mean(0), x[~test].std(0)
        xs = (x[~test] - mu) / sd
        beta = np.linalg.solve(xs.T @ xs + alpha * np.eye(1), xs.T @ (y[~test] - y[~test].mean()))
        out[test] = y[~test].mean() + ((x[test] - mu) / sd) @ beta
    return out


@pytest.mark.parametrize("method", ["kendall", "partial_spearman"])
def test_leave_one_out_matches_pingouin_per_fold(method):
    x, y, z = tied_data(15)
    cov = (z,) if method == "partial_spearman" else ()
    infl = leave_one_out(x, y, np.arange(14), method, cov)
    for i in (0, 5, 13):
        keep = np.arange(14) != i
        ref = correlate(x[keep], y[keep], method, tuple(c[keep] for c in cov))
        assert infl.folds["r"][i] == pytest.approx(ref.r, abs=1e-10)
        assert infl.folds["p"][i] == pytest.approx(ref.p, rel=1e-6)


def test_partial_tests_are_reported_not_run_when_a_covariate_is_missing():
    from persist.stats import run_analysis, spec_from_dict

    rng = np.random.default_rng(0)
    table = pd.DataFrame({"arch": [f"a{i}" for i in range(8)], "h1": rng.normal(size=8), "ret": rng.normal(size=8)})
    spec = spec_from_dict({"label": "arch", "predictors": ["h1"], "outcomes": ["ret"], "covariates": ["params"],
                           "methods": ["spearman", "partial_spearman"], "missing_columns": "skip",
                           "n_permutations": 99, "n_bootstrap": 50})
    res = run_analysis(table, spec).results.set_index("method")
    assert list(res.index) == ["spearman", "partial_spearman"]
    assert np.isfinite(res.loc["spearman", "r"]) and np.isnan(res.loc["partial_spearman", "r"])
    assert res.loc["partial_spearman", "note"] == "not run: column(s) params not in the table"
