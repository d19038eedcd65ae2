"""Analysis specs and table preparation: loading, one-line errors, per-test missing values."""

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from persist.errors import ConfigError, DataError
from persist.stats import AnalysisSpec, load_spec, run_analysis, spec_from_dict
from persist.stats.table import prepare_table, ties

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["persist.yaml", "persist-published.yaml"])
def test_shipped_specs_load(name):
    spec = load_spec(ROOT / "analysis" / name)
    assert spec.n_permutations == 10_000 and "h1_total" in spec.predictors and "ret@100" in spec.outcomes
    assert spec.family_of("h1_total", "ret@100", "spearman", "all") == "topology"
    assert spec.family_of("h1_total", "ret@100", "kendall", "all") == ""


def test_persist_spec_maps_tracking_metric_names():
    spec = load_spec(ROOT / "analysis" / "persist.yaml")
    assert spec.columns["topology/h1_total_above_eps_mean"] == "h1_total"  # above the noise floor
    assert spec.columns["topology/h0_total_above_eps_mean"] == "h0_total"
    assert spec.columns["curvature/fisher_trace_model"] == "fisher_trace"  # model-sampled: the curvature
    assert spec.columns["curvature/fisher_trace_empirical"] == "fisher_trace_empirical"
    first = spec.primary[0]
    assert (first.predictor, first.outcome, first.method) == ("h1_total", "ret@100", "partial_spearman")
    assert spec.columns["forgetting/ret_100"] == "ret@100"
    assert spec.columns["model/num_params"] == "params"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"predictors": ["a"], "outcomes": ["b"], "n_permutation": 5}, "unknown key 'n_permutation'"),
        ({"predictors": ["a"], "outcomes": ["b"], "families": {"f": {"predictor": ["a"]}}},
         "unknown key 'predictor' in family 'f'"),
        ({"predictors": ["a"], "outcomes": ["b"], "methods": ["pearson"]}, "'methods' must be one of"),
        ({"predictors": ["a"], "outcomes": ["b"], "methods": ["partial_spearman"]},
         "partial_spearman but 'covariates' is empty"),
        ({"predictors": ["a"], "outcomes": ["b"], "methods": ["spearman"], "n_permutations": 0}, "'n_permutations'"),
        ({"predictors": ["a"], "outcomes": ["b"], "methods": ["spearman"], "n_permutations": "many"},
         "'n_permutations' must be int"),
        ({"predictors": ["a"], "outcomes": ["b"], "methods": ["spearman"], "families": {"f": {"predictors": ["c"]}}},
         "family 'f' names unknown predictor 'c'"),
        ({"outcomes": ["b"]}, "needs 'predictors'"),
        ({"predictors": ["a"], "outcomes": ["a"], "methods": ["spearman"]}, "share 'a'"),
        ({"predictors": ["a"], "outcomes": ["b"], "methods": ["spearman"], "prediction": {"target": "b"}},
         "needs 'target' and 'models'"),
        ({"predictors": ["a"], "outcomes": ["b"], "methods": ["spearman"], "primary": [{"predictor": "c",
                                                                                       "outcome": "b"}]},
         "primary[0] names undeclared predictor 'c'"),
        ({"predictors": ["a"], "outcomes": ["b"], "methods": ["spearman"],
          "primary": [{"predictor": "a", "outcome": "b", "method": "kendall"}]},
         "primary[0] names undeclared method 'kendall'"),
        ({"predictors": ["a"], "outcomes": ["b"], "methods": ["spearman"], "primary": [{"predictor": "a"}]},
         "primary[0] needs 'predictor' and 'outcome'"),
        ({"predictors": ["a", "c"], "outcomes": ["b"], "covariates": ["c"],
          "primary": [{"predictor": "c", "outcome": "b", "method": "partial_spearman"}]},
         "tests 'c' while controlling for it"),
    ],
)
def test_bad_specs_raise_one_line_config_errors(raw, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        spec_from_dict(raw)
    assert "\n" not in str(err.value)


def test_load_spec_reports_a_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_spec_is_frozen_and_defaults_methods_to_the_covariates():
    spec = AnalysisSpec(predictors=("a",), outcomes=("b",))
    assert spec.methods == ("spearman", "kendall")
    assert AnalysisSpec(predictors=("a",), outcomes=("b",), covariates=("c",)).methods[-1] == "partial_spearman"
    with pytest.raises(AttributeError):
        spec.seed = 3  # type: ignore[misc]


def test_repeated_labels_are_averaged_before_testing():
    table = pd.DataFrame({"arch": ["a", "a", "b", "c"], "x": [1.0, 3.0, 5.0, 7.0], "y": [0.0, 2.0, 2.0, 9.0]})
    spec = AnalysisSpec(predictors=("x",), outcomes=("y",), methods=("spearman",))
    df, notes = prepare_table(table, spec)
    assert df.set_index("arch")["x"].to_dict() == {"a": 2.0, "b": 5.0, "c": 7.0}
    assert notes[0] == "Rows sharing a value of `arch` were reduced by their mean (1-2 rows per `arch`)."
    _, even = prepare_table(table.iloc[:2], spec)
    assert even[0].endswith("(2 rows per `arch`).")
    with pytest.raises(DataError, match="label 'arch' repeats"):
        prepare_table(table, AnalysisSpec(predictors=("x",), outcomes=("y",), methods=("spearman",), aggregate="none"))


def test_missing_columns_error_or_skip():
    table = pd.DataFrame({"arch": list("abcdef"), "x": np.arange(6.0), "y": np.arange(6.0) ** 2})
    spec = AnalysisSpec(predictors=("x", "curv"), outcomes=("y",), methods=("spearman",),
                        n_permutations=99, n_bootstrap=0)
    with pytest.raises(DataError, match="table lacks column 'curv'"):
        run_analysis(table, spec)
    res = run_analysis(table, replace(spec, missing_columns="skip"))
    assert list(res.results["predictor"]) == ["x", "curv"] and "curv" in res.notes[0]
    assert res.results["note"].tolist() == ["", "not run: column(s) curv not in the table"]


def test_missing_values_are_dropped_per_test_and_n_reported():
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"arch": [f"m{i}" for i in range(12)], "x1": rng.normal(size=12),
                          "x2": rng.normal(size=12), "y": rng.normal(size=12)})
    table.loc[[0, 1], "x2"] = np.nan
    spec = AnalysisSpec(predictors=("x1", "x2"), outcomes=("y",), methods=("spearman",),
                        n_permutations=99, n_bootstrap=0)
    res = run_analysis(table, spec).results.set_index("predictor")
    assert res.loc["x1", "n"] == 12 and res.loc["x2", "n"] == 10
    assert res.loc["x2", "r"] == pytest.approx(stats.spearmanr(table["x2"][2:], table["y"][2:])[0])


def test_non_numeric_values_are_rejected_by_column():
    table = pd.DataFrame({"arch": ["a", "b"], "x": ["1.0", "oops"], "y": [1.0, 2.0]})
    with pytest.raises(DataError, match="column 'x' holds non-numeric value 'oops'"):
        prepare_table(table, AnalysisSpec(predictors=("x",), outcomes=("y",), methods=("spearman",)))


def test_ties_counts_every_tied_observation():
    assert ties(np.array([0, 0, 0, 0, 0, 1, 2, 2.0])) == 7
    assert ties(np.arange(4.0)) == 0


def test_persist_spec_runs_on_a_tracking_shaped_table():
    """Tracking metric names, two seeds per arch, no curvature phase: mapped, averaged, skipped."""
    published = pd.read_csv(ROOT / "tests" / "data" / "persist_published.csv")
    rng = np.random.default_rng(0)
    runs = pd.concat([published.assign(seed=s) for s in (0, 1)], ignore_index=True)
    noise = rng.normal(scale=0.01, size=len(runs))
    table = pd.DataFrame({
        "arch": runs["arch"],
        "type": runs["type"],
        "seed": runs["seed"],
        "topology/h1_total_above_eps_mean": runs["h1"] + noise,
        "topology/h0_total_above_eps_mean": runs["task_a_acc"] * (1 + noise),
        "topology/h1_count_above_eps_mean": np.round(10 * runs["h1"]),
        "topology/grid_mean_mean": rng.normal(size=len(runs)),
        "model/num_params": runs["params_measured"],
        "forgetting/ret_100": runs["ret_100"] / 100,
        "forgetting/aurc": runs["ret_100"] / 30 + noise,
    })
    spec = replace(load_spec(ROOT / "analysis" / "persist.yaml"), n_permutations=199, n_bootstrap=0, prediction=None)
    res = run_analysis(table, spec)
    assert len(res.table) == 14
    computed = res.results[res.results["r"].notna()]
    assert set(computed["predictor"]) == {"h1_total", "h0_total", "h1_count", "mean_loss", "params"}
    assert any("hessian_trace" in note for note in res.notes)
    not_run = res.results.query("predictor == 'hessian_trace'")["note"]
    assert not_run.str.startswith("not run: column(s) hessian_trace").all()
    means = table.groupby("arch")[["topology/h1_total_above_eps_mean", "forgetting/aurc"]].mean()
    h1 = res.results.query("predictor == 'h1_total' and outcome == 'aurc' and method == 'spearman' and subset == 'all'")
    assert h1["r"].iloc[0] == pytest.approx(stats.spearmanr(means.iloc[:, 0], means.iloc[:, 1])[0], abs=1e-12)
    assert set(res.results["subset"]) == {"all", "cnn"}
    topology = res.results.query("family == 'topology'")
    assert topology.query("r == r")["p_holm"].notna().all() and topology.query("r != r")["p_holm"].isna().all()


def test_a_study_too_small_to_test_reports_why_instead_of_failing(tmp_path):
    table = pd.DataFrame({"arch": ["mlp", "cnn"], "type": ["MLP", "CNN"],
                          "topology/h1_total_persistence_mean": [0.1, 0.3], "model/num_params": [1e4, 2e4],
                          "forgetting/ret_100": [0.2, 0.1], "forgetting/aurc": [0.3, 0.2]})
    spec = replace(load_spec(ROOT / "analysis" / "persist.yaml"), n_permutations=99, n_bootstrap=50)
    res = run_analysis(table, spec)
    assert res.results["r"].isna().all()
    assert res.results["note"].map(lambda v: v == "n < min_n (5)" or v.startswith("not run: column(s)")).all()
    assert res.prediction is None and any("Prediction skipped" in note for note in res.notes)
    from persist.phases.analysis import write_outputs

    paths = write_outputs(res, tmp_path)
    assert "n < min_n (5)" in (tmp_path / "report.md").read_text() and all(p.exists() for p in paths)
