"""Statistics that hold at small n: the partial estimator's sign and definedness, the interval
policy, ties, undefined tests in their families, seeds, uninformative prediction models and
the console headline. Oracles: scipy, statsmodels, closed forms and constructed tables."""

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from persist.stats import headline_table, run_analysis, spec_from_dict
from persist.stats import rank_statistics as rs
from persist.stats.bootstrap import bootstrap_distribution, jackknife
from persist.stats.correlation import correlate
from persist.stats.influence import leave_one_out
from persist.stats.intervals import confidence_interval, confidence_intervals, fisher_z_interval
from persist.stats.permutation import permutation_test
from persist.stats.prediction import predict_leave_one_out

ROOT = Path(__file__).resolve().parents[1]


# --- partial Spearman: one estimator for point, permutation, bootstrap and leave-one-out ---------


@pytest.mark.parametrize("n", range(5, 21))
@pytest.mark.parametrize("sign", [1, -1])
def test_perfectly_concordant_partials_are_plus_one_and_discordant_minus_one(n, sign):
    rng = np.random.default_rng(n)
    x, z = rng.normal(size=n), rng.normal(size=n)
    y = sign * np.exp(x)  # a monotone function of x: ranks identical (or reversed)
    assert correlate(x, y, "partial_spearman", (z,)).r == pytest.approx(sign)
    assert permutation_test("partial_spearman", x, y, (z,), n_permutations=20).statistic == pytest.approx(sign)
    folds = leave_one_out(x, y, np.arange(n), "partial_spearman", (z,)).folds["r"].to_numpy()
    assert np.allclose(folds[np.isfinite(folds)], sign) and np.isfinite(folds).sum() >= n - 1
    dist = bootstrap_distribution("partial_spearman", x, y, (z,), n_bootstrap=200, seed=n)
    assert np.allclose(dist[np.isfinite(dist)], sign)  # no resample flips the sign


def test_concordant_partial_with_two_covariates_and_ties():
    x = np.array([0, 0, 1, 2, 3, 4, 5, 6, 7, 8.0])
    z1, z2 = np.array([3, 1, 4, 1, 5, 9, 2, 6, 5, 3.0]), np.arange(10.0) % 3
    assert rs.partial_spearman(x, 10 * x + 1, z1, z2) == pytest.approx(1.0)


def test_a_response_monotone_in_the_covariate_gives_nan_with_the_reason():
    rng = np.random.default_rng(0)
    x, z = rng.normal(size=9), rng.normal(size=9)
    y = z**3  # y's ranks are z's ranks: nothing is left after removing z
    out = correlate(x, y, "partial_spearman", (z,))
    assert np.isnan(out.r) and np.isnan(out.p) and "outcome's ranks are a linear function" in out.note
    assert np.isnan(permutation_test("partial_spearman", x, y, (z,), n_permutations=20).p)
    assert np.isnan(rs.partial_spearman(x, y, z)) and np.isnan(rs.partial_spearman(y, x, z))


@pytest.mark.parametrize("k", [1, 2])
def test_partial_agrees_with_statsmodels_ols_residuals(k):
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    x, y, *zs = np.round(rng.normal(size=(2 + k, 12)), 1)
    design = sm.add_constant(np.column_stack([stats.rankdata(z) for z in zs]))
    ex = sm.OLS(stats.rankdata(x), design).fit().resid
    ey = sm.OLS(stats.rankdata(y), design).fit().resid
    assert rs.partial_spearman(x, y, *zs) == pytest.approx(np.corrcoef(ex, ey)[0, 1], abs=1e-12)


def test_midranks_equal_scipy_along_any_axis():
    a = np.random.default_rng(1).integers(0, 4, size=(6, 9)).astype(float)
    for axis in (0, 1, -1):
        np.testing.assert_array_equal(rs.rankdata(a, axis=axis), stats.rankdata(a, axis=axis))


# --- interval policy ---------------------------------------------------------------------------


def test_fisher_z_interval_uses_the_bonett_wright_standard_error():
    r, n = 0.5, 9
    half = stats.norm.ppf(0.975) * np.sqrt((1 + r**2 / 2) / (n - 3))
    iv = fisher_z_interval(r, n, "spearman")
    assert (iv.low, iv.high, iv.method) == (pytest.approx(np.tanh(np.arctanh(r) - half)),
                                            pytest.approx(np.tanh(np.arctanh(r) + half)), "fisher_z")
    partial = fisher_z_interval(r, n + 1, "partial_spearman", n_covariates=2)  # df reduced by the covariates
    assert partial.high == pytest.approx(np.tanh(np.arctanh(r) + stats.norm.ppf(0.975) * np.sqrt(1.125 / 5)))
    kendall = fisher_z_interval(0.3, 10, "kendall")
    assert kendall.low == pytest.approx(np.tanh(np.arctanh(0.3) - stats.norm.ppf(0.975) * np.sqrt(0.437 / 6)))
    assert fisher_z_interval(0.3, 10, "kendall", tied=True).method == "none"
    assert fisher_z_interval(0.3, 9, "kendall").method == "none"  # tau is too coarse below n = 10
    assert fisher_z_interval(1.0, n, "spearman").method == "none"


def test_with_four_or_fewer_df_the_spearman_interval_uses_fiellers_constant_variance():
    r = 0.7
    for n, k in ((7, 0), (7, 1), (8, 1)):  # df = 4, 3, 4
        half = stats.norm.ppf(0.975) * np.sqrt(1.06 / (n - 3 - k))
        iv = fisher_z_interval(r, n, "partial_spearman" if k else "spearman", n_covariates=k)
        assert (iv.low, iv.high) == (pytest.approx(np.tanh(np.arctanh(r) - half)),
                                     pytest.approx(np.tanh(np.arctanh(r) + half)))
    bw = fisher_z_interval(r, 8, "spearman")  # df = 5: Bonett-Wright
    assert bw.high == pytest.approx(np.tanh(np.arctanh(r) + stats.norm.ppf(0.975) * np.sqrt((1 + r * r / 2) / 5)))


def test_fisher_z_comes_first_and_the_bootstrap_serves_tied_kendall():
    rng = np.random.default_rng(4)
    x = rng.normal(size=14)
    y = x + rng.normal(size=14)
    for method, r in (("spearman", stats.spearmanr(x, y)[0]), ("kendall", stats.kendalltau(x, y)[0])):
        iv = confidence_interval(method, x, y, n_bootstrap=500)
        reference = fisher_z_interval(r, 14, method)
        assert (iv.method, iv.note) == ("fisher_z", "") and np.isnan(iv.undefined_share)
        assert (iv.low, iv.high) == pytest.approx((reference.low, reference.high))
    tied = confidence_interval("kendall", np.round(x), np.round(y), n_bootstrap=500)
    assert tied.method == "bca" and tied.low <= stats.kendalltau(np.round(x), np.round(y))[0] <= tied.high
    assert tied.note == "Kendall's Fisher z standard error assumes no ties" and 0 <= tied.undefined_share < 0.05


def test_small_n_without_a_fisher_z_interval_gets_none_and_says_why():
    rng = np.random.default_rng(2)
    x = np.round(rng.normal(size=7))
    iv = confidence_interval("kendall", x, x + np.round(rng.normal(size=7)), n_bootstrap=500)
    assert iv.method == "none" and iv.note.endswith("; no bootstrap: n = 7 < 12")


def test_many_undefined_resamples_forbid_the_bootstrap():
    # 12 rows, x nonzero in two: a resample that draws neither is constant in x (undefined)
    x = np.array([0.0] * 10 + [1.0, 2.0])
    y = np.arange(12.0)
    iv = confidence_interval("kendall", x, y, n_bootstrap=2000)  # tied Kendall: no Fisher z, so the bootstrap
    assert iv.undefined_share == pytest.approx((10 / 12) ** 12, abs=0.02)  # no nonzero x drawn: 11.2%
    assert iv.method == "none" and "no bootstrap: 1" in iv.note and "of resamples undefined (>= 5%)" in iv.note


def test_large_tied_samples_use_the_declared_bootstrap_method():
    rng = np.random.default_rng(4)
    x = np.round(rng.normal(size=30))
    y = np.round(x + rng.normal(size=30))
    assert confidence_interval("kendall", x, y, n_bootstrap=500).method == "bca"
    assert confidence_interval("kendall", x, y, n_bootstrap=500, ci_method="percentile").method == "percentile"
    iv = confidence_interval("kendall", x, y, n_bootstrap=500)
    assert iv.undefined_share == 0


def test_batched_intervals_equal_one_table_at_a_time():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(2, 4, 14))
    batch = confidence_intervals("spearman", x, y, n_bootstrap=300, seed=3)
    single = [confidence_interval("spearman", a, b, n_bootstrap=300, seed=3) for a, b in zip(x, y, strict=True)]
    assert batch == single


def test_jackknife_equals_a_loop():
    x, y, z = np.random.default_rng(6).normal(size=(3, 8))
    loop = [rs.partial_spearman(np.delete(x, i), np.delete(y, i), np.delete(z, i)) for i in range(8)]
    np.testing.assert_allclose(jackknife("partial_spearman", x, y, (z,)), loop, atol=1e-12)


def random_tables(rng, count, n, tied):
    z = rng.normal(size=(count, n))
    x = z * rng.uniform(-1, 1, size=(count, 1)) + rng.normal(size=(count, n))
    y = x * rng.uniform(-2, 2, size=(count, 1)) + rng.normal(size=(count, n))
    if tied:
        x, y, z = (np.round(v * rng.uniform(0.3, 1.5)) for v in (x, y, z))
        x = np.where(rng.random((count, n)) < 0.3, 0.0, x)  # many exact zeros, like H1 totals
    return x, y, z


def test_no_reported_interval_excludes_its_point_estimate_over_10000_tables():
    rng = np.random.default_rng(7)
    checked = {}
    sizes = range(5, 21)
    per_cell = 10_000 // (len(sizes) * 2 * 3) + 1  # >= 10,000 tables over n, ties and methods
    for n in sizes:
        for tied in (False, True):
            for method in ("spearman", "kendall", "partial_spearman"):
                x, y, z = random_tables(rng, per_cell, n, tied)
                cov = (z,) if method == "partial_spearman" else ()
                r = rs.STATISTICS[method](x, y, *cov)
                ok = np.isfinite(r)
                ivs = confidence_intervals(method, x[ok], y[ok], tuple(c[ok] for c in cov), estimates=r[ok],
                                           n_bootstrap=40, seed=n)
                for ri, iv in zip(r[ok], ivs, strict=True):
                    checked[iv.method] = checked.get(iv.method, 0) + 1
                    if iv.method != "none":
                        assert iv.low <= ri + 1e-12 and ri - 1e-12 <= iv.high, (n, tied, method, ri, iv)
                        assert -1 <= iv.low <= iv.high <= 1
                    else:
                        assert np.isnan(iv.low) and iv.note
    assert sum(checked.values()) >= 9_500 and {"bca", "fisher_z", "none"} <= set(checked)


# --- ties, undefined tests and families ------------------------------------------------------


def table_with(**columns):
    n = len(next(iter(columns.values())))
    return pd.DataFrame({"arch": [f"a{i}" for i in range(n)], **columns})


def test_a_variable_with_n_minus_2_ties_is_not_testable_and_counts_as_p_1():
    rng = np.random.default_rng(8)
    n = 10
    y = rng.normal(size=n)
    table = table_with(good=y + 0.3 * rng.normal(size=n), tied=np.r_[np.zeros(n - 2), 1.0, 2.0],
                       flat=np.ones(n), y=y)
    spec = spec_from_dict({"predictors": ["good", "tied", "flat"], "outcomes": ["y"], "methods": ["spearman"],
                           "families": {"f": {}}, "corrections": ["holm", "bonferroni"], "n_permutations": 999,
                           "n_bootstrap": 0})
    res = run_analysis(table, spec).results.set_index("predictor")
    assert res.loc["tied", "note"] == "not testable: 8 of 10 values of the predictor are tied (>= n - 2)"
    assert res.loc["flat", "note"] == "undefined: the predictor is constant"
    assert np.isnan(res.loc["tied", "r"]) and np.isnan(res.loc["flat", "p_perm"])
    # the family keeps its three declared tests: Bonferroni multiplies by 3, not 1
    assert res.loc["good", "p_bonferroni"] == pytest.approx(min(1.0, 3 * res.loc["good", "p_perm"]))
    assert res.loc["good", "p_holm"] == pytest.approx(min(1.0, 3 * res.loc["good", "p_perm"]))


def test_tests_below_min_n_count_in_their_family():
    rng = np.random.default_rng(9)
    table = table_with(a=rng.normal(size=8), b=np.r_[rng.normal(size=3), [np.nan] * 5], y=rng.normal(size=8))
    spec = spec_from_dict({"predictors": ["a", "b"], "outcomes": ["y"], "methods": ["spearman"],
                           "families": {"f": {}}, "corrections": ["bonferroni"], "n_permutations": 99,
                           "n_bootstrap": 0})
    res = run_analysis(table, spec).results.set_index("predictor")
    assert res.loc["b", "note"] == "n < min_n (5)"
    assert res.loc["a", "p_bonferroni"] == pytest.approx(min(1.0, 2 * res.loc["a", "p_perm"]))


# --- seeds ----------------------------------------------------------------------------------------


def seeded_table(n_arch=12, seeds=3, noise=0.3, seed=10):
    rng = np.random.default_rng(seed)
    arch_x = rng.normal(size=n_arch)
    arch_y = arch_x + 0.8 * rng.normal(size=n_arch)
    rows = [{"arch": f"a{i}", "seed": s, "x": arch_x[i] + noise * rng.normal(), "y": arch_y[i] + noise * rng.normal(),
             "z": float(i % 4)}
            for i in range(n_arch) for s in range(seeds)]
    return pd.DataFrame(rows)


def test_seed_noise_widens_the_interval_through_the_architecture_means():
    """The same architecture effects with noisier seeds: the means scatter more, so the interval widens."""
    kw = {"n_bootstrap": 1000, "seed": 0}
    widths = []
    for noise in (0.0, 1.5):
        means = seeded_table(noise=noise).groupby("arch")[["x", "y"]].mean()
        iv = confidence_interval("spearman", means["x"].to_numpy(), means["y"].to_numpy(), **kw)
        assert iv.method == "fisher_z"
        widths.append(iv.high - iv.low)
    assert widths[1] > widths[0]


def test_seeded_tables_get_intervals_of_the_means_and_a_mixed_model_check():
    import statsmodels.formula.api as smf

    table = seeded_table()
    spec = spec_from_dict({"predictors": ["x"], "outcomes": ["y"], "covariates": ["z"],
                           "methods": ["spearman", "partial_spearman"], "n_permutations": 199,
                           "n_bootstrap": 500, "primary": [{"predictor": "x", "outcome": "y"}]})
    result = run_analysis(table, spec)
    row = result.results.query("method == 'spearman'").iloc[0]
    means = table.groupby("arch")[["x", "y"]].mean()
    assert row.n == 12 and row.r == pytest.approx(stats.spearmanr(means["x"], means["y"])[0])
    assert row.ci_method == "fisher_z" and row.ci_low <= row.r <= row.ci_high
    ordered = table.groupby("arch", sort=False)[["x", "y"]].mean()  # the analysis keeps first-seen order
    alone = confidence_interval("spearman", ordered["x"].to_numpy(), ordered["y"].to_numpy(), n_bootstrap=500, seed=0)
    assert (row.ci_low, row.ci_high) == pytest.approx((alone.low, alone.high))  # the interval of the 12 means
    assert result.rows_per_label == 3
    mixed = result.mixed.iloc[0]
    ranks = table.assign(rx=table["x"].rank(), ry=table["y"].rank())
    ref = smf.mixedlm("ry ~ rx", ranks, groups=ranks["arch"]).fit(reml=True)
    assert (mixed.n_rows, mixed.n_groups) == (36, 12)
    assert mixed.coef == pytest.approx(ref.params["rx"], rel=1e-4) and mixed.p == pytest.approx(ref.pvalues["rx"],
                                                                                                 rel=1e-3)


# --- prediction -------------------------------------------------------------------------------------


def test_a_model_that_predicts_like_intercept_only_is_not_scored():
    rng = np.random.default_rng(11)
    table = table_with(f=rng.normal(size=10), zero=np.zeros(10))
    table["y"] = table["f"] + 0.2 * rng.normal(size=10)
    res = predict_leave_one_out(table, "y", {"f": ("f",), "zero": ("zero",)}, "arch", alphas=(1.0,),
                                transform="standard")
    scores = res.scores.set_index("model")
    np.testing.assert_allclose(res.predictions["zero"], res.predictions["intercept_only"])
    assert np.isnan(scores.loc["zero", "spearman"]) and np.isnan(scores.loc["zero", "r2"])
    assert "equal intercept-only" in scores.loc["zero", "note"]
    assert scores.loc["f", "spearman"] > 0.8 and scores.loc["f", "note"] == ""


def test_missing_target_regression_and_model_columns_are_reported():
    rng = np.random.default_rng(12)
    table = table_with(x=rng.normal(size=8), y=rng.normal(size=8))
    spec = spec_from_dict({"predictors": ["x", "w"], "outcomes": ["y", "t"], "methods": ["spearman"],
                           "missing_columns": "skip", "n_permutations": 99, "n_bootstrap": 0,
                           "regressions": [{"outcome": "y", "predictors": ["x", "w"]}],
                           "prediction": {"target": "t", "models": {"m": ["x"]}}})
    res = run_analysis(table, spec)
    assert res.prediction is None and any("target 't' is not in the table" in n for n in res.notes)
    assert any("Regression y ~ x + w not run" in n for n in res.notes)
    assert len(res.results) == 4 and (res.results["note"] != "").sum() == 3  # every declared test is a row
    spec2 = spec_from_dict({"predictors": ["x", "w"], "outcomes": ["y"], "methods": ["spearman"],
                            "missing_columns": "skip", "n_permutations": 99, "n_bootstrap": 0,
                            "prediction": {"target": "y", "models": {"m": ["x"], "mw": ["x", "w"]}}})
    res2 = run_analysis(table, spec2)
    assert any("model 'mw' not run" in n for n in res2.notes)
    assert set(res2.prediction.scores["model"]) == {"intercept_only", "m"}


# --- headline and layering ----------------------------------------------------------------------


def test_headline_starts_with_the_declared_primary_hypotheses_and_intervals_hold_their_estimates():
    rng = np.random.default_rng(13)
    n = 7
    params = rng.normal(size=n)
    table = table_with(params=params, h1=np.r_[np.zeros(3), rng.random(4)], mean_loss=rng.normal(size=n),
                       ret=params + rng.normal(size=n))
    spec = spec_from_dict({"predictors": ["mean_loss", "h1", "params"], "outcomes": ["ret"], "covariates": ["params"],
                           "n_permutations": 199, "n_bootstrap": 200,
                           "primary": [{"predictor": "h1", "outcome": "ret", "method": "partial_spearman"}]})
    result = run_analysis(table, spec)
    lines = headline_table(result).splitlines()
    assert lines[0] == "Primary hypotheses (declared in the spec):" and "h1" in lines[2] and "rho_partial" in lines[2]
    assert lines[4] == "Other tests (Spearman, all rows):" and "mean_loss" in lines[6]
    res = result.results
    shown = res[np.isfinite(res["ci_low"])]
    assert ((shown["ci_low"] <= shown["r"] + 1e-12) & (shown["r"] <= shown["ci_high"] + 1e-12)).all()
    assert set(res["ci_method"]) <= {"fisher_z", "none"}  # n = 7: no bootstrap interval


def test_the_statistics_library_imports_no_plotting():
    for path in (ROOT / "persist" / "stats").glob("*.py"):
        tree = ast.parse(path.read_text())
        modules = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        modules |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        assert not [m for m in modules if m.startswith(("persist.plots", "matplotlib"))], path.name
