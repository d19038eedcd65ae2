"""A sweep spec is validated whole before anything starts: every bad spec or storage URL is one `error:`
line, exit 2, and nothing created (no optuna.db, no mlflow.db, no experiment)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from persist.cli import cli
from persist.errors import ConfigError
from persist.sweep import load_sweep, storage_url

GOOD = "name: s\ngrid: {model.arch: [mlp, cnn], seed: [0, 1]}\n"

BAD_SPECS = {
    "a bad value at the second grid point": ("grid: {model.width: [0.25, abc]}", "model.width expects float"),
    "a bad value at the last grid point": ("grid: {seed: [0, 1], model.width: [0.5, 1, x]}", "model.width"),
    "an unknown architecture": ("grid: {model.arch: [mlp, mpl]}", "did you mean 'mlp'"),
    "an unknown config key": ("grid: {model.depth: [1, 2]}", "unknown config key 'model.depth'"),
    "a scalar YAML document": ("just a string", "must be a YAML mapping"),
    "an empty document": ("", "must be a YAML mapping"),
    "a list document": ("- grid\n- search", "must be a YAML mapping"),
    "a list grid": ("grid: [model.arch, seed]", "grid must be a mapping"),
    "an empty grid": ("grid: {}", "grid is empty"),
    "a nested grid value": ("grid: {seed: [[0, 1]]}", "numbers, strings or booleans"),
    "a repeated grid value": ("grid: {seed: [0, 0]}", "lists a value twice"),
    "a grid with n_trials": ("grid: {seed: [0]}\nn_trials: 5", "remove n_trials"),
    "neither grid nor search": ("name: x", "exactly one of 'grid' or 'search'"),
    "both grid and search": ("grid: {seed: [0]}\nsearch: {forgetting.lr: {low: 0.01, high: 0.1}}", "exactly one"),
    "a misspelt top-level key": ("gird: {seed: [0]}", "did you mean 'grid'"),
    "objective as a word": ("grid: {seed: [0]}\nobjective: maximize", "objective must be a mapping"),
    "a bad direction": ("grid: {seed: [0]}\nobjective: {direction: up}", "maximize or minimize"),
    "a metric of no phase": ("grid: {seed: [0]}\nobjective: {metric: aurc}", "objective.metric must be"),
    "an unknown objective key": ("grid: {seed: [0]}\nobjective: {metrc: train/x}", "objective.metrc"),
    "a zero heartbeat": ("grid: {seed: [0]}\nheartbeat: {interval: 0}", "heartbeat.interval must be an integer"),
    "a text heartbeat": ("grid: {seed: [0]}\nheartbeat: {interval: often}", "heartbeat.interval"),
    "grace below interval": ("grid: {seed: [0]}\nheartbeat: {interval: 10, grace: 5}", "must exceed"),
    "a heartbeat scalar": ("grid: {seed: [0]}\nheartbeat: 10", "heartbeat must be a mapping"),
    "a search without n_trials": ("search: {forgetting.lr: {low: 0.01, high: 0.1}}", "n_trials >= 1"),
    "negative n_trials": ("search: {forgetting.lr: {low: 0.01, high: 0.1}}\nn_trials: -1", "n_trials must be"),
    "text n_trials": ("search: {forgetting.lr: {low: 0.01, high: 0.1}}\nn_trials: ten", "n_trials must be"),
    "float n_trials": ("search: {forgetting.lr: {low: 0.01, high: 0.1}}\nn_trials: 2.5", "n_trials must be"),
    "low above high": ("search: {forgetting.lr: {low: 0.1, high: 0.01}}\nn_trials: 2", "low < high"),
    "log scale from zero": ("search: {forgetting.lr: {low: 0, high: 0.1, log: true}}\nn_trials: 2", "low must be > 0"),
    "an unknown search type": ("search: {forgetting.lr: {type: normal, low: 0, high: 1}}\nn_trials: 2", "float, int"),
    "text bounds": ("search: {forgetting.lr: {low: a, high: b}}\nn_trials: 2", "numeric low and high"),
    "an unknown search key": ("search: {forgetting.rate: {low: 0.01, high: 0.1}}\nn_trials: 2", "forgetting.rate"),
    "an int search of an int key": ("search: {train.epochs: {type: int, low: 1, high: 3}}\nn_trials: 2", None),
    "a search bound of the wrong type": ("search: {train.epochs: {low: 0.5, high: 3.5}}\nn_trials: 2",
                                         "train.epochs expects int"),
    "empty choices": ("search: {model.arch: {type: categorical, choices: []}}\nn_trials: 2", "non-empty list"),
    "an unknown pruner": ("grid: {seed: [0]}\npruner: {type: sometimes}", "pruner.type must be"),
    "a bad pruner option": ("grid: {seed: [0]}\npruner: {type: median, patience: 3}", "not valid for a median"),
    "overrides as a number": ("grid: {seed: [0]}\noverrides: 5", "overrides must be a list"),
    "a bad override": ("grid: {seed: [0]}\noverrides: [train.epochs=many]", "train.epochs expects int"),
    "an unknown preset": ("grid: {seed: [0]}\npreset: huge", "unknown preset 'huge'"),
    "malformed YAML": ("grid: {seed: [0, 1}", "cannot be read"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_specs_are_refused_whole(case, tmp_path):
    text, message = BAD_SPECS[case]
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    if message is None:  # an int search of an int key is fine
        assert load_sweep(path).search
        return
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as exc:
        load_sweep(path)
    assert "\n" not in str(exc.value)


def test_a_scalar_grid_value_is_a_one_value_list(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("grid: {model.arch: mlp, seed: [0, 1]}")
    spec = load_sweep(path)
    assert spec.grid == {"model.arch": ["mlp"], "seed": [0, 1]}  # not m, l, p
    assert spec.trial_count() == 2 and spec.name == "spec"


def test_booleans_and_defaults(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text("grid: {curvature.enabled: [true, false]}\nobjective: {direction: minimize}\n"
                    "pruner: {type: median, n_warmup_steps: 2}")
    spec = load_sweep(path)
    assert spec.grid == {"curvature.enabled": [True, False]}
    assert spec.intermediate_metric() == "train/val_loss"  # the pruner compares in the study's direction
    assert spec.pruner == {"type": "median", "n_warmup_steps": 2}


@pytest.mark.parametrize("url, message", [
    ("bogus://x", "not a storage URL"),
    ("not a url", "not a storage URL"),
    ("sqlite://", "in-memory"),
    ("sqlite:///no/such/dir/optuna.db", "does not exist"),
    ("journal:/no/such/dir/journal.log", "does not exist"),
    ("mssql+pyodbc://u@h/db", "SQLite, PostgreSQL or MySQL"),
])
def test_bad_storage_urls(url, message):
    with pytest.raises(ConfigError, match=message):
        storage_url(url)


def test_good_storage_urls(tmp_path):
    assert storage_url(f"sqlite:///{tmp_path / 'o.db'}").endswith("o.db")
    assert storage_url(f"journal:{tmp_path / 'j.log'}").startswith("journal:")
    assert not list(tmp_path.iterdir())  # checking creates nothing


CLI_CASES = [
    ("grid: {model.width: [0.25, abc]}", []),
    ("grid: {model.arch: [mlp]}\nobjective: maximize", []),
    ("hello", []),
    ("grid: [model.arch]", []),
    ("grid: {seed: [0]}\nheartbeat: {interval: -1}", []),
    ("search: {forgetting.lr: {low: 0.01, high: 0.1}}\nn_trials: 0", []),
    (GOOD, ["--storage", "bogus://x"]),
    (GOOD, ["--workers", "0"]),
]


@pytest.mark.parametrize("text, args", CLI_CASES)
def test_persist_sweep_refuses_with_one_line_and_creates_nothing(text, args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("PERSIST_WORKDIR", str(tmp_path / ".persist"))
    (tmp_path / "spec.yaml").write_text(text)
    commands = [["sweep", "spec.yaml", *args]] + ([["sweep-worker", "spec.yaml", *args]] if "--workers" not in args
                                                  else [])
    for command in commands:
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 2, (result.output, result.exception)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]  # no optuna.db, mlflow.db, .persist
