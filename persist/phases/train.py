"""Train phase: task-A training, best checkpoint by validation accuracy, logged as a run."""

from __future__ import annotations

import torch

from persist.artifacts import SNAPSHOTS
from persist.config import RunConfig, config_hash
from persist.devices import resolve_device
from persist.models import count_parameters, create_model
from persist.phases.common import clear_workdir, model_shape, np_hooks, run_tags, save_model_artifact, task_of, workdir
from persist.phases.records import log_task_split, log_trained_model, member_label, run_name
from persist.phases.table import PHASE_TABLE
from persist.plots.training import plot_training
from persist.tracking import log_figure, log_metrics, phase_run
from persist.training import evaluate, train

SECTIONS = PHASE_TABLE["train"].sections


def train_hash(cfg: RunConfig) -> str:
    """What a task-A model depends on; other sections (landscape, ...) do not invalidate it."""
    return config_hash(cfg, SECTIONS)


def run_train(cfg: RunConfig, parent_run_id: str | None = None, progress: bool = True) -> str:
    """Train on task A and log metrics, the best checkpoint and curves; returns the run id."""
    device = resolve_device(cfg.device)
    task = task_of(cfg, "A", device)
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model.arch, task.num_classes, task.in_channels, task.image_size, cfg.model.width)
    model.to(device)
    key = train_hash(cfg)
    tags = run_tags(cfg, **{"persist.config_hash": key})
    with phase_run("train", cfg, tags, parent_run_id, run_name=run_name("train", cfg)) as run:
        for split in ("train", "val", "test"):
            log_task_split(task, split)
        hooks = np_hooks(cfg, cfg.train.np_every, cfg.train.np_patience, cfg.train.np_burn_in)
        result = train(cfg.train, model, task, seed=cfg.seed, augment=cfg.data.augment, hooks=hooks,
                       checkpoint_path=workdir("train", key) / "state.pt",
                       log_fn=lambda m, epoch: log_metrics(m, epoch, "train/"), progress=progress)
        model.load_state_dict(result.best_state)
        test = evaluate(model, task.x_test, task.y_test)
        if result.stopped_early:
            log_metrics({"np_stopped_epoch": len(result.history) - 1}, prefix="train/")
        key_metrics = {"train/best_epoch": result.best_epoch, "train/best_val_accuracy": result.best_val_accuracy,
                       "train/test_accuracy": test["accuracy"], "train/test_loss": test["loss"],
                       "model/num_params": count_parameters(model)}
        log_metrics(key_metrics)
        save_model_artifact(model, "best", model_shape(task.num_classes, task.in_channels, task.image_size),
                            epoch=result.best_epoch)
        if result.snapshots:  # parameter snapshots for trajectory-PCA landscapes (train.snapshots)
            save_model_artifact(model, SNAPSHOTS, {}, snapshots=result.snapshots, epochs=result.snapshot_epochs)
        log_trained_model(model, task.x_test, key_metrics)
        log_figure(plot_training(result.history, f"{member_label(cfg)} s{cfg.seed} on {cfg.data.dataset} task A"),
                   "figures/training.png")
    clear_workdir("train", key)
    return run.info.run_id
