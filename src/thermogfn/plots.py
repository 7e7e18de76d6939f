"""PNG plots of a run: training curves, and g(beta) / log Z(beta) over a wide beta range."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from thermogfn.policy import GFlowNetModel


def pyplot():
    """matplotlib.pyplot on the headless Agg backend (imported only when a plot is made)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training(rows: list[dict[str, Any]], path: Path) -> Path:
    """Loss, modes found and mean reward against training rounds."""
    plt = pyplot()
    steps = [r["step"] for r in rows]
    keys = [k for k in ("loss", "modes", "mean_reward", "log_z") if any(r.get(k) is not None for r in rows)]
    fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        ax.plot(steps, [r.get(key) if r.get(key) is not None else float("nan") for r in rows])
        ax.set_xlabel("round")
        ax.set_title(key)
        if key == "loss":
            ax.set_yscale("symlog", linthresh=1e-2)  # RL losses can be negative (entropy bonus)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@torch.no_grad()
def plot_conditioning(model: GFlowNetModel, train_range: tuple[float, float], path: Path,
                      betas: torch.Tensor | None = None) -> Path:
    """g(beta) (logit conditioning) and log Z(beta) on a log beta axis, training range shaded."""
    plt = pyplot()
    betas = torch.logspace(-1, 3, 200) if betas is None else betas
    panels = [("log Z(beta)", model.log_z(betas))]
    if model.g_forward is not None:
        panels.insert(0, ("g(beta) (forward logit scale)", model.g_forward(betas)))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.2), squeeze=False)
    for ax, (title, values) in zip(axes[0], panels, strict=True):
        ax.plot(betas.numpy(), values.numpy())
        ax.axvspan(*train_range, color="grey", alpha=0.2, label="training range")
        ax.set_xscale("log")
        ax.set_xlabel("beta")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
