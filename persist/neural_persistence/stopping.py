"""Patience-based stopping on one scalar series: the rule of Rieck et al. (2019), Algorithm 2.

NP-based early stopping needs no validation data: training stops once the mean normalized NP has not
improved by more than ``min_delta`` for ``patience`` consecutive evaluations. The same rule with
``mode="min"`` is ordinary validation-loss early stopping, so both criteria are compared on equal terms.
"""

from __future__ import annotations

from persist.errors import ConfigError


class PatienceRule:
    """Stop after ``patience`` evaluations without an improvement larger than ``min_delta``.

    The first ``burn_in`` values are ignored (early training moves every statistic). The paper starts from
    a best value of 0; here the first evaluated value is the starting best, which differs only when it lies
    within ``min_delta`` of 0.
    """

    def __init__(self, patience: int, min_delta: float = 0.0, burn_in: int = 0, mode: str = "max") -> None:
        if patience < 1:
            raise ConfigError(f"patience must be >= 1, got {patience}")
        if min_delta < 0:
            raise ConfigError(f"min_delta must be >= 0, got {min_delta}")
        if burn_in < 0:
            raise ConfigError(f"burn_in must be >= 0, got {burn_in}")
        if mode not in ("max", "min"):
            raise ConfigError(f"mode must be 'max' or 'min', got '{mode}'")
        self.patience, self.min_delta, self.burn_in, self.mode = patience, min_delta, burn_in, mode
        self.best: float | None = None
        self.wait = 0
        self.seen = 0
        self.stopped = False

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return True
        gain = value - self.best if self.mode == "max" else self.best - value
        return gain > self.min_delta

    def update(self, value: float) -> bool:
        """Feed one evaluation; returns True once the rule has fired (and stays True)."""
        if self.stopped:
            return True
        self.seen += 1
        if self.seen <= self.burn_in:
            return False
        if self._improves(value):
            self.best, self.wait = value, 0
        else:
            self.wait += 1
        self.stopped = self.wait >= self.patience
        return self.stopped
