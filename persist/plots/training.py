"""Training curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def plot_training(history: list[dict[str, float]], title: str = "") -> Figure:
    """Loss and accuracy per epoch, train vs validation, with the selected (best-validation) epoch marked."""
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], label="train (augmented)", color="#4C72B0")
    ax_loss.plot(epochs, [h["val_loss"] for h in history], label="validation", color="#DD8452")
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], color="#4C72B0")
    ax_acc.plot(epochs, [h["val_accuracy"] for h in history], color="#DD8452")
    best = max(history, key=lambda h: h["val_accuracy"])
    ax_acc.axvline(best["epoch"], color="0.5", ls="--", lw=1)
    ax_acc.annotate(f"selected: epoch {int(best['epoch'])}\nval acc {best['val_accuracy']:.3f}",
                    (best["epoch"], best["val_accuracy"]), textcoords="offset points", xytext=(6, -30), fontsize=8)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", yscale="log")
    ax_acc.set(xlabel="epoch", ylabel="top-1 accuracy", ylim=(0, 1.02))
    ax_loss.legend(frameon=False)
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle(title)
    return fig
