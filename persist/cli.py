"""The ``persist`` command line: thin shells over the phase functions.

One error boundary (:class:`PersistGroup`): every failure is one ``error: <message>`` line on stderr, exit 2
for bad input (PersistError, click usage errors) and 1 for internal failures, with the traceback only under
``persist --debug`` or ``PERSIST_DEBUG=1``. Every input is checked before any tracking store, experiment, run
or file is created. Ctrl-C (exit 130) and SIGTERM (exit 143) end the open runs KILLED and say how to resume
(rerun the same command). MLproject entry points call ``python -m persist.cli``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

import click

from persist.errors import ConfigError, PersistError, Terminated
from persist.phases.table import PHASE_TABLE

os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no INFO lines on store creation

PRESET_HELP = ("Base configuration: 'smoke' (embedded digits, CPU, minutes), 'demo' (what make demo runs: MNIST-1D, 7 "
               "architectures x 2 seeds), 'mnist1d' (the CPU study, 16 x 3) or 'cifar100' (the PERSIST study).")
SET_HELP = ("Config override KEY=VALUE with a dotted key, e.g. landscape.resolution=31 (repeatable; one value "
            "may hold several space-separated overrides). Unknown keys and wrong types are rejected.")
RESUME = "finished work is saved; rerun the same command to resume"


def quiet_libraries() -> None:
    """Library chatter stays off the terminal, so that an error is one line."""
    for name in ("mlflow", "alembic", "optuna"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*is experimental.*")  # Optuna's ExperimentalWarning
    # torch.func's first jvp loads decompositions through the deprecated torch.jit.script: not ours to fix
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def _debug(args: list[str] | None) -> bool:
    """``persist --debug ...`` or PERSIST_DEBUG=1 (read from the arguments too, for errors found while parsing)."""
    given = sys.argv[1:] if args is None else list(args)
    return os.environ.get("PERSIST_DEBUG", "") not in ("", "0") or "--debug" in given[:1]


def _fail(message: str, code: int, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    click.echo(f"error: {one_line(message)}", err=True)
    sys.exit(code)


class _SigtermRaises:
    """While a command runs, SIGTERM raises :class:`Terminated` in the main thread (once: a second SIGTERM
    during the cleanup is ignored so that runs still end KILLED)."""

    def __enter__(self) -> None:
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


class PersistGroup(click.Group):
    """The error boundary: one ``error:`` line and an exit status instead of a traceback."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        quiet_libraries()
        debug = _debug(args)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.ClickException as exc:  # usage errors: a bad option or value is bad input
            ctx = getattr(exc, "ctx", None)
            hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
            _fail(exc.format_message() + hint, 2, debug)
        except click.Abort:
            click.echo(f"interrupted: {RESUME}", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        debug = _debug([]) or bool(ctx.params.get("debug"))
        with _SigtermRaises():
            try:
                return super().invoke(ctx)
            except (click.exceptions.Exit, click.ClickException, click.Abort):
                raise
            except PersistError as exc:
                _fail(str(exc), 2, debug)
            except Terminated:
                click.echo(f"terminated: {RESUME}", err=True)
                sys.exit(143)
            except KeyboardInterrupt:
                click.echo(f"interrupted: {RESUME}", err=True)
                sys.exit(130)
            except Exception as exc:  # a bug or an environment failure, not the user's input
                hint = "" if debug else "; rerun with --debug for the traceback"
                _fail(f"internal error ({type(exc).__name__}): {one_line(str(exc))[:400]}{hint}", 1, debug)


def _nonempty(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None and not str(value).strip():
        raise click.BadParameter("must not be empty")
    return value


class OptionalInt(click.ParamType):
    """An integer, or the empty string (MLproject passes unset parameters as '') meaning 'the config's'."""

    name = "integer"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | None:
        if value is None or value == "":
            return None
        if isinstance(value, int):
            return value
        try:
            return int(value)
        except ValueError:
            self.fail(f"'{value}' is not an integer", param, ctx)


def common_options(seed: bool = True) -> Callable[[Callable], Callable]:
    """Options shared by every phase command (``--seed`` only where it is not fixed by an upstream run)."""

    def decorate(fn: Callable) -> Callable:
        options = [
            click.option("--preset", default="smoke", show_default=True, help=PRESET_HELP),
            click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP),
            click.option("--tracking-uri", default=None,
                         help="MLflow tracking URI (a server such as http://host:5000 or a database URL). "
                              "Default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db."),
            click.option("--experiment", default=None, callback=_nonempty,
                         help="MLflow experiment name. Default: the preset's."),
            click.option("--device", default=None, help="auto, cpu, cuda or cuda:N. Default: auto."),
            *([click.option("--seed", type=int, default=None, help="Seed for data split, init and batches.")]
              if seed else []),
            click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars."),
        ]
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def build_config(preset: str, overrides: tuple[str, ...], **shortcuts: Any):
    """Preset, then ``--set`` overrides, then the explicit shortcut options (which win)."""
    from persist.config import override
    from persist.config import preset as load_preset

    assignments = [part for item in overrides for part in item.split()]
    assignments += [f"{key}={value}" for key, value in shortcuts.items() if value is not None]
    return override(load_preset(preset), assignments)


def start(cfg: Any, tracking_uri: str | None) -> str:
    """Create (or open) the store and select the experiment: only after every input has been checked."""
    from persist.tracking import setup_tracking
    from persist.tracking.runs import chosen_experiment

    uri = setup_tracking(tracking_uri, cfg.experiment)
    return f"tracking: {uri} (experiment '{chosen_experiment(cfg.experiment)}')"


def report(tracking_line: str, payload: dict[str, Any]) -> None:
    click.echo(tracking_line, err=True)
    click.echo(json.dumps(payload))


def locked(phase: str, key: str, compute: Callable[[], str]) -> str:
    """Run a standalone phase under the pipeline's lock for the same key. A second identical command waits
    (saying who holds the lock) and then reuses the run the first one finished instead of computing it again."""
    from persist.phases.common import phase_lock
    from persist.tracking import find_finished

    def say(holder: str) -> None:
        click.echo(f"waiting: this {phase} is being computed by {holder}", err=True)

    with phase_lock(phase, key, say) as waited:
        return (find_finished(phase, key) if waited else None) or compute()


@click.group(cls=PersistGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="persist")
@click.option("--debug", is_flag=True, help="Show the traceback of an error (also PERSIST_DEBUG=1).")
@click.option("--system-metrics", is_flag=True,
              help="Log CPU, memory and GPU use beside every run (MLflow system metrics; needs psutil, and "
                   "pynvml for GPUs). Same as MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=true.")
def cli(debug: bool, system_metrics: bool) -> None:
    """persist: topology of neural networks, tracked in MLflow.

    Phases: train -> landscape -> forgetting -> analysis. Each phase logs an MLflow run; later phases take
    the train run id. `persist pipeline` runs the whole study; `mlflow ui --backend-store-uri
    sqlite:///mlflow.db` shows the results.
    """
    if system_metrics:  # MLflow reads it when a run starts; subprocesses (sweep workers) inherit it
        os.environ["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"] = "true"


@cli.command("train")
@common_options()
@click.option("--arch", default=None, help="Architecture name (see `persist models`).")
@click.option("--width", type=float, default=None, help="Width multiplier of the architecture (1.0 = study size).")
@click.option("--dataset", default=None, help="digits (offline), cifar10 or cifar100.")
@click.option("--data-dir", default=None, help="Directory holding (or receiving) torchvision datasets.")
@click.option("--download/--no-download", default=None, help="Download a missing dataset (needs internet).")
@click.option("--epochs", type=int, default=None, help="Task-A training epochs.")
def train_cmd(preset, overrides, tracking_uri, experiment, device, seed, progress, arch, width, dataset, data_dir,
              download, epochs) -> None:
    """Train on task A and keep the best-validation checkpoint (prints the run id as JSON)."""
    from persist.phases.common import check_member
    from persist.phases.train import run_train, train_hash
    from persist.tracking.runs import check_tracking_uri

    cfg = build_config(preset, overrides, **{
        "model.arch": arch, "model.width": width, "data.dataset": dataset, "data.data_dir": data_dir,
        "data.download": download, "train.epochs": epochs, "experiment": experiment, "device": device, "seed": seed})
    check_member(cfg)
    check_tracking_uri(tracking_uri)
    line = start(cfg, tracking_uri)
    run_id = locked("train", train_hash(cfg), lambda: run_train(cfg, progress=progress))
    report(line, {"phase": "train", "run_id": run_id})


INHERITED = PHASE_TABLE["train"].sections  # a downstream phase inherits what its upstream train run depended on
TRAIN_RUN_HELP = "Run id of a finished `persist train` run (its checkpoint and config are read from the tracking store)."


def upstream_config(tracking_uri: str | None, run_id: str, preset: str, overrides: tuple[str, ...],
                    phases: tuple[str, ...] = ("train",), checkpoint: str = "best",
                    check: Callable[[Any], None] | None = None, **shortcuts: Any):
    """A downstream phase inherits data, model, train and seed from its upstream run; the rest from the preset.

    Order matters: the options are checked first, then the upstream run is verified (a FINISHED run of
    the expected phase whose config and checkpoint check out) in a store that must already exist, and
    only then is the phase's experiment selected, so a refused command creates nothing.
    """
    from dataclasses import replace

    import torch

    from persist.devices import resolve_device
    from persist.phases.common import checkpoint_name, load_trained_model
    from persist.tracking import setup_tracking
    from persist.tracking.runs import check_tracking_uri

    inherited = [o for item in overrides for o in item.split() if o.split("=")[0].split(".")[0] in INHERITED]
    if inherited:
        raise ConfigError(f"'{inherited[0]}' is fixed by the upstream run; retrain to change data, model, train "
                          "or seed")
    cfg = build_config(preset, overrides, **shortcuts)
    resolve_device(cfg.device)
    if check is not None:
        check(cfg)
    checkpoint_name(checkpoint)
    check_tracking_uri(tracking_uri)
    setup_tracking(tracking_uri, None, create=False)
    _, trained = load_trained_model(run_id, torch.device("cpu"), checkpoint, phases)
    cfg = replace(cfg, data=trained.data, model=trained.model, train=trained.train, seed=trained.seed)
    return cfg, start(cfg, tracking_uri)


@cli.command("landscape")
@common_options(seed=False)
@click.option("--train-run-id", required=True, help=TRAIN_RUN_HELP)
@click.option("--slices", type=OptionalInt(), default=None,
              help="Number of random slices (one child run each; other families: 1).")
@click.option("--resolution", type=int, default=None, help="Grid points per axis; odd so the trained weights are a node.")
@click.option("--span", type=float, default=None, help="Half-width of the grid in filter-normalized units.")
@click.option("--subset", type=int, default=None, help="Evaluate on the first N examples of the split (0 = all).")
@click.option("--directions", default=None,
              help="Direction family: random, hessian (top eigenvectors), trajectory (PCA of train.snapshots) "
                   "or modes (plane through --run-ids). Default: random.")
@click.option("--dims", type=OptionalInt(), default=None,
              help="Grid dimensions, 1 to 4 (resolution^dims nodes). Default: 2.")
@click.option("--run-ids", default=None,
              help="modes: three comma-separated run ids A,B,C (RUN or RUN:checkpoint); A is the grid origin.")
def landscape_cmd(preset, overrides, tracking_uri, experiment, device, progress, train_run_id, slices,
                  resolution, span, subset, directions, dims, run_ids) -> None:
    """Sample loss on 1-4-D slices through the trained weights (random, Hessian, trajectory or mode-plane
    directions), with persistent homology and curvature baselines.

    Under torchrun the grid nodes are sharded across ranks; rank 0 logs the results.
    """
    from persist.landscape import init_distributed_from_env
    from persist.phases.common import check_landscape_resources
    from persist.phases.landscape import landscape_hash, run_landscape

    cfg, line = upstream_config(tracking_uri, train_run_id, preset, overrides, check=check_landscape_resources, **{
        "landscape.slices": slices, "landscape.resolution": resolution, "landscape.span": span,
        "landscape.subset": subset, "landscape.directions": directions, "landscape.dims": dims,
        "landscape.run_ids": run_ids, "experiment": experiment, "device": device})
    rank, world = init_distributed_from_env()
    compute = lambda: run_landscape(cfg, train_run_id, progress=progress and rank == 0, rank=rank)
    run_id = compute() if world > 1 else locked("landscape", landscape_hash(cfg, train_run_id), compute)
    if rank == 0:
        report(line, {"phase": "landscape", "run_id": run_id})


@cli.command("forgetting")
@common_options(seed=False)
@click.option("--train-run-id", required=True, help=TRAIN_RUN_HELP)
@click.option("--lr", type=float, default=None, help="Task-B learning rate (one policy for every architecture).")
@click.option("--ewc-lambda", type=float, default=None, help="EWC strength; 0 disables EWC.")
@click.option("--schedule", default=None, help="Task-B learning-rate schedule: constant or cosine.")
def forgetting_cmd(preset, overrides, tracking_uri, experiment, device, progress, train_run_id, lr, ewc_lambda,
                   schedule) -> None:
    """Train a task-A model on task B and measure retention of task A (class-incremental and task-masked)."""
    from persist.phases.forgetting import forgetting_hash, run_forgetting

    cfg, line = upstream_config(tracking_uri, train_run_id, preset, overrides, **{
        "forgetting.lr": lr, "forgetting.ewc_lambda": ewc_lambda, "forgetting.schedule": schedule,
        "experiment": experiment, "device": device})
    run_id = locked("forgetting", forgetting_hash(cfg, train_run_id),
                    lambda: run_forgetting(cfg, train_run_id, progress=progress))
    report(line, {"phase": "forgetting", "run_id": run_id})


@cli.command("np")
@common_options(seed=False)
@click.option("--train-run-id", "run_id", default=None,
              help="A finished train run (or forgetting run, with --checkpoint final) whose checkpoint is measured.")
@click.option("--run-id", "legacy_run_id", default=None, hidden=True, help="Old name of --train-run-id.")
@click.option("--checkpoint", default="best", show_default=True,
              help="Checkpoint name under checkpoints/: best (train runs) or final (forgetting runs).")
def np_cmd(preset, overrides, tracking_uri, experiment, device, progress, run_id, legacy_run_id, checkpoint) -> None:
    """Neural persistence (Rieck et al. 2019) of each layer of a trained model, with weight baselines."""
    from persist.phases.neural_persistence import run_neural_persistence

    run_id = run_id or legacy_run_id
    if not run_id:
        raise click.UsageError("Missing option '--train-run-id'.")
    cfg, line = upstream_config(tracking_uri, run_id, preset, overrides, PHASE_TABLE["neural_persistence"].upstream,
                                checkpoint, experiment=experiment, device=device)
    new_id, values = run_neural_persistence(cfg, run_id, checkpoint)
    report(line, {"phase": "neural_persistence", "run_id": new_id, "np/mean_normalized": values["np/mean_normalized"]})


@cli.command("init-quality")
@click.option("--stage", default="all", show_default=True,
              help="Stage(s) to run: 1 samples, 2 surrogate, 3 local topology, 4 training outcomes, 5 prediction; "
                   "'all' or a comma list. Later stages reuse earlier outputs of the same config.")
@click.option("--preset", type=click.Choice(["quick", "full"]), default="full", show_default=True,
              help="Base configuration: 'quick' (about a minute on 2 CPU cores) or 'full' (the study).")
@click.option("--quick", "legacy_size", flag_value="quick", default=None, hidden=True, help="Old form of --preset quick.")
@click.option("--full", "legacy_size", flag_value="full", hidden=True, help="Old form of --preset full.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a field of the init-quality config, e.g. inits_per_scheme=10 or training.epochs=5.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db).")
@click.option("--experiment", default="persist-init-quality", show_default=True, callback=_nonempty,
              help="MLflow experiment name.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
def init_quality_cmd(stage, preset, legacy_size, overrides, tracking_uri, experiment, progress) -> None:
    """Predict training outcome from the topology of local landscapes at initialization, against baselines."""
    from persist.phases.init_quality import init_quality_config, parse_stages, run_init_quality
    from persist.tracking import setup_tracking
    from persist.tracking.runs import check_tracking_uri

    cfg = init_quality_config((legacy_size or preset) == "quick", [part for item in overrides for part in item.split()])
    stages = parse_stages(stage)
    check_tracking_uri(tracking_uri)
    uri = setup_tracking(tracking_uri, experiment)
    run_id, _ = run_init_quality(cfg, stages, progress=progress)
    report(f"tracking: {uri} (experiment '{experiment}')", {"phase": "init_quality", "run_id": run_id, "stages": stages})


MAX_PERMUTATIONS = 10_000_000


def check_analysis_inputs(spec_path: str, rows: int, out_dir: str | None = None):
    """The spec parses and validates, its permutation count fits in memory for ``rows`` rows, and ``--out``
    can be written: all before a run exists."""
    from persist.phases.analysis import resolve_spec
    from persist.phases.common import check_memory
    from persist.stats import load_spec

    spec = load_spec(resolve_spec(spec_path))
    if spec.n_permutations > MAX_PERMUTATIONS:
        raise ConfigError(f"analysis spec 'n_permutations' is {spec.n_permutations:,}; at most {MAX_PERMUTATIONS:,} "
                          "are supported (10,000 resolve p = 0.01 to about +-0.002)")
    check_memory(2 * 8 * spec.n_permutations * max(rows, spec.min_n), f"{spec.n_permutations:,} permutations",
                 "n_permutations in the analysis spec")
    if out_dir is not None:
        check_writable(Path(out_dir), "--out")
    return spec


def check_writable(path: Path, option: str) -> None:
    """A directory that exists and is writable, or can be created under a writable existing parent."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} exists and is not a directory")
    existing = next(p for p in [path, *path.absolute().parents] if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path} cannot be written (no write permission on {existing})")


def read_table_checked(path: str):
    import pandas as pd

    from persist.errors import DataError

    try:
        table = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"--table {path} cannot be read as CSV ({type(exc).__name__})") from None
    if table.empty:
        raise DataError(f"--table {path} has no rows")
    return table


@cli.command("analysis")
@click.option("--spec", default="analysis/persist.yaml", show_default=True,
              help="YAML analysis spec: predictors, outcomes, covariates, families, subsets, corrections.")
@click.option("--experiment", default=None, callback=_nonempty,
              help="Analyse the finished runs of this MLflow experiment (default: persist-smoke).")
@click.option("--from-experiment", "legacy_experiment", default=None, hidden=True, help="Old name of --experiment.")
@click.option("--table", default=None, help="Analyse a CSV table instead (one row per architecture).")
@click.option("--out", "out_dir", default=None, help="Also write results.csv, report.md and figures here.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db).")
@click.option("--log-experiment", default="persist-analysis", show_default=True, callback=_nonempty,
              help="Experiment that receives the analysis run when --table is used.")
def analysis_cmd(spec, experiment, legacy_experiment, table, out_dir, tracking_uri, log_experiment) -> None:
    """Correlate landscape topology with retention across architectures (prints the headline table)."""
    from persist.phases.analysis import run_analysis_phase
    from persist.stats import headline_table
    from persist.tracking import setup_tracking
    from persist.tracking.runs import check_tracking_uri

    experiment = experiment or legacy_experiment or "persist-smoke"
    check_analysis_inputs(spec, len(read_table_checked(table)) if table else 0, out_dir)
    check_tracking_uri(tracking_uri)
    # read-only input: neither the store nor the experiment is created when missing
    uri = setup_tracking(tracking_uri, log_experiment) if table else setup_tracking(tracking_uri, experiment, False)
    run_id, result = run_analysis_phase(spec, experiment=experiment, table_path=table or None, out_dir=out_dir)
    click.echo(headline_table(result))
    report(f"tracking: {uri}", {"phase": "analysis", "run_id": run_id})


@cli.command("pipeline")
@common_options()
@click.option("--archs", default=None, help="Comma-separated study members NAME or NAME@WIDTH (default: the preset's).")
@click.option("--seeds", default=None, help="Comma-separated training seeds (default: the preset's).")
@click.option("--fail-fast/--keep-going", default=False, show_default=True,
              help="Stop at the first failing study member, or record its failure and go on with the others.")
def pipeline_cmd(preset, overrides, tracking_uri, experiment, device, seed, progress, archs, seeds, fail_fast) -> None:
    """Run the whole study: train, landscape and forgetting per architecture x seed, then the analysis.

    Finished phases are reused and unfinished ones resumed, so rerunning after an interruption continues.
    """
    from persist.phases.common import check_landscape_resources, check_member
    from persist.pipeline import architecture_config, run_pipeline
    from persist.stats import headline_table
    from persist.tracking.runs import check_tracking_uri

    seeds = seeds or (str(seed) if seed is not None else None)  # the study's seeds are the training seeds
    cfg = build_config(preset, overrides, **{"study.archs": archs, "study.seeds": seeds, "experiment": experiment,
                                              "device": device})
    members = [architecture_config(cfg, entry, s) for entry in cfg.study.archs for s in cfg.study.seeds]
    if not members:
        raise ConfigError("the study has no members: give --archs and --seeds")
    for member in members:
        check_member(member)
    check_landscape_resources(cfg)
    check_analysis_inputs(cfg.study.analysis_spec, len(members))
    uri = check_tracking_uri(tracking_uri)
    line = start(cfg, tracking_uri)
    result = run_pipeline(cfg, progress=progress, fail_fast=fail_fast)
    if result.missing:
        click.echo(f"warning: {len(result.missing)} of {len(members)} study members failed and are missing from the "
                   "analysis: " + "; ".join(f"{m['arch']}@{m['width']:g} seed {m['seed']}: {m['reason']}"
                                            for m in result.missing), err=True)
    click.echo(headline_table(result.analysis))
    click.echo(line, err=True)
    click.echo(f"\nstudy run {result.study_run_id}; browse the results with:\n  mlflow ui --backend-store-uri {uri}")


@cli.command("sweep")
@click.argument("spec_path", metavar="SPEC")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Worker processes to start here; start more anywhere with `persist sweep-worker` on the same storage.")
@click.option("--storage", default=None,
              help="Optuna storage URL shared by all workers: sqlite:///optuna.db (default), postgresql+psycopg2://..., "
                   "or journal:PATH (no heartbeats).")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI for the sweep run and its trials.")
def sweep_cmd(spec_path, workers, storage, tracking_uri) -> None:
    """Run an Optuna sweep from a YAML spec: a grid of study members or a search (TPE) over config keys.

    The whole spec is checked first. Exit 0 once every trial is complete, whatever happened to workers;
    Ctrl-C or SIGTERM stops the workers (their trials fail, their runs end KILLED): rerun to resume.
    """
    from persist.sweep import run_sweep

    for trial in run_sweep(spec_path, workers, storage or None, tracking_uri):
        click.echo(json.dumps(trial, default=str))


@cli.command("sweep-worker")
@click.argument("spec_path", metavar="SPEC")
@click.option("--storage", default=None, help="The Optuna storage URL the sweep was started with.")
@click.option("--sweep-run-id", default=None, help="MLflow run id of the sweep; trials become its children.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI).")
def sweep_worker_cmd(spec_path, storage, sweep_run_id, tracking_uri) -> None:
    """Work on a sweep's trials until none remain (start as many as you like, on any machine).

    The study must exist: `persist sweep` creates it (and enqueues its grid) once.
    """
    from persist.sweep import load_sweep, storage_url, work
    from persist.tracking import setup_tracking

    spec = load_sweep(spec_path)
    storage_url(storage)  # refused before any store or experiment is created
    setup_tracking(tracking_uri, spec.base_config().experiment)
    try:
        work(spec, storage, sweep_run_id)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: runs ended KILLED, the held trial FAILED
        click.echo("interrupted: this worker's trial is marked failed; rerun `persist sweep` to resume", err=True)
        sys.exit(130)


@cli.command("models")
def models_cmd() -> None:
    """List registered architectures: family, input, measured parameters at width 1 (images: 50 classes,
    3x32x32; 1-D signals: 5 classes, 1x40)."""
    from persist.models import arch_info, list_models, measured_parameters

    for name in list_models():
        info = arch_info(name)
        click.echo(f"{name:<20} {info.family:<12} {info.input:<3} {measured_parameters(name):>12,}")


def main() -> None:
    cli(prog_name="persist")


if __name__ == "__main__":
    main()
