"""The ``persist`` command line: thin shells over the phase functions.

Every user error surfaces as ``error: <one line>`` on stderr with exit code 2; an interrupt says how to
resume (rerun the same command) and exits 130. MLproject entry points call ``python -m persist.cli``.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

import click

from persist.errors import ConfigError, PersistError

PRESET_HELP = "Base configuration: 'smoke' (embedded digits, CPU, minutes) or 'cifar100' (the PERSIST study)."
SET_HELP = ("Config override KEY=VALUE with a dotted key, e.g. landscape.resolution=31 (repeatable; one value "
            "may hold several space-separated overrides). Unknown keys and wrong types are rejected.")


class PersistGroup(click.Group):
    """Turns PersistError into one line on stderr and exit code 2 instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PersistError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("interrupted: finished work is saved; rerun the same command to resume", err=True)
            sys.exit(130)


def common_options(fn: Callable) -> Callable:
    """Options shared by every phase command."""
    options = [
        click.option("--preset", default="smoke", show_default=True, help=PRESET_HELP),
        click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP),
        click.option("--tracking-uri", default=None,
                     help="MLflow tracking URI (a server such as http://host:5000 or a database URL). "
                          "Default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db."),
        click.option("--experiment", default=None, help="MLflow experiment name. Default: the preset's."),
        click.option("--device", default=None, help="auto, cpu, cuda or cuda:N. Default: auto."),
        click.option("--seed", type=int, default=None, help="Seed for data split, init, batches, directions."),
        click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def build_config(preset: str, overrides: tuple[str, ...], **shortcuts: Any):
    """Preset, then ``--set`` overrides, then the explicit shortcut options (which win)."""
    from persist.config import override
    from persist.config import preset as load_preset

    assignments = [part for item in overrides for part in item.split()]
    assignments += [f"{key}={value}" for key, value in shortcuts.items() if value not in (None, "")]
    return override(load_preset(preset), assignments)


def start(cfg: Any, tracking_uri: str | None) -> None:
    from persist.tracking import setup_tracking
    from persist.tracking.runs import chosen_experiment

    uri = setup_tracking(tracking_uri, cfg.experiment)
    click.echo(f"tracking: {uri} (experiment '{chosen_experiment(cfg.experiment)}')", err=True)


@click.group(cls=PersistGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="persist")
def cli() -> None:
    """persist: topology of neural networks, tracked in MLflow.

    Phases: train -> landscape -> forgetting -> analysis. Each phase logs an MLflow run; later phases take
    the train run id. `persist pipeline` runs the whole study; `mlflow ui --backend-store-uri
    sqlite:///mlflow.db` shows the results.
    """


@cli.command("train")
@common_options
@click.option("--arch", default=None, help="Architecture name (see `persist models`).")
@click.option("--width", type=float, default=None, help="Width multiplier of the architecture (1.0 = study size).")
@click.option("--dataset", default=None, help="digits (offline), cifar10 or cifar100.")
@click.option("--data-dir", default=None, help="Directory holding (or receiving) torchvision datasets.")
@click.option("--download/--no-download", default=None, help="Download a missing dataset (needs internet).")
@click.option("--epochs", type=int, default=None, help="Task-A training epochs.")
def train_cmd(preset, overrides, tracking_uri, experiment, device, seed, progress, arch, width, dataset, data_dir,
              download, epochs) -> None:
    """Train on task A and keep the best-validation checkpoint (prints the run id as JSON)."""
    from persist.phases.train import run_train

    cfg = build_config(preset, overrides, **{
        "model.arch": arch, "model.width": width, "data.dataset": dataset, "data.data_dir": data_dir,
        "data.download": download, "train.epochs": epochs, "experiment": experiment, "device": device, "seed": seed})
    start(cfg, tracking_uri)
    run_id = run_train(cfg, progress=progress)
    click.echo(json.dumps({"phase": "train", "run_id": run_id}))


def upstream_config(tracking_uri: str | None, train_run_id: str, preset: str, overrides: tuple[str, ...],
                    **shortcuts: Any):
    """A downstream phase inherits data, model, train and seed from its train run; the rest from the preset.

    The train run is read before any experiment is selected, so only the experiment the phase logs to
    is ever created.
    """
    from dataclasses import replace

    from persist.config import from_dict
    from persist.tracking import get_run, read_json, setup_tracking

    setup_tracking(tracking_uri, None)
    get_run(train_run_id)
    inherited = [o for item in overrides for o in item.split() if o.split("=")[0].split(".")[0] in INHERITED]
    if inherited or shortcuts.pop("seed", None) is not None:
        raise ConfigError(f"'{(inherited or ['--seed'])[0]}' is fixed by the train run; retrain to change data, "
                          "model, train or seed")
    cfg = build_config(preset, overrides, **shortcuts)
    trained = from_dict(read_json(train_run_id, "config/resolved.json"))
    cfg = replace(cfg, data=trained.data, model=trained.model, train=trained.train, seed=trained.seed)
    start(cfg, tracking_uri)
    return cfg


INHERITED = ("data", "model", "train", "seed")
TRAIN_RUN_HELP = "Run id of a finished `persist train` run (its checkpoint and config are read from the tracking store)."


@cli.command("landscape")
@common_options
@click.option("--train-run-id", required=True, help=TRAIN_RUN_HELP)
@click.option("--slices", default=None, help="Number of random 2D slices (one child run each).")
@click.option("--resolution", type=int, default=None, help="Grid points per axis; odd so the trained weights are a node.")
@click.option("--span", type=float, default=None, help="Half-width of the grid in filter-normalized units.")
@click.option("--subset", type=int, default=None, help="Evaluate on the first N examples of the split (0 = all).")
def landscape_cmd(preset, overrides, tracking_uri, experiment, device, seed, progress, train_run_id, slices,
                  resolution, span, subset) -> None:
    """Sample loss on 2D slices through the trained weights, with persistent homology and curvature baselines.

    Under torchrun the grid nodes are sharded across ranks; rank 0 logs the results.
    """
    from persist.landscape import init_distributed_from_env
    from persist.phases.landscape import run_landscape

    rank, _ = init_distributed_from_env()
    cfg = upstream_config(tracking_uri, train_run_id, preset, overrides, **{
        "landscape.slices": slices, "landscape.resolution": resolution, "landscape.span": span,
        "landscape.subset": subset, "experiment": experiment, "device": device, "seed": seed})
    run_id = run_landscape(cfg, train_run_id, progress=progress and rank == 0, rank=rank)
    if rank == 0:
        click.echo(json.dumps({"phase": "landscape", "run_id": run_id}))


@cli.command("forgetting")
@common_options
@click.option("--train-run-id", required=True, help=TRAIN_RUN_HELP)
@click.option("--lr", type=float, default=None, help="Task-B learning rate (one policy for every architecture).")
@click.option("--ewc-lambda", type=float, default=None, help="EWC strength; 0 disables EWC.")
@click.option("--schedule", default=None, help="Task-B learning-rate schedule: constant or cosine.")
def forgetting_cmd(preset, overrides, tracking_uri, experiment, device, seed, progress, train_run_id, lr, ewc_lambda,
                   schedule) -> None:
    """Train a task-A model on task B and measure retention of task A (class-incremental and task-masked)."""
    from persist.phases.forgetting import run_forgetting

    cfg = upstream_config(tracking_uri, train_run_id, preset, overrides, **{
        "forgetting.lr": lr, "forgetting.ewc_lambda": ewc_lambda, "forgetting.schedule": schedule,
        "experiment": experiment, "device": device, "seed": seed})
    run_id = run_forgetting(cfg, train_run_id, progress=progress)
    click.echo(json.dumps({"phase": "forgetting", "run_id": run_id}))


@cli.command("np")
@common_options
@click.option("--run-id", required=True, help="A train or forgetting run whose checkpoint is measured.")
@click.option("--checkpoint", default="best", show_default=True,
              help="Checkpoint name under checkpoints/: best (train runs) or final (forgetting runs).")
def np_cmd(preset, overrides, tracking_uri, experiment, device, seed, progress, run_id, checkpoint) -> None:
    """Neural persistence (Rieck et al. 2019) of each layer of a trained model, with weight baselines."""
    from persist.phases.neural_persistence import run_neural_persistence

    cfg = upstream_config(tracking_uri, run_id, preset, overrides,
                          **{"experiment": experiment, "device": device, "seed": seed})
    new_id, values = run_neural_persistence(cfg, run_id, checkpoint)
    click.echo(json.dumps({"phase": "neural_persistence", "run_id": new_id,
                           "np/mean_normalized": values["np/mean_normalized"]}))


@cli.command("init-quality")
@click.option("--stage", default="all", show_default=True,
              help="Stage(s) to run: 1 samples, 2 surrogate, 3 local topology, 4 training outcomes, 5 prediction; "
                   "'all' or a comma list. Later stages reuse earlier outputs of the same config.")
@click.option("--quick/--full", default=False, help="Quick preset (about a minute on 2 CPU cores) or the full study.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a field of the init-quality config, e.g. inits_per_scheme=10 or training.epochs=5.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db).")
@click.option("--experiment", default="persist-init-quality", show_default=True, help="MLflow experiment name.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
def init_quality_cmd(stage, quick, overrides, tracking_uri, experiment, progress) -> None:
    """Predict training outcome from the topology of local landscapes at initialization, against baselines."""
    from persist.phases.init_quality import init_quality_config, parse_stages, run_init_quality
    from persist.tracking import setup_tracking

    cfg = init_quality_config(quick, [part for item in overrides for part in item.split()])
    stages = parse_stages(stage)
    setup_tracking(tracking_uri, experiment)
    run_id, metrics = run_init_quality(cfg, stages, progress=progress)
    click.echo(json.dumps({"phase": "init_quality", "run_id": run_id, "stages": stages}))


@cli.command("analysis")
@click.option("--spec", default="analysis/persist.yaml", show_default=True,
              help="YAML analysis spec: predictors, outcomes, covariates, families, subsets, corrections.")
@click.option("--from-experiment", "experiment", default=None,
              help="Analyse the finished runs of this MLflow experiment (default: persist-smoke).")
@click.option("--table", default=None, help="Analyse a CSV table instead (one row per architecture).")
@click.option("--out", "out_dir", default=None, help="Also write results.csv, report.md and figures here.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlflow.db).")
@click.option("--log-experiment", default="persist-analysis", show_default=True,
              help="Experiment that receives the analysis run when --table is used.")
def analysis_cmd(spec, experiment, table, out_dir, tracking_uri, log_experiment) -> None:
    """Correlate landscape topology with retention across architectures (prints the headline table)."""
    from persist.phases.analysis import run_analysis_phase
    from persist.stats import headline_table
    from persist.tracking import setup_tracking

    experiment = experiment or "persist-smoke"
    setup_tracking(tracking_uri, log_experiment if table else experiment)
    run_id, result = run_analysis_phase(spec, experiment=experiment, table_path=table or None, out_dir=out_dir)
    click.echo(headline_table(result))
    click.echo(json.dumps({"phase": "analysis", "run_id": run_id}))


@cli.command("pipeline")
@common_options
@click.option("--archs", default=None, help="Comma-separated study members NAME or NAME@WIDTH (default: the preset's).")
@click.option("--seeds", default=None, help="Comma-separated training seeds (default: the preset's).")
def pipeline_cmd(preset, overrides, tracking_uri, experiment, device, seed, progress, archs, seeds) -> None:
    """Run the whole study: train, landscape and forgetting per architecture x seed, then the analysis.

    Finished phases are reused and unfinished ones resumed, so rerunning after an interruption continues.
    """
    from persist.pipeline import run_pipeline
    from persist.stats import headline_table
    from persist.tracking import resolve_tracking_uri

    seeds = seeds or (str(seed) if seed is not None else None)  # the study's seeds are the training seeds
    cfg = build_config(preset, overrides, **{"study.archs": archs, "study.seeds": seeds, "experiment": experiment,
                                              "device": device})
    start(cfg, tracking_uri)
    result = run_pipeline(cfg, progress=progress)
    click.echo(headline_table(result.analysis))
    uri = resolve_tracking_uri(tracking_uri)
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
    """Run an Optuna sweep from a YAML spec: a grid of study members or a search (TPE) over config keys."""
    from persist.sweep import create_study, launch, load_sweep, open_storage, summary
    from persist.tracking import log_json, phase_run, setup_tracking

    if workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    spec = load_sweep(spec_path)
    storage = storage or None
    create_study(spec, open_storage(storage, spec))
    setup_tracking(tracking_uri, spec.base_config().experiment)
    with phase_run("sweep", None, {"optuna.study": spec.name}, run_name=f"sweep-{spec.name}", resume=False) as run:
        codes = launch(spec_path, workers, storage, run.info.run_id)
        trials = summary(spec, storage)
        log_json(trials, "sweep/trials.json")
    for trial in trials:
        click.echo(json.dumps(trial, default=str))
    if any(codes):
        raise PersistError(f"{sum(c != 0 for c in codes)} of {workers} sweep workers failed; rerun to continue")


@cli.command("sweep-worker")
@click.argument("spec_path", metavar="SPEC")
@click.option("--storage", default=None, help="The Optuna storage URL the sweep was started with.")
@click.option("--sweep-run-id", default=None, help="MLflow run id of the sweep; trials become its children.")
@click.option("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI).")
def sweep_worker_cmd(spec_path, storage, sweep_run_id, tracking_uri) -> None:
    """Work on a sweep's trials until none remain (start as many as you like, on any machine).

    The study must exist: `persist sweep` creates it (and enqueues its grid) once.
    """
    from persist.sweep import load_sweep, work
    from persist.tracking import setup_tracking

    spec = load_sweep(spec_path)
    setup_tracking(tracking_uri, spec.base_config().experiment)
    work(spec, storage, sweep_run_id)


@cli.command("models")
def models_cmd() -> None:
    """List registered architectures with their parameter counts at width 1 (50 classes, 3x32x32)."""
    import torch

    from persist.models import count_parameters, create_model, list_models

    for name in list_models():
        with torch.device("meta"):  # shapes only: counting needs no memory or init
            params = count_parameters(create_model(name, 50, 3, 32, 1.0))
        click.echo(f"{name:<20} {params:>12,}")


def main() -> None:
    import warnings

    # torch.func's first jvp loads decompositions through the deprecated torch.jit.script: not ours to fix
    warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)
    cli(prog_name="persist")


if __name__ == "__main__":
    main()
