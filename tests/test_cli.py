import json

import pytest
from click.testing import CliRunner

from persist.cli import cli

COMMANDS = [name for name in cli.commands]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_every_option(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    for param in cli.commands[command].params:
        if param.param_type_name == "option":
            assert param.help, f"{command} {param.opts} has no help"


@pytest.mark.parametrize("args, message", [
    (["train", "--arch", "nope"], "error: unknown architecture 'nope'"),
    (["train", "--dataset", "mnist"], "error: unknown dataset 'mnist'"),
    (["train", "--set", "train.lr=fast"], "error: train.lr expects float, got 'fast'"),
    (["train", "--set", "train.nope=1"], "error: unknown config key 'train.nope'"),
    (["train", "--dataset", "cifar100", "--data-dir", "nowhere"], "error: cifar100 not found under --data-dir"),
    (["train", "--preset", "huge"], "error: unknown preset 'huge'"),
])
def test_bad_input_is_one_line_and_exit_2(tracking, args, message):
    result = CliRunner().invoke(cli, args + ["--no-progress"])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(message)
    assert "Traceback" not in result.output


def test_train_logs_a_run_with_metrics_checkpoint_and_tags(tracking):
    from mlflow.tracking import MlflowClient

    result = CliRunner().invoke(cli, ["train", "--arch", "mlp", "--width", "0.25", "--epochs", "3", "--no-progress"])
    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout.strip().splitlines()[-1])["run_id"]
    run = MlflowClient().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["persist.phase"] == "train" and run.data.tags["persist.arch"] == "mlp"
    assert len(run.data.tags["persist.config_hash"]) == 16
    assert 0.5 < run.data.metrics["train/test_accuracy"] <= 1.0
    assert run.data.metrics["model/num_params"] == 64 * 64 + 64 + 64 * 64 + 64 + 64 * 5 + 5
    history = MlflowClient().get_metric_history(run_id, "train/val_accuracy")
    assert [m.step for m in history] == [0, 1, 2]
    files = {f.path for d in ("checkpoints", "figures", "config") for f in MlflowClient().list_artifacts(run_id, d)}
    assert {"checkpoints/best.pt", "figures/training.png", "config/resolved.json"} <= files
