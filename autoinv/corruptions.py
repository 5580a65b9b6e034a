"""Batched, on-device image corruptions at benchmark-style severities (1-5), for robust teachers and FixedAug.

The CIFAR-10-C corruptions (Hendrycks & Dietterich, 2019) are defined per image on numpy (the ``imagecorruptions``
package); a teacher trained *with* a corruption needs it on every batch, on the training device. These are
batched torch versions of five of them with the CIFAR-10-C severity constants, simplified where the original
needs per-image libraries (brightness works on the HSV value channel as the original does; the blur is the
``gaussian_blur`` extra corruption rather than the disk-kernel defocus; the geometric one is a random affine
instead of the elastic transform). Contrast and brightness match the package's image for image, the blur matches
its Gaussian blur away from the border and the noise its strength (``tests/test_corruptions.py``, at the constants
both lists share); defocus and the geometric one have no counterpart here.

All functions take float images (B, C, H, W) in [0, 1] and return the same shape, clipped to [0, 1].
"""

from __future__ import annotations

import math

import kornia
import torch
from torch import Tensor

from autoinv import augment

__all__ = ["CORRUPTIONS", "CorruptionError", "corrupt", "random_corrupt"]

_LEVELS = {
    "gaussian_noise": (0.04, 0.06, 0.08, 0.09, 0.10),  # noise std
    "contrast": (0.75, 0.5, 0.4, 0.3, 0.15),  # factor around each channel's mean
    "brightness": (0.05, 0.1, 0.15, 0.2, 0.3),  # added to the HSV value channel
    "gaussian_blur": (0.4, 0.6, 0.7, 0.8, 1.0),  # blur sigma in pixels
    "affine": (0.1, 0.2, 0.3, 0.4, 0.5),  # rotation (radians), scale (log) and translation (x 0.5) bound
}

CORRUPTIONS = tuple(_LEVELS)
"""Names :func:`corrupt` accepts."""


class CorruptionError(ValueError):
    """An unknown corruption name or a severity outside 1-5."""


def _check(name: str) -> None:
    if name not in _LEVELS:
        raise CorruptionError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")


def corrupt(x: Tensor, name: str, severity: Tensor | int, generator: torch.Generator | None = None) -> Tensor:
    """Corrupt a batch with per-sample severities.

    Args:
        x: float images (B, C, H, W) in [0, 1].
        name: one of :data:`CORRUPTIONS`.
        severity: (B,) integer levels in 1..5, or one int for all.
        generator: randomness of the noise and of the affine's directions; on any device.

    Returns:
        Corrupted images (B, C, H, W) in [0, 1].
    """
    _check(name)
    severity = torch.as_tensor(severity, device=x.device).long().expand(len(x))
    if bool(((severity < 1) | (severity > 5)).any()):
        raise CorruptionError(f"corruption severities must be in 1..5; got {severity.tolist()}")
    c = torch.tensor(_LEVELS[name], device=x.device, dtype=x.dtype)[severity - 1]  # (B,)
    view = c.view(-1, 1, 1, 1)
    if name == "gaussian_noise":
        out = augment.add_noise(x, c, generator=generator)
    elif name == "contrast":
        mean = x.mean(dim=(2, 3), keepdim=True)  # per channel, as the benchmark's code does
        out = (x - mean) * view + mean
    elif name == "brightness":
        if x.shape[1] == 3:
            hsv = kornia.color.rgb_to_hsv(x)
            out = kornia.color.hsv_to_rgb(torch.cat([hsv[:, :2], (hsv[:, 2:] + view).clamp(0, 1)], 1))
        else:
            out = x + view
    elif name == "gaussian_blur":
        out = augment.gaussian_blur(x, c, kernel_size=2 * math.ceil(3 * max(_LEVELS[name])) + 1)
    else:  # affine: random-sign rotation and scale at the level's magnitude, translation up to half of it
        source = generator.device if generator is not None else x.device
        signs = torch.randint(0, 2, (len(x), 3), generator=generator, device=source).to(x.device) * 2 - 1
        shift = torch.rand(len(x), 2, generator=generator, device=source).to(x.device) * 2 - 1
        zeros = torch.zeros_like(c)
        lie = torch.stack([0.5 * c * shift[:, 0], 0.5 * c * shift[:, 1], c * signs[:, 0], 0.5 * c * signs[:, 1]], 1)
        lie = torch.cat([lie, zeros[:, None], zeros[:, None]], 1)
        out = augment.warp(x, augment.affine_from_lie(lie), padding_mode="zeros")
    return out.clamp(0, 1)


def random_corrupt(x: Tensor, name: str, generator: torch.Generator | None = None) -> Tensor:
    """Corrupt each sample at a severity drawn uniformly from 1..5 (how robust teachers and FixedAug train).

    Args:
        x: float images (B, C, H, W) in [0, 1].
        name: one of :data:`CORRUPTIONS`.
        generator: source of the severities and of the corruption's own randomness.

    Returns:
        Corrupted images (B, C, H, W) in [0, 1].
    """
    _check(name)
    source = generator.device if generator is not None else x.device
    severity = torch.randint(1, 6, (len(x),), generator=generator, device=source).to(x.device)
    return corrupt(x, name, severity, generator)
