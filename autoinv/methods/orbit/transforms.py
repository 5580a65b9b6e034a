"""The Orbit experiments' true transforms, and image datasets with a translated or rotated test copy.

MNIST-1D with seen/unseen circular shifts is a dataset of the framework (``mnist1d_shift`` in :mod:`autoinv.data`,
with :func:`autoinv.data.roll_signals`). Here are the pieces that depend on the method's config instead: the true
group's random transforms (the "+ augmentation" control) and, for images, test copies the project makes itself
(MNIST-C is not available offline): ``test/acc_translated`` uses circular shifts uniform in ``[-m, m]`` per axis,
``test/acc_rotated`` rotations by a uniformly drawn multiple of 90 degrees.
"""

from __future__ import annotations

import dataclasses

import torch

from autoinv import data as data_lib
from autoinv.data import roll_signals

__all__ = ["roll_images", "rotate_images", "true_transform", "transformed_image_data"]


def roll_images(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Circularly shift each image by its own ``(dy, dx)``: ``out[b, :, i, j] = x[b, :, i - dy[b], j - dx[b]]``."""
    _, _, h, w = x.shape
    rows = (torch.arange(h, device=x.device) - dy.to(x.device)[:, None]) % h  # (B, H)
    cols = (torch.arange(w, device=x.device) - dx.to(x.device)[:, None]) % w  # (B, W)
    x = x.gather(2, rows[:, None, :, None].expand(-1, x.shape[1], -1, w))
    return x.gather(3, cols[:, None, None, :].expand(-1, x.shape[1], h, -1))


def rotate_images(x: torch.Tensor, quarters: torch.Tensor) -> torch.Tensor:
    """Rotate each image by ``quarters[b]`` x 90 degrees counter-clockwise (square images)."""
    out = x.clone()
    for r in range(1, 4):
        mask = (quarters.to(x.device) % 4) == r
        if mask.any():
            out[mask] = torch.rot90(x[mask], r, dims=(2, 3))
    return out


def true_transform(x: torch.Tensor, transform: str, generator: torch.Generator, max_shift: int = 0) -> torch.Tensor:
    """Apply a random element of the true group to each sample (the "+ augmentation" control).

    Args:
        x: Signals ``(B, C, L)`` or images ``(B, C, H, W)``.
        transform: ``"shift"`` (any circular shift of a signal), ``"translate"`` (image shifts uniform in
            ``[-max_shift, max_shift]`` per axis, as the translated test copy), or ``"rotate"`` (multiples of 90°).
        generator: CPU generator for the draws.
        max_shift: Largest image shift for ``"translate"``.
    """
    b = len(x)
    if transform == "shift":
        return roll_signals(x, torch.randint(x.shape[-1], (b,), generator=generator))
    if transform == "translate":
        dy, dx = (torch.randint(-max_shift, max_shift + 1, (b,), generator=generator) for _ in range(2))
        return roll_images(x, dy, dx)
    if transform == "rotate":
        return rotate_images(x, torch.randint(4, (b,), generator=generator))
    raise ValueError(f"unknown transform {transform!r}; use shift, translate or rotate")


def transformed_image_data(
    dataset: str, transform: str, max_shift: int, data_dir: str = "", val_fraction: float = 0.1, seed: int = 0
) -> data_lib.Dataset:
    """An image dataset of :mod:`autoinv.data` with a translated or rotated copy of its test set in ``extra_tests``.

    Args:
        dataset: A name ``autoinv.data.load_dataset`` knows (``digits``, ``fashionmnist``, ...).
        transform: ``"translate"`` or ``"rotate"``.
        max_shift: Largest shift per axis of the translated copy, in pixels.
        data_dir: Data root.
        val_fraction: Validation share.
        seed: Data seed (the split and the test copy's draws).
    """
    ds = data_lib.load_dataset(dataset, data_dir=data_dir, val_fraction=val_fraction)
    if ds.kind != "image":
        raise ValueError(f"dataset {dataset!r} holds signals; 2-D orbit transfer needs images")
    if transform == "translate" and not 0 < max_shift < min(ds.shape[1:]):
        raise ValueError(f"image_max_shift={max_shift} must be in [1, {min(ds.shape[1:]) - 1}] for {dataset!r}")
    if transform == "rotate" and ds.shape[1] != ds.shape[2]:
        raise ValueError(f"rotated test copies need square images; {dataset!r} has {ds.shape[1:]}")
    copy = true_transform(ds.x_test, transform, torch.Generator().manual_seed(seed + 7), max_shift)
    key = "acc_translated" if transform == "translate" else "acc_rotated"
    return dataclasses.replace(ds, extra_tests={key: (copy, ds.y_test)})
