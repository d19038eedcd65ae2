"""Sequential training: fine-tune a task-A model on task B and score task A on a step schedule.

One learning-rate policy for every architecture (the published code scaled it per model, which
confounded forgetting with step size). Task-A accuracy is reported class-incrementally and
task-masked so head bias can be told apart from representation drift. The run checkpoints at every
evaluation point and resumes bit-identically on CPU after a kill.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from persist.checkpoint import load_checkpoint, restore_rng, rng_state, save_checkpoint
from persist.config import ForgettingConfig
from persist.data import TaskData, iterate_batches
from persist.errors import CheckpointError, ConfigError
from persist.forgetting.curve import ForgettingCurve, curve_warnings, summarize
from persist.forgetting.ewc import FisherLabels, diagonal_fisher, ewc_penalty, pad_fisher
from persist.forgetting.head import widen_classifier
from persist.forgetting.metrics import AurcAxis
from persist.forgetting.schedule import (
    eval_schedule,
    learning_rate,
    make_optimizer,
    set_learning_rate,
)
from persist.models import count_parameters, get_classifier
from persist.training.hooks import Hook

StateDict = dict[str, torch.Tensor]
DEFAULTS = ForgettingConfig()


class ForgettingWarning(UserWarning):
    """The run finished, but its forgetting numbers should be read with care."""


@dataclass(frozen=True)
class ForgettingResult:
    """Curve, summary numbers and the two endpoint states (step 0 after widening, and final)."""

    curve: ForgettingCurve
    summary: dict[str, float]
    warnings: list[str]
    settings: dict[str, Any]
    initial_state: StateDict = field(repr=False)
    final_state: StateDict = field(repr=False)

    def to_json(self) -> str:
        """The ``forgetting/curve.json`` artifact: settings, curve with 95% Wilson intervals, summary, warnings."""
        summary = {k: (None if v != v else v) for k, v in self.summary.items()}
        payload = {"settings": self.settings, "summary": summary, "warnings": self.warnings,
                   "curve": self.curve.to_dict()}
        return json.dumps(payload, indent=2)


@dataclass
class _Progress:
    """Everything that changes during the run and must survive a kill."""

    step: int
    rows: list[dict[str, float]]
    epoch_rng: torch.Tensor  # generator state when the current epoch's shuffle was drawn
    batch_in_epoch: int  # batches of the current epoch already consumed
    initial: StateDict
    fisher: StateDict
    stopped: bool = False


def run_sequential(
    model: nn.Module,
    task_a: TaskData,
    task_b: TaskData,
    config: ForgettingConfig = DEFAULTS,
    *,
    seed: int = 0,
    augment_padding: int | None = None,
    fisher_samples: int = 1024,
    fisher_labels: FisherLabels = "empirical",
    aurc_axis: AurcAxis = "linear",
    eval_split: Literal["test", "val"] = "test",
    eval_batch_size: int = 512,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int | None = None,
    progress: bool = False,
    hooks: Sequence[Hook] = (),
    **overrides: Any,
) -> ForgettingResult:
    """Widen ``model`` (a trained task-A model, modified in place) and train it on task B for ``max(steps)`` steps.

    The training policy is ``config`` (a :class:`ForgettingConfig`, checked when built; the defaults are
    ``ForgettingConfig()``) with ``overrides`` of its fields applied, e.g. ``run_sequential(m, a, b,
    steps=(0, 10, 100), lr=0.05)``. ``config.steps`` is the evaluation schedule; its largest entry is the
    training length. The keyword-only arguments are settings no config section holds.
    Task-B labels are shifted past the task-A classes and the loss is cross-entropy over all logits.
    Evaluation happens at :func:`eval_schedule` steps (always 0 and the last) on ``eval_split``.
    ``ewc_lambda > 0`` adds the EWC penalty with a Fisher from ``fisher_samples`` task-A training
    images. With ``checkpoint_path`` the run saves at every evaluation point (and every
    ``checkpoint_every`` steps) and a rerun with the same arguments (and a fresh task-A model) resumes
    from there, bit-identically on CPU; a finished checkpoint returns its result without training. Hooks see
    every step; one whose ``should_stop`` turns true ends the run after a final evaluation.
    """
    f = replace(config, **overrides) if overrides else config  # replace() checks the overridden values
    steps = max(f.steps)
    args = dict(steps=steps, eval_steps=f.steps, optimizer=f.optimizer, lr=f.lr, momentum=f.momentum,
                weight_decay=f.weight_decay, lr_schedule=f.schedule, batch_size=f.batch_size,
                augment_padding=augment_padding, seed=seed, ewc_lambda=f.ewc_lambda, fisher_samples=fisher_samples,
                fisher_labels=fisher_labels, aurc_axis=aurc_axis, eval_split=eval_split,
                eval_batch_size=eval_batch_size)
    settings = _settings(model, task_a, task_b, args)  # every argument that can change the numbers
    _validate(settings, model, task_a, task_b, checkpoint_every)
    schedule = eval_schedule(f.steps, steps)
    device = next(model.parameters()).device
    a, b = task_a.to(device), task_b.to(device)
    num_a = a.num_classes
    x_a, y_a = getattr(a, f"x_{eval_split}"), getattr(a, f"y_{eval_split}")
    x_b, y_b = getattr(b, f"x_{eval_split}"), getattr(b, f"y_{eval_split}") + num_a

    def measure(step: int) -> dict[str, float]:
        return {"step": step, **measure_tasks(model, x_a, y_a, x_b, y_b, num_a, eval_batch_size)}

    saved = _load_matching(checkpoint_path, settings)
    generator = torch.Generator().manual_seed(seed)
    fisher = _task_a_fisher(model, a, fisher_samples, fisher_labels, seed) if f.ewc_lambda > 0 and saved is None else {}
    widen_classifier(model, b.num_classes, generator)
    opt = make_optimizer(model.parameters(), f.optimizer, f.lr, f.momentum, f.weight_decay)
    if saved is None:
        state = _Progress(0, [measure(0)], generator.get_state(), 0, _snapshot(model), pad_fisher(fisher, model))
        _save(checkpoint_path, settings, model, opt, generator, state)
    else:
        state = _restore(saved, model, opt, generator, device)

    hooks = list(hooks)
    bar = tqdm(total=steps, initial=state.step, disable=not progress, desc="task B", unit="step")
    try:
        batches = _batch_stream(b.x_train, b.y_train + num_a, f.batch_size, generator, augment_padding, state)
        model.train()
        while state.step < steps and not state.stopped:
            xb, yb = next(batches)
            set_learning_rate(opt, learning_rate(state.step, f.lr, steps, f.schedule))
            _train_step(model, opt, xb, yb, state, f.ewc_lambda)
            state.step += 1
            bar.update(1)
            for hook in hooks:
                hook.on_step_end(state.step, model)
            state.stopped = any(hook.should_stop() for hook in hooks)
            if state.step in schedule or state.stopped:
                state.rows.append(measure(state.step))
                bar.set_postfix(task_a=f"{state.rows[-1]['task_a_acc']:.3f}",
                                task_b=f"{state.rows[-1]['task_b_acc']:.3f}")
            if state.step in schedule or state.stopped or (checkpoint_every and state.step % checkpoint_every == 0):
                _save(checkpoint_path, settings, model, opt, generator, state)
    finally:
        bar.close()
        for hook in hooks:
            hook.close()
    return _result(model, state, settings, steps, aurc_axis)


def _train_step(
    model: nn.Module, opt: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor, state: _Progress,
    ewc_lambda: float,
) -> None:
    """One task-B step: cross-entropy over all logits, plus the EWC term when a Fisher exists. No host sync."""
    loss = F.cross_entropy(model(xb), yb)
    if state.fisher:
        loss = loss + ewc_penalty(model, state.initial, state.fisher, ewc_lambda)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


@torch.no_grad()
def measure_tasks(
    model: nn.Module,
    x_a: torch.Tensor,
    y_a: torch.Tensor,
    x_b: torch.Tensor,
    y_b: torch.Tensor,
    num_task_a: int,
    batch_size: int = 512,
) -> dict[str, float]:
    """Task-A accuracy and loss (all logits and task-A logits only) and task-B accuracy and loss.

    ``y_b`` must already be shifted past the task-A classes. One forward pass per image serves both
    task-A variants, sums stay on the device in fp32, and there is one host sync at the end.
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(6, dtype=torch.float32, device=x_a.device)
    for start in range(0, len(x_a), batch_size):
        logits, yb = model(x_a[start : start + batch_size]).float(), y_a[start : start + batch_size]
        masked = logits[:, :num_task_a]
        sums[0] += F.cross_entropy(logits, yb, reduction="sum")
        sums[1] += F.cross_entropy(masked, yb, reduction="sum")
        sums[2] += (logits.argmax(1) == yb).sum()
        sums[3] += (masked.argmax(1) == yb).sum()
    for start in range(0, len(x_b), batch_size):
        logits, yb = model(x_b[start : start + batch_size]).float(), y_b[start : start + batch_size]
        sums[4] += F.cross_entropy(logits, yb, reduction="sum")
        sums[5] += (logits.argmax(1) == yb).sum()
    model.train(was_training)
    loss_a, loss_a_masked, correct_a, correct_a_masked, loss_b, correct_b = sums.tolist()
    n_a, n_b = max(len(x_a), 1), max(len(x_b), 1)
    return {
        "task_a_acc": correct_a / n_a,
        "task_a_acc_masked": correct_a_masked / n_a,
        "task_a_loss": loss_a / n_a,
        "task_a_loss_masked": loss_a_masked / n_a,
        "task_b_acc": correct_b / n_b,
        "task_b_loss": loss_b / n_b,
    }


def _batch_stream(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    generator: torch.Generator,
    augment_padding: int | None,
    state: _Progress,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless shuffled epochs that record where they are in ``state``, so a resume can replay to the same batch.

    A resume restores the generator to the start of the interrupted epoch and skips the batches
    already used; their augmentation draws are replayed too, so the generator ends where it was.
    """
    generator.set_state(state.epoch_rng)
    skip = state.batch_in_epoch
    while True:
        state.epoch_rng = generator.get_state()
        epoch = iterate_batches(x, y, batch_size, generator, shuffle=True, augment_padding=augment_padding,
                                drop_last=True)
        for position, batch in enumerate(epoch, start=1):
            state.batch_in_epoch = position
            if skip:
                skip -= 1
                continue
            yield batch
        state.batch_in_epoch = 0


def _task_a_fisher(model: nn.Module, task_a: TaskData, samples: int, labels: FisherLabels, seed: int) -> StateDict:
    """Fisher of the task-A model on a seeded subset of task-A training images (before widening)."""
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(task_a.x_train), generator=generator)[:samples].to(task_a.x_train.device)
    x, y = task_a.x_train[idx], task_a.y_train[idx]
    # Per-sample gradients hold batch_size copies of the parameters; 32 keeps a ResNet-18 near 1.5 GB.
    return diagonal_fisher(model, x, y, batch_size=32, labels=labels, generator=generator)


def _snapshot(model: nn.Module) -> StateDict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _save(
    path: str | Path | None, settings: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer,
    generator: torch.Generator, state: _Progress,
) -> None:
    if path is None:
        return
    save_checkpoint(
        path, settings=settings, step=state.step, rows=state.rows, stopped=state.stopped,
        epoch_rng=state.epoch_rng, batch_in_epoch=state.batch_in_epoch, rng=rng_state(generator),
        model=model.state_dict(), optimizer=opt.state_dict(), initial=state.initial, fisher=state.fisher,
    )


def _load_matching(path: str | Path | None, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint to resume from, or None; one written with other arguments is refused, not mixed in."""
    if path is None or not Path(path).is_file():
        return None
    saved = load_checkpoint(path)
    differing = sorted(k for k in settings.keys() | saved.get("settings", {}).keys()
                       if settings.get(k) != saved.get("settings", {}).get(k))
    if differing:
        raise CheckpointError(
            f"checkpoint_path {path} was written with different {', '.join(differing)}; delete it or change the path")
    return saved


def _restore(saved: dict[str, Any], model: nn.Module, opt: torch.optim.Optimizer, generator: torch.Generator,
             device: torch.device) -> _Progress:
    try:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"checkpoint_path does not match this model ({type(exc).__name__})") from exc
    restore_rng(saved["rng"], generator)
    initial = {k: v.to(device) for k, v in saved["initial"].items()}
    fisher = {k: v.to(device) for k, v in saved["fisher"].items()}
    return _Progress(saved["step"], list(saved["rows"]), saved["epoch_rng"], saved["batch_in_epoch"], initial, fisher,
                     saved["stopped"])


def _result(
    model: nn.Module, state: _Progress, settings: dict[str, Any], steps: int, aurc_axis: AurcAxis
) -> ForgettingResult:
    sizes = {k: settings[k] for k in ("n_task_a", "n_task_b", "num_task_a_classes", "num_task_b_classes")}
    curve = ForgettingCurve.from_rows(state.rows, **sizes)
    found = curve_warnings(curve)
    if state.stopped and state.step < steps:
        found.append(f"a hook stopped training at step {state.step} of {steps}; the curve ends there")
    for message in found:
        warnings.warn(message, ForgettingWarning, stacklevel=3)
    return ForgettingResult(curve, summarize(curve, aurc_axis), found, settings, state.initial, _snapshot(model))


def _settings(model: nn.Module, task_a: TaskData, task_b: TaskData, args: dict[str, Any]) -> dict[str, Any]:
    """Everything that determines the numbers; logged with the curve and checked on resume."""
    split = args["eval_split"]
    keep = ("steps", "optimizer", "lr", "momentum", "weight_decay", "lr_schedule", "batch_size", "augment_padding",
            "seed", "ewc_lambda", "fisher_samples", "fisher_labels", "aurc_axis", "eval_split", "eval_batch_size")
    return {
        **{k: args[k] for k in keep},
        "eval_steps": list(eval_schedule(args["eval_steps"], args["steps"])),
        "arch": getattr(model, "arch_name", type(model).__name__),
        "num_parameters": count_parameters(model),
        "dataset": task_a.dataset,
        "task_a_classes": list(task_a.classes),
        "task_b_classes": list(task_b.classes),
        "num_task_a_classes": task_a.num_classes,
        "num_task_b_classes": task_b.num_classes,
        "n_task_a": len(getattr(task_a, f"x_{split}", ())),
        "n_task_b": len(getattr(task_b, f"x_{split}", ())),
    }


def _validate(s: dict[str, Any], model: nn.Module, task_a: TaskData, task_b: TaskData,
              checkpoint_every: int | None) -> None:
    """Checks of what no config section checks: the data, the model and the library-only arguments."""
    checks = [
        (s["batch_size"] <= len(task_b.x_train),
         f"batch_size must be in [1, {len(task_b.x_train)}] (task-B training images), got {s['batch_size']}"),
        (s["augment_padding"] is None or s["augment_padding"] >= 0,
         f"augment_padding must be >= 0, got {s['augment_padding']}"),
        (s["fisher_samples"] >= 1, f"fisher_samples must be >= 1, got {s['fisher_samples']}"),
        (s["aurc_axis"] in ("linear", "log"), f"aurc_axis must be 'linear' or 'log', got '{s['aurc_axis']}'"),
        (s["eval_split"] in ("test", "val"), f"eval_split must be 'test' or 'val', got '{s['eval_split']}'"),
        (s["eval_batch_size"] >= 1, f"eval_batch_size must be >= 1, got {s['eval_batch_size']}"),
        (checkpoint_every is None or checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {checkpoint_every}"),
        (s["n_task_a"] > 0 and s["n_task_b"] > 0, f"eval_split '{s['eval_split']}' is empty for task A or task B"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    head = get_classifier(model).out_features
    if head != task_a.num_classes:
        raise ConfigError(f"model classifier has {head} outputs but task_a has {task_a.num_classes} classes; "
                          "pass the unwidened task-A model")
