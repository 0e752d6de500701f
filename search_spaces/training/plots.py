"""Training curves: loss per epoch and holdout accuracy of the corner subnets per phase."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_training_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Training loss per epoch and holdout accuracy of the corner subnets per phase."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h for h in history if "loss" in h]
    evals = [h for h in history if "eval_holdout" in h]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(range(1, len(epochs) + 1), [h["loss"] for h in epochs], marker="o")
    for i, h in enumerate(epochs[1:], start=1):
        if h["phase"] != epochs[i - 1]["phase"]:
            ax1.axvline(i + 0.5, color="grey", linestyle=":")
    ax1.set_xlabel("epoch (all phases)")
    ax1.set_ylabel("training loss (label-smoothed CE + KD)")
    ax1.set_title("Supernet training loss")
    names = [h["phase"] for h in evals]
    for label in ("max", "min"):
        ax2.plot(
            names,
            [h["eval_holdout"][label]["accuracy"] for h in evals],
            marker="o",
            label=f"{'largest' if label == 'max' else 'smallest'} subnet of the phase",
        )
    ax2.set_ylabel("holdout accuracy (after BN recalibration)")
    ax2.set_title("Corner subnets after each phase")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
