"""Training loop, evaluation and hooks."""

from persist.training.evaluation import evaluate
from persist.training.hooks import BaseHook, Hook
from persist.training.loop import TrainResult, train, warmup_cosine

__all__ = ["BaseHook", "Hook", "TrainResult", "evaluate", "train", "warmup_cosine"]
