"""Task-A training: SGD with momentum, warm-up then cosine, best checkpoint by validation accuracy.

Resumable: an atomic checkpoint after every epoch holds model, optimizer, scheduler, RNG states and
history, so a killed run restarted with the same arguments finishes with identical numbers on CPU.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from persist.checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from persist.config import TrainConfig
from persist.data import TaskData, iterate_batches
from persist.errors import ConfigError
from persist.training.evaluation import evaluate
from persist.training.hooks import Hook

LogFn = Callable[[dict[str, float], int], None]


@dataclass
class TrainResult:
    best_state: dict[str, torch.Tensor]
    best_epoch: int
    best_val_accuracy: float
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    snapshots: list[dict[str, torch.Tensor]] = field(default_factory=list)  # parameters at snapshot_epochs
    snapshot_epochs: list[int] = field(default_factory=list)


def snapshot_epochs(epochs: int, count: int) -> list[int]:
    """Epochs after which the parameters are kept for trajectory PCA: ``count`` evenly spaced points from the
    initial weights (epoch -1) to the last epoch (fewer when there are fewer epochs)."""
    if count <= 0:
        return []
    if count == 1:
        return [epochs - 1]
    return sorted({int(round(e)) for e in np.linspace(-1, epochs - 1, count)})


def _parameters(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters()}


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR multiplier: linear from 0.1 to 1 over the warm-up, then cosine to 0 (evaluated per step)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return 0.1 + 0.9 * step / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    if bf16 and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    task: TaskData,
    cfg: TrainConfig,
    generator: torch.Generator,
    augment_padding: int | None,
    hooks: Sequence[Hook],
    first_step: int,
) -> dict[str, float]:
    """One pass over the training split; returns mean loss and accuracy on the (augmented) batches."""
    model.train()
    device = task.x_train.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    seen = 0
    step = first_step
    for xb, yb in iterate_batches(task.x_train, task.y_train, cfg.batch_size, generator, True, augment_padding):
        if cfg.channels_last and device.type == "cuda":
            xb = xb.contiguous(memory_format=torch.channels_last)
        with _autocast(device, cfg.bf16):
            logits = model(xb)
            loss = F.cross_entropy(logits.float(), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        loss_sum += loss.detach() * len(xb)
        correct += (logits.argmax(1) == yb).sum()
        seen += len(xb)
        for hook in hooks:
            hook.on_step_end(step, model)
    mean_loss = float(loss_sum) / seen  # the epoch's one host sync
    if not math.isfinite(mean_loss):
        raise ConfigError(f"training diverged (non-finite loss) before step {step}; lower train.lr")
    return {"loss": mean_loss, "accuracy": float(correct) / seen}


def _save(path: str | Path | None, model: nn.Module, optimizer: torch.optim.Optimizer,
          scheduler: torch.optim.lr_scheduler.LRScheduler, generator: torch.Generator, epoch: int,
          result: TrainResult) -> None:
    if path is not None:
        save_checkpoint(path, model=model.state_dict(), optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), rng=rng_state(generator), epoch=epoch,
                        best_state=result.best_state, best_epoch=result.best_epoch,
                        best_val_accuracy=result.best_val_accuracy, history=result.history,
                        stopped_early=result.stopped_early, snapshots=result.snapshots,
                        snapshot_epochs=result.snapshot_epochs)


def train(
    cfg: TrainConfig,
    model: nn.Module,
    task: TaskData,
    seed: int = 0,
    augment: bool = True,
    checkpoint_path: str | Path | None = None,
    hooks: Sequence[Hook] = (),
    log_fn: LogFn | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train ``model`` on ``task`` (already on its device) and keep the best-validation weights."""
    if cfg.channels_last and task.x_train.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    steps_per_epoch = math.ceil(len(task.x_train) / cfg.batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(cfg.epochs * steps_per_epoch, cfg.warmup_epochs * steps_per_epoch))
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    padding = max(1, task.image_size // 8) if augment else None
    result = TrainResult(copy.deepcopy(model.state_dict()), -1, -1.0)
    start_epoch = 0
    if checkpoint_path is not None and Path(checkpoint_path).is_file():
        state = load_checkpoint(checkpoint_path, map_location=task.x_train.device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        restore_rng(state["rng"], generator)
        result = TrainResult(state["best_state"], state["best_epoch"], state["best_val_accuracy"],
                             [dict(h) for h in state["history"]], state.get("stopped_early", False),
                             [dict(s) for s in state.get("snapshots", [])], list(state.get("snapshot_epochs", [])))
        start_epoch = cfg.epochs if result.stopped_early else state["epoch"] + 1
    keep = snapshot_epochs(cfg.epochs, cfg.snapshots)
    if start_epoch == 0 and -1 in keep:
        result.snapshots, result.snapshot_epochs = [_parameters(model)], [-1]
    bar = tqdm(range(start_epoch, cfg.epochs), desc="train", disable=not progress, leave=False)
    for epoch in bar:
        train_metrics = train_epoch(model, optimizer, scheduler, task, cfg, generator, padding, hooks,
                                    epoch * steps_per_epoch)
        val = evaluate(model, task.x_val, task.y_val)
        metrics = {"train_loss": train_metrics["loss"], "train_accuracy": train_metrics["accuracy"],
                   "val_loss": val["loss"], "val_accuracy": val["accuracy"],
                   "lr": float(scheduler.get_last_lr()[0])}
        if val["accuracy"] > result.best_val_accuracy:
            result.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            result.best_epoch, result.best_val_accuracy = epoch, val["accuracy"]
        result.history.append({"epoch": float(epoch), **metrics})
        if epoch in keep:
            result.snapshots.append(_parameters(model))
            result.snapshot_epochs.append(epoch)
        bar.set_postfix(val_acc=f"{val['accuracy']:.3f}", loss=f"{train_metrics['loss']:.3f}")
        if log_fn is not None:
            log_fn(metrics, epoch)
        save = functools.partial(_save, checkpoint_path, model, optimizer, scheduler, generator, epoch, result)
        save()  # before the hooks, so a hook that fails never loses the epoch
        for hook in hooks:
            hook.on_epoch_end(epoch, model, metrics)
        if any(hook.should_stop() for hook in hooks):
            result.stopped_early = True
            save()  # a resumed run must not train past the stop
            break
    for hook in hooks:
        hook.close()
    return result
