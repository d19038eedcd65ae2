"""Stage 2: a surrogate that predicts loss from a flat parameter vector, with honest fidelity numbers.

Held-out scores use a split by *group* (a base initialization and its perturbations stay on the same
side): perturbed copies are near-duplicates, and a random row split would report their memorised
losses as generalisation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import r2_score
from sklearn.model_selection import GroupShuffleSplit
from torch import Tensor, nn
from tqdm.auto import tqdm

from persist.checkpoint import load_checkpoint, save_checkpoint
from persist.data import iterate_batches
from persist.errors import ConfigError


@dataclass(frozen=True)
class SurrogateConfig:
    hidden: tuple[int, ...] = (256, 128)
    epochs: int = 60
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    test_fraction: float = 0.2  # of groups, held out for the reported scores
    val_fraction: float = 0.15  # of the remaining groups, for early stopping (best epoch kept)

    def __post_init__(self) -> None:
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"surrogate.hidden must list positive widths, got {self.hidden}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"surrogate.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("test_fraction", "val_fraction"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ConfigError(f"surrogate.{name} must be in (0, 1), got {getattr(self, name)}")


class Surrogate(nn.Module):
    """MLP on z-scored inputs predicting a z-scored target; returns the target in its own units."""

    x_mean: Tensor  # buffers: the training split's input and target statistics
    x_std: Tensor
    t_mean: Tensor
    t_std: Tensor

    def __init__(self, n_inputs: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        widths = (n_inputs, *hidden)
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [nn.Linear(a, b), nn.GELU()]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], 1))
        for name in ("x_mean", "x_std"):
            self.register_buffer(name, torch.zeros(n_inputs))
        for name in ("t_mean", "t_std"):
            self.register_buffer(name, torch.zeros(()))

    def set_scaling(self, x: Tensor, t: Tensor) -> None:
        """Training-split statistics; constant inputs (e.g. zero biases) map to 0, not NaN."""
        self.x_mean.copy_(x.mean(0))
        self.x_std.copy_(x.std(0).clamp_min(1e-8))
        self.t_mean.copy_(t.mean())
        self.t_std.copy_(t.std().clamp_min(1e-8))

    def normalized(self, x: Tensor) -> Tensor:
        return self.net((x - self.x_mean) / self.x_std).squeeze(-1)

    def forward(self, x: Tensor) -> Tensor:
        return self.normalized(x) * self.t_std + self.t_mean


@dataclass(frozen=True)
class SurrogateFit:
    model: Surrogate
    metrics: dict[str, float]  # test_r2, test_spearman, n_train, n_test, best_epoch
    test_index: np.ndarray  # rows of the input held out for the scores
    test_pred: np.ndarray  # surrogate predictions on those rows (target units)


def fidelity(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R^2 (can be negative: worse than predicting the mean) and Spearman rank correlation."""
    rho = spearmanr(true, pred).statistic if np.ptp(true) > 0 and np.ptp(pred) > 0 else float("nan")
    return {"r2": float(r2_score(true, pred)), "spearman": float(rho)}


def group_split(groups: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(kept rows, held-out rows) with whole groups on each side."""
    splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    keep, held = next(splitter.split(np.zeros(len(groups)), groups=groups))
    return keep, held


Augment = Callable[[Tensor, torch.Generator], Tensor]


def _train(model: Surrogate, x: Tensor, t: Tensor, xv: Tensor, tv: Tensor, cfg: SurrogateConfig,
           generator: torch.Generator, augment: Augment | None, progress: bool) -> int:
    """AdamW on MSE of the normalized target; keeps the weights of the best validation epoch."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    z, zv = (t - model.t_mean) / model.t_std, (tv - model.t_mean) / model.t_std
    best, best_epoch, best_state = float("inf"), 0, copy.deepcopy(model.state_dict())
    for epoch in tqdm(range(cfg.epochs), desc="surrogate", disable=not progress, leave=False):
        model.train()
        for xb, zb in iterate_batches(x, z, cfg.batch_size, generator, shuffle=True):
            xb = xb if augment is None else augment(xb, generator)
            loss = nn.functional.mse_loss(model.normalized(xb), zb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        with torch.no_grad():
            val = nn.functional.mse_loss(model.normalized(xv), zv).item()  # one sync per epoch
        if val < best:
            best, best_epoch, best_state = val, epoch, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return best_epoch


def fit_surrogate(x: Tensor, t: Tensor, groups: np.ndarray, cfg: SurrogateConfig, seed: int,
                  augment: Augment | None = None, progress: bool = False) -> SurrogateFit:
    """Train on (x, t) with a group-held-out test set and report its R^2 and Spearman in t's units.

    ``augment`` maps a training minibatch to an equivalent one (same targets), e.g. a symmetry of
    the target network; for the MLP target, hidden-unit permutations lift held-out R^2 from about 0
    to about 0.9 on the quick pool, because the raw parameter vector hides that symmetry.
    """
    if len(np.unique(groups)) < 3:
        raise ConfigError("surrogate needs >= 3 groups (base initializations) to split train/val/test")
    keep, test = group_split(groups, cfg.test_fraction, seed)
    fit_rows, val_rows = group_split(groups[keep], cfg.val_fraction, seed + 1)
    train, val = keep[fit_rows], keep[val_rows]
    with torch.random.fork_rng(devices=[]):  # seed the surrogate's own layers without touching global state
        torch.manual_seed(seed)
        model = Surrogate(x.shape[1], cfg.hidden).to(x.device)
    model.set_scaling(x[train], t[train])
    generator = torch.Generator().manual_seed(seed)
    best_epoch = _train(model, x[train], t[train], x[val], t[val], cfg, generator, augment, progress)
    model.eval()
    with torch.no_grad():
        pred = model(x[test]).cpu().numpy()
    scores = fidelity(t[test].cpu().numpy(), pred)
    metrics = {f"test_{k}": v for k, v in scores.items()}
    metrics.update(n_train=float(len(train)), n_test=float(len(test)), best_epoch=float(best_epoch))
    return SurrogateFit(model, metrics, test, pred)


def save_surrogate(model: Surrogate, path: Path) -> None:
    """Weights plus the shape needed to rebuild the model, as an atomic persist checkpoint."""
    hidden = [m.out_features for m in model.net if isinstance(m, nn.Linear)][:-1]
    save_checkpoint(path, state_dict=model.state_dict(), n_inputs=model.x_mean.numel(), hidden=hidden)


def load_surrogate(path: Path, device: str | torch.device = "cpu") -> Surrogate:
    """Rebuild a surrogate saved by :func:`save_surrogate` (tensors only: ``weights_only=True``)."""
    payload = load_checkpoint(path, map_location=device)
    model = Surrogate(int(payload["n_inputs"]), tuple(payload["hidden"])).to(device)
    model.load_state_dict(payload["state_dict"])
    return model.eval()
