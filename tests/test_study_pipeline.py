"""The multi-family study: family order and configs, the modes plane's three runs, per-family table columns,
and the MNIST-1D sweep spec (fast: the phases are stubbed, the tracking store is a fresh sqlite file)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

import persist.pipeline as pipeline
from persist.config import override, preset
from persist.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_families_put_modes_last_and_measure_curvature_once():
    cfg = override(preset("mnist1d"), ["study.directions=modes,random,hessian"])
    assert pipeline.families(cfg) == ("random", "hessian", "modes")
    first = pipeline.family_config(cfg, "random", first=True)
    hessian = pipeline.family_config(cfg, "hessian", first=False)
    modes = pipeline.family_config(cfg, "modes", first=False, run_ids=("a", "b:final", "c"))
    assert (first.landscape.directions, first.landscape.slices, first.curvature.enabled) == ("random", 2, True)
    assert (hessian.landscape.directions, hessian.landscape.span, hessian.curvature.enabled) == ("hessian", 0.1, False)
    assert (modes.landscape.run_ids, modes.landscape.dims) == (("a", "b:final", "c"), 2)


def test_unknown_direction_family_is_refused():
    with pytest.raises(ConfigError, match="study.directions entry 'randon'"):
        override(preset("mnist1d"), ["study.directions=randon"])


def test_other_seed_is_the_next_study_seed_cyclically():
    cfg = preset("mnist1d")
    assert [pipeline.other_seed(override(cfg, [f"seed={s}"])) for s in (0, 1, 2)] == [1, 2, 0]
    assert pipeline.other_seed(override(cfg, ["study.seeds=0"])) is None


@pytest.fixture
def stub_phases(monkeypatch, tracking):
    """train/landscape/forgetting replaced by recorders returning readable ids."""
    calls: list[tuple] = []

    def train(cfg, progress=True):
        calls.append(("train", cfg.seed))
        return f"train-s{cfg.seed}"

    def landscape(cfg, train_id, progress=True):
        ls = cfg.landscape
        calls.append(("landscape", ls.directions, train_id, ls.run_ids, cfg.curvature.enabled))
        return f"{ls.directions}-{train_id}"

    def forgetting(cfg, train_id, progress=True):
        calls.append(("forgetting", train_id))
        return f"forget-{train_id}"

    done: dict[tuple[str, str], str] = {}

    def reuse_or_run(phase, key, run):  # an in-memory find_finished: a second request reuses
        return done.setdefault((phase, key), run()) if (phase, key) not in done else done[(phase, key)]

    monkeypatch.setattr(pipeline, "run_train", train)
    monkeypatch.setattr(pipeline, "run_landscape", landscape)
    monkeypatch.setattr(pipeline, "run_forgetting", forgetting)
    monkeypatch.setattr(pipeline, "reuse_or_run", reuse_or_run)
    mlflow.set_experiment("stubbed")
    return calls


def test_modes_plane_uses_own_theta_a_own_theta_b_and_the_next_seeds_theta_a(stub_phases):
    cfg = override(preset("mnist1d"), ["model.arch=cnn1d", "study.seeds=0,1"])
    out0 = pipeline.run_architecture(cfg, progress=False)
    out1 = pipeline.run_architecture(override(cfg, ["seed=1"]), progress=False)
    landscapes = [c for c in stub_phases if c[0] == "landscape"]
    assert [c[1] for c in landscapes] == ["random", "hessian", "modes"] * 2
    assert landscapes[2][2:] == ("train-s0", ("train-s0", "forget-train-s0:final", "train-s1"), False)
    assert landscapes[5][2:] == ("train-s1", ("train-s1", "forget-train-s1:final", "train-s0"), False)
    assert [c[4] for c in landscapes] == [True, False, False] * 2  # curvature with the first family only
    # seed 1 was trained once (for seed 0's plane) and reused by its own member; modes came after forgetting
    assert [c for c in stub_phases if c[0] == "train"] == [("train", 0), ("train", 1)]
    order = [c[0] if c[0] != "landscape" else c[1] for c in stub_phases][:6]
    assert order == ["train", "random", "hessian", "forgetting", "train", "modes"]
    assert out0.run_ids["landscape"] == "random-train-s0"
    assert out1.run_ids["landscape_modes"] == "modes-train-s1"
    tags = mlflow.get_run(out0.run_ids["architecture"]).data.tags
    assert tags["persist.landscape_hessian_run_id"] == "hessian-train-s0"


def test_modes_is_skipped_with_its_reason_on_one_seed(stub_phases):
    cfg = override(preset("mnist1d"), ["model.arch=cnn1d", "study.seeds=0"])
    out = pipeline.run_architecture(cfg, progress=False)
    assert "landscape_modes" not in out.run_ids
    assert "one seed" in out.skipped["modes"]
    tags = mlflow.get_run(out.run_ids["architecture"]).data.tags
    assert tags["persist.skipped.modes"] == out.skipped["modes"]


def _run(phase: str, tags: dict, metrics: dict) -> str:
    with mlflow.start_run(tags={"persist.phase": phase, **tags}) as run:
        mlflow.log_metrics(metrics)
    return run.info.run_id


def test_study_table_gives_each_family_its_own_columns(tracking):
    from persist.phases.analysis import study_table

    mlflow.set_experiment("families")
    member = {"persist.arch": "cnn1d", "persist.width": "1.0", "persist.dataset": "mnist1d", "persist.seed": "0"}
    train = _run("train", member, {"model/num_params": 11301.0})
    up = {**member, "persist.upstream_run_id": train}
    _run("landscape", {**up, "persist.directions": "random"},
         {"topology/h0_count_above_eps_mean": 1.0, "curvature/hessian_trace": 7.0})
    _run("landscape", {**up, "persist.directions": "hessian"}, {"topology/h0_count_above_eps_mean": 3.0})
    _run("landscape", {**up, "persist.directions": "modes"}, {"topology/h0_count_above_eps_mean": 2.0})
    _run("forgetting", up, {"forgetting/ret_25": 0.4})
    row = study_table("families").iloc[0]
    assert row["topology_random/h0_count_above_eps_mean"] == 1.0
    assert row["topology_hessian/h0_count_above_eps_mean"] == 3.0
    assert row["topology_modes/h0_count_above_eps_mean"] == 2.0
    assert row["topology/h0_count_above_eps_mean"] == 1.0  # the plain names stay the random family's
    assert row["curvature/hessian_trace"] == 7.0 and row["forgetting/ret_25"] == 0.4


def test_study_row_names_family_metrics_like_the_table():
    from persist.phases.study_row import family_metrics, study_row

    metrics = family_metrics("modes", {"topology/h0_count_above_eps_mean": 2.0, "curvature/hessian_trace": 1.0})
    assert metrics == {"topology_modes/h0_count_above_eps_mean": 2.0}
    assert study_row(metrics, {"topology_modes/h0_count_above_eps_mean": "modes_h0_count"}) == {
        "study/modes_h0_count": 2.0}


def test_mnist1d_sweep_spec_validates_and_lists_the_preset_members():
    from persist.sweep import grid_points, load_sweep, member_config

    spec = load_sweep(ROOT / "sweeps" / "mnist1d.yaml")
    base = spec.base_config()
    assert spec.trial_count() == len(base.study.archs) * len(base.study.seeds) == 48
    members = {(c.model.arch, c.model.width, c.seed) for c in (member_config(base, p) for p in grid_points(spec))}
    expected = {(pipeline.architecture_config(base, e, s).model.arch, pipeline.architecture_config(base, e, s).model.width,
                 s) for e in base.study.archs for s in base.study.seeds}
    assert members == expected


def test_mnist1d_spec_columns_match_the_family_names():
    from persist.stats import load_spec

    spec = load_spec(ROOT / "analysis" / "mnist1d.yaml")
    families = {name.split("/")[0] for name in dict(spec.columns) if name.startswith("topology_")}
    assert families == {f"topology_{f}" for f in preset("mnist1d").study.directions}
    assert len(spec.primary) == 9


def test_the_demo_is_the_mnist1d_study_in_small_and_analyses_only_families_it_runs():
    from persist.stats import load_spec

    demo, study = preset("demo"), preset("mnist1d")
    assert set(demo.study.archs) < set(study.study.archs) and len(demo.study.seeds) == 2  # modes needs two seeds
    assert (demo.train, demo.landscape, demo.forgetting, demo.topology) == (
        study.train, study.landscape, study.forgetting, study.topology)
    spec = load_spec(ROOT / demo.study.analysis_spec)
    families = {name.split("/")[0] for name in dict(spec.columns) if name.startswith("topology_")}
    assert families <= {f"topology_{f}" for f in demo.study.directions}
    assert {h.predictor for h in spec.primary} == {"modes_h0_total"}


def test_narrowing_a_widened_head_restores_the_task_a_logits():
    import torch

    from persist.forgetting.head import narrow_classifier, widen_classifier
    from persist.models import create_model

    torch.manual_seed(0)
    model = create_model("mlp1d", 5, in_channels=1, image_size=40).eval()
    x = torch.randn(7, 1, 40)
    before = model(x).detach()
    widen_classifier(model, 5, torch.Generator().manual_seed(1))
    assert model(x).shape == (7, 10)
    narrow_classifier(model, 5)
    assert torch.equal(model(x).detach(), before)
    with pytest.raises(ConfigError, match="cannot narrow"):
        narrow_classifier(model, 6)
