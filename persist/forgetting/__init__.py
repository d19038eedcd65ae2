"""Catastrophic forgetting: widen the head, fine-tune on task B, and measure what task A keeps.

Usable on its own::

    from persist.config import ForgettingConfig
    from persist.forgetting import run_sequential
    result = run_sequential(model_a, task_a, task_b, ForgettingConfig(steps=(0, 100, 1000), lr=0.01))
    # or the defaults with keyword overrides of ForgettingConfig fields:
    result = run_sequential(model_a, task_a, task_b, steps=(0, 100, 1000), lr=0.01)
    result.summary["ret_100"], result.summary["aurc"]
"""

from persist.config import DEFAULT_EVAL_STEPS
from persist.forgetting.barrier import BarrierResult, task_barrier
from persist.forgetting.curve import ForgettingCurve, curve_warnings, summarize
from persist.forgetting.ewc import diagonal_fisher, ewc_penalty, pad_fisher
from persist.forgetting.head import widen_classifier
from persist.forgetting.metrics import aurc, backward_transfer, retention, wilson_interval
from persist.forgetting.schedule import eval_schedule, learning_rate, make_optimizer
from persist.forgetting.sequential import ForgettingResult, ForgettingWarning, measure_tasks, run_sequential

__all__ = [
    "DEFAULT_EVAL_STEPS",
    "BarrierResult",
    "ForgettingCurve",
    "ForgettingResult",
    "ForgettingWarning",
    "aurc",
    "backward_transfer",
    "curve_warnings",
    "diagonal_fisher",
    "eval_schedule",
    "ewc_penalty",
    "learning_rate",
    "make_optimizer",
    "measure_tasks",
    "pad_fisher",
    "retention",
    "run_sequential",
    "summarize",
    "task_barrier",
    "widen_classifier",
    "wilson_interval",
]
