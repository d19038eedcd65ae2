"""What the phases record the MLflow way, beside their own artifacts: run names, datasets, models, HTML.

Kept here so each phase file gains a line, not a block: names say architecture, width and seed
(``train cnn@0.5 s0``), datasets carry name, digest, split and classes, the trained model is an MLflow
model with a signature, and slices get interactive figures next to their PNGs.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np
import torch
import torch.nn as nn

from persist.config import RunConfig
from persist.data import TaskData
from persist.landscape.resume import tensor_digest
from persist.tracking import log_html
from persist.tracking.native import log_dataset, log_torch_model


def member_label(cfg: RunConfig) -> str:
    """``cnn@0.5``: the study member, with its width even at 1 (two widths of one family differ)."""
    return f"{cfg.model.arch}@{cfg.model.width:g}"


def run_name(phase: str, cfg: RunConfig) -> str:
    """``train cnn@0.5 s0``: unique within a study (architecture x width x seed)."""
    return f"{phase} {member_label(cfg)} s{cfg.seed}"


def log_task_split(task: TaskData, split: str, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> None:
    """One split of a task as an MLflow dataset input (``x``/``y`` default to the whole split).

    Its name says dataset, task and split (``digits-A-train``); the digest is the sha256 of the tensors
    (truncated to MLflow's 36 characters); tags give split, task, classes and the number of examples.
    """
    x = getattr(task, f"x_{split}") if x is None else x
    y = getattr(task, f"y_{split}") if y is None else y
    name = f"{task.dataset}-{task.task}-{split}"
    tags = {"split": split, "task": task.task, "classes": ",".join(map(str, task.classes)), "examples": str(len(y))}
    log_dataset(x.cpu().numpy(), y.cpu().numpy(), name, tensor_digest([x, y]), context=split, tags=tags)


def log_trained_model(model: nn.Module, example: torch.Tensor, metrics: Mapping[str, float]) -> str | None:
    """The model as an MLflow model (signature, two-example input, linked ``metrics``); returns its URI.

    ``PERSIST_LOG_MODEL=0`` skips it (it costs about 2 s per model); the resumable ``checkpoints/*.pt``
    stays either way, since that is what later phases load.
    """
    if os.environ.get("PERSIST_LOG_MODEL", "1") == "0":
        return None
    device = next(model.parameters()).device
    training = model.training
    try:  # logged from the CPU, so the model loads on machines without the training device
        return log_torch_model(model.cpu(), example[:2].cpu().numpy().astype(np.float32), metrics=dict(metrics))
    finally:
        model.to(device).train(training)


def log_slice_figures(alphas: np.ndarray, betas: np.ndarray, loss: np.ndarray, diagrams: Mapping[int, np.ndarray],
                      eps: float, title: str) -> None:
    """``figures/interactive.html``: 3-D surface with θ* marked, persistence diagram and barcode, with
    hover. The page loads plotly.js from its CDN (a 4.8 MB copy per slice would add hundreds of MB to a
    study's store); ``PERSIST_PLOTLYJS=inline`` embeds it for browsers without internet."""
    from persist.plots.interactive import barcode_figure, diagram_figure, html_page, surface_figure

    figures = [surface_figure(alphas, betas, loss, title=f"{title}: loss surface"),
               diagram_figure(diagrams, eps=eps, title=f"{title}: persistence diagram"),
               barcode_figure(diagrams, eps=eps, title=f"{title}: barcode")]
    plotlyjs = True if os.environ.get("PERSIST_PLOTLYJS") == "inline" else "cdn"
    log_html(html_page(figures, title=title, plotlyjs=plotlyjs), "figures/interactive.html")
