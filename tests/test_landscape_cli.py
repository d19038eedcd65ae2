"""The landscape command with every direction family, through the CLI and a real (sqlite) tracking store."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from persist.artifacts import LANDSCAPE_DIR
from persist.cli import cli
from persist.landscape import load_grid

FAST = ["--no-progress", "--resolution", "5", "--subset", "64", "--set",
        "curvature.enabled=false landscape.batch_size=64 curvature.subset=64"]


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])["run_id"]


def _train(seed: int, snapshots: int = 0) -> str:
    return _run(["train", "--arch", "mlp", "--width", "0.25", "--epochs", "3", "--seed", str(seed), "--no-progress",
                 "--set", f"train.snapshots={snapshots}"])


def _slice(client, landscape_run_id: str):
    (child,) = client.search_runs([client.get_run(landscape_run_id).info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{landscape_run_id}'")
    # the slice's landscape/ artifacts are exactly what load_grid reads: n-D axes, losses, meta
    grid = load_grid(client.download_artifacts(child.info.run_id, LANDSCAPE_DIR))
    assert len(grid.axes) == grid.loss.ndim == grid.meta["dims"] and grid.accuracy.shape == grid.loss.shape
    return child, grid.meta, grid.loss


@pytest.mark.slow
def test_hessian_3d_and_trajectory_from_the_cli(tracking):
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    train = _train(0, snapshots=4)
    assert {f.path for f in client.list_artifacts(train, "checkpoints")} >= {"checkpoints/snapshots.pt"}
    hessian = _run(["landscape", "--train-run-id", train, "--directions", "hessian", "--dims", "3", *FAST])
    child, meta, loss = _slice(client, hessian)
    assert loss.shape == (5, 5, 5) and meta["dims"] == 3
    record = meta["directions"]
    assert record["family"] == "hessian" and all(record["converged"]) and record["norm_unit"] == 1.0
    assert record["eigenvalues"] == sorted(record["eigenvalues"], reverse=True)
    assert child.data.metrics["landscape/limit_ratio"] > 0 and "topology/h2_count" in child.data.metrics
    assert {f.path for f in client.list_artifacts(child.info.run_id, "figures")} >= {
        "figures/contour_12.png", "figures/contour_13.png", "figures/contour_23.png", "figures/diagram.png"}

    trajectory = _run(["landscape", "--train-run-id", train, "--directions", "trajectory", *FAST])
    _, meta, loss = _slice(client, trajectory)
    assert loss.shape == (5, 5) and len(meta["directions"]["path"]) == 4
    assert 0 < meta["directions"]["explained_variance_total"] <= 1 + 1e-12


@pytest.mark.slow
def test_modes_plane_from_the_cli_puts_each_model_on_a_node(tracking):
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    runs = [_train(seed) for seed in (0, 1, 2)]
    run_id = _run(["landscape", "--train-run-id", runs[0], "--directions", "modes", "--run-ids", ",".join(runs),
                   *FAST[:3], "--resolution", "9", *FAST[5:]])
    _, meta, loss = _slice(client, run_id)
    assert loss.shape == (9, 9)
    nodes, coordinates = meta["directions"]["nodes"], meta["directions"]["coordinates"]
    assert len({tuple(v) for v in nodes.values()}) == 3
    for name, (i, j) in nodes.items():
        assert [meta["axes"][0][i], meta["axes"][1][j]] == coordinates[name]


@pytest.mark.parametrize("args, message", [
    (["--directions", "sideways"], "landscape.directions must be one of"),
    (["--dims", "5"], "landscape.dims must be in [1, 4]"),
    (["--directions", "modes", "--run-ids", "a,b"], "three run ids"),
    (["--directions", "trajectory"], "kept no parameter snapshots"),
])
def test_bad_direction_options_are_one_line(tracking, args, message):
    train = _train(0)
    result = CliRunner().invoke(cli, ["landscape", "--train-run-id", train, *FAST, *args])
    assert result.exit_code == 2 and message in result.output, result.output


@pytest.mark.slow
def test_a_resumed_landscape_skips_finished_slices_and_curvature(tracking, monkeypatch):
    from mlflow.tracking import MlflowClient

    import persist.phases.landscape as phase

    train = _train(0)
    args = ["landscape", "--train-run-id", train, "--slices", "2", "--no-progress", "--resolution", "3",
            "--subset", "32", "--set", "curvature.measures=hessian_trace curvature.subset=16 curvature.probes=2"]
    real_grid, real_curvature = phase.slice_grid, phase.log_curvature
    calls = {"grid": [], "curvature": 0}

    def grid(model, cfg, directions, x, y, k, *rest, **kw):
        calls["grid"].append(k)
        if k == 1 and calls.get("kill"):
            raise KeyboardInterrupt
        return real_grid(model, cfg, directions, x, y, k, *rest, **kw)

    def curvature(*a, **kw):
        calls["curvature"] += 1
        return real_curvature(*a, **kw)

    monkeypatch.setattr(phase, "slice_grid", grid)
    monkeypatch.setattr(phase, "log_curvature", curvature)
    calls["kill"] = True
    assert CliRunner().invoke(cli, args).exit_code == 130  # killed while evaluating slice 1
    assert calls == {"grid": [0, 1], "curvature": 1, "kill": True}
    calls.update(grid=[], curvature=0, kill=False)
    run_id = _run(args)
    assert calls["grid"] == [1] and calls["curvature"] == 0  # slice 0 and the curvature were done
    client = MlflowClient()
    children = client.search_runs([client.get_run(run_id).info.experiment_id],
                                   f"tags.mlflow.parentRunId = '{run_id}'")
    assert sorted(c.data.tags["persist.slice"] for c in children) == ["0", "1"]
    for child in children:  # nothing logged twice
        assert len(client.get_metric_history(child.info.run_id, "landscape/center_loss")) == 1
    assert len(client.get_metric_history(run_id, "curvature/hessian_trace")) == 1
    assert "topology/h0_count_mean" in client.get_run(run_id).data.metrics
