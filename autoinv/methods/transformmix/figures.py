"""Pictures of TransformMix: the paper's Figure 3/8 grid and τ / teacher CE over the search stage."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["mix_grid_figure", "search_stage_figure"]


def mix_grid_figure(
    xs: torch.Tensor,
    cams: torch.Tensor,
    warped: torch.Tensor,
    masks: torch.Tensor,
    x_mix: torch.Tensor,
    lam: torch.Tensor,
) -> Any:
    """One column per mix; rows: the k inputs, their CAMs, the warped inputs, the masks, the mix (Figure 3/8).

    Args:
        xs: Inputs (n, k, C, H, W) in [0, 1].
        cams: Their CAMs (n, k, H, W) in [0, 1].
        warped: Warped inputs (n, k, C, H, W).
        masks: Masks (n, k, H, W).
        x_mix: Mixes (n, C, H, W).
        lam: Mixing weights (n, k), shown above each column.

    Returns:
        A matplotlib figure.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n, k = cams.shape[:2]
    rows = (
        [(f"input {i + 1}", xs[:, i]) for i in range(k)]
        + [(f"CAM {i + 1}", cams[:, i]) for i in range(k)]
        + [(f"warped {i + 1}", warped[:, i]) for i in range(k)]
        + [(f"mask {i + 1}", masks[:, i]) for i in range(k)]
        + [("mix", x_mix)]
    )
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n, 1.3 * len(rows)), squeeze=False)
    for r, (name, images) in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            array, cmap = _as_image(images[c])
            ax.imshow(array, cmap=cmap)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
            if r == 0:
                ax.set_title("λ=" + "/".join(f"{v:.2f}" for v in lam[c].tolist()), fontsize=7)
    fig.tight_layout()
    return fig


def _as_image(t: torch.Tensor) -> tuple[Any, str | None]:
    """(C, H, W) or (H, W) tensor → (array, colour map): RGB as is, one channel in grey, maps in viridis."""
    t = t.detach().float().cpu().clamp(0, 1)
    if t.dim() == 3 and t.shape[0] == 3:
        return t.permute(1, 2, 0).numpy(), None
    if t.dim() == 3:
        return t[0].numpy(), "gray"
    return t.numpy(), "viridis"


def search_stage_figure(history: list[dict[str, float]]) -> Any:
    """Temperature τ and the teacher's CE on the mixes over the search stage's epochs.

    Args:
        history: One record per search epoch with ``epoch``, ``tau`` and ``teacher_ce``.

    Returns:
        A matplotlib figure with two panels.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] + 1 for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3))
    left.plot(epochs, [h["tau"] for h in history], marker="o")
    left.set(xlabel="search epoch", ylabel="τ", title="mask temperature")
    right.plot(epochs, [h["teacher_ce"] for h in history], marker="o", color="tab:red")
    right.set(xlabel="search epoch", ylabel="teacher CE", title="teacher CE on mixes")
    fig.tight_layout()
    return fig
