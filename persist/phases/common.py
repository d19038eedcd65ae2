"""What every phase needs: working directories, run tags, and loading a trained model by run id."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from persist.checkpoint import load_checkpoint, save_checkpoint
from persist.config import RunConfig, from_dict
from persist.data import TaskData, load_task
from persist.models import create_model
from persist.tracking import download_artifact, get_run, read_json
from persist.tracking.artifacts import log_checkpoint
from persist.tracking.runs import exclusive, git_state


def np_hooks(cfg: RunConfig, every: int, patience: int = 0, burn_in: int = 0) -> list:
    """Neural-persistence observers for a training loop: tracking every N steps, optional early stopping."""
    from persist.neural_persistence import NeuralPersistenceEarlyStopping, NeuralPersistenceTracker
    from persist.tracking import log_metrics

    hooks: list = []
    options = {"p": cfg.neural_persistence.p, "per_head": cfg.neural_persistence.per_head}
    if every > 0:
        hooks.append(NeuralPersistenceTracker(every, lambda values, step: log_metrics(values, step), **options))
    if patience > 0:
        hooks.append(NeuralPersistenceEarlyStopping(patience, burn_in=burn_in, **options))
    return hooks


def scratch_root() -> Path:
    return Path(os.environ.get("PERSIST_WORKDIR", ".persist"))


def workdir(phase: str, key: str) -> Path:
    """Local scratch for resumable state, keyed by phase, config hash and code version.

    ``PERSIST_WORKDIR`` (default ./.persist) should be on a filesystem every worker of a sweep shares.
    The scratch of a finished phase is removed (:func:`clear_workdir`), so it never feeds a later run.
    """
    sha = git_state()["persist.git_sha"][:10]
    path = scratch_root() / phase / f"{key}-{sha}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def clear_workdir(phase: str, key: str) -> None:
    shutil.rmtree(workdir(phase, key), ignore_errors=True)


def phase_lock(phase: str, key: str):
    """Exclusive access to one phase x key across the processes that share ``PERSIST_WORKDIR``."""
    return exclusive(scratch_root() / "locks" / f"{phase}-{key}.lock")


def task_of(cfg: RunConfig, task: str, device: torch.device) -> TaskData:
    """Task ``A`` or ``B`` exactly as the config's train run split it (same seed, same validation split)."""
    d = cfg.data
    return load_task(d.dataset, task, d.data_dir, d.val_fraction, cfg.seed, d.download, d.samples,
                     d.image_size).to(device)


def run_tags(cfg: RunConfig, **extra: str) -> dict[str, str]:
    """The searchable identity of a run: architecture x dataset x seed, plus phase-specific tags."""
    return {"persist.arch": cfg.model.arch, "persist.width": str(cfg.model.width), "persist.dataset": cfg.data.dataset,
            "persist.seed": str(cfg.seed), **extra}


def model_shape(num_classes: int, in_channels: int, image_size: int) -> dict[str, int]:
    return {"num_classes": num_classes, "in_channels": in_channels, "image_size": image_size}


def save_model_artifact(model: nn.Module, name: str, shape: dict[str, int], **extra: Any) -> None:
    """Log ``checkpoints/<name>.pt``: weights plus the shape needed to rebuild the architecture."""
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(Path(tmp) / f"{name}.pt", model=model.state_dict(), shape=shape, **extra)
        log_checkpoint(path)


def load_trained_model(run_id: str, device: torch.device, name: str = "best") -> tuple[nn.Module, RunConfig]:
    """Rebuild the task-A model of a train run from its logged config and checkpoint."""
    get_run(run_id)
    cfg = from_dict(read_json(run_id, "config/resolved.json"))
    state = load_checkpoint(download_artifact(run_id, f"checkpoints/{name}.pt"), map_location=device)
    shape = state["shape"]
    model = create_model(cfg.model.arch, shape["num_classes"], shape["in_channels"], shape["image_size"],
                         cfg.model.width)
    model.load_state_dict(state["model"])
    return model.to(device), cfg
