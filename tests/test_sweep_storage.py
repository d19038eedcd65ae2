"""Trial claims are compare-and-set: exactly one of many claimants gets a trial, on SQLite too, and
workers run only the trials the launcher enqueued."""

from __future__ import annotations

import threading

import optuna
import pytest
from optuna.trial import TrialState

from persist.config import preset
from persist.sweep import NoWaitingTrial, SweepRDBStorage, SweepSpec, create_study, outcome

SPEC = SweepSpec(name="s", grid={"seed": list(range(24))}, heartbeat_interval=1, grace_period=3)


def storage(tmp_path):
    return SweepRDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}", engine_kwargs={"connect_args": {"timeout": 60}},
                           heartbeat_interval=1, grace_period=3)


def test_a_trial_is_claimed_once_and_finished_once(tmp_path):
    study = create_study(SPEC, storage(tmp_path))
    backend = study._storage._backend
    trial_id = study.get_trials()[0]._trial_id
    assert backend.set_trial_state_values(trial_id, TrialState.RUNNING)
    assert not backend.set_trial_state_values(trial_id, TrialState.RUNNING)  # a second claimant loses
    assert backend.claimed == {trial_id}
    assert backend.set_trial_state_values(trial_id, TrialState.COMPLETE, [0.5])
    assert study.get_trials()[0].value == 0.5 and backend.claimed == set()
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):  # a stale-trial check comes too late
        backend.set_trial_state_values(trial_id, TrialState.FAIL)


def test_workers_never_invent_trials(tmp_path):
    study = create_study(SweepSpec(name="one", grid={"seed": [0]}), storage(tmp_path))
    study.ask()  # the queued grid point
    with pytest.raises(NoWaitingTrial):
        study.ask()
    assert len(study.get_trials()) == 1


def test_concurrent_claimants_on_sqlite_take_each_trial_once(tmp_path):
    create_study(SPEC, storage(tmp_path))
    claims: list[int] = []
    barrier = threading.Barrier(6)

    def claimant() -> None:
        study = optuna.load_study(study_name="s", storage=storage(tmp_path))  # its own engine and connections
        barrier.wait()
        while (trial_id := study._pop_waiting_trial_id()) is not None:
            claims.append(trial_id)

    threads = [threading.Thread(target=claimant) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claims) == sorted(t._trial_id for t in create_study(SPEC, storage(tmp_path)).get_trials())
    assert len(claims) == 24


def test_search_enqueues_exactly_n_trials_and_rerun_adds_none(tmp_path):
    spec = SweepSpec(name="search", search={"forgetting.lr": {"type": "float", "low": 0.001, "high": 0.2}},
                     n_trials=3)
    study = create_study(spec, storage(tmp_path))
    create_study(spec, storage(tmp_path))
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.WAITING] * 3
    assert trials[0].system_attrs["fixed_params"] == {"forgetting.lr": preset("smoke").forgetting.lr}  # floor first
    assert trials[1].system_attrs["fixed_params"] == {}  # sampled by TPE when claimed
    assert study.metric_names == ["forgetting/aurc"]


def test_a_grid_is_judged_by_its_trials_not_its_attempts(tmp_path):
    spec = SweepSpec(name="g", grid={"seed": [0, 1]})
    study = create_study(spec, storage(tmp_path))
    first = study.ask()
    study.tell(first, state=TrialState.FAIL)
    assert outcome(spec, study)[1] == 2
    create_study(spec, storage(tmp_path))  # the failed point is enqueued again
    for _ in range(2):
        study.tell(study.ask(), 1.0)
    rows, missing = outcome(spec, study)
    assert missing == 0 and [r["state"] for r in rows] == ["FAIL", "COMPLETE", "COMPLETE"]
