"""TransInv's pictures (the paper's Fig. 3/4): samples per primitive, p as bars, p/q/r over training."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

__all__ = ["history_figure", "p_figure", "primitive_grid_figure"]


def primitive_grid_figure(x: torch.Tensor, rows: list[torch.Tensor], names: tuple[str, ...], p: list[float]) -> Any:
    """Clean images on top, then one row per primitive (always applied), its p in the row title.

    Args:
        x: clean float images (N, C, H, W) in [0, 1].
        rows: per primitive, the augmented images (N, C, H, W).
        names: primitive names, one per row.
        p: selection probabilities, one per row.
    """
    n = len(x)
    fig, axes = plt.subplots(len(rows) + 1, n, figsize=(1.3 * n, 1.35 * (len(rows) + 1)), squeeze=False)
    for r, (images, label) in enumerate(
        [(x, "clean")] + [(im, f"{nm} p={pi:.2f}") for im, nm, pi in zip(rows, names, p)]
    ):
        for i in range(n):
            ax = axes[r, i]
            ax.set_axis_off()
            image = images[i].detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None)
        axes[r, 0].set_title(label, fontsize=7, loc="left")
    fig.tight_layout()
    return fig


def p_figure(names: tuple[str, ...], p: list[float], teacher: str) -> Any:
    """Bar chart of the primitive-selection probabilities learned with ``teacher``."""
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(names), 2.6))
    ax.bar(range(len(names)), p, color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("p")
    ax.set_title(f"teacher: {teacher}", fontsize=9)
    fig.tight_layout()
    return fig


def history_figure(history: list[dict[str, float]]) -> Any:
    """p, q and r (every ``aug/*p_``, ``aug/*q`` and ``aug/r_`` key) per epoch."""
    fig, axes = plt.subplots(1, 3, figsize=(10, 2.8))
    keys = sorted({k for h in history for k in h})
    for ax, kind in zip(axes, ("p_", "q", "r_")):
        for key in keys:
            last = key.rsplit("/", 1)[-1]
            if last.startswith(kind) and (kind != "q" or last == "q"):
                ax.plot([h.get(key, float("nan")) for h in history], label=key.removeprefix("aug/"), marker=".")
        ax.set_title(kind.rstrip("_"), fontsize=9)
        ax.set_xlabel("epoch")
        if ax.lines:
            ax.legend(fontsize=6)
    fig.tight_layout()
    return fig
