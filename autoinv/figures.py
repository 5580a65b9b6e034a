"""Small matplotlib helpers for the pictures runs log: image grids and signal plots (Agg backend, no display)."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

__all__ = ["batch_figure"]


def batch_figure(x: torch.Tensor, labels: torch.Tensor | None = None, title: str = "", limit: int = 32) -> Any:
    """A grid of the first ``limit`` samples of a batch.

    Args:
        x: uint8 images (B, C, H, W), float images in [0, 1] (B, C, H, W), or float signals (B, C, L).
        labels: Optional labels (B,) printed above each sample.
        title: Figure title.
        limit: At most this many samples.

    Returns:
        A matplotlib figure (the caller logs and closes it).
    """
    x = x[:limit].detach().float().cpu()
    if x.dim() == 4 and x.max() > 1.5:  # uint8 range
        x = x / 255.0
    n = len(x)
    cols = min(8, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.4 * cols, 1.5 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        if x.dim() == 4:
            image = x[i].clamp(0, 1).permute(1, 2, 0).numpy()
            grey = image.shape[-1] == 1
            ax.imshow(image[..., 0] if grey else image, cmap="gray" if grey else None, vmin=0, vmax=1)
        else:
            ax.set_axis_on()
            ax.plot(x[i].reshape(-1, x.shape[-1]).T.numpy(), lw=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
        if labels is not None:
            ax.set_title(str(int(labels[i])), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
