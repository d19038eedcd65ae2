"""The forgetting curve: what was measured at each evaluation step, and the summary numbers derived from it."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from persist.errors import ConfigError
from persist.forgetting.metrics import AurcAxis, aurc, backward_transfer, retention, wilson_interval

ACCURACIES = ("task_a_acc", "task_a_acc_masked", "task_b_acc")
MEASURED = ("task_a_acc", "task_a_acc_masked", "task_a_loss", "task_a_loss_masked", "task_b_acc", "task_b_loss")


@dataclass(frozen=True)
class ForgettingCurve:
    """Per-step measurements on the evaluation sets; every array has one entry per step.

    ``task_a_acc`` is class-incremental (argmax over all classes), ``task_a_acc_masked`` is
    task-masked (argmax over the task-A logits only), so their gap is what the task-B head's bias
    alone takes away. ``task_a_loss`` is cross-entropy over all logits, ``task_a_loss_masked`` over
    the task-A logits. Task B is scored class-incrementally with labels shifted past task A.
    """

    steps: np.ndarray
    task_a_acc: np.ndarray
    task_a_acc_masked: np.ndarray
    task_a_loss: np.ndarray
    task_a_loss_masked: np.ndarray
    task_b_acc: np.ndarray
    task_b_loss: np.ndarray
    n_task_a: int
    n_task_b: int
    num_task_a_classes: int
    num_task_b_classes: int

    @classmethod
    def from_rows(cls, rows: list[dict[str, float]], **sizes: int) -> "ForgettingCurve":
        """Build from one dict per evaluation step (``step`` plus :data:`MEASURED`; the checkpoint form)."""
        arrays: dict[str, Any] = {name: np.array([r[name] for r in rows], dtype=np.float64) for name in MEASURED}
        return cls(np.array([r["step"] for r in rows], dtype=np.int64), **arrays, **dict[str, Any](sizes))

    def interval(self, name: str, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Wilson interval per step for one of the accuracies (binomial over the evaluation set)."""
        if name not in ACCURACIES:
            raise ConfigError(f"interval name must be one of {', '.join(ACCURACIES)}, got '{name}'")
        n = self.n_task_b if name == "task_b_acc" else self.n_task_a
        return wilson_interval(np.round(getattr(self, name) * n), n, confidence)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: arrays as lists (NaN as null) plus 95% Wilson intervals per accuracy."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = [_json_float(v) for v in value.tolist()] if isinstance(value, np.ndarray) else value
        for name in ACCURACIES:
            lo, hi = self.interval(name)
            out[f"{name}_ci95"] = [[float(a), float(b)] for a, b in zip(lo, hi, strict=True)]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ForgettingCurve":
        """Inverse of :meth:`to_dict` (for reading ``forgetting/curve.json`` back)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in data:
                raise ConfigError(f"forgetting curve is missing field '{f.name}'")
            raw = data[f.name]
            values[f.name] = np.array([np.nan if v is None else v for v in raw]) if isinstance(raw, list) else int(raw)
        values["steps"] = values["steps"].astype(np.int64)
        return cls(**values)


def summarize(curve: ForgettingCurve, aurc_axis: AurcAxis = "linear") -> dict[str, float]:
    """Scalar summaries: retention at every evaluated step (both variants), AURC, BWT, end points.

    Keys avoid characters MLflow rejects in metric names, so ``ret@100`` is spelled ``ret_100``.
    """
    ret, ret_masked = retention(curve.task_a_acc), retention(curve.task_a_acc_masked)
    summary: dict[str, float] = {}
    for k, r, rm in zip(curve.steps[1:].tolist(), ret[1:], ret_masked[1:], strict=True):
        summary[f"ret_{k}"] = float(r)
        summary[f"ret_masked_{k}"] = float(rm)
    summary.update(
        aurc=aurc(curve.steps, ret, aurc_axis),
        aurc_masked=aurc(curve.steps, ret_masked, aurc_axis),
        bwt=backward_transfer(curve.task_a_acc),
        bwt_masked=backward_transfer(curve.task_a_acc_masked),
        task_a_initial_acc=float(curve.task_a_acc[0]),
        task_a_initial_acc_masked=float(curve.task_a_acc_masked[0]),
        task_a_final_acc=float(curve.task_a_acc[-1]),
        task_a_final_acc_masked=float(curve.task_a_acc_masked[-1]),
        task_a_final_loss=float(curve.task_a_loss[-1]),
        task_b_initial_acc=float(curve.task_b_acc[0]),
        task_b_final_acc=float(curve.task_b_acc[-1]),
    )
    return summary


def curve_warnings(curve: ForgettingCurve) -> list[str]:
    """Conditions under which the summary numbers mean little; each is one line."""
    found = []
    chance_a, chance_b = 1.0 / curve.num_task_a_classes, 1.0 / curve.num_task_b_classes
    if curve.task_a_acc[0] == 0.0:
        found.append("task-A accuracy at step 0 is 0, so retention and AURC are undefined (NaN)")
    elif curve.task_a_acc_masked[0] < 2.0 * chance_a:
        found.append(
            f"task A was barely learned: step-0 masked accuracy {curve.task_a_acc_masked[0]:.3f} "
            f"is below twice chance ({2 * chance_a:.3f}), so retention compares noise"
        )
    if curve.task_b_acc[-1] < 2.0 * chance_b:
        found.append(
            f"task B was barely learned: final accuracy {curve.task_b_acc[-1]:.3f} is below twice "
            f"chance among its {curve.num_task_b_classes} classes ({2 * chance_b:.3f}); forgetting is not comparable"
        )
    return found


def _json_float(v: float) -> float | int | None:
    return None if isinstance(v, float) and math.isnan(v) else v
