"""A worker in-process with a member that trains nothing: a search runs exactly n_trials (the preset's
value first, TPE after), intermediate values reach Optuna per step, and a pruner stops a worse trial."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from persist.config import preset
from persist.sweep import Objective, SweepSpec, create_study, open_storage, outcome, work
from persist.tracking import find_runs, log_metrics


class Cheap(Objective):
    """Logs ``train/val_accuracy`` = level at steps 0..2 and returns the level: seed 0 is good, 1 bad."""

    def evaluate(self, cfg, trial):
        level = 0.9 if cfg.seed == 0 else 0.1
        for step in range(3):
            log_metrics({"val_accuracy": level}, step, "train/")
        return level


def run(spec: SweepSpec, tmp_path) -> tuple[optuna.Study, list[str]]:
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = create_study(spec, open_storage(url, spec))
    lines: list[str] = []
    assert work(spec, url, None, Cheap(spec, None, echo=lines.append)) == spec.trial_count()
    return study, lines


def test_a_search_runs_exactly_n_trials_from_the_presets_value(tmp_path, tracking):
    spec = SweepSpec(name="lr", search={"forgetting.lr": {"type": "float", "low": 0.001, "high": 0.2, "log": True}},
                     n_trials=3, overrides=("experiment=lr",))
    study, lines = run(spec, tmp_path)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert trials[0].params["forgetting.lr"] == preset("smoke").forgetting.lr
    assert all(0.001 <= t.params["forgetting.lr"] <= 0.2 for t in trials)
    assert trials[0].intermediate_values == {0: 0.9, 1: 0.9, 2: 0.9}
    names = sorted(r.data.tags["mlflow.runName"] for r in find_runs("tags.`persist.phase` = 'trial'"))
    assert names[0] == "trial 0 mlp@1 s0 lr=0.02" and len(names) == 3
    assert sum(line.endswith("started") for line in lines) == 3


def test_a_pruner_stops_the_worse_trial_and_the_sweep_counts_it_done(tmp_path, tracking):
    spec = SweepSpec(name="pr", grid={"seed": [0, 1]}, overrides=("experiment=pr",),
                     pruner={"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0})
    study, lines = run(spec, tmp_path)
    states = {t.params["seed"]: t.state for t in study.get_trials()}
    assert states == {0: TrialState.COMPLETE, 1: TrialState.PRUNED}
    assert study.get_trials()[1].intermediate_values == {0: 0.1}  # stopped at its first step
    assert outcome(spec, study)[1] == 0
    assert any("pruned at step 0 of train/val_accuracy" in line for line in lines)


def test_an_interrupt_fails_the_held_trial_and_ends_its_runs_killed(tmp_path, tracking):
    from mlflow.tracking import MlflowClient

    from persist.tracking.runs import OWNER, _active_experiment_id

    orphan = []

    class Interrupted(Cheap):
        def evaluate(self, cfg, trial):  # as if the interrupt hit inside mlflow.start_run, after create_run
            orphan.append(MlflowClient().create_run(_active_experiment_id(), tags={"persist.owner": OWNER}))
            raise KeyboardInterrupt

    spec = SweepSpec(name="int", grid={"seed": [0]}, overrides=("experiment=int",))
    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = create_study(spec, open_storage(url, spec))
    with pytest.raises(KeyboardInterrupt):
        work(spec, url, None, Interrupted(spec, None, echo=lambda line: None))
    assert [t.state for t in study.get_trials()] == [TrialState.FAIL]
    assert [r.info.status for r in find_runs("tags.`persist.phase` = 'trial'")] == ["KILLED"]
    assert MlflowClient().get_run(orphan[0].info.run_id).info.status == "KILLED"  # ended on the way out


def test_a_journal_storage_runs_only_its_queue(tmp_path, tracking):
    spec = SweepSpec(name="j", grid={"seed": [0, 1]}, overrides=("experiment=j",))
    url = f"journal:{tmp_path / 'journal.log'}"
    study = create_study(spec, open_storage(url, spec))
    assert work(spec, url, None, Cheap(spec, None, echo=lambda line: None)) == 2
    assert [t.state for t in study.get_trials()] == [TrialState.COMPLETE] * 2  # and no third, invented trial
