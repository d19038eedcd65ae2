"""What a researcher sees in MLflow: datasets, logged models, diag/ metrics, params, names, HTML figures,
and the study row on every architecture run of a (tiny) pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from persist.config import override, preset


def test_diagnostics_go_under_diag_and_key_metrics_stay_at_the_top():
    from persist.tracking.runs import diag_name

    moved = ["curvature/hessian_trace_matvecs", "curvature/lambda_max_residual", "curvature/lambda_max_converged",
             "landscape/seconds", "landscape/curvature_seconds", "topology/nonfinite_nodes_sd"]
    kept = ["curvature/hessian_trace", "curvature/lambda_max", "topology/h1_total_persistence_mean",
            "forgetting/ret_100", "model/num_params", "topology/noise_floor_mean"]
    assert [diag_name(m) for m in moved] == [f"diag/{m}" for m in moved]
    assert [diag_name(m) for m in kept] == kept
    assert diag_name("diag/curvature/lambda_matvecs") == "diag/curvature/lambda_matvecs"


def test_log_metrics_routes_diagnostics(tracking):
    import mlflow

    from persist.tracking import log_metrics

    mlflow.set_experiment("routes")
    with mlflow.start_run() as run:
        log_metrics({"hessian_trace": 2.5, "hessian_trace_matvecs": 32}, prefix="curvature/")
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert metrics == {"curvature/hessian_trace": 2.5, "diag/curvature/hessian_trace_matvecs": 32.0}


def test_each_phase_logs_only_its_config_sections_and_no_empty_values():
    from persist.tracking.runs import PHASE_SECTIONS, config_params

    cfg = override(preset("smoke"), ["model.arch=cnn", "data.data_dir="])
    study = config_params(cfg, PHASE_SECTIONS["pipeline"])
    assert not [k for k in study if k.startswith("model.")] and "seed" not in study  # no member's identity
    assert study["study.archs"] == ",".join(cfg.study.archs)
    train = config_params(cfg, PHASE_SECTIONS["train"])
    assert train["model.arch"] == "cnn" and "data.data_dir" not in train  # empty: not logged
    assert {k.split(".")[0] for k in train} == {"seed", "device", "data", "model", "train"}
    landscape = config_params(cfg, PHASE_SECTIONS["landscape"])
    assert {k.split(".")[0] for k in landscape} == {"device", "landscape", "topology", "curvature"}


def test_run_names_carry_width_and_seed():
    from persist.phases.records import run_name

    cfg = override(preset("smoke"), ["model.arch=cnn", "model.width=0.5", "seed=3"])
    assert run_name("train", cfg) == "train cnn@0.5 s3"
    assert run_name("landscape", override(cfg, ["model.width=1"])) == "landscape cnn@1 s3"


def test_chosen_experiment_is_the_one_mlflow_run_made(tracking, monkeypatch):
    from mlflow.tracking import MlflowClient

    from persist.tracking.runs import chosen_experiment

    client = MlflowClient()
    exp_id = client.create_experiment("picked-by-mlflow-run")
    run = client.create_run(exp_id)
    assert chosen_experiment("persist-smoke") == "persist-smoke"
    monkeypatch.setenv("MLFLOW_RUN_ID", run.info.run_id)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", exp_id)
    assert chosen_experiment("persist-smoke") == "picked-by-mlflow-run, chosen by mlflow run"
    assert chosen_experiment("picked-by-mlflow-run") == "picked-by-mlflow-run"


def test_dataset_inputs_carry_name_digest_split_and_classes(tracking):
    import mlflow

    from persist.data import load_task
    from persist.landscape.resume import tensor_digest
    from persist.phases.records import log_task_split

    task = load_task("digits", "A", seed=0)
    mlflow.set_experiment("inputs")
    with mlflow.start_run() as run:
        log_task_split(task, "val")
        log_task_split(task, "test", task.x_test[:32], task.y_test[:32])
    inputs = {i.dataset.name: i for i in mlflow.get_run(run.info.run_id).inputs.dataset_inputs}
    assert set(inputs) == {"digits-A-val", "digits-A-test"}
    val = inputs["digits-A-val"]
    assert val.dataset.digest == tensor_digest([task.x_val, task.y_val])[:36]
    tags = {t.key: t.value for t in val.tags}
    assert tags["mlflow.data.context"] == "val" and tags["split"] == "val"
    assert tags["classes"] == "0,1,2,3,4" and tags["examples"] == str(len(task.y_val))
    profile = json.loads(val.dataset.profile)
    assert profile["features_size"] == task.x_val.numel()
    assert {t.key: t.value for t in inputs["digits-A-test"].tags}["examples"] == "32"


@pytest.mark.slow
def test_logged_model_reloads_with_the_same_outputs_and_linked_metrics(tracking, monkeypatch):
    import mlflow

    from persist.models import create_model
    from persist.phases.records import log_trained_model

    monkeypatch.setenv("PERSIST_LOG_MODEL", "1")
    torch.manual_seed(0)
    model = create_model("cnn", 5, 1, 8, 0.25).eval()
    x = torch.randn(16, 1, 8, 8)
    mlflow.set_experiment("models")
    with mlflow.start_run() as run:
        uri = log_trained_model(model, x, {"train/test_accuracy": 0.75, "diag/x_seconds": 1.0})
    loaded = mlflow.pytorch.load_model(uri)
    batch = torch.randn(7, 1, 8, 8)  # another batch size than the input example's two
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch), model(batch), rtol=1e-5, atol=1e-6)
    (logged,) = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
    assert logged.source_run_id == run.info.run_id
    assert {m.key: m.value for m in logged.metrics}["train/test_accuracy"] == 0.75
    info = mlflow.models.get_model_info(uri)
    assert info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 1, 8, 8)
    assert info.signature.outputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 5)
    assert model.training is False and next(model.parameters()).device.type == "cpu"


def test_interactive_figures_mark_theta_star_and_hover_every_pair():
    from persist.plots.interactive import barcode_figure, diagram_figure, html_page, surface_figure

    a = np.linspace(-1, 1, 5)
    loss = np.add.outer(a**2, a**2) + 0.3
    loss[0, 0] = np.inf
    surface = surface_figure(a, a, loss, title="mlp@0.25 s0 slice random-0")
    star = surface.data[1]
    assert (star.x[0], star.y[0], star.z[0]) == (0.0, 0.0, 0.3) and list(star.text) == ["θ*"]
    assert np.isnan(surface.data[0].z[0][0])  # a diverged node is a hole, not a value
    diagrams = {0: np.array([[0.3, np.inf], [0.5, 0.9]]), 1: np.array([[0.6, 0.7]])}
    diagram = diagram_figure(diagrams, eps=0.05)
    points = {t.name: t for t in diagram.data if t.name}
    assert list(points["H0 (1 finite)"].x) == [0.5] and list(points["H0 (1 finite)"].customdata) == pytest.approx([0.4])
    assert list(points["H0 (1 essential)"].x) == [0.3]
    barcode = barcode_figure(diagrams, eps=0.05)
    texts = [t for trace in barcode.data for t in trace.text if t]
    assert "H0 birth=0.3 death=∞" in texts and "H1 birth=0.6 death=0.7 lifetime=0.1" in texts
    page = html_page([surface, diagram, barcode], title="slice")
    assert page.count("<div id=") == 3 and page.count("plotly.js v") == 1  # plotly.js embedded once


def test_study_row_names_and_seed_means():
    from persist.phases.study_row import BASE_COLUMNS, mean_rows, study_row

    metrics = {"topology/h1_total_persistence_mean": 0.5, "forgetting/ret_100": 0.25, "forgetting/ret_masked_100": 0.75,
               "model/num_params": 1000.0, "train/test_accuracy": 0.9, "diag/curvature/lambda_matvecs": 40.0}
    row = study_row(metrics, BASE_COLUMNS)
    assert row == {"study/h1_total": 0.5, "study/ret_100": 0.25, "study/ret_masked_100": 0.75, "study/params": 1000.0,
                   "study/task_a_accuracy": 0.9}
    rows = [{"member": "cnn@0.5", "study/aurc": 0.2}, {"member": "cnn@0.5", "study/aurc": 0.4},
            {"member": "mlp@1", "study/aurc": 0.1}]
    means = mean_rows(rows)
    assert means.loc["cnn@0.5", "study/aurc"] == pytest.approx(0.3)
    assert means.loc["cnn@0.5", "study_sd/aurc_sd"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    assert means.loc["mlp@1", "study/n_seeds"] == 1


TINY = ["train.epochs=2", "landscape.resolution=5", "landscape.slices=1", "landscape.subset=32",
        "curvature.measures=hessian_trace", "curvature.subset=16", "curvature.probes=2", "forgetting.steps=0,5",
        "study.archs=mlp@0.25,mlp@0.5", "study.seeds=0,1", "experiment=tiny-study"]


def run_tiny_study(root):
    """One tiny pipeline (2 widths x 2 seeds) with logged models, in the store ``root/mlflow.db``."""
    from persist.pipeline import run_pipeline
    from persist.tracking import setup_tracking

    uri = f"sqlite:///{root / 'mlflow.db'}"
    cfg = override(preset("smoke"), TINY)
    setup_tracking(uri, cfg.experiment)
    return run_pipeline(cfg, progress=False), uri


def _runs(client, phase: str):
    exp = client.get_experiment_by_name("tiny-study")
    return client.search_runs([exp.experiment_id], f"tags.`persist.phase` = '{phase}'", max_results=100)


@pytest.mark.slow
def test_a_tiny_pipeline_is_browsable_the_mlflow_way(tracking, tmp_path, monkeypatch):
    """One pipeline, every check (a module fixture would run twice under xdist)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("PERSIST_LOG_MODEL", "1")
    try:
        result, uri = run_tiny_study(tmp_path)
    finally:  # the next test's fresh store has only the Default experiment
        mlflow.set_experiment(experiment_id="0")
    client = MlflowClient(tracking_uri=uri)
    check_study_rows(client, result)
    check_study_run(client, result)
    check_phase_runs(client, result)


def check_study_rows(client, result):
    runs = {r.info.run_id: r for r in _runs(client, "architecture")}
    assert len(runs) == 4
    for member in result.architectures:
        arch = runs[member.run_ids["architecture"]].data
        landscape = client.get_run(member.run_ids["landscape"]).data.metrics
        forgetting = client.get_run(member.run_ids["forgetting"]).data.metrics
        train = client.get_run(member.run_ids["train"]).data.metrics
        m = arch.metrics
        assert m["study/h1_total"] == landscape["topology/h1_total_persistence_mean"]
        assert m["study/hessian_trace"] == landscape["curvature/hessian_trace"]
        assert m["study/ret_5"] == forgetting["forgetting/ret_5"] and m["study/aurc"] == forgetting["forgetting/aurc"]
        assert m["study/params"] == train["model/num_params"]
        assert m["study/task_a_accuracy"] == train["train/test_accuracy"]
        assert arch.tags["persist.member"] == f"mlp@{member.width:g}"
        assert not [k for k in arch.params if k.startswith("study.")]
    means = {r.data.tags["persist.member"]: r.data.metrics for r in _runs(client, "architecture_mean")}
    assert set(means) == {"mlp@0.25", "mlp@0.5"}
    seeds = [runs[m.run_ids["architecture"]].data.metrics["study/aurc"] for m in result.architectures
             if m.width == 0.25]
    assert means["mlp@0.25"]["study/aurc"] == pytest.approx(np.mean(seeds))
    assert means["mlp@0.25"]["study/n_seeds"] == 2


def check_study_run(client, result):
    study = client.get_run(result.study_run_id)
    assert "model.arch" not in study.data.params and study.data.params["study.seeds"] == "0,1"
    table = client.load_table(study.info.experiment_id, "study/table.json", run_ids=[study.info.run_id])
    assert len(table) == 4 and set(table["member"]) == {"mlp@0.25", "mlp@0.5"}
    assert {"study/h1_total", "study/ret_5", "study/params", "architecture_run_id"} <= set(table.columns)


def check_phase_runs(client, result):
    trains = _runs(client, "train")
    for run in trains:
        inputs = {i.dataset.name for i in run.inputs.dataset_inputs}
        assert inputs == {"digits-A-train", "digits-A-val", "digits-A-test"}
        tags = run.data.tags
        assert run.info.run_name == f"train mlp@{float(tags['persist.width']):g} s{tags['persist.seed']}"
    exp_id = client.get_experiment_by_name("tiny-study").experiment_id
    models = client.search_logged_models(experiment_ids=[exp_id])
    assert len(models) == 4 and {m.source_run_id for m in models} == {r.info.run_id for r in trains}
    for run in _runs(client, "landscape_slice"):
        assert run.info.run_name == "slice random-0"
        files = {f.path for f in client.list_artifacts(run.info.run_id, "figures")}
        assert {"figures/surface.png", "figures/interactive.html"} <= files
    for run in _runs(client, "landscape"):
        assert "diag/curvature/hessian_trace_matvecs" in run.data.metrics
        assert not [k for k in run.data.metrics if k.endswith(("_matvecs", "_residual", "_converged", "seconds"))
                    and not k.startswith("diag/")]
        assert [i.dataset.name for i in run.inputs.dataset_inputs] == ["digits-A-test"]
    for run in _runs(client, "forgetting"):
        assert {i.dataset.name for i in run.inputs.dataset_inputs} == {"digits-B-train", "digits-A-test"}


def test_system_metrics_are_one_environment_variable_away(tracking, monkeypatch):
    import time

    import mlflow

    from persist.tracking import phase_run

    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "0.2")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")
    mlflow.set_experiment("system")
    with phase_run("probe", None, resume=False) as run:
        deadline = time.time() + 10
        while time.time() < deadline and "system/cpu_utilization_percentage" not in \
                mlflow.get_run(run.info.run_id).data.metrics:
            time.sleep(0.2)
    assert "system/cpu_utilization_percentage" in mlflow.get_run(run.info.run_id).data.metrics
