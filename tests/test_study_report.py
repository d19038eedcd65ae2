"""The study report on a synthetic study table: its sections, the primary tests and the depth series."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from persist.phases.study_report import build_report, md_table, write_report
from persist.plots.study import depth_series
from persist.stats import load_spec, run_analysis

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("random", "hessian", "modes")
ARCHS = ["mlp1d", "cnn1d", "resnet1d_8", "resnet1d_20", "plain1d_8", "plain1d_20"]


def synthetic_table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i, arch in enumerate(ARCHS):
        for seed in (0, 1):
            row = {"arch": arch, "architecture": arch, "seed": seed, "model/num_params": 1000.0 * (i + 1),
                   "forgetting/ret_10": 0.1 * i + 0.01 * seed, "forgetting/ret_25": float(rng.random()),
                   "forgetting/ret_masked_25": 0.5 + 0.01 * i, "forgetting/aurc": 0.2 + 0.01 * i,
                   "forgetting/aurc_masked": 0.7 - 0.01 * i + 0.001 * seed}
            for f in FAMILIES:
                for d in (0, 1):
                    row[f"topology_{f}/h{d}_count_above_eps_mean"] = float(rng.integers(0, 4))
                    row[f"topology_{f}/h{d}_total_above_eps_mean"] = float(rng.random())
            rows.append(row)
    return pd.DataFrame(rows)


def test_report_has_the_primary_tests_and_every_section(tmp_path):
    table = synthetic_table()
    spec = replace(load_spec(ROOT / "analysis" / "mnist1d.yaml"), n_permutations=200, n_bootstrap=100)
    result = run_analysis(table, spec)
    text, figures = build_report(table, result, FAMILIES, title="synthetic")
    primary = [line for line in text.splitlines() if line.startswith("| random_h0_count | ret@25 | partial_spearman")]
    assert len(primary) == 1
    expected = result.results[(result.results["predictor"] == "random_h0_count") & (result.results["outcome"] == "ret@25")
                              & (result.results["method"] == "partial_spearman")]["r"].iloc[0]
    assert f"{expected:+.2f}" in primary[0]
    for heading in ("## Primary tests", "## Headline table", "## Forgetting curves", "## Skip vs no-skip depth series"):
        assert heading in text
    names = [name for name, _ in figures]
    assert "depth_series.png" in names and "forgetting.png" in names
    paths = write_report(tmp_path, text, figures)
    assert (tmp_path / "study.html").read_text().count("<table>") >= 2
    assert all(p.exists() for p in paths)


def test_depth_series_sums_h0_and_h1_per_family_and_marks_skip():
    series = depth_series(synthetic_table(), FAMILIES)
    assert set(series["depth"]) == {8, 20} and len(series) == 4 * 2 * 3  # 4 members x 2 seeds x 3 families
    row = synthetic_table().iloc[6]  # resnet1d_20 seed 0
    got = series[(series["depth"] == 20) & series["skip"] & (series["seed"] == 0) & (series["family"] == "modes")]
    assert got["count"].iloc[0] == row["topology_modes/h0_count_above_eps_mean"] + row["topology_modes/h1_count_above_eps_mean"]


def test_md_table_renders_nan_as_a_dash():
    assert md_table(pd.DataFrame({"a": [1.23456, float("nan")], "b": ["x", "y|z"]})).splitlines() == [
        "| a | b |", "|---|---|", "| 1.23 | x |", "| – | y\\|z |"]


def test_diagrams_grid_draws_members_with_empty_and_infinite_diagrams():
    from persist.plots.study import diagrams_grid

    fig = diagrams_grid({"a": {0: np.array([[0.1, np.inf]]), 1: np.empty((0, 2))},
                         "b": {0: np.array([[0.1, 0.5], [0.2, 0.3]])}}, {"a": 0.05, "b": 0.1})
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["a", "b"]
