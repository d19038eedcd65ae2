"""A grid sweep with two worker processes sharing one Optuna storage; one worker is killed mid-trial."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

SPEC = {
    "name": "it-grid",
    "preset": "smoke",
    "overrides": ["experiment=it-sweep", "train.epochs=40", "landscape.resolution=5", "landscape.slices=1",
                  "landscape.subset=32", "curvature.enabled=false", "forgetting.steps=0,5"],
    "grid": {"model.arch": ["mlp", "cnn"], "seed": [0, 1]},
    "objective": {"metric": "forgetting/aurc_masked", "direction": "maximize"},
    "heartbeat": {"interval": 1, "grace": 3},
}


def start_worker(spec_path: Path, storage: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "persist.cli", "sweep-worker", str(spec_path), "--storage", storage],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def run_sweep_with_a_killed_worker(tmp_path: Path, storage: str, tracking: str) -> None:
    import optuna
    from optuna.trial import TrialState

    from persist.sweep import create_study, load_sweep, open_storage

    spec_path = tmp_path / "grid.yaml"
    spec_path.write_text(yaml.safe_dump(SPEC))
    spec = load_sweep(spec_path)
    create_study(spec, open_storage(storage, spec))
    create_study(spec, open_storage(storage, spec))  # creating it again enqueues nothing twice
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "PERSIST_WORKDIR": str(tmp_path / "work")}
    env.pop("MLFLOW_RUN_ID", None)
    victim = start_worker(spec_path, storage, env)
    deadline = time.time() + 120
    study = optuna.load_study(study_name="it-grid", storage=storage)
    assert len(study.get_trials()) == 4
    while time.time() < deadline:  # wait until the victim is inside a trial
        running = [t for t in study.get_trials() if t.state == TrialState.RUNNING]
        if running and running[0].user_attrs.get("worker", "").endswith(f":{victim.pid}"):
            break
        time.sleep(0.3)
    else:
        victim.kill()
        pytest.fail("the first worker never started a trial")
    time.sleep(1.5)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    survivor = start_worker(spec_path, storage, env)
    _, err = survivor.communicate(timeout=400)
    assert survivor.returncode == 0, err[-3000:]

    trials = study.get_trials()
    complete = [tuple(sorted(t.params.items())) for t in trials if t.state == TrialState.COMPLETE]
    assert Counter(complete) == Counter({(("model.arch", a), ("seed", s)): 1 for a in ("mlp", "cnn") for s in (0, 1)})
    assert [t.state for t in trials].count(TrialState.FAIL) == 1  # the killed trial, retried by the survivor

    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking)
    exp = MlflowClient().get_experiment_by_name("it-sweep")
    finished = MlflowClient().search_runs([exp.experiment_id], "attributes.status = 'FINISHED'", max_results=500)
    per_member = Counter((r.data.tags["persist.phase"], r.data.tags.get("persist.arch"), r.data.tags.get("persist.seed"))
                         for r in finished if r.data.tags["persist.phase"] in ("train", "forgetting"))
    assert set(per_member.values()) == {1} and len(per_member) == 8  # nothing ran twice
    every = MlflowClient().search_runs([exp.experiment_id], max_results=1000)
    assert "RUNNING" not in {r.info.status for r in every}  # the killed worker's runs were resumed and finished
    assert Counter(r.data.tags["persist.phase"] for r in every)["trial"] == 4  # its trial run too
    architectures = [r for r in every if r.data.tags["persist.phase"] == "architecture"]
    assert len(architectures) == 4 and all("study/params" in r.data.metrics and "study/aurc" in r.data.metrics
                                           for r in architectures)  # the study row, as in a pipeline


@pytest.mark.integration
def test_sweep_sqlite_storage_survives_a_killed_worker(tmp_path, tracking):
    run_sweep_with_a_killed_worker(tmp_path, f"sqlite:///{tmp_path / 'optuna.db'}", tracking)


@pytest.mark.integration
def test_sweep_on_postgresql(tmp_path, tracking):
    url = os.environ.get("PERSIST_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PostgreSQL not available: .ci/run starts one and sets PERSIST_TEST_POSTGRES_URL")
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:  # a fresh database per run so reruns do not see old studies
        conn.exec_driver_sql("DROP DATABASE IF EXISTS persist_it")
        conn.exec_driver_sql("CREATE DATABASE persist_it")
    engine.dispose()
    run_sweep_with_a_killed_worker(tmp_path, url.rsplit("/", 1)[0] + "/persist_it", tracking)
