"""Pictures of a learned augmenter: samples, the paper's Figure 4 band, per-class ranges, λ and entropy, alignment."""

from __future__ import annotations

from typing import Any

import torch

from autoinv.figures import plt

__all__ = [
    "samples_figure",
    "band_figure",
    "class_range_figure",
    "control_figure",
    "alignment_figure",
    "rotation_scatter_figure",
]


def _show(ax: Any, image: torch.Tensor) -> None:
    image = image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()
    ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None)
    ax.set_axis_off()


def samples_figure(x: torch.Tensor, views: torch.Tensor) -> Any:
    """Originals (B, C, H, W) in the first column, their augmented samples (S, B, C, H, W) beside them."""
    s, b = views.shape[:2]
    fig, axes = plt.subplots(b, s + 1, figsize=(1.2 * (s + 1), 1.2 * b), squeeze=False)
    for i in range(b):
        _show(axes[i, 0], x[i])
        for j in range(s):
            _show(axes[i, j + 1], views[j, i])
    axes[0, 0].set_title("input", fontsize=8)
    fig.suptitle("learned augmentations (samples per input)", fontsize=9)
    fig.tight_layout()
    return fig


def band_figure(angles: torch.Tensor, band: torch.Tensor, ideal: float | None = None) -> Any:
    """Paper Fig. 4: 1st–99th percentile of the sampled rotation against the input's rotation.

    Args:
        angles: input rotations (A,) in degrees.
        band: (A, 4) from ``rotation_band``: p1, p50, p99, mean (degrees).
        ideal: half-width r of the data's rotation range: the ideal band is [−r − a, r − a].
    """
    fig, ax = plt.subplots(figsize=(4.2, 3.4))
    ax.fill_between(angles, band[:, 0], band[:, 2], alpha=0.35, label="learned 1–99 %")
    ax.plot(angles, band[:, 3], lw=1.2, label="learned mean")
    if ideal is not None:
        ax.plot(angles, -ideal - angles, "k--", lw=0.8, label="ideal")
        ax.plot(angles, ideal - angles, "k--", lw=0.8)
    ax.set_xlabel("input rotation (deg)")
    ax.set_ylabel("sampled rotation (deg)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def class_range_figure(per_class: list[float]) -> Any:
    """Median learned half-range of the rotation per class (degrees)."""
    fig, ax = plt.subplots(figsize=(3.6, 2.8))
    ax.bar(range(len(per_class)), per_class)
    ax.set_xlabel("class")
    ax.set_ylabel("median half-range (deg)")
    fig.tight_layout()
    return fig


def control_figure(history: list) -> Any:
    """Entropy (per step and smoothed) and λ over training; ``history`` rows are (epoch, H, λ, H_ema)."""
    rows = torch.tensor(history, dtype=torch.float64)
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.0, 2.8))
    left.plot(rows[:, 1], lw=0.5, alpha=0.5, label="step")
    left.plot(rows[:, 3], lw=1.2, label="EMA")
    left.set_xlabel("step")
    left.set_ylabel("entropy (nats)")
    left.legend(fontsize=7)
    right.plot(rows[:, 2], lw=1.2)
    right.set_xlabel("step")
    right.set_ylabel("λ")
    fig.tight_layout()
    return fig


def alignment_figure(before: torch.Tensor, after: torch.Tensor) -> Any:
    """Mean-shift alignment (paper Fig. 10): images (B, C, H, W) before (top row) and after (bottom row)."""
    b = len(before)
    fig, axes = plt.subplots(2, b, figsize=(1.2 * b, 2.6), squeeze=False)
    for i in range(b):
        _show(axes[0, i], before[i])
        _show(axes[1, i], after[i])
    axes[0, 0].set_title("before", fontsize=8)
    axes[1, 0].set_title("aligned", fontsize=8)
    fig.tight_layout()
    return fig


def rotation_scatter_figure(w: torch.Tensor, errors: torch.Tensor) -> Any:
    """Paper Fig. 7: decoupled samples' (w₁, w₂) = the algebra's off-diagonal entries (b, d), and their errors.

    Args:
        w: decoupled samples (N, 6) (entries a, b, c, d, e, f of the algebra).
        errors: each sample's relative distance to the nearest rotation (N,), from ``core.rotation_error``.
    """
    w = w.detach().float().cpu().clamp(-1, 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(7, 3.2))
    left.scatter(w[:, 1], w[:, 3], s=3, alpha=0.4)
    left.plot([-1, 1], [1, -1], "k--", lw=0.8, label="rotations (w₁ = −w₂)")
    left.set(xlim=(-1, 1), ylim=(-1, 1), xlabel="w₁ (entry b)", ylabel="w₂ (entry d)", aspect="equal")
    left.legend(fontsize=7)
    right.hist(errors.detach().float().cpu().numpy(), bins=40)
    right.set(xlabel="relative error to the nearest rotation", ylabel="samples")
    fig.suptitle("rotation discovery: decoupled affine samples", fontsize=9)
    fig.tight_layout()
    return fig
