"""SIGTERM, what schedulers and `kill` send, stops a phase like Ctrl-C: run KILLED, exit 143, one line."""

import os
import signal
import subprocess
import sys
import time

import pytest


@pytest.mark.integration
def test_sigterm_stops_train_cleanly(tracking, tmp_path):
    from mlflow.tracking import MlflowClient

    env = {**os.environ, "PERSIST_WORKDIR": str(tmp_path / "work")}
    env.pop("MLFLOW_RUN_ID", None)
    proc = subprocess.Popen([sys.executable, "-m", "persist.cli", "train", "--width", "0.25", "--epochs", "1000",
                             "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = MlflowClient()
    deadline = time.time() + 180
    run = None
    while time.time() < deadline and proc.poll() is None:  # wait until it is really training
        exp = client.get_experiment_by_name("persist-smoke")
        runs = client.search_runs([exp.experiment_id]) if exp else []
        if runs and "train/val_accuracy" in runs[0].data.metrics:
            run = runs[0]
            break
        time.sleep(0.3)
    if run is None:
        proc.kill()
        pytest.fail(f"training never started: {proc.communicate()[1][-2000:]}")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.splitlines() == ["terminated: finished work is saved; rerun the same command to resume"]
    assert client.get_run(run.info.run_id).info.status == "KILLED"
