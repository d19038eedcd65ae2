"""Optuna sweeps over the study: declarative specs, shared storage, N identical worker processes.

A spec is either a grid (every combination of the listed values, e.g. architectures x seeds, enqueued
once) or a search (Optuna's TPE over ranges, the preset's defaults enqueued first as a floor). Workers
are separate processes sharing the storage; an RDB storage carries heartbeats, so a killed worker's trial
goes stale, is failed, and is re-enqueued with the same parameters for another worker (the phases of the
retried trial resume the unfinished runs). Every trial is an MLflow child run of the sweep run.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from persist.config import RunConfig, override, preset
from persist.errors import ConfigError

SPEC_KEYS = {"name", "preset", "overrides", "grid", "search", "n_trials", "objective", "sampler_seed", "heartbeat"}


@dataclass(frozen=True)
class SweepSpec:
    name: str
    preset: str = "smoke"
    overrides: tuple[str, ...] = ()
    grid: dict[str, list[Any]] = field(default_factory=dict)
    search: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_trials: int = 0  # search specs: trials in total across workers; grid specs: the grid size
    metric: str = "forgetting/aurc"
    direction: str = "maximize"
    sampler_seed: int = 0
    heartbeat_interval: int = 10  # seconds between a running trial's heartbeats
    grace_period: int = 30  # a trial without heartbeat for this long is failed and retried

    def base_config(self) -> RunConfig:
        return override(preset(self.preset), self.overrides)

    def trial_count(self) -> int:
        return len(list(grid_points(self))) if self.grid else self.n_trials


def load_sweep(path: str | Path) -> SweepSpec:
    """Parse and validate a sweep YAML; every dotted key must be a config key (checked up front)."""
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"sweep spec {path} cannot be read ({type(exc).__name__})") from None
    unknown = set(raw) - SPEC_KEYS
    if unknown:
        raise ConfigError(f"unknown sweep spec key '{sorted(unknown)[0]}' in {path}")
    if bool(raw.get("grid")) == bool(raw.get("search")):
        raise ConfigError(f"sweep spec {path} needs exactly one of 'grid' or 'search'")
    objective = raw.get("objective", {})
    heartbeat = raw.get("heartbeat", {})
    spec = SweepSpec(
        name=str(raw.get("name") or Path(path).stem), preset=raw.get("preset", "smoke"),
        overrides=tuple(raw.get("overrides", ())), grid=dict(raw.get("grid") or {}),
        search=dict(raw.get("search") or {}), n_trials=int(raw.get("n_trials", 0)),
        metric=objective.get("metric", "forgetting/aurc"), direction=objective.get("direction", "maximize"),
        sampler_seed=int(raw.get("sampler_seed", 0)), heartbeat_interval=int(heartbeat.get("interval", 10)),
        grace_period=int(heartbeat.get("grace", 30)))
    if spec.direction not in ("maximize", "minimize"):
        raise ConfigError(f"objective.direction must be maximize or minimize, got '{spec.direction}'")
    if spec.search and spec.n_trials < 1:
        raise ConfigError(f"search spec {path} needs n_trials >= 1")
    base = spec.base_config()
    for params in itertools.islice(grid_points(spec), 1) if spec.grid else [defaults(spec)]:
        override(base, [f"{k}={v}" for k, v in params.items()])  # raises on unknown keys or bad types
    return spec


def grid_points(spec: SweepSpec):
    keys = list(spec.grid)
    for values in itertools.product(*(spec.grid[k] for k in keys)):
        yield dict(zip(keys, values))


def defaults(spec: SweepSpec) -> dict[str, Any]:
    """The base config's values of the searched keys: the floor every search must beat."""
    base = spec.base_config()
    out = {}
    for key in spec.search:
        value: Any = base
        for part in key.split("."):
            value = getattr(value, part)
        out[key] = value
    return out


def suggest(trial: optuna.Trial, key: str, space: dict[str, Any]) -> Any:
    kind = space.get("type", "float")
    if kind == "float":
        return trial.suggest_float(key, float(space["low"]), float(space["high"]), log=bool(space.get("log", False)))
    if kind == "int":
        return trial.suggest_int(key, int(space["low"]), int(space["high"]), log=bool(space.get("log", False)))
    if kind == "categorical":
        return trial.suggest_categorical(key, list(space["choices"]))
    raise ConfigError(f"search space type for '{key}' must be float, int or categorical, got '{kind}'")


def open_storage(url: str | None, spec: SweepSpec) -> optuna.storages.BaseStorage:
    """RDB storage (sqlite file by default, PostgreSQL across machines) with heartbeats and retry."""
    url = url or f"sqlite:///{Path.cwd() / 'optuna.db'}"
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    return optuna.storages.RDBStorage(
        url, engine_kwargs=kwargs, heartbeat_interval=spec.heartbeat_interval, grace_period=spec.grace_period,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2))


def create_study(spec: SweepSpec, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create or load the study and enqueue what is missing: grid points with no complete, running or
    waiting trial (so a point whose trial failed is retried on rerun), or the search defaults once."""
    sampler = optuna.samplers.TPESampler(seed=spec.sampler_seed)
    study = optuna.create_study(study_name=spec.name, storage=storage, direction=spec.direction, sampler=sampler,
                                load_if_exists=True)
    trials = study.get_trials(deepcopy=False)
    if spec.grid:
        live = (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)
        covered = {tuple(sorted((t.params or t.system_attrs.get("fixed_params", {})).items()))
                   for t in trials if t.state in live}
        for params in grid_points(spec):
            if tuple(sorted(params.items())) not in covered:
                study.enqueue_trial(params)
    elif not trials:
        study.enqueue_trial(defaults(spec))
    return study


class Objective:
    """Runs one study member in-process (no `mlflow run` start-up per trial) and returns the metric."""

    def __init__(self, spec: SweepSpec, sweep_run_id: str | None, progress: bool = False) -> None:
        self.spec = spec
        self.sweep_run_id = sweep_run_id
        self.progress = progress

    def __call__(self, trial: optuna.Trial) -> float:
        from persist.pipeline import run_architecture
        from persist.tracking import log_metrics, phase_run

        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        params = {k: trial.suggest_categorical(k, v) for k, v in self.spec.grid.items()}
        params.update({k: suggest(trial, k, space) for k, space in self.spec.search.items()})
        cfg = override(self.spec.base_config(), [f"{k}={v}" for k, v in params.items()])
        tags = {"optuna.study": self.spec.name, "optuna.trial": str(trial.number)}
        with phase_run("trial", cfg, tags, parent_run_id=self.sweep_run_id, run_name=f"trial-{trial.number}",
                       resume=False) as run:
            trial.set_user_attr("mlflow_run_id", run.info.run_id)
            runs = run_architecture(cfg, progress=self.progress)
            value = phase_metric(runs.run_ids, self.spec.metric)
            log_metrics({"objective": value}, prefix="sweep/")
        return value


def phase_metric(run_ids: dict[str, str], metric: str) -> float:
    from persist.tracking import get_run

    phase = {"forgetting": "forgetting", "topology": "landscape", "curvature": "landscape",
             "landscape": "landscape", "train": "train", "model": "train"}.get(metric.split("/")[0])
    if phase is None:
        raise ConfigError(f"objective metric '{metric}' is not a train, landscape or forgetting metric")
    metrics = get_run(run_ids[phase]).data.metrics
    if metric not in metrics:
        raise ConfigError(f"objective metric '{metric}' was not logged by the {phase} run")
    return float(metrics[metric])


def work(spec: SweepSpec, storage_url: str | None, sweep_run_id: str | None) -> None:
    """One worker: take waiting trials (grid points, retries) or new search trials until none remain.

    A worker whose queue is empty keeps polling while others still run trials, because a trial of a
    killed worker only becomes a retry after its heartbeat goes stale.
    """
    storage = open_storage(storage_url, spec)
    try:
        study = optuna.load_study(study_name=spec.name, storage=storage,
                                  sampler=optuna.samplers.TPESampler(seed=spec.sampler_seed + os.getpid()))
    except KeyError:
        raise ConfigError(f"sweep study '{spec.name}' does not exist in this storage; start it with `persist sweep`"
                          ) from None
    objective = Objective(spec, sweep_run_id)
    heartbeats = isinstance(storage, optuna.storages.RDBStorage)
    while True:
        if heartbeats:
            optuna.storages.fail_stale_trials(study)
        trials = study.get_trials(deepcopy=False)
        waiting = [t for t in trials if t.state == TrialState.WAITING]
        counted = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING)]
        if waiting or (spec.search and len(counted) < spec.n_trials):
            study.optimize(objective, n_trials=1, catch=())
            continue
        if not heartbeats or not any(t.state == TrialState.RUNNING for t in trials):
            return  # without heartbeats a dead worker's trial would never turn stale: do not wait for it
        time.sleep(max(1, spec.heartbeat_interval))


def launch(spec_path: str, workers: int, storage_url: str | None, sweep_run_id: str | None) -> list[int]:
    """Start ``workers`` worker processes (no inherited MLFLOW_RUN_ID) and wait; returns their exit codes."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}
    cmd = [sys.executable, "-m", "persist.cli", "sweep-worker", str(spec_path)]
    if storage_url:
        cmd += ["--storage", storage_url]
    if sweep_run_id:
        cmd += ["--sweep-run-id", sweep_run_id]
    procs = [subprocess.Popen(cmd, env=env) for _ in range(workers)]
    return [p.wait() for p in procs]


def summary(spec: SweepSpec, storage_url: str | None) -> list[dict[str, Any]]:
    study = optuna.load_study(study_name=spec.name, storage=open_storage(storage_url, spec))
    return [{"number": t.number, "state": t.state.name, "value": t.value, **t.params} for t in study.trials]
