"""Kill the pipeline mid-study (SIGKILL, no cleanup), rerun the same command: it continues and duplicates nothing."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

TINY = ("train.epochs=25 landscape.resolution=9 landscape.slices=2 landscape.subset=64 "
        "curvature.measures=hessian_trace curvature.subset=32 curvature.probes=2 forgetting.steps=0,5,10")
ARGS = [sys.executable, "-m", "persist.cli", "pipeline", "--archs", "mlp@0.25,cnn@0.25,mlp@0.5", "--set", TINY,
        "--experiment", "it-resume", "--no-progress"]


def phases(client, exp_id, status=None):
    runs = client.search_runs([exp_id], max_results=500)
    return Counter(r.data.tags["persist.phase"] for r in runs if status is None or r.info.status == status)


@pytest.mark.integration
def test_killed_pipeline_resumes_without_duplicates(tracking, tmp_path):
    from mlflow.tracking import MlflowClient

    env = {**os.environ, "PERSIST_WORKDIR": str(tmp_path / "work")}
    proc = subprocess.Popen(ARGS, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = MlflowClient()
    deadline = time.time() + 240
    while time.time() < deadline:  # kill once the second member is training, i.e. mid-study
        exp = client.get_experiment_by_name("it-resume")
        if exp and phases(client, exp.experiment_id)["train"] >= 2:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the pipeline never reached its second member")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert phases(client, exp.experiment_id, "FINISHED")["forgetting"] < 3  # it really was interrupted

    rerun = subprocess.run(ARGS, env=env, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    everything = phases(client, exp.experiment_id)
    finished = phases(client, exp.experiment_id, "FINISHED")
    assert everything == finished  # no run left RUNNING: the killed ones were resumed, not abandoned
    assert finished == Counter({"pipeline": 1, "architecture": 3, "train": 3, "landscape": 3,
                                "landscape_slice": 6, "forgetting": 3, "analysis": 1})
