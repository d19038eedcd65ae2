import json
import os
from pathlib import Path

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


def _train_run(tmp_epochs: int = 2) -> str:
    result = CliRunner().invoke(cli, ["train", "--arch", "mlp", "--width", "0.25", "--epochs", str(tmp_epochs),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])["run_id"]


def test_corrupt_upstream_checkpoint_is_one_line(tracking, tmp_path):
    import mlflow

    run_id = _train_run()
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"not a torch file")
    with mlflow.start_run(run_id=run_id):
        mlflow.log_artifact(str(bad), "checkpoints")  # overwrite the logged checkpoint
    result = CliRunner().invoke(cli, ["forgetting", "--train-run-id", run_id, "--no-progress"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: checkpoint ")
    assert "corrupt" in result.stderr


def test_unknown_run_id_is_one_line(tracking):
    result = CliRunner().invoke(cli, ["landscape", "--train-run-id", "0" * 32, "--no-progress"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: run '{'0' * 32}' not found")


def test_neural_persistence_of_a_trained_model(tracking):
    from mlflow.tracking import MlflowClient

    run_id = _train_run()
    result = CliRunner().invoke(cli, ["np", "--train-run-id", run_id, "--no-progress"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout.strip().splitlines()[-1])
    run = MlflowClient().get_run(out["run_id"])
    layers = [k for k in run.data.metrics if k.endswith("/normalized") and k != "np/mean_normalized"]
    assert len(layers) == 3  # the three Linear layers of the MLP
    mean = sum(run.data.metrics[k] for k in layers) / 3
    assert run.data.metrics["np/mean_normalized"] == pytest.approx(mean)
    assert 0.0 < mean < 1.0


def test_analysis_reproduces_the_published_table_through_the_cli(tracking, tmp_path):
    import pandas as pd

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["analysis", "--spec", str(root / "analysis/persist-published.yaml"),
                                      "--table", str(root / "tests/data/persist_published.csv"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    res = pd.read_csv(out / "results.csv")
    row = res[(res.predictor == "h1_total") & (res.outcome == "ret@100") & (res.method == "spearman")
              & (res.subset == "all")].iloc[0]
    assert row.r == pytest.approx(0.61, abs=0.005) and row.p == pytest.approx(0.021, abs=0.001)
    assert (out / "report.md").is_file()


def test_sigterm_during_a_phase_ends_its_run_killed_with_status_143(tracking, monkeypatch):
    """The real signal, delivered to this process mid-training: the handler turns it into a clean stop."""
    import os
    import signal

    from mlflow.tracking import MlflowClient

    import persist.phases.train as train_phase

    def terminated_mid_training(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM was not raised in the main thread")

    monkeypatch.setattr(train_phase, "train", terminated_mid_training)
    previous = signal.getsignal(signal.SIGTERM)
    result = CliRunner().invoke(cli, ["train", "--arch", "mlp", "--width", "0.25", "--no-progress"])
    assert result.exit_code == 143, result.output
    assert result.stderr.splitlines() == ["terminated: finished work is saved; rerun the same command to resume"]
    (run,) = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("persist-smoke").experiment_id])
    assert run.info.status == "KILLED"
    assert signal.getsignal(signal.SIGTERM) == previous  # the handler lives only while a command runs


def test_a_second_identical_phase_waits_and_says_who_holds_the_lock(tmp_path):
    import threading

    from persist.tracking.runs import exclusive

    lock = tmp_path / "train-abc.lock"
    held, release, said = threading.Event(), threading.Event(), []

    def first():
        with exclusive(lock) as waited:
            assert not waited
            held.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    held.wait(10)
    threading.Timer(0.2, release.set).start()
    with exclusive(lock, said.append) as waited:
        assert waited
    thread.join()
    assert len(said) == 1 and said[0].startswith(f"process {os.getpid()} on ")


def test_store_creation_waits_for_the_process_creating_the_store(tmp_path, template_db):
    """Two commands on a brand-new sqlite store must not run MLflow's migration at once (Alembic fails):
    while another process holds the store's lock, opening the store waits."""
    import threading

    from persist.tracking import setup_tracking
    from persist.tracking.runs import exclusive

    db = tmp_path / "new.db"
    done = threading.Event()
    with exclusive(tmp_path / ".new.db.lock"):
        opener = threading.Thread(target=lambda: (setup_tracking(f"sqlite:///{db}", None), done.set()))
        opener.start()
        assert not done.wait(1.0) and not db.exists()
    opener.join(60)
    assert done.is_set() and db.is_file()


def test_system_metrics_flag_turns_on_mlflow_system_metrics(monkeypatch):
    monkeypatch.delenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", raising=False)
    assert CliRunner().invoke(cli, ["models"]).exit_code == 0
    assert "MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING" not in os.environ
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "false")  # restored after the test
    assert CliRunner().invoke(cli, ["--system-metrics", "models"]).exit_code == 0
    assert os.environ["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"] == "true"
