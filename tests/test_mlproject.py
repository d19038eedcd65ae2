"""`mlflow run . -e <phase> --env-manager local` against the real MLproject file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def mlflow_run(entry: str, params: dict[str, str], tracking: str, experiment: str | None = "persist-smoke") -> str:
    """``mlflow run`` in a subprocess; ``experiment=None`` leaves the choice to mlflow (Default)."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": tracking, "PERSIST_LOG_MODEL": "0"}
    for name in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        env.pop(name, None)
    args = [sys.executable, "-m", "mlflow", "run", str(ROOT), "-e", entry, "--env-manager", "local"]
    if experiment is not None:
        args += ["--experiment-name", experiment]
    for key, value in params.items():
        args += ["-P", f"{key}={value}"]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.integration
def test_mlflow_run_train_entry_point(tracking):
    from mlflow.tracking import MlflowClient

    out = mlflow_run("train", {"arch": "cnn", "preset": "smoke", "set": "train.epochs=2 model.width=0.25"}, tracking)
    assert "experiment 'persist-smoke')" in out
    client = MlflowClient()
    exp = client.get_experiment_by_name("persist-smoke")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "train cnn@0.25 s0"  # persist's name, not mlflow's random one
    assert run.data.tags["persist.phase"] == "train" and run.data.tags["persist.arch"] == "cnn"
    assert run.data.params["arch"] == "cnn" and run.data.params["model.width"] == "0.25"
    assert "" not in run.data.params.values() and "''" not in run.data.params.values()
    assert "overrides" not in run.data.params
    assert not [k for k in run.data.params if k.startswith(("landscape.", "forgetting.", "study."))]
    assert "train/test_accuracy" in run.data.metrics
    assert [f.path for f in client.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/best.pt"]
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


@pytest.mark.integration
def test_mlflow_run_without_an_experiment_lands_where_mlflow_put_it_and_says_so(tracking):
    from mlflow.tracking import MlflowClient

    out = mlflow_run("train", {"arch": "mlp", "set": "train.epochs=1 model.width=0.25"}, tracking, experiment=None)
    client = MlflowClient()
    assert "experiment 'Default, chosen by mlflow run')" in out  # not the preset's 'persist-smoke'
    assert client.get_experiment_by_name("persist-smoke") is None  # nothing was filed elsewhere
    (run,) = client.search_runs(["0"])
    assert run.info.run_name == "train mlp@0.25 s0" and run.info.status == "FINISHED"
    assert client.get_experiment("0").tags["mlflow.experimentKind"] == "custom_model_development"


@pytest.mark.integration
def test_mlflow_run_landscape_and_forgetting_entry_points(tracking):
    from mlflow.tracking import MlflowClient

    mlflow_run("train", {"arch": "mlp", "set": "train.epochs=2 model.width=0.25"}, tracking)
    client = MlflowClient()
    exp = client.get_experiment_by_name("persist-smoke")
    (train,) = client.search_runs([exp.experiment_id])
    tiny = ("landscape.resolution=5 landscape.subset=32 curvature.measures=hessian_trace curvature.subset=16 "
            "forgetting.steps=0,5")
    common = {"train_run_id": train.info.run_id, "set": tiny}
    mlflow_run("landscape", {**common, "slices": "2"}, tracking)
    mlflow_run("forgetting", common, tracking)
    runs = client.search_runs([exp.experiment_id], max_results=100)
    phases = sorted(r.data.tags["persist.phase"] for r in runs)
    assert phases == ["forgetting", "landscape", "landscape_slice", "landscape_slice", "train"]
    names = sorted(r.info.run_name for r in runs)
    assert names == ["forgetting mlp@0.25 s0", "landscape mlp@0.25 s0", "slice random-0", "slice random-1",
                     "train mlp@0.25 s0"]
    landscape = next(r for r in runs if r.data.tags["persist.phase"] == "landscape")
    assert landscape.data.tags["persist.upstream_run_id"] == train.info.run_id
    assert "topology/h0_total_persistence_mean" in landscape.data.metrics
    assert "diag/curvature/hessian_trace_matvecs" in landscape.data.metrics
    assert not [k for k in landscape.data.params if k.startswith(("model.", "train.", "forgetting."))]
    forgetting = next(r for r in runs if r.data.tags["persist.phase"] == "forgetting")
    assert {f.path for f in client.list_artifacts(forgetting.info.run_id, "forgetting")} == {"forgetting/curve.json"}


@pytest.mark.integration
def test_mlflow_run_landscape_with_hessian_3d_and_modes_directions(tracking, monkeypatch):
    import json

    from click.testing import CliRunner
    from mlflow.tracking import MlflowClient

    from persist.cli import cli

    trains = []
    for seed in (0, 1, 2):
        out = CliRunner().invoke(cli, ["train", "--arch", "mlp", "--width", "0.25", "--epochs", "2", "--seed",
                                       str(seed), "--no-progress"])
        assert out.exit_code == 0, out.output
        trains.append(json.loads(out.stdout.strip().splitlines()[-1])["run_id"])
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)  # set by the in-process CLI; mlflow run gets a name
    tiny = "landscape.resolution=5 landscape.subset=32 curvature.enabled=false curvature.subset=32"
    mlflow_run("landscape", {"train_run_id": trains[0], "set": tiny, "directions": "hessian", "dims": "3"},
               tracking)
    mlflow_run("landscape", {"train_run_id": trains[0], "set": tiny, "directions": "modes",
                             "run-ids": ",".join(trains)}, tracking)
    client = MlflowClient()
    exp = client.get_experiment_by_name("persist-smoke")
    slices = client.search_runs([exp.experiment_id], "tags.`persist.phase` = 'landscape_slice'")
    families = {}
    for run in slices:
        meta = json.loads(open(client.download_artifacts(run.info.run_id, "landscape/meta.json")).read())
        families[meta["directions"]["family"]] = meta["shape"]
    assert families == {"hessian": [5, 5, 5], "modes": [5, 5]}
