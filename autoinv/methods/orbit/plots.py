"""Pictures of Orbit transfer: learned filters and transformed inputs (Fig. 5), accuracy against shift (Figs. 2-3)."""

from __future__ import annotations

import math

import torch

__all__ = ["orbit_elements", "accuracy_curves"]


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def orbit_elements(filters: torch.Tensor | None, transformed: torch.Tensor, x: torch.Tensor):
    """Figure 5: each group element's filter (if the model has filters) and ``ρ_g x`` for one input ``x``.

    Args:
        filters: ``(G, k)`` or ``(G, k, k)``, or ``None`` for affine models.
        transformed: ``ρ_g x`` for every g, ``(G, C, L)`` or ``(G, C, H, W)``.
        x: The input ``(C, L)`` or ``(C, H, W)``.

    Returns:
        A matplotlib figure.
    """
    g = len(transformed)
    if transformed.dim() == 3:  # signals: one heat-map row per element
        panels = 3 if filters is not None else 2
        fig, axes = _figure(1, panels, figsize=(4 * panels, 4), squeeze=False)
        axes = axes[0]
        axes[0].plot(x[0].cpu().numpy())
        axes[0].set_title("input x")
        if filters is not None:
            axes[1].imshow(filters.detach().cpu().numpy(), aspect="auto", cmap="RdBu_r")
            axes[1].set(title="filter of each g", xlabel="tap", ylabel="g")
        axes[-1].imshow(transformed[:, 0].detach().cpu().numpy(), aspect="auto", cmap="RdBu_r")
        axes[-1].set(title="ρ_g x", xlabel="position", ylabel="g")
        fig.tight_layout()
        return fig
    cols = math.ceil(math.sqrt(g))
    rows = math.ceil(g / cols)
    blocks = 2 if filters is not None else 1
    fig, axes = _figure(rows * blocks, cols, figsize=(1.3 * cols, 1.3 * rows * blocks), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(g):
        r, c = divmod(i, cols)
        if filters is not None:
            axes[r, c].imshow(filters[i].detach().cpu().numpy(), cmap="RdBu_r")
        image = transformed[i].detach().cpu()
        shown = image[0] if image.shape[0] == 1 else image.permute(1, 2, 0).clamp(0, 1)
        axes[r + rows * (blocks - 1), c].imshow(shown.numpy())
    fig.suptitle("filters (top) and ρ_g x (bottom)" if filters is not None else "ρ_g x for each g")
    return fig


def accuracy_curves(curves: dict[str, dict[int, float]], transform: str, shift_limit: int = 0):
    """Accuracy against the transform applied to the whole test set, one line per model.

    Args:
        curves: Model name → {transform index → accuracy}.
        transform: ``"shift"``, ``"translate"`` or ``"rotate"`` (axis label; seen shifts are shaded for ``shift``).
        shift_limit: s, for the shading.
    """
    fig, ax = _figure(figsize=(6, 3.5))
    for name, points in curves.items():
        ax.plot(list(points), [100 * a for a in points.values()], marker=".", label=name)
    if transform == "shift":
        ax.axvspan(-0.5, shift_limit - 0.5, color="0.9", label=f"seen shifts [0, {shift_limit})")
    xlabel = {"shift": "circular shift", "translate": "horizontal shift (px)", "rotate": "quarter turns"}[transform]
    ax.set(xlabel=xlabel, ylabel="test accuracy (%)", ylim=(0, 100))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
