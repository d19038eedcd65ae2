"""Run lifecycle on top of MLflow.

Conventions (DESIGN.md): tracking URI from the flag, else ``MLFLOW_TRACKING_URI``, else an explicit
``sqlite:///<cwd>/mlflow.db`` (so MLflow's ./mlruns fallback never triggers). Under ``mlflow run`` the
``MLFLOW_RUN_ID`` run is attached to and ``set_experiment`` is never called. A phase run that already
exists for the same config hash and upstream run, unfinished, is resumed instead of duplicated.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import mlflow
import psutil
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from persist.artifacts import CONFIG_RESOLVED
from persist.config import flatten, to_dict
from persist.errors import ConfigError, UpstreamRunNotFound

os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def resolve_tracking_uri(uri: str | None = None) -> str:
    if uri:
        return uri
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


STORE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "http", "https", "file", "databricks")


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URI (None for other stores and in-memory databases)."""
    if not uri.startswith("sqlite:"):
        return None
    path = uri.partition("sqlite:///")[2].partition("?")[0]
    return Path(path) if path and path != ":memory:" else None


def check_tracking_uri(uri: str | None) -> str:
    """The resolved tracking URI, refused in one line (before anything is created) when it cannot work:
    an unknown scheme, or a sqlite file under a directory that does not exist."""
    resolved = resolve_tracking_uri(uri)
    scheme = resolved.partition(":")[0].partition("+")[0].lower() if "://" in resolved or resolved.startswith("sqlite:") else ""
    if scheme and scheme not in STORE_SCHEMES:
        raise ConfigError(f"tracking URI '{resolved}' has an unsupported scheme '{scheme}'; use sqlite:///PATH, "
                          "http(s)://HOST:PORT or a database URL")
    db = sqlite_path(resolved)
    if resolved.startswith("sqlite:") and not resolved.startswith("sqlite:///"):
        raise ConfigError(f"tracking URI '{resolved}' is not of the form sqlite:///PATH")
    if db is not None and not db.parent.is_dir():
        raise ConfigError(f"tracking URI '{resolved}': directory '{db.parent}' does not exist")
    if db is not None and db.exists() and not db.is_file():
        raise ConfigError(f"tracking URI '{resolved}': '{db}' is not a file")
    return resolved


def setup_tracking(uri: str | None, experiment: str | None, create: bool = True) -> str:
    """Point MLflow at ``uri`` and select ``experiment`` (if given) unless ``mlflow run`` already chose the run.

    With ``create=False`` neither the store nor the experiment is created: a missing one is an error (a
    reader such as a downstream phase or the analysis cannot find anything in a store that does not exist).
    Opening a brand-new sqlite store runs MLflow's schema migration, which two processes must not run at
    once (Alembic fails), so the first open holds a lock beside the database file.
    """
    resolved = check_tracking_uri(uri)
    db = sqlite_path(resolved)
    if not create and db is not None and not db.is_file():
        raise UpstreamRunNotFound(f"no tracking store at {resolved} (nothing has been logged there yet)")
    mlflow.set_tracking_uri(resolved)
    _open_store(resolved, db)
    if experiment is not None and not create and not experiment_exists(experiment):
        raise UpstreamRunNotFound(f"experiment '{experiment}' not found in the tracking store {resolved}")
    if experiment is not None and not os.environ.get("MLFLOW_RUN_ID"):
        describe_experiment(mlflow.set_experiment(experiment).experiment_id)
    return resolved


def _open_store(uri: str, db: Path | None) -> None:
    """Create (or migrate) the store once, serialized across processes for sqlite files."""
    lock = exclusive(db.with_name(f".{db.name}.lock")) if db is not None else contextlib.nullcontext()
    with lock:
        try:
            MlflowClient(tracking_uri=uri).search_experiments(max_results=1)
        except mlflow.exceptions.MlflowException as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"tracking store {uri} cannot be opened: {first[:300]}") from None


def experiment_exists(name: str) -> bool:
    return mlflow.get_experiment_by_name(name) is not None


EXPERIMENT_DESCRIPTION = (
    "persist study: does the topology of a trained network's loss landscape predict how much it forgets on a "
    "new task, beyond model size? Architecture runs (tag persist.phase = 'architecture') carry the study row: "
    "study/* metrics (topology, curvature, retention, AURC, parameters, task-A accuracy) side by side; compare "
    "them with the runs table, scatter or parallel-coordinates charts. Phase runs (train, landscape, "
    "forgetting) are their children; diagnostics sit under diag/."
)


def describe_experiment(experiment_id: str) -> None:
    """Kind and description tags of an experiment (``mlflow.note.content`` is the UI's description)."""
    client = MlflowClient()
    tags = client.get_experiment(experiment_id).tags
    if tags.get("mlflow.experimentKind") != "custom_model_development":
        client.set_experiment_tag(experiment_id, "mlflow.experimentKind", "custom_model_development")
    if not tags.get("mlflow.note.content"):
        client.set_experiment_tag(experiment_id, "mlflow.note.content", EXPERIMENT_DESCRIPTION)


def chosen_experiment(requested: str) -> str:
    """The experiment runs will land in: under ``mlflow run`` (``MLFLOW_RUN_ID`` set) the one it chose,
    whatever ``--experiment`` or the preset say; else ``requested``."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id:
        return requested
    client = MlflowClient()
    exp_id = os.environ.get("MLFLOW_EXPERIMENT_ID") or client.get_run(run_id).info.experiment_id
    name = client.get_experiment(exp_id).name
    return name if name == requested else f"{name}, chosen by mlflow run"


@functools.lru_cache(maxsize=1)
def git_state() -> dict[str, str]:
    """Commit and dirtiness of the source tree, for lineage tags (MLflow records no dirtiness).

    Read once per process: the code that runs is the code that was imported, and every run, scratch
    directory and reuse lookup asks for it (two git subprocesses each time otherwise). Do not mutate.
    """
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return {"persist.git_sha": "unknown", "persist.git_dirty": "unknown"}
    if sha.returncode != 0:
        return {"persist.git_sha": "unknown", "persist.git_dirty": "unknown"}
    return {"persist.git_sha": sha.stdout.strip(), "persist.git_dirty": str(bool(dirty.stdout.strip())).lower()}


def find_runs(filter_string: str, experiment_ids: list[str] | None = None, max_results: int = 1000) -> list[Run]:
    """Runs matching an MLflow filter string, newest first, in the given (default: active) experiments."""
    client = MlflowClient()
    if experiment_ids is None:
        experiment_ids = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiment_ids, filter_string, max_results=max_results,
                              order_by=["attributes.start_time DESC"])


def experiment_id(name: str) -> str:
    """The id of an existing experiment, or a one-line UpstreamRunNotFound naming it."""
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        raise UpstreamRunNotFound(f"experiment '{name}' not found in the tracking store {mlflow.get_tracking_uri()}")
    return exp.experiment_id


def experiment_name(run: Run) -> str:
    """The experiment a run belongs to (under `mlflow run` that is the one mlflow chose, not the preset's)."""
    return MlflowClient().get_experiment(run.info.experiment_id).name


def get_run(run_id: str) -> Run:
    """A run by id, or a one-line UpstreamRunNotFound."""
    try:
        return MlflowClient().get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise UpstreamRunNotFound(f"run '{run_id}' not found in the tracking store {mlflow.get_tracking_uri()}") from None


@contextlib.contextmanager
def exclusive(lock_path: Path, on_wait: Callable[[str], None] | None = None) -> Iterator[bool]:
    """Hold an advisory file lock: two workers needing the same phase run take turns, and the second then
    finds the first one's finished run instead of training the same model into the same scratch files.

    The holder writes who it is (host, pid, command) into the lock file; a process that has to wait
    calls ``on_wait`` with that description first. Yields whether it had to wait.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        waited = False
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waited = True
            if on_wait is not None:
                fh.seek(0)
                on_wait(fh.read().strip() or "another process")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"process {os.getpid()} on {socket.gethostname()} ({' '.join(sys.argv[:4])[:200]})")
            fh.flush()
            yield waited
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def find_finished(phase: str, config_hash: str) -> str | None:
    """A FINISHED run of ``phase`` with this config hash made by the same code version, if any.

    The hash of a downstream phase includes its upstream run id, so a reused run always sits on the
    same upstream artifacts (the MLflow multistep example keyed on parameters alone).
    """
    sha = git_state()["persist.git_sha"]
    clauses = [f"tags.`persist.phase` = '{phase}'", "attributes.status = 'FINISHED'",
               f"tags.`persist.config_hash` = '{config_hash}'", f"tags.`persist.git_sha` = '{sha}'"]
    runs = find_runs(" and ".join(clauses), [_active_experiment_id()])
    return runs[0].info.run_id if runs else None


def _process_identity(pid: int) -> str | None:
    """``pid:start-time`` of a live process (None when it is gone): a pid alone can be reused."""
    try:
        return f"{pid}:{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return None


OWNER = f"{socket.gethostname()}:{_process_identity(os.getpid()) or os.getpid()}"


def _owner_gone(run: Run) -> bool:
    """Whether the process that owns a RUNNING run is dead: no such pid, a zombie (killed but not yet
    reaped by its parent), or a pid now reused by another process (its start time differs from the one in
    the ``persist.owner`` tag, ``host:pid:start``). A live owner is another worker (or this very process);
    a run owned by another host cannot be judged from here, so it is left alone."""
    parts = run.data.tags.get("persist.owner", "").split(":")
    if len(parts) == 3:
        host, pid, started = parts
    elif len(parts) == 2:  # tags written before start times were recorded
        (host, pid), started = parts, None
    else:
        return False
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        proc = psutil.Process(int(pid))
        if proc.status() == psutil.STATUS_ZOMBIE:
            return True
        return started is not None and abs(proc.create_time() - float(started)) > 0.05
    except psutil.NoSuchProcess:
        return True
    except (psutil.Error, ValueError):
        return False


def end_own_runs(status: str = "KILLED") -> int:
    """End every run this process owns that is still RUNNING; returns how many. An interrupt that lands
    inside MLflow's ``start_run`` (after the run is created, before ``phase_run`` can catch anything)
    leaves a run that no ``with`` block will end: an interrupted sweep worker calls this on its way out."""
    runs = find_runs(f"tags.`persist.owner` = '{OWNER}' and attributes.status = 'RUNNING'")
    for run in runs:
        MlflowClient().set_terminated(run.info.run_id, status)
    return len(runs)


def _resumable(phase: str, tags: dict[str, str], finished_too: bool = False) -> str | None:
    """An interrupted run of this phase and identity; with ``finished_too`` also a finished one, but only
    under the same parent (a resumed landscape run reopens its own slices, never another run's)."""
    keys: tuple[str, ...] = ("persist.config_hash", "persist.upstream_run_id", "persist.slice", "persist.git_sha")
    keys += ("mlflow.parentRunId",) if finished_too else ()
    clauses = [f"tags.`persist.phase` = '{phase}'"] + [f"tags.`{k}` = '{tags[k]}'" for k in keys if k in tags]
    for run in find_runs(" and ".join(clauses), [_active_experiment_id()]):
        status = run.info.status
        if (status in ("FAILED", "KILLED") or (status == "RUNNING" and _owner_gone(run))
                or (finished_too and status == "FINISHED")):
            return run.info.run_id
    return None


def _active_experiment_id() -> str:
    from mlflow.tracking.fluent import _get_experiment_id

    experiment = _get_experiment_id()
    assert experiment is not None  # MLflow falls back to the default experiment "0"
    return experiment


@contextlib.contextmanager
def phase_run(
    phase: str,
    cfg: Any,
    tags: dict[str, str] | None = None,
    parent_run_id: str | None = None,
    run_name: str | None = None,
    resume: bool = True,
    reopen_finished: bool = False,
    sections: tuple[str, ...] | None = None,
) -> Iterator[Run]:
    """Open (attach, resume or create) a phase run, tag it, log its config; FAILED on error.

    A nested call opens a child run of the active one. Outside any active run with ``MLFLOW_RUN_ID`` set
    (``mlflow run``), that run is used. With ``resume``, an interrupted run of the same identity (phase,
    config hash, upstream, slice, code version) whose process is gone is continued; ``reopen_finished``
    also reopens a finished one (slices of a resumed landscape run), so a rerun duplicates nothing.
    Params are the config ``sections`` the phase depends on (default: :data:`PHASE_SECTIONS`), never
    empty values; ``config/resolved.json`` always holds the whole config.
    """
    all_tags = {"persist.phase": phase, **git_state(), **(tags or {}), "persist.owner": OWNER}
    _notify("phase", {"phase": phase})
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    active = mlflow.active_run()
    run_id = None
    attached = False
    if active is None and os.environ.get("MLFLOW_RUN_ID"):
        # attach to the run `mlflow run` created, once: MLflow's start_run() would otherwise reattach to it
        # instead of creating children, and subprocesses (sweep workers) would resume it too
        run_id, attached = os.environ.pop("MLFLOW_RUN_ID"), True
    elif resume:
        parent = parent_run_id or (active.info.run_id if active is not None else None)
        identity = {**all_tags, **({"mlflow.parentRunId": parent} if parent else {})}
        run_id = _resumable(phase, identity, reopen_finished)
    # the run `mlflow run` made has a random name: give it persist's; a resumed run keeps its own
    run = mlflow.start_run(run_id=run_id, run_name=run_name if run_id is None or attached else None,
                           nested=active is not None, parent_run_id=parent_run_id if run_id is None else None,
                           tags=all_tags)
    try:
        if attached:
            describe_experiment(run.info.experiment_id)
        if run_id is not None:
            parent = parent_run_id or (active.info.run_id if active is not None else None)
            mlflow.set_tags({**all_tags, **({"mlflow.parentRunId": parent} if parent else {})})  # re-parent
        if cfg is not None:
            _log_config(cfg, sections if sections is not None else PHASE_SECTIONS.get(phase))
        yield run
    except Exception:
        mlflow.end_run(status="FAILED")
        raise
    except BaseException:  # KeyboardInterrupt, SystemExit: resumable, not failed
        mlflow.end_run(status="KILLED")
        raise
    else:
        mlflow.end_run(status="FINISHED")


# The config sections each phase depends on, logged as its params: a study run does not claim one
# member's `model.arch`, a landscape run does not list the task-B learning rate. Phases not listed log all.
_PHASES = ("train", "landscape", "topology", "curvature", "forgetting")
PHASE_SECTIONS: dict[str, tuple[str, ...]] = {
    "train": ("seed", "device", "data", "model", "train"),
    "landscape": ("device", "landscape", "topology", "curvature"),
    "forgetting": ("device", "forgetting"),
    "neural_persistence": ("neural_persistence",),
    "architecture": ("seed", "device", "data", "model", *_PHASES),
    "pipeline": ("experiment", "device", "data", "study", *_PHASES),
}


def config_params(cfg: Any, sections: tuple[str, ...] | None = None) -> dict[str, str]:
    """Flattened ``cfg`` restricted to top-level ``sections`` (all when None), without empty values."""
    flat = flatten(cfg)
    keep = {k: v for k, v in flat.items() if sections is None or k.split(".")[0] in sections}
    return {k: str(v) for k, v in keep.items() if v is not None and str(v) != ""}


def _log_config(cfg: Any, sections: tuple[str, ...] | None = None) -> None:
    run = mlflow.active_run()
    assert run is not None  # config is logged inside a started run
    existing = mlflow.get_run(run.info.run_id).data.params
    params = {k: v for k, v in config_params(cfg, sections).items() if k not in existing}
    if params:
        mlflow.log_params(params)
    mlflow.log_dict(to_dict(cfg), CONFIG_RESOLVED)


def set_tags(tags: dict[str, str]) -> None:
    mlflow.set_tags(tags)


def metric_name(name: str) -> str:
    """MLflow accepts letters, digits and ``_-. :/`` in metric names; anything else becomes ``_``."""
    return re.sub(r"[^\w\-. :/]", "_", name)


# Solver and bookkeeping quantities: needed to trust a number, not to compare runs. They go under
# ``diag/`` so the key metrics of a run (what compare and charts offer first) are not buried among them.
DIAGNOSTIC = re.compile(r"(_matvecs|_residual|_converged|_evaluations|_nonfinite|nonfinite_nodes|seconds|"
                        r"subset_size|_samples|_base_loss)(_mean|_sd)?$")


def diag_name(name: str) -> str:
    """``curvature/lambda_max_residual`` -> ``diag/curvature/lambda_max_residual``; key metrics unchanged."""
    return f"diag/{name}" if DIAGNOSTIC.search(name) and not name.startswith("diag/") else name


def log_metrics(metrics: dict[str, float], step: int | None = None, prefix: str = "") -> None:
    """Batch-log scalars (one call, not one per key) under an optional ``phase/`` prefix; diagnostics
    (solver iterations, residuals, convergence flags, timings) land under ``diag/``."""
    clean = {diag_name(metric_name(f"{prefix}{k}")): float(v) for k, v in metrics.items()}
    if clean:
        mlflow.log_metrics(clean, step=step)
        _notify("metrics", {"metrics": clean, "step": step})


_OBSERVERS: list[Callable[[str, dict[str, Any]], None]] = []


def _notify(event: str, data: dict[str, Any]) -> None:
    for observer in list(_OBSERVERS):
        observer(event, data)


@contextlib.contextmanager
def observe(observer: Callable[[str, dict[str, Any]], None]) -> Iterator[None]:
    """Call ``observer(event, data)`` while inside: ``("phase", {"phase"})`` when a phase run opens and
    ``("metrics", {"metrics", "step"})`` for every logged batch. A sweep trial prints its progress and
    reports intermediate values to Optuna (whose pruner may raise) without the phases knowing of Optuna."""
    _OBSERVERS.append(observer)
    try:
        yield
    finally:
        _OBSERVERS.remove(observer)
