"""What every phase needs: working directories, run tags, and loading a trained model by run id."""

from __future__ import annotations

import functools
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn

from persist.artifacts import CONFIG_RESOLVED, checkpoint
from persist.checkpoint import load_checkpoint, save_checkpoint
from persist.config import RunConfig, from_dict
from persist.data import TaskData, load_task
from persist.errors import CheckpointError, ConfigError, ModelError, PersistError, UpstreamRunNotFound
from persist.models import create_model
from persist.tracking import downloaded, get_run, read_json
from persist.tracking.artifacts import log_checkpoint
from persist.tracking.runs import exclusive, git_state


def np_hooks(cfg: RunConfig, every: int, patience: int = 0, burn_in: int = 0) -> list:
    """Neural-persistence observers for a training loop: tracking every N steps, optional early stopping."""
    from persist.neural_persistence import NeuralPersistenceEarlyStopping, NeuralPersistenceTracker
    from persist.tracking import log_metrics

    hooks: list = []
    options: dict[str, Any] = {"p": cfg.neural_persistence.p, "per_head": cfg.neural_persistence.per_head}
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


def phase_lock(phase: str, key: str, on_wait: Callable[[str], None] | None = None):
    """Exclusive access to one phase x key across the processes that share ``PERSIST_WORKDIR``
    (pipelines, sweep workers and standalone phase commands alike); yields whether it had to wait."""
    return exclusive(scratch_root() / "locks" / f"{phase}-{key}.lock", on_wait)


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


CHECKPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def checkpoint_name(name: str) -> str:
    """A plain checkpoint name (``best``, ``final``): never a path, so nothing outside ``checkpoints/`` is read."""
    if not CHECKPOINT_NAME.fullmatch(name):
        raise ConfigError(f"--checkpoint must be a plain name such as best or final, got '{name}'")
    return name


def verify_upstream(run_id: str, phases: tuple[str, ...] = ("train",)) -> RunConfig:
    """The config of a FINISHED run of one of ``phases``; anything else is refused in one line.

    A FAILED or KILLED train run holds an untrained or half-trained checkpoint, and a run of another
    phase (or no persist run at all) holds something else, so neither may feed a downstream phase.
    """
    run = get_run(run_id)
    phase = run.data.tags.get("persist.phase")
    if phase not in phases:
        what = f"a {phase} run" if phase else "not a persist run"
        raise UpstreamRunNotFound(f"run '{run_id}' is {what}; expected a finished {' or '.join(phases)} run")
    if run.info.status != "FINISHED":
        raise UpstreamRunNotFound(f"run '{run_id}' is {run.info.status}, not FINISHED; rerun its {phase} phase "
                                  "to finish it before using it")
    return checked_config(read_json(run_id, CONFIG_RESOLVED), f"{CONFIG_RESOLVED} of run '{run_id}'")


def checked_config(data: Any, where: str) -> RunConfig:
    """A RunConfig from logged JSON whose every section is a mapping and every value has the field's type."""
    try:
        return from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{where} is not a persist config: {exc}") from None


def load_trained_model(run_id: str, device: torch.device, name: str = "best",
                       phases: tuple[str, ...] = ("train",)) -> tuple[nn.Module, RunConfig]:
    """Rebuild the model of a finished upstream run from its logged config and checkpoint, verified."""
    cfg, state = _verified_checkpoint(run_id, checkpoint_name(name), phases)
    model = _checked_model(state, cfg, f"{checkpoint(name)} of run '{run_id}'")
    return model.to(device), cfg


@functools.lru_cache(maxsize=1)
def _verified_checkpoint(run_id: str, name: str, phases: tuple[str, ...]) -> tuple[RunConfig, dict[str, Any]]:
    """The upstream config and checkpoint (on the CPU), downloaded once per process: a CLI command verifies
    the upstream run before it creates anything and the phase then loads the same model, so the last one is
    kept (a FINISHED run's artifacts do not change). Only successful reads are cached."""
    cfg = verify_upstream(run_id, phases)
    with downloaded(run_id, checkpoint(name)) as path:
        return cfg, load_checkpoint(path, map_location="cpu")


def _checked_model(state: dict[str, Any], cfg: RunConfig, where: str) -> nn.Module:
    """The checkpoint's architecture with its weights, after checking the shape record and every tensor."""
    shape, weights = state.get("shape"), state.get("model")
    keys = ("num_classes", "in_channels", "image_size")
    if not isinstance(shape, dict) or not all(isinstance(shape.get(k), int) and shape[k] >= 1 for k in keys):
        raise CheckpointError(f"{where} has no valid shape record ({', '.join(keys)})")
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise CheckpointError(f"{where} holds no model weights")
    model = create_model(cfg.model.arch, shape["num_classes"], shape["in_channels"], shape["image_size"],
                         cfg.model.width)
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{where} does not match {cfg.model.arch}@{cfg.model.width:g}: "
                              f"{len(missing)} missing tensors ({', '.join(missing[:2])}), {len(unexpected)} unexpected")
    for key, tensor in expected.items():
        if weights[key].shape != tensor.shape:
            raise CheckpointError(f"{where}: tensor '{key}' has shape {tuple(weights[key].shape)}, "
                                  f"expected {tuple(tensor.shape)} for {cfg.model.arch}@{cfg.model.width:g}")
    model.load_state_dict(weights)
    return model


# --- checks before any store, experiment, run or file is created ------------------------------------------


def memory_limit() -> int:
    """Bytes one command may plan to hold: ``PERSIST_MAX_MEMORY_GB``, else half the machine's memory."""
    given = os.environ.get("PERSIST_MAX_MEMORY_GB")
    if given:
        return int(float(given) * 2**30)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def check_memory(nbytes: float, what: str, setting: str) -> None:
    """Refuse a plan whose estimated memory exceeds :func:`memory_limit` instead of running out of it later."""
    limit = memory_limit()
    if nbytes > limit:
        raise ConfigError(f"{what} needs about {nbytes / 2**30:,.1f} GiB, over the limit of {limit / 2**30:,.1f} GiB "
                          f"(half this machine's memory, or $PERSIST_MAX_MEMORY_GB); lower {setting}")


GRID_BYTES_PER_NODE = 64  # loss and accuracy of the full grid and both halves, plus the cubical complex


def check_landscape_resources(cfg: RunConfig) -> None:
    check_memory(cfg.landscape.resolution**2 * GRID_BYTES_PER_NODE, f"a {cfg.landscape.resolution}^2 landscape grid",
                 "landscape.resolution")


def check_member(cfg: RunConfig) -> None:
    """Load the data (cached for the phase that follows) and build the model on the meta device, so an unknown
    dataset or architecture, missing files or a model too big for memory fail before anything is logged."""
    from persist.devices import resolve_device
    from persist.models import count_parameters

    resolve_device(cfg.device)
    task = load_task(cfg.data.dataset, "A", cfg.data.data_dir, cfg.data.val_fraction, cfg.seed, cfg.data.download)
    name = f"{cfg.model.arch}@{cfg.model.width:g}"
    try:
        with torch.device("meta"):
            model = create_model(cfg.model.arch, task.num_classes, task.in_channels, task.image_size, cfg.model.width)
    except PersistError:
        raise
    except Exception as exc:  # e.g. a width that rounds a layer to zero channels
        raise ModelError(f"{name} cannot be built: {' '.join(str(exc).split())[:200]}") from None
    # weights, gradients, momentum and the best copy in fp32
    check_memory(16 * count_parameters(model), f"training {name}", "model.width")
