"""Forgetting phase: widen the task-A model, train on task B, log retention curves and the barrier."""

from __future__ import annotations

import json

from persist.artifacts import FORGETTING_CURVE
from persist.config import RunConfig, config_hash
from persist.devices import resolve_device
from persist.forgetting import run_sequential, task_barrier
from persist.phases.common import (
    clear_workdir,
    load_trained_model,
    model_shape,
    np_hooks,
    run_tags,
    save_model_artifact,
    task_of,
    workdir,
)
from persist.phases.records import log_task_split, member_label, run_name
from persist.phases.table import PHASE_TABLE
from persist.plots.forgetting import plot_forgetting
from persist.tracking import log_figure, log_json, log_metrics, phase_run, set_tags

SECTIONS = PHASE_TABLE["forgetting"].sections


def forgetting_hash(cfg: RunConfig, train_run_id: str) -> str:
    return config_hash(cfg, SECTIONS) + f"-{train_run_id[:8]}"


def run_forgetting(cfg: RunConfig, train_run_id: str, progress: bool = True) -> str:
    """Measure how much of task A survives task-B training; returns the forgetting run id."""
    device = resolve_device(cfg.device)
    model, train_cfg = load_trained_model(train_run_id, device)
    data = train_cfg.data
    task_a, task_b = task_of(train_cfg, "A", device), task_of(train_cfg, "B", device)
    f = cfg.forgetting
    key = forgetting_hash(cfg, train_run_id)
    tags = run_tags(train_cfg, **{"persist.config_hash": key, "persist.upstream_run_id": train_run_id})
    with phase_run("forgetting", cfg, tags, run_name=run_name("forgetting", train_cfg)) as run:
        log_task_split(task_b, "train")
        log_task_split(task_a, "test")
        result = run_sequential(
            model, task_a, task_b, f, seed=cfg.seed,
            augment_padding=max(1, task_a.image_size // 8) if data.augment else None,
            checkpoint_path=workdir("forgetting", key) / "state.pt", progress=progress, hooks=np_hooks(cfg, f.np_every))
        barrier = task_barrier(model, result.initial_state, result.final_state, task_a.x_test, task_a.y_test,
                               task_a.num_classes, num_points=f.barrier_points)
        log_metrics({**result.summary, **barrier.summary()}, prefix="forgetting/")
        for step, acc, masked, acc_b in zip(result.curve.steps, result.curve.task_a_acc,
                                            result.curve.task_a_acc_masked, result.curve.task_b_acc, strict=True):
            log_metrics({"task_a_acc": acc, "task_a_acc_masked": masked, "task_b_acc": acc_b},
                        step=int(step), prefix="forgetting/curve_")
        payload = json.loads(result.to_json())
        payload["barrier"] = {"ts": barrier.ts.tolist(), "loss": barrier.loss.tolist(),
                              "accuracy": barrier.accuracy.tolist(), "logits": barrier.logits}
        log_json(payload, FORGETTING_CURVE)
        if result.warnings:
            set_tags({"persist.warnings": "; ".join(result.warnings)[:5000]})
        model.load_state_dict(result.final_state)
        save_model_artifact(model, "final", model_shape(task_a.num_classes + task_b.num_classes,
                                                        task_a.in_channels, task_a.image_size))
        title = f"{member_label(train_cfg)} s{train_cfg.seed}: task A while training task B"
        log_figure(plot_forgetting(result.curve, title),
                   "figures/forgetting.png")
    clear_workdir("forgetting", key)
    return run.info.run_id
