"""`torchrun --nproc-per-node 2 -m persist.cli landscape` on CPU (gloo) gives the single-process grid."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from persist.cli import cli

TINY = "landscape.resolution=7 landscape.subset=64 curvature.enabled=false topology.noise_source=none"


def grid_of(landscape_run_id: str, dst: Path) -> np.ndarray:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    (child,) = client.search_runs(client.get_run(landscape_run_id).info.experiment_id,
                                  f"tags.`mlflow.parentRunId` = '{landscape_run_id}'")
    return np.load(client.download_artifacts(child.info.run_id, "landscape/grid.npz", str(dst)))["loss"]


@pytest.mark.integration
@pytest.mark.parametrize("family", [[], ["--directions", "hessian", "--dims", "3", "--resolution", "5"]],
                         ids=["random-2d", "hessian-3d"])
def test_torchrun_landscape_matches_one_process(tracking, tmp_path, family):
    trained = CliRunner().invoke(cli, ["train", "--arch", "cnn", "--width", "0.25", "--epochs", "2", "--no-progress"])
    assert trained.exit_code == 0, trained.output
    train_id = json.loads(trained.stdout.strip().splitlines()[-1])["run_id"]
    args = ["landscape", "--train-run-id", train_id, "--slices", "1", "--set", TINY, "--no-progress", *family]

    env = {**os.environ, "PERSIST_WORKDIR": str(tmp_path / "ranks")}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "persist.cli"]
    proc = subprocess.run(torchrun + args, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("{")]  # only rank 0 reports
    sharded = grid_of(json.loads(line)["run_id"], tmp_path / "a")

    single = CliRunner().invoke(cli, args)
    assert single.exit_code == 0, single.output
    alone = grid_of(json.loads(single.stdout.strip().splitlines()[-1])["run_id"], tmp_path / "b")
    np.testing.assert_allclose(sharded, alone, rtol=1e-6)
    assert np.isfinite(alone).all() and alone.shape == ((7, 7) if not family else (5, 5, 5))
