"""Compare neural-persistence early stopping with validation-loss early stopping on scikit-learn's digits.

Rieck et al. (2019, Sec. 4.2) stop training when the mean normalized NP stops growing, with no validation
set. Here a small MLP is trained for a fixed number of epochs per seed while recording, after every epoch,
the mean normalized NP, the validation loss, the mean normalized weight norm (the paper's p-norm-of-weights
control) and the test accuracy. Each stopping rule is a deterministic function of its series, so one run
per seed is replayed for every patience value: the epoch at which a rule fires (the last epoch if it never
fires) and the test accuracy of the weights at that epoch. Positive "saved" means NP stopped earlier.

Usage: python scripts/np_early_stopping.py [--seeds 5] [--epochs 40] [--patience 1 2 3 5 8 12]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from persist.neural_persistence import PatienceRule, neural_persistence


@dataclass
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass
class Curves:
    np_mean: list[float]
    val_loss: list[float]
    weight_norm: list[float]
    test_acc: list[float]


def load_split(seed: int) -> Split:
    """70/30 train/test, then 20% of train held out for validation (never the test set), stratified."""
    digits = load_digits()
    x = digits.data.astype(np.float32) / 16.0
    x_rest, x_test, y_rest, y_test = train_test_split(x, digits.target, test_size=0.3, random_state=seed,
                                                      stratify=digits.target)
    x_train, x_val, y_train, y_val = train_test_split(x_rest, y_rest, test_size=0.2, random_state=seed,
                                                      stratify=y_rest)
    t = torch.from_numpy
    return Split(t(x_train), t(y_train), t(x_val), t(y_val), t(x_test), t(y_test))


def train_and_record(split: Split, seed: int, epochs: int, lr: float, batch_size: int) -> Curves:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    curves = Curves([], [], [], [])
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(split.x_train)).split(batch_size):
            optimizer.zero_grad()
            F.cross_entropy(model(split.x_train[batch]), split.y_train[batch]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            values = neural_persistence(model)
            curves.np_mean.append(values["np/mean_normalized"])
            curves.weight_norm.append(values["np/mean_weight_norm"])
            curves.val_loss.append(F.cross_entropy(model(split.x_val), split.y_val).item())
            curves.test_acc.append((model(split.x_test).argmax(1) == split.y_test).float().mean().item())
    return curves


def stop_epoch(series: list[float], patience: int, mode: str, burn_in: int) -> tuple[int, bool]:
    """0-based epoch at which the rule fires, or the last epoch and False if it never does."""
    rule = PatienceRule(patience, 0.0, burn_in, mode)
    for epoch, value in enumerate(series):
        if rule.update(value):
            return epoch, True
    return len(series) - 1, False


def summarize(runs: list[Curves], patience: int, burn_in: int) -> dict[str, float]:
    saved, acc_diff, np_fired, val_fired, norm_fired, np_epochs, val_epochs = [], [], 0, 0, 0, [], []
    for curves in runs:
        e_np, f_np = stop_epoch(curves.np_mean, patience, "max", burn_in)
        e_val, f_val = stop_epoch(curves.val_loss, patience, "min", burn_in)
        _, f_norm = stop_epoch(curves.weight_norm, patience, "max", burn_in)
        np_epochs.append(e_np + 1)
        val_epochs.append(e_val + 1)
        saved.append(e_val - e_np)
        acc_diff.append(100.0 * (curves.test_acc[e_np] - curves.test_acc[e_val]))
        np_fired, val_fired, norm_fired = np_fired + f_np, val_fired + f_val, norm_fired + f_norm
    return dict(np_epoch=statistics.mean(np_epochs), val_epoch=statistics.mean(val_epochs),
                saved=statistics.mean(saved), saved_sd=statistics.pstdev(saved),
                acc=statistics.mean(acc_diff), acc_sd=statistics.pstdev(acc_diff),
                np_fired=np_fired, val_fired=val_fired, norm_fired=norm_fired)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, nargs="+", default=[1, 2, 3, 5, 8, 12])
    parser.add_argument("--burn-in", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--figure", help="save seed 0's NP and validation-loss curves (patience 3) here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    start = time.perf_counter()
    runs = [train_and_record(load_split(seed), seed, args.epochs, args.lr, args.batch_size)
            for seed in range(args.seeds)]
    final = statistics.mean(c.test_acc[-1] for c in runs)
    best = statistics.mean(max(c.test_acc) for c in runs)
    print(f"digits MLP 64-128-64-10, Adam lr {args.lr}, {args.epochs} epochs, {args.seeds} seeds, "
          f"burn-in {args.burn_in}; final test acc {100 * final:.2f}%, best epoch {100 * best:.2f}% "
          f"({time.perf_counter() - start:.1f} s)")
    n = args.seeds
    print("| patience | NP stop (epoch) | val-loss stop (epoch) | epochs saved by NP | "
          "test acc NP - val (pp) | fired: NP / val / weight norm |")
    print("|---:|---:|---:|---:|---:|---:|")
    for g in args.patience:
        s = summarize(runs, g, args.burn_in)
        print(f"| {g} | {s['np_epoch']:.1f} | {s['val_epoch']:.1f} | {s['saved']:+.1f} ± {s['saved_sd']:.1f} | "
              f"{s['acc']:+.2f} ± {s['acc_sd']:.2f} | {s['np_fired']}/{n} / {s['val_fired']}/{n} / "
              f"{s['norm_fired']}/{n} |")
    if args.figure:
        from persist.plots.neural_persistence import plot_stopping_comparison

        c = runs[0]
        e_np, f_np = stop_epoch(c.np_mean, 3, "max", args.burn_in)
        e_val, f_val = stop_epoch(c.val_loss, 3, "min", args.burn_in)
        fig = plot_stopping_comparison(range(len(c.np_mean)), c.np_mean, c.val_loss,
                                       e_np if f_np else None, e_val if f_val else None)
        fig.savefig(args.figure, dpi=120)


if __name__ == "__main__":
    main()
