"""Signals to `persist sweep`: SIGTERM stops everything cleanly (no process, no RUNNING run or trial, no
traceback) and a rerun finishes the sweep under the same sweep run; SIGKILL still takes the workers down."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
import yaml

SPEC = {
    "name": "sig",
    "preset": "smoke",
    "overrides": ["experiment=it-sig", "train.epochs=3", "landscape.resolution=5", "landscape.slices=1",
                  "landscape.subset=32", "curvature.enabled=false", "forgetting.steps=0,5"],
    "grid": {"model.arch": ["mlp"], "model.width": [0.25], "seed": [0, 1]},
    "objective": {"metric": "forgetting/aurc_masked"},
    "heartbeat": {"interval": 1, "grace": 3},
}


def start_sweep(tmp_path: Path, tracking: str) -> tuple[subprocess.Popen, str, Path]:
    spec = tmp_path / "sig.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "PERSIST_WORKDIR": str(tmp_path / "work")}
    env.pop("MLFLOW_RUN_ID", None)
    proc = subprocess.Popen([sys.executable, "-m", "persist.cli", "sweep", str(spec), "--workers", "2", "--storage",
                             storage], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, storage, spec


def wait_for_workers_in_trials(proc: subprocess.Popen, storage: str) -> list[psutil.Process]:
    """The launcher's worker processes, once both hold a trial with its MLflow run open."""
    import optuna
    from optuna.trial import TrialState

    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        try:
            study = optuna.load_study(study_name="sig", storage=storage)
            inside = [t for t in study.get_trials() if t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs]
        except KeyError:
            inside = []
        if len(inside) == 2:
            return psutil.Process(proc.pid).children(recursive=True)
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"the workers never held both trials: {proc.communicate()[1][-3000:]}")


def runs(experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    return client.search_runs([client.get_experiment_by_name(experiment).experiment_id], max_results=1000)


def assert_gone(processes: list[psutil.Process], within: float) -> None:
    deadline = time.time() + within
    while time.time() < deadline:
        alive = [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return
        time.sleep(0.2)
    for p in alive:
        p.kill()
    pytest.fail(f"{len(alive)} worker processes outlived the launcher")


@pytest.mark.integration
def test_sigterm_to_the_launcher_stops_everything_and_a_rerun_resumes(tmp_path, tracking):
    import optuna
    from optuna.trial import TrialState

    proc, storage, spec = start_sweep(tmp_path, tracking)
    workers = wait_for_workers_in_trials(proc, storage)
    assert len(workers) == 2
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "rerun" in err
    assert_gone(workers, within=5)
    study = optuna.load_study(study_name="sig", storage=storage)
    assert TrialState.RUNNING not in {t.state for t in study.get_trials()}
    assert "RUNNING" not in {r.info.status for r in runs("it-sig")}
    sweep_run = [r for r in runs("it-sig") if r.data.tags["persist.phase"] == "sweep"]
    assert [r.info.status for r in sweep_run] == ["KILLED"]

    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "PERSIST_WORKDIR": str(tmp_path / "work")}
    rerun = subprocess.run([sys.executable, "-m", "persist.cli", "sweep", str(spec), "--workers", "2", "--storage",
                            storage], env=env, capture_output=True, text=True, timeout=400, check=False)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    trials = study.get_trials()
    assert Counter(t.params["seed"] for t in trials if t.state == TrialState.COMPLETE) == {0: 1, 1: 1}
    all_runs = runs("it-sig")
    assert {r.info.status for r in all_runs} == {"FINISHED"}
    phases = Counter(r.data.tags["persist.phase"] for r in all_runs)
    assert phases["sweep"] == 1 and phases["trial"] == 2  # the sweep run and the trial runs were reused
    names = {r.data.tags["mlflow.runName"] for r in all_runs if r.data.tags["persist.phase"] == "trial"}
    assert all(name.startswith("trial ") and name.endswith(("mlp@0.25 s0", "mlp@0.25 s1")) for name in names), names
    lines = rerun.stderr.splitlines()
    started = [line.split(": ")[1] for line in lines if line.endswith(": started")]
    assert started and sorted(started) == sorted(line.split(": ")[1] for line in lines if ": done, " in line)
    assert any(line.endswith(" s)") and ": forgetting (" in line for line in lines)  # a line per phase opened


@pytest.mark.integration
def test_workers_stop_when_the_launcher_is_killed(tmp_path, tracking):
    import optuna
    from optuna.trial import TrialState

    proc, storage, _ = start_sweep(tmp_path, tracking)
    workers = wait_for_workers_in_trials(proc, storage)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert_gone(workers, within=60)  # each worker notices its launcher is gone and interrupts itself
    study = optuna.load_study(study_name="sig", storage=storage)
    assert TrialState.RUNNING not in {t.state for t in study.get_trials()}
    trial_runs = [r for r in runs("it-sig") if r.data.tags["persist.phase"] != "sweep"]
    assert "RUNNING" not in {r.info.status for r in trial_runs}  # only the launcher's own sweep run is left


@pytest.mark.integration
def test_a_killed_worker_does_not_fail_a_sweep_whose_trials_all_complete(tmp_path, tracking):
    import optuna
    from optuna.trial import TrialState

    proc, storage, _ = start_sweep(tmp_path, tracking)
    workers = wait_for_workers_in_trials(proc, storage)
    workers[0].kill()  # the launcher reaps it; the survivor retries its trial once the heartbeat is stale
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err[-3000:]  # judged by the trials, not by the dead worker
    study = optuna.load_study(study_name="sig", storage=storage)
    assert Counter(t.params["seed"] for t in study.get_trials() if t.state == TrialState.COMPLETE) == {0: 1, 1: 1}
    assert len(out.strip().splitlines()) == 3  # the killed attempt and both complete trials, one JSON line each
    assert "RUNNING" not in {r.info.status for r in runs("it-sig")}
