"""The whole pipeline against a real `mlflow server`: hierarchy, tags, artifacts, analysis, reuse on rerun."""

import json
from pathlib import Path

import numpy as np
import pytest

from tests.integration.conftest import persist

TINY = ("train.epochs=3 landscape.resolution=7 landscape.slices=2 landscape.subset=64 "
        "curvature.measures=hessian_trace,fisher_trace curvature.subset=32 curvature.probes=2 "
        "forgetting.steps=0,5,10")
ARCHS = "mlp@0.25,mlp@0.5,cnn@0.25,cnn@0.5,mlp_mixer@0.125"


@pytest.mark.integration
def test_pipeline_against_a_real_server(mlflow_server, tmp_path, monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PERSIST_WORKDIR", str(tmp_path / "work"))
    args = ["pipeline", "--archs", ARCHS, "--set", TINY, "--tracking-uri", mlflow_server,
            "--experiment", "it-pipeline", "--no-progress"]
    first = persist(*args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "mlflow ui --backend-store-uri" in first.stdout

    mlflow.set_tracking_uri(mlflow_server)
    client = MlflowClient()
    exp = client.get_experiment_by_name("it-pipeline")
    runs = client.search_runs([exp.experiment_id], max_results=500)
    by_phase = {}
    for run in runs:
        assert run.info.status == "FINISHED", run.data.tags
        by_phase.setdefault(run.data.tags["persist.phase"], []).append(run)
    assert {k: len(v) for k, v in by_phase.items()} == {
        "pipeline": 1, "architecture": 5, "train": 5, "landscape": 5, "landscape_slice": 10, "forgetting": 5,
        "analysis": 1}
    study = by_phase["pipeline"][0].info.run_id
    ids = {r.info.run_id: r for r in runs}
    for arch_run in by_phase["architecture"]:
        assert arch_run.data.tags["mlflow.parentRunId"] == study
    for phase in ("train", "landscape", "forgetting"):
        for run in by_phase[phase]:
            parent = ids[run.data.tags["mlflow.parentRunId"]]
            assert parent.data.tags["persist.phase"] == "architecture"
            assert parent.data.tags["persist.arch"] == run.data.tags["persist.arch"]
    for run in by_phase["landscape_slice"]:
        assert ids[run.data.tags["mlflow.parentRunId"]].data.tags["persist.phase"] == "landscape"
        files = {f.path for d in ("landscape", "persistence", "figures")
                 for f in client.list_artifacts(run.info.run_id, d)}
        assert {"landscape/grid.npz", "landscape/meta.json", "persistence/h0.npy", "persistence/h1.npy",
                "persistence/meta.json", "figures/contour.png", "figures/surface.png"} <= files
    for run in by_phase["landscape"]:
        assert "curvature/hessian_trace" in run.data.metrics
        assert "topology/h1_total_persistence_mean" in run.data.metrics
    for run in by_phase["forgetting"]:
        local = client.download_artifacts(run.info.run_id, "forgetting/curve.json", str(tmp_path / run.info.run_id))
        curve = json.loads(Path(local).read_text())["curve"]
        assert curve["steps"] == [0, 5, 10]
        retained = np.asarray(curve["task_a_acc_masked"]) / curve["task_a_acc_masked"][0]
        expected = np.trapezoid(retained, curve["steps"]) / 10  # trapezoid over the schedule incl. step 0
        assert run.data.metrics["forgetting/aurc_masked"] == pytest.approx(expected)
    analysis = by_phase["analysis"][0]
    results = {f.path for f in client.list_artifacts(analysis.info.run_id, "analysis")}
    assert {"analysis/results.csv", "analysis/report.md", "analysis/table.csv"} <= results

    # a rerun reuses every finished phase: no new train, landscape or forgetting run
    second = persist(*args)
    assert second.returncode == 0, second.stderr[-3000:]
    runs = client.search_runs([exp.experiment_id], max_results=500)
    counts = {}
    for run in runs:
        counts[run.data.tags["persist.phase"]] = counts.get(run.data.tags["persist.phase"], 0) + 1
    assert counts["train"] == 5 and counts["landscape"] == 5 and counts["forgetting"] == 5
