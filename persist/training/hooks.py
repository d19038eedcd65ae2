"""Observers of a training loop. Hooks read the model; they never change training.

The loop calls ``on_step_end`` after every optimizer step, ``on_epoch_end`` after each epoch's
validation, stops when any hook's ``should_stop`` is true, and always calls ``close``.
"""

from __future__ import annotations

from typing import Protocol

import torch.nn as nn


class Hook(Protocol):
    def on_step_end(self, step: int, model: nn.Module) -> None: ...

    def on_epoch_end(self, epoch: int, model: nn.Module, metrics: dict[str, float]) -> None: ...

    def should_stop(self) -> bool: ...

    def close(self) -> None: ...


class BaseHook:
    """No-op defaults so concrete hooks implement only what they observe."""

    def on_step_end(self, step: int, model: nn.Module) -> None:
        pass

    def on_epoch_end(self, epoch: int, model: nn.Module, metrics: dict[str, float]) -> None:
        pass

    def should_stop(self) -> bool:
        return False

    def close(self) -> None:
        pass
