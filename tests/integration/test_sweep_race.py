"""Sweep workers as real processes on one storage, with a member that trains nothing (a few sleeps and
logged steps), so the claiming, heartbeat and retry machinery is what the test exercises:

- 4 workers released at once on 40 queued trials take each trial exactly once (sqlite; PostgreSQL too
  when PERSIST_TEST_POSTGRES_URL is set, as .ci/run does);
- 2 of 3 workers SIGKILLed mid-trial: the survivor fails their stale trials, retries them, resumes their
  trial runs, and every grid point ends COMPLETE once with no run left RUNNING.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

WORKER = '''
import os, sys, time
from pathlib import Path
from persist.sweep import Objective, load_sweep, work
from persist.tracking import log_metrics, setup_tracking

STEPS, DELAY = int(os.environ["CHEAP_STEPS"]), float(os.environ["CHEAP_DELAY"])


class Cheap(Objective):
    """A study member that trains nothing: it logs an intermediate value per step and returns its seed."""

    def evaluate(self, cfg, trial):
        for step in range(STEPS):
            time.sleep(DELAY)
            log_metrics({"val_accuracy": 0.1 * step}, step, "train/")
        return float(cfg.seed)


spec_path, storage, barrier = sys.argv[1:4]
spec = load_sweep(spec_path)
setup_tracking(None, spec.base_config().experiment)
Path(barrier, f"ready-{os.getpid()}").touch()
while not Path(barrier, "go").exists():  # every worker enters the race at the same moment
    time.sleep(0.02)
try:
    work(spec, storage, None, Cheap(spec, None, echo=lambda line: None))
except KeyboardInterrupt:
    sys.exit(130)
'''


def spec_file(tmp_path: Path, name: str, seeds: int) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "preset": "smoke", "overrides": [f"experiment={name}"], "grid": {"seed": list(range(seeds))},
        "objective": {"metric": "train/best_val_accuracy"}, "heartbeat": {"interval": 1, "grace": 3}}))
    return path


def start_workers(tmp_path: Path, spec: Path, storage: str, n: int, steps: int, delay: float,
                  tracking: str) -> list[subprocess.Popen]:
    script = tmp_path / "cheap_worker.py"
    script.write_text(WORKER)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking, "CHEAP_STEPS": str(steps), "CHEAP_DELAY": str(delay),
           "PERSIST_WORKDIR": str(tmp_path / "work")}
    env.pop("MLFLOW_RUN_ID", None)
    procs = [subprocess.Popen([sys.executable, str(script), str(spec), storage, str(barrier)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    deadline = time.time() + 120
    while len(list(barrier.glob("ready-*"))) < n:
        if time.time() > deadline or any(p.poll() is not None for p in procs):
            for p in procs:
                p.kill()
            pytest.fail("workers did not start: " + "".join(p.communicate()[1][-2000:] for p in procs))
        time.sleep(0.1)
    (barrier / "go").touch()
    return procs


def enqueue(spec_path: Path, storage: str):
    from persist.sweep import create_study, load_sweep, open_storage

    spec = load_sweep(spec_path)
    return create_study(spec, open_storage(storage, spec))


def trial_runs(experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=1000)


def race(tmp_path: Path, storage: str, tracking: str) -> None:
    from optuna.trial import TrialState

    spec = spec_file(tmp_path, "race", 40)
    study = enqueue(spec, storage)
    procs = start_workers(tmp_path, spec, storage, 4, steps=2, delay=0.02, tracking=tracking)
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    trials = study.get_trials()
    assert len(trials) == 40  # nothing was created besides the queue
    assert Counter(t.state for t in trials) == {TrialState.COMPLETE: 40}
    assert sorted(t.params["seed"] for t in trials) == list(range(40))
    assert len({t.user_attrs["worker"] for t in trials}) >= 2  # the workers really did compete
    runs = trial_runs("race")
    assert len(runs) == 40  # one trial run per trial: no trial ran twice
    assert Counter(r.data.tags["optuna.trial"] for r in runs) == Counter(str(n) for n in range(40))
    assert {r.info.status for r in runs} == {"FINISHED"}


@pytest.mark.integration
def test_four_workers_never_take_the_same_trial_on_sqlite(tmp_path, tracking):
    race(tmp_path, f"sqlite:///{tmp_path / 'optuna.db'}", tracking)


def fresh_postgres_database(name: str) -> str:
    url = os.environ.get("PERSIST_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("PostgreSQL not available: .ci/run starts one and sets PERSIST_TEST_POSTGRES_URL")
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:  # a fresh database per run so reruns do not see old studies
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine.dispose()
    return url.rsplit("/", 1)[0] + f"/{name}"


@pytest.mark.integration
def test_four_workers_never_take_the_same_trial_on_postgresql(tmp_path, tracking):
    race(tmp_path, fresh_postgres_database("persist_race"), tracking)


@pytest.mark.integration
def test_two_of_three_workers_killed_every_trial_completes_once(tmp_path, tracking):
    kill_two_of_three(tmp_path, f"sqlite:///{tmp_path / 'optuna.db'}", tracking)


@pytest.mark.integration
def test_two_of_three_workers_killed_on_postgresql(tmp_path, tracking):
    kill_two_of_three(tmp_path, fresh_postgres_database("persist_kill"), tracking)


def kill_two_of_three(tmp_path: Path, storage: str, tracking: str) -> None:
    from optuna.trial import TrialState

    spec = spec_file(tmp_path, "kill", 6)
    study = enqueue(spec, storage)
    procs = start_workers(tmp_path, spec, storage, 3, steps=8, delay=0.5, tracking=tracking)
    by_pid = {p.pid: p for p in procs}
    deadline = time.time() + 120
    while time.time() < deadline:  # two different workers each inside a trial with its run open
        holders = {int(t.user_attrs["worker"].rsplit(":", 1)[1]) for t in study.get_trials()
                   if t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs}
        if len(holders) >= 2:
            break
        time.sleep(0.2)
    else:
        for p in procs:
            p.kill()
        pytest.fail("two workers never held trials at once")
    victims = sorted(holders)[:2]
    for pid in victims:
        by_pid[pid].send_signal(signal.SIGKILL)
    for pid in victims:
        by_pid[pid].wait()
    (survivor,) = [p for p in procs if p.pid not in victims]
    _, err = survivor.communicate(timeout=300)
    assert survivor.returncode == 0, err[-3000:]

    trials = study.get_trials()
    complete = Counter(t.params["seed"] for t in trials if t.state == TrialState.COMPLETE)
    assert complete == Counter(range(6))  # every grid point complete, exactly once
    assert [t.state for t in trials].count(TrialState.FAIL) == 2  # the two killed trials, retried
    runs = trial_runs("kill")
    assert {r.info.status for r in runs} == {"FINISHED"}  # the dead workers' runs were resumed, not left
    assert Counter(r.data.params["seed"] for r in runs) == Counter(str(s) for s in range(6))  # one trial run per grid point
