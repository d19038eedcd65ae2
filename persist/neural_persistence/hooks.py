"""Training-loop hooks: track neural persistence every N steps, and stop training on an NP plateau.

Both read the weights only (no forward pass), so they never change training; they follow the protocol of
``persist.training.hooks`` (on_step_end, on_epoch_end, should_stop, close).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch.nn as nn

from persist.errors import ConfigError
from persist.neural_persistence.layers import LayerFilter
from persist.neural_persistence.network import neural_persistence
from persist.neural_persistence.stopping import PatienceRule
from persist.training.hooks import BaseHook

LogFn = Callable[[dict[str, float], int], None]
_NETWORK_KEYS = ("np/mean_normalized", "np/total", "np/mean_weight_std", "np/mean_weight_norm")


class _Measure:
    """The settings of one NP measurement, shared by both hooks."""

    def __init__(self, p: float, layer_filter: LayerFilter | None, per_head: bool,
                 conv_input_sizes: Mapping[str, tuple[int, int]] | None, method: str) -> None:
        self.kwargs: dict[str, Any] = dict(p=p, layer_filter=layer_filter, per_head=per_head,
                           conv_input_sizes=conv_input_sizes, method=method)

    def __call__(self, model: nn.Module) -> dict[str, float]:
        return neural_persistence(model, **self.kwargs)


class NeuralPersistenceTracker(BaseHook):
    """Log per-layer normalized NP and the network summaries (mean normalized NP, total NP, weight
    baselines) every ``every_n_steps`` optimizer steps, to watch change points during training."""

    def __init__(self, every_n_steps: int, log_fn: LogFn, p: float = 2.0, layer_filter: LayerFilter | None = None,
                 per_head: bool = False, conv_input_sizes: Mapping[str, tuple[int, int]] | None = None,
                 method: str = "auto") -> None:
        if every_n_steps < 1:
            raise ConfigError(f"every_n_steps must be >= 1, got {every_n_steps}")
        self.every_n_steps = every_n_steps
        self.log_fn = log_fn
        self.measure = _Measure(p, layer_filter, per_head, conv_input_sizes, method)

    def on_step_end(self, step: int, model: nn.Module) -> None:
        if step % self.every_n_steps:
            return
        values = self.measure(model)
        self.log_fn({k: v for k, v in values.items() if k.endswith("/normalized") or k in _NETWORK_KEYS}, step)


class NeuralPersistenceEarlyStopping(BaseHook):
    """Stop when the mean normalized NP stops growing (Rieck et al. 2019, Algorithm 2), with no validation
    set: the data a validation split would hold can be used for training instead.

    Evaluated once per epoch. ``history`` holds (epoch, mean normalized NP); ``stopped_epoch`` is the epoch
    at which the rule fired, or None.
    """

    def __init__(self, patience: int, min_delta: float = 0.0, burn_in: int = 0, p: float = 2.0,
                 layer_filter: LayerFilter | None = None, per_head: bool = False,
                 conv_input_sizes: Mapping[str, tuple[int, int]] | None = None, method: str = "auto") -> None:
        self.rule = PatienceRule(patience, min_delta, burn_in, mode="max")
        self.measure = _Measure(p, layer_filter, per_head, conv_input_sizes, method)
        self.history: list[tuple[int, float]] = []
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, epoch: int, model: nn.Module, metrics: dict[str, float]) -> None:
        if self.stopped_epoch is not None:
            return
        value = self.measure(model)["np/mean_normalized"]
        self.history.append((epoch, value))
        if self.rule.update(value):
            self.stopped_epoch = epoch

    def should_stop(self) -> bool:
        return self.stopped_epoch is not None
