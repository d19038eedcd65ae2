"""Optuna sweeps over the study: declarative specs, shared storage, N identical worker processes.

A spec is either a grid (every combination of the listed values, e.g. architectures x seeds) or a search
(Optuna's TPE over ranges, the preset's defaults first as a floor). The launcher validates the whole spec,
then enqueues every trial the sweep will run; workers only ever take queued trials, claiming each with a
compare-and-set (``UPDATE ... WHERE state = 'WAITING'``) that is atomic on SQLite, PostgreSQL and MySQL
alike (Optuna's ``SELECT ... FOR UPDATE`` is a no-op on SQLite, so workers used to take the same trial).
An RDB storage carries heartbeats: a killed worker's trial goes stale, exactly one worker fails it and
re-enqueues the same parameters, and the retried trial resumes the dead worker's runs. Every trial is an
MLflow child run of the sweep run; a rerun of ``persist sweep`` reuses that sweep run.
"""

from __future__ import annotations

import contextlib
import datetime
import difflib
import hashlib
import itertools
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import optuna
import yaml
from optuna.storages import JournalStorage, RDBStorage
from optuna.trial import TrialState

from persist.config import RunConfig, config_hash, override, preset
from persist.errors import ConfigError, PersistError
from persist.phases.table import PHASE_TABLE, PIPELINE_PHASES

SPEC_KEYS = ("name", "preset", "overrides", "grid", "search", "n_trials", "objective", "sampler_seed", "heartbeat",
             "pruner")
OBJECTIVE_KEYS = ("metric", "direction", "intermediate")
Direction = Literal["minimize", "maximize"]  # what parse_spec lets through as objective.direction
PRUNERS = ("none", "median", "percentile", "hyperband")
PHASE_OF_METRIC = {prefix.rstrip("/"): phase for phase in PIPELINE_PHASES for prefix in PHASE_TABLE[phase].prefixes}
DONE = (TrialState.COMPLETE, TrialState.PRUNED)  # a pruned trial was stopped on purpose: not retried
LIVE = DONE + (TrialState.RUNNING, TrialState.WAITING)
MAX_GRID = 10_000
PROGRESS_PHASES = PIPELINE_PHASES


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
    intermediate: str | None = None  # metric reported per step to Optuna; default from the direction
    pruner: dict[str, Any] = field(default_factory=dict)
    sampler_seed: int = 0
    heartbeat_interval: int = 10  # seconds between a running trial's heartbeats
    grace_period: int = 30  # a trial without heartbeat for this long is failed and retried

    def base_config(self) -> RunConfig:
        return override(preset(self.preset), self.overrides)

    def trial_count(self) -> int:
        return math.prod(len(v) for v in self.grid.values()) if self.grid else self.n_trials

    def intermediate_metric(self) -> str:
        """Validation accuracy per epoch (loss when minimizing): known long before the objective, so a
        pruner can stop a hopeless trial before its landscape and forgetting phases."""
        return self.intermediate or ("train/val_accuracy" if self.direction == "maximize" else "train/val_loss")


# ---------------------------------------------------------------------------------------------- spec


def load_sweep(path: str | Path) -> SweepSpec:
    """Parse and validate a whole sweep YAML before anything starts: shapes of every section, every grid
    point and search bound type-checked against the config, objective, pruner, heartbeat and counts."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"sweep spec {path} cannot be read ({type(exc).__name__})") from None
    where = f"sweep spec {path}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a YAML mapping with 'grid' or 'search', got {_kind(raw)}")
    unknown = sorted(set(map(str, raw)) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(f"unknown key '{unknown[0]}' in {where}{_did_you_mean(unknown[0], SPEC_KEYS)}")
    if (raw.get("grid") is None) == (raw.get("search") is None):
        raise ConfigError(f"{where} needs exactly one of 'grid' or 'search'")
    objective = _mapping(raw.get("objective", {}), "objective", "{metric: forgetting/aurc, direction: maximize}")
    unknown = sorted(set(map(str, objective)) - set(OBJECTIVE_KEYS))
    if unknown:
        raise ConfigError(f"unknown key 'objective.{unknown[0]}'; use {', '.join(OBJECTIVE_KEYS)}")
    heartbeat = _mapping(raw.get("heartbeat", {}), "heartbeat", "{interval: 10, grace: 30}")
    if set(map(str, heartbeat)) - {"interval", "grace"}:
        raise ConfigError("heartbeat takes only 'interval' and 'grace' (seconds)")
    spec = SweepSpec(
        name=_string(raw.get("name", Path(path).stem), "name"),
        preset=_string(raw.get("preset", "smoke"), "preset"),
        overrides=_overrides(raw.get("overrides", [])),
        grid=_grid(raw["grid"]) if raw.get("grid") is not None else {},
        search=_search(raw["search"]) if raw.get("search") is not None else {},
        n_trials=_integer(raw.get("n_trials", 0), "n_trials", 0),
        metric=_string(objective.get("metric", "forgetting/aurc"), "objective.metric"),
        direction=_string(objective.get("direction", "maximize"), "objective.direction"),
        intermediate=(_string(objective["intermediate"], "objective.intermediate")
                      if objective.get("intermediate") is not None else None),
        pruner=_pruner(raw.get("pruner", {})),
        sampler_seed=_integer(raw.get("sampler_seed", 0), "sampler_seed", 0),
        heartbeat_interval=_integer(heartbeat.get("interval", 10), "heartbeat.interval", 1),
        grace_period=_integer(heartbeat.get("grace", 30), "heartbeat.grace", 1))
    if spec.direction not in ("maximize", "minimize"):
        raise ConfigError(f"objective.direction must be maximize or minimize, got '{spec.direction}'")
    for key, metric in (("objective.metric", spec.metric), ("objective.intermediate", spec.intermediate_metric())):
        if metric.split("/")[0] not in PHASE_OF_METRIC or "/" not in metric:
            raise ConfigError(f"{key} must be a {', '.join(f'{p}/' for p in PHASE_OF_METRIC)} "
                              f"metric, got '{metric}'")
    if spec.grace_period <= spec.heartbeat_interval:
        raise ConfigError(f"heartbeat.grace ({spec.grace_period} s) must exceed heartbeat.interval "
                          f"({spec.heartbeat_interval} s), or live trials would be failed as stale")
    if spec.search and spec.n_trials < 1:
        raise ConfigError(f"{where} searches, so it needs n_trials >= 1")
    if spec.grid and "n_trials" in raw:
        raise ConfigError(f"{where} is a grid (each point runs once): remove n_trials or use 'search'")
    if spec.grid and spec.trial_count() > MAX_GRID:
        raise ConfigError(f"{where} has {spec.trial_count()} grid points; at most {MAX_GRID}")
    base = spec.base_config()  # raises on unknown presets and bad overrides
    for params in grid_points(spec) if spec.grid else [defaults(spec)] + _search_bounds(spec):
        member_config(base, params)  # every point type-checked now, not at trial 40
    return spec


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"a {type(value).__name__} ({str(value)[:40]!r})"


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _mapping(value: Any, key: str, example: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a mapping such as {example}, got {_kind(value)}")
    return value


def _string(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key} must be a non-empty string, got {_kind(value)}")
    return value.strip()


def _integer(value: Any, key: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{key} must be an integer >= {minimum}, got {_kind(value)}")
    return value


def _scalar(value: Any, key: str) -> Any:
    """Values Optuna can store as a categorical choice and the config parser can read back."""
    if value is None or isinstance(value, (bool, int, float, str)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key} has a non-finite value {value}")
        return value
    raise ConfigError(f"{key} values must be numbers, strings or booleans, got {_kind(value)}")


def _overrides(value: Any) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"overrides must be a list of KEY=VALUE strings, got {_kind(value)}")
    return tuple(part for item in items for part in item.split())


def _grid(value: Any) -> dict[str, list[Any]]:
    """``{dotted.key: [values]}``; a scalar is a one-value list (``model.arch: mlp`` runs mlp only)."""
    grid = _mapping(value, "grid", "{model.arch: [mlp, cnn], seed: [0, 1]}")
    if not grid:
        raise ConfigError("grid is empty; list at least one key with its values")
    out: dict[str, list[Any]] = {}
    for key, values in grid.items():
        key = _string(key, "a grid key")
        values = values if isinstance(values, list) else [values]
        values = [_scalar(v, f"grid.{key}") for v in values]
        if not values:
            raise ConfigError(f"grid.{key} has no values")
        if len({repr(v) for v in values}) != len(values):
            raise ConfigError(f"grid.{key} lists a value twice; each grid point runs once")
        out[key] = values
    return out


def _search(value: Any) -> dict[str, dict[str, Any]]:
    search = _mapping(value, "search", "{forgetting.lr: {type: float, low: 0.001, high: 0.2, log: true}}")
    if not search:
        raise ConfigError("search is empty; give at least one key with its range")
    out: dict[str, dict[str, Any]] = {}
    for key, space in search.items():
        key = _string(key, "a search key")
        space = _mapping(space, f"search.{key}", "{type: float, low: 0.001, high: 0.2, log: true}")
        kind = space.get("type", "float")
        allowed = {"float": {"type", "low", "high", "log"}, "int": {"type", "low", "high", "log"},
                   "categorical": {"type", "choices"}}.get(kind)
        if allowed is None:
            raise ConfigError(f"search.{key}.type must be float, int or categorical, got {_kind(kind)}")
        extra = sorted(set(map(str, space)) - allowed)
        if extra:
            raise ConfigError(f"search.{key} of type {kind} takes {', '.join(sorted(allowed))}, not '{extra[0]}'")
        if kind == "categorical":
            choices = space.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ConfigError(f"search.{key}.choices must be a non-empty list")
            [_scalar(c, f"search.{key}.choices") for c in choices]
        else:
            number = int if kind == "int" else (int, float)
            low: Any = space.get("low")  # YAML scalars, checked just below
            high: Any = space.get("high")
            if any(isinstance(v, bool) or not isinstance(v, number) for v in (low, high)):
                raise ConfigError(f"search.{key} needs numeric low and high ({kind}), got {low!r} and {high!r}")
            if not low < high:
                raise ConfigError(f"search.{key} needs low < high, got {low} and {high}")
            if not isinstance(space.get("log", False), bool):
                raise ConfigError(f"search.{key}.log must be true or false")
            if space.get("log") and low <= 0:
                raise ConfigError(f"search.{key} is searched on a log scale, so low must be > 0, got {low}")
        out[key] = dict(space)
    return out


def _search_bounds(spec: SweepSpec) -> list[dict[str, Any]]:
    """The corners of the search space, type-checked against the config like grid points."""
    values = {k: s["choices"] if s.get("type") == "categorical" else [s["low"], s["high"]]
              for k, s in spec.search.items()}
    return [{k: v[i % len(v)] for k, v in values.items()} for i in range(max(map(len, values.values())))]


def _pruner(value: Any) -> dict[str, Any]:
    pruner = _mapping(value, "pruner", "{type: median, n_startup_trials: 2, n_warmup_steps: 5}")
    if not pruner:
        return {}
    kind = pruner.get("type")
    if kind not in PRUNERS:
        raise ConfigError(f"pruner.type must be one of {', '.join(PRUNERS)}, got {_kind(kind)}")
    options = {k: v for k, v in pruner.items() if k != "type"}
    try:
        make_pruner({"type": kind, **options})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"pruner options {options} are not valid for a {kind} pruner: "
                          f"{str(exc).splitlines()[0]}") from None
    return dict(pruner)


def make_pruner(pruner: dict[str, Any]) -> optuna.pruners.BasePruner:
    options = {k: v for k, v in pruner.items() if k != "type"}
    kind = pruner.get("type", "none")
    cls = {"none": optuna.pruners.NopPruner, "median": optuna.pruners.MedianPruner,
           "percentile": optuna.pruners.PercentilePruner, "hyperband": optuna.pruners.HyperbandPruner}[kind]
    return cls(**options)


def member_config(base: RunConfig, params: dict[str, Any]) -> RunConfig:
    """The config of one trial: the spec's base config with the trial's parameters applied.

    A ``model.arch`` value may be a study entry ``NAME@WIDTH`` (as in ``study.archs``), which also sets
    ``model.width``, so one grid lists a study's members of several widths."""
    params = dict(params)
    if "@" in str(params.get("model.arch", "")):
        params["model.arch"], _, params["model.width"] = str(params["model.arch"]).partition("@")
    for key, value in params.items():
        if key == "model.arch":
            from persist.models import list_models

            if value not in list_models():
                raise ConfigError(f"unknown architecture '{value}' in the sweep spec"
                                  f"{_did_you_mean(str(value), list_models())}; see `persist models`")
    return override(base, [f"{k}={_render(v)}" for k, v in params.items()])


def _render(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def grid_points(spec: SweepSpec) -> Iterator[dict[str, Any]]:
    keys = list(spec.grid)
    for values in itertools.product(*(spec.grid[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))


def defaults(spec: SweepSpec) -> dict[str, Any]:
    """The base config's values of the searched keys: the floor every search must beat."""
    base = spec.base_config()
    out = {}
    for key in spec.search:
        value: Any = base
        for part in key.split("."):
            if not hasattr(value, part):
                raise ConfigError(f"unknown config key '{key}' in search")
            value = getattr(value, part)
        out[key] = value
    return out


def suggest(trial: optuna.Trial, key: str, space: dict[str, Any]) -> Any:
    kind = space.get("type", "float")
    if kind == "float":
        return trial.suggest_float(key, float(space["low"]), float(space["high"]), log=bool(space.get("log", False)))
    if kind == "int":
        return trial.suggest_int(key, int(space["low"]), int(space["high"]), log=bool(space.get("log", False)))
    return trial.suggest_categorical(key, list(space["choices"]))


# ------------------------------------------------------------------------------------------- storage


class NoWaitingTrial(Exception):
    """Raised instead of creating an unqueued trial: workers run only what the launcher enqueued."""


class _QueuedOnly:
    """Storage mixin: new trials only from a template (``enqueue_trial``), never ad hoc in ``ask``.

    Every trial a sweep will run is enqueued by the launcher, so the count of a search is exact and a
    worker that finds the queue empty stops (or waits for stale trials) instead of inventing a trial.
    """

    def create_new_trial(self, study_id: int, template_trial: Any = None) -> int:
        if template_trial is None:
            raise NoWaitingTrial()
        return super().create_new_trial(study_id, template_trial)  # type: ignore[misc]

    def _create_new_trial(self, study_id: int, template_trial: Any = None) -> Any:  # what Optuna's cache calls
        if template_trial is None:
            raise NoWaitingTrial()
        return super()._create_new_trial(study_id, template_trial)  # type: ignore[misc]


class SweepRDBStorage(_QueuedOnly, RDBStorage):
    """RDBStorage whose state changes are compare-and-set: ``UPDATE trials SET state = ... WHERE
    trial_id = ? AND state = <expected>``, one statement that every database evaluates under its write
    lock. Claiming (WAITING -> RUNNING) and failing a stale trial (RUNNING -> FAIL, which re-enqueues it)
    therefore succeed in exactly one process, on SQLite too."""

    claimed: set[int]

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        expected = TrialState.WAITING if state == TrialState.RUNNING else TrialState.RUNNING
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)  # stored as naive UTC
        changes: dict[Any, Any] = {models.TrialModel.state: state}
        if state == TrialState.RUNNING:
            changes[models.TrialModel._datetime_start_utc] = now
        if state.is_finished():
            changes[models.TrialModel._datetime_complete_utc] = now
        with _create_scoped_session(self.scoped_session) as session:
            changed = (session.query(models.TrialModel)
                       .filter(models.TrialModel.trial_id == trial_id, models.TrialModel.state == expected)
                       .update(changes, synchronize_session=False))
            if not changed:
                current = models.TrialModel.find_or_raise_by_id(trial_id, session)
                # raises if another process finished it; the ORM model declares a Column, instances hold a TrialState
                self.check_trial_is_updatable(trial_id, current.state)  # type: ignore[arg-type]
                return False
            for objective, value in enumerate(values or ()):
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                row = (session.query(models.TrialValueModel)
                       .filter_by(trial_id=trial_id, objective=objective).one_or_none())
                if row is None:
                    session.add(models.TrialValueModel(trial_id=trial_id, objective=objective, value=stored,
                                                       value_type=kind))
                else:
                    row.value, row.value_type = stored, kind
        claims = self.__dict__.setdefault("claimed", set())
        claims.add(trial_id) if state == TrialState.RUNNING else claims.discard(trial_id)
        return True


class SweepJournalStorage(_QueuedOnly, JournalStorage):
    """Journal storage (no heartbeats): its log replay already lets exactly one writer claim a trial."""


def storage_url(url: str | None) -> str:
    """The storage URL, checked without touching it (nothing is created for a bad one)."""
    url = url or f"sqlite:///{Path.cwd() / 'optuna.db'}"
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        if not path.name or not path.parent.is_dir():
            raise ConfigError(f"--storage {url}: the journal file's directory does not exist")
        return url
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    usage = "use sqlite:///PATH, postgresql+psycopg2://USER@HOST/DB, mysql+pymysql://... or journal:PATH"
    try:
        parsed = sqlalchemy.engine.make_url(url)
        dialect = parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError):
        raise ConfigError(f"--storage '{url.split('@')[-1]}' is not a storage URL; {usage}") from None
    shown = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() not in ("sqlite", "postgresql", "mysql"):
        raise ConfigError(f"--storage {shown}: Optuna stores studies in SQLite, PostgreSQL or MySQL; {usage}")
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError(f"--storage {shown}: an in-memory SQLite store cannot be shared; name a file")
        if not Path(parsed.database).resolve().parent.is_dir():
            raise ConfigError(f"--storage {shown}: directory {Path(parsed.database).parent} does not exist")
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise ConfigError(f"--storage {shown} needs the {exc.name} driver: pip install 'persist[postgres]'") from None
    return url


def open_storage(url: str | None, spec: SweepSpec) -> optuna.storages.BaseStorage:
    """RDB storage (sqlite file by default, PostgreSQL across machines) with heartbeats and retry."""
    url = storage_url(url)
    quiet_optuna()
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return SweepJournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        return SweepRDBStorage(
            url, engine_kwargs=kwargs, heartbeat_interval=spec.heartbeat_interval, grace_period=spec.grace_period,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2))
    except Exception as exc:  # noqa: BLE001 - refused connection, bad credentials, schema: one line, not a trace
        shown = url.split("@")[-1]
        raise PersistError(f"cannot open the Optuna storage {shown}: {str(exc).strip().splitlines()[0][:200]}") from None


def quiet_optuna() -> None:
    """Optuna's INFO lines, failure tracebacks and ExperimentalWarnings stay off the terminal: persist
    prints one progress line per phase and one line per trial instead."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # torch.func's vmap over CNN pooling in the landscape: a note to torch developers, not to the user
    warnings.filterwarnings("ignore", message=r".*performance drop because we have not yet implemented the batching")
    logging.getLogger("alembic").setLevel(logging.WARNING)


@contextlib.contextmanager
def study_lock(url: str, spec: SweepSpec) -> Iterator[None]:
    """Two launchers of one sweep on this machine enqueue in turn, so no grid point is enqueued twice."""
    from persist.phases.common import phase_lock

    with phase_lock("sweep", hashlib.sha256(f"{url}|{spec.name}".encode()).hexdigest()[:16]):
        yield


def create_study(spec: SweepSpec, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """Create or load the study and enqueue every trial still to run: grid points with no complete,
    pruned, running or waiting trial (so a point whose trial failed is retried on rerun), or for a search
    the preset's defaults first and then empty trials (sampled by TPE when a worker claims them) up to
    ``n_trials``."""
    sampler = optuna.samplers.TPESampler(seed=spec.sampler_seed)
    study = optuna.create_study(study_name=spec.name, storage=storage, direction=cast(Direction, spec.direction),
                                sampler=sampler, pruner=make_pruner(spec.pruner), load_if_exists=True)
    if study.direction.name.lower() != spec.direction:
        raise ConfigError(f"study '{spec.name}' already exists in this storage with direction "
                          f"{study.direction.name.lower()}; rename the sweep to change its direction")
    study.set_metric_names([spec.metric])
    trials = study.get_trials(deepcopy=False)
    if spec.grid:
        covered = {_key(t.params or t.system_attrs.get("fixed_params", {})) for t in trials if t.state in LIVE}
        for params in grid_points(spec):
            if _key(params) not in covered:
                study.enqueue_trial(params)
    else:
        missing = spec.n_trials - sum(t.state in LIVE for t in trials)
        for i in range(max(0, missing)):
            study.enqueue_trial(defaults(spec) if not trials and i == 0 else {})
    return study


def _key(params: dict[str, Any]) -> tuple:
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


# --------------------------------------------------------------------------------------------- trials


def trial_name(number: int, cfg: RunConfig, params: dict[str, Any]) -> str:
    """``trial 3 cnn@0.5 s0`` plus any searched value not in that member name."""
    shown = {"model.arch", "model.width", "seed"}
    extra = " ".join(f"{k.split('.')[-1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[-1]}={v}"
                     for k, v in params.items() if k not in shown)
    return f"trial {number} {cfg.model.arch}@{cfg.model.width:g} s{cfg.seed}" + (f" {extra}" if extra else "")


class Objective:
    """Runs one study member in-process (no `mlflow run` start-up per trial) and returns the metric.

    While the member runs, each phase that opens prints one progress line, and every logged value of the
    spec's intermediate metric is reported to Optuna (the pruner, if any, may stop the trial there).
    Subclasses replace :meth:`evaluate` (the tests use a member that trains nothing).
    """

    def __init__(self, spec: SweepSpec, sweep_run_id: str | None, progress: bool = False,
                 echo: Callable[[str], None] | None = None) -> None:
        self.spec = spec
        self.sweep_run_id = sweep_run_id
        self.progress = progress
        self.echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))

    def __call__(self, trial: optuna.Trial) -> float:
        from persist.tracking import log_metrics, phase_run
        from persist.tracking.runs import observe

        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        params = {k: trial.suggest_categorical(k, v) for k, v in self.spec.grid.items()}
        params.update({k: suggest(trial, k, space) for k, space in self.spec.search.items()})
        cfg = member_config(self.spec.base_config(), params)
        name = trial_name(trial.number, cfg, params)
        key = hashlib.sha256(f"{self.spec.name}|{config_hash(cfg)}".encode()).hexdigest()[:16]
        tags = {"optuna.study": self.spec.name, "optuna.trial": str(trial.number), "persist.config_hash": key,
                "mlflow.runName": name}
        started = time.monotonic()

        def observer(event: str, data: dict[str, Any]) -> None:
            if event == "phase" and data["phase"] in PROGRESS_PHASES:
                self.echo(f"worker {os.getpid()}: {name}: {data['phase']} ({time.monotonic() - started:.0f} s)")
            elif event == "metrics" and data["step"] is not None:
                value = data["metrics"].get(self.spec.intermediate_metric())
                if value is not None and math.isfinite(value):
                    trial.report(value, int(data["step"]))
                    if trial.should_prune():
                        raise optuna.TrialPruned(f"pruned at step {data['step']}")

        self.echo(f"worker {os.getpid()}: {name}: started")
        # a retried trial (same member) resumes the trial run of the dead or interrupted worker
        try:
            with phase_run("trial", cfg, tags, parent_run_id=self.sweep_run_id, run_name=name) as run:
                trial.set_user_attr("mlflow_run_id", run.info.run_id)
                with observe(observer):
                    value = self.evaluate(cfg, trial)
                log_metrics({"objective": value}, prefix="sweep/")
        except optuna.TrialPruned as exc:  # its runs end FAILED; a later trial of this member resumes them
            self.echo(f"worker {os.getpid()}: {name}: {exc} of {self.spec.intermediate_metric()}")
            raise
        self.echo(f"worker {os.getpid()}: {name}: done, {self.spec.metric} = {value:.4g} "
                  f"({time.monotonic() - started:.0f} s)")
        return value

    def evaluate(self, cfg: RunConfig, trial: optuna.Trial) -> float:
        from persist.phases.study_row import log_architecture_row, study_columns
        from persist.pipeline import run_architecture

        runs = run_architecture(cfg, progress=self.progress)
        log_architecture_row(runs, study_columns(cfg.study.analysis_spec))  # the study row, as in a pipeline
        return phase_metric(runs.run_ids, self.spec.metric)


def phase_metric(run_ids: dict[str, str], metric: str) -> float:
    from persist.tracking import get_run

    phase = PHASE_OF_METRIC.get(metric.split("/")[0])
    if phase is None:
        raise ConfigError(f"objective metric '{metric}' is not a train, landscape or forgetting metric")
    metrics = get_run(run_ids[phase]).data.metrics
    if metric not in metrics:
        raise ConfigError(f"objective metric '{metric}' was not logged by the {phase} run")
    return float(metrics[metric])


# -------------------------------------------------------------------------------------------- workers


@contextlib.contextmanager
def interrupts() -> Iterator[None]:
    """SIGTERM (what schedulers and the launcher send) behaves like Ctrl-C: KeyboardInterrupt, once.

    Later signals are ignored so that the clean-up (runs ended KILLED, trials FAILED) is not itself
    interrupted when a terminal's Ctrl-C and the launcher's forwarded SIGTERM arrive together.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal fired
        if not fired:
            fired = True
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


PARENT_ENV = "PERSIST_SWEEP_LAUNCHER_PID"


def watch_launcher() -> None:
    """A worker started by `persist sweep` interrupts itself once its launcher is gone (even SIGKILLed):
    re-parented processes see a different parent pid. Polled once a second in a daemon thread."""
    launcher = os.environ.get(PARENT_ENV)
    if not launcher or launcher != str(os.getppid()):
        return

    def watch() -> None:
        while os.getppid() == int(launcher):
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True, name="persist-launcher-watch").start()


def release_claims(storage: optuna.storages.BaseStorage) -> None:
    """Fail the trials this worker claimed and still holds (an interrupt outside the objective)."""
    for trial_id in list(getattr(storage, "claimed", ())):
        with contextlib.suppress(Exception):
            storage.set_trial_state_values(trial_id, TrialState.FAIL)


def work(spec: SweepSpec, storage_url: str | None, sweep_run_id: str | None,
         objective: Objective | None = None) -> int:
    """One worker: take queued trials (grid points, search trials, retries) until none remain; returns
    how many it ran.

    A worker whose queue is empty keeps polling while others still run trials, because a trial of a
    killed worker only becomes a retry after its heartbeat goes stale.
    """
    storage = open_storage(storage_url, spec)
    try:
        study = optuna.load_study(study_name=spec.name, storage=storage, pruner=make_pruner(spec.pruner),
                                  sampler=optuna.samplers.TPESampler(seed=spec.sampler_seed + os.getpid()))
    except KeyError:
        raise ConfigError(f"sweep study '{spec.name}' does not exist in this storage; start it with `persist sweep`"
                          ) from None
    objective = objective or Objective(spec, sweep_run_id)
    heartbeats = isinstance(storage, RDBStorage)
    ran = 0
    with interrupts():
        watch_launcher()
        try:
            while True:
                try:
                    study.optimize(objective, n_trials=1, catch=())
                    ran += 1
                    continue
                except NoWaitingTrial:
                    pass
                trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
                if not heartbeats or not trials:
                    return ran  # without heartbeats a dead worker's trial would never turn stale: do not wait
                time.sleep(max(1.0, spec.heartbeat_interval / 2))
        except KeyboardInterrupt:
            release_claims(storage)
            end_own_runs_patiently()
            raise


def end_own_runs_patiently(attempts: int = 10) -> None:
    """End this worker's RUNNING runs KILLED, retrying: on a busy sqlite store (other workers writing) one
    attempt can fail with "database is locked", which would leave a run RUNNING forever."""
    from persist.tracking.runs import end_own_runs

    for attempt in range(attempts):
        try:
            end_own_runs("KILLED")
            return
        except Exception:
            time.sleep(0.2 * (attempt + 1))


# ------------------------------------------------------------------------------------------- launcher


def launch(spec_path: str | Path, workers: int, storage_url: str | None, sweep_run_id: str | None,
           command: list[str] | None = None, kill_after: float = 60.0) -> tuple[list[int], int | None]:
    """Start ``workers`` worker processes and wait for all; returns their exit codes and the signal that
    interrupted the launcher (None if none).

    Workers are reaped as each exits (polled, never one blocking wait at a time, so none lingers as a
    zombie). SIGTERM or SIGINT to the launcher is forwarded as SIGTERM, and workers still alive
    ``kill_after`` seconds later are killed. Workers watch the launcher's pid, so they interrupt themselves
    if it dies without forwarding (SIGKILL).
    """
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_RUN_ID"}
    env[PARENT_ENV] = str(os.getpid())
    cmd = list(command or [sys.executable, "-m", "persist.cli", "sweep-worker", str(spec_path)])
    if storage_url:
        cmd += ["--storage", storage_url]
    if sweep_run_id:
        cmd += ["--sweep-run-id", sweep_run_id]
    procs: list[subprocess.Popen] = []
    interrupted: list[tuple[int, float]] = []  # (signal, when)

    def forward(signum: int, frame: Any) -> None:
        interrupted.append((signum, time.monotonic()))
        for p in procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)

    in_main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)} if in_main else {}
    try:
        for _ in range(workers):
            if interrupted:
                break
            procs.append(subprocess.Popen(cmd, env=env))
        while any(p.poll() is None for p in procs):
            if interrupted and time.monotonic() - interrupted[0][1] > kill_after:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
            time.sleep(0.2)
    finally:
        for p in procs:  # the launcher failed or was interrupted while starting: leave no worker behind
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=kill_after)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for s, h in previous.items():
            signal.signal(s, h)
    return [p.returncode for p in procs], (interrupted[0][0] if interrupted else None)


def outcome(spec: SweepSpec, study: optuna.Study) -> tuple[list[dict[str, Any]], int]:
    """The trials (number, state, value, params) and how many the sweep still lacks."""
    trials = study.get_trials(deepcopy=False)
    rows = [{"number": t.number, "state": t.state.name, "value": t.value,
             **(t.params or t.system_attrs.get("fixed_params", {}))} for t in trials]
    if spec.grid:
        done = {_key(t.params or t.system_attrs.get("fixed_params", {})) for t in trials if t.state in DONE}
        missing = sum(_key(p) not in done for p in grid_points(spec))
    else:
        missing = max(0, spec.n_trials - sum(t.state in DONE for t in trials))
    return rows, missing


def sweep_key(spec: SweepSpec, url: str) -> str:
    return hashlib.sha256(f"sweep|{spec.name}|{url}".encode()).hexdigest()[:16]


def run_sweep(spec_path: str, workers: int, storage: str | None, tracking_uri: str | None) -> list[dict[str, Any]]:
    """`persist sweep`: validate everything, create the study, open (or reopen) the sweep run, run the
    workers, and judge the sweep by its trials: every trial done is success however many workers died.

    Raises KeyboardInterrupt after an interrupt (the sweep run ends KILLED, the workers' trials FAIL and
    are re-enqueued by the next `persist sweep`), PersistError when trials are still missing.
    """
    from persist.tracking import log_json, phase_run, setup_tracking

    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    spec = load_sweep(spec_path)
    url = storage_url(storage)
    with interrupts():  # SIGTERM like Ctrl-C; while workers run, launch() forwards signals instead
        with study_lock(url, spec):
            study = create_study(spec, open_storage(url, spec))
        setup_tracking(tracking_uri, spec.base_config().experiment)
        tags = {"optuna.study": spec.name, "persist.config_hash": sweep_key(spec, url)}
        with phase_run("sweep", None, tags, run_name=f"sweep {spec.name}", reopen_finished=True) as run:
            study.set_user_attr("mlflow_sweep_run_id", run.info.run_id)
            _, signum = launch(spec_path, workers, storage, run.info.run_id)
            trials, missing = outcome(spec, study)
            log_json(trials, "sweep/trials.json")
            if signum is not None:
                raise KeyboardInterrupt
    if missing:
        failed = [t for t in trials if t["state"] not in ("COMPLETE", "PRUNED", "WAITING", "RUNNING")]
        raise PersistError(f"{missing} of {spec.trial_count()} sweep trials did not complete "
                           f"({len(failed)} failed attempts); rerun `persist sweep` to retry them")
    return trials
