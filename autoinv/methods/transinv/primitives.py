"""TransInv's augmentation primitives a_i(x, s): bounded, differentiable image ops in natural units.

Each primitive is a pure function of float images (B, C, H, W) in [0, 1] and per-sample strengths s (B, n),
plus an optional generator for its own randomness (noise, elastic fields). A :class:`Primitive` also names the
open interval each strength lives in (the MLP heads map onto it with a sigmoid, so a strength never leaves it)
and the neutral strengths at which the op is the identity. Outputs are not clipped here: the augmenter clips the
final mix to [0, 1] once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from autoinv import augment

__all__ = ["PRIMITIVES", "Primitive", "PrimitiveError", "get_primitive", "init_position", "scaled_ranges"]


class PrimitiveError(ValueError):
    """An unknown primitive name."""


class Primitive(NamedTuple):
    """One augmentation primitive: strength intervals, the identity's strengths, and the op."""

    ranges: tuple[tuple[float, float], ...]
    """Open interval (low, high) of each strength."""
    neutral: tuple[float, ...]
    """Strengths at which ``apply`` returns its input (up to float rounding)."""
    apply: Callable[[Tensor, Tensor, torch.Generator | None], Tensor]
    """``apply(x (B, C, H, W), s (B, n), generator) -> (B, C, H, W)``."""


def _randn(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    source = generator.device if generator is not None else like.device
    return torch.randn(shape, generator=generator, device=source, dtype=like.dtype).to(like.device)


def contrast_brightness(x: Tensor, s: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """α (x − μ) + μ + β with μ the image's mean: contrast α (s[:, 0]) and brightness shift β (s[:, 1])."""
    alpha, beta = s[:, 0].view(-1, 1, 1, 1), s[:, 1].view(-1, 1, 1, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return alpha * (x - mean) + mean + beta


def affine(x: Tensor, s: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """STN-style affine warp from six Lie-algebra coefficients s (B, 6) (``augment.LIE_GENERATORS`` order)."""
    return augment.warp(x, augment.affine_from_lie(s), padding_mode="zeros")


def gaussian_blur(x: Tensor, s: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """(1 − m) x + m · blur(x, σ² = v): blur mix m (s[:, 0]) with a Gaussian of variance v (s[:, 1])."""
    mix = s[:, 0].view(-1, 1, 1, 1)
    blurred = augment.gaussian_blur(x, s[:, 1].clamp_min(1e-6).sqrt())
    return x + mix * (blurred - x)


def gaussian_noise(x: Tensor, s: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Add Gaussian noise N(0, v) with per-sample variance v (s[:, 0])."""
    return augment.add_noise(x, s[:, 0].clamp_min(0).sqrt(), noise=_randn(tuple(x.shape), x, generator))


def saturation(x: Tensor, s: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Blend with the greyscale image: grey + f (x − grey), factor f (s[:, 0]); the identity on one channel."""
    if x.shape[1] != 3:
        return x
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    grey = (x * weights).sum(1, keepdim=True)
    return grey + s[:, 0].view(-1, 1, 1, 1) * (x - grey)


def sharpness(x: Tensor, s: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Blend with a 3x3 smoothing (PIL's kernel): smooth + f (x − smooth), f (s[:, 0]) < 1 softens, > 1 sharpens."""
    kernel = torch.ones(3, 3, device=x.device, dtype=x.dtype)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(x.shape[1], 1, 3, 3)
    smooth = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=x.shape[1])
    return smooth + s[:, 0].view(-1, 1, 1, 1) * (x - smooth)


def elastic(x: Tensor, s: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Smooth random displacement (a 4x4 normal field, bicubically upsampled) of amplitude a (s[:, 0]).

    The amplitude is in normalised coordinates (1.0 = half the image); samples at a = 0 come back exactly.
    """
    b, _, h, w = x.shape
    field = F.interpolate(_randn((b, 2, 4, 4), x, generator), size=(h, w), mode="bicubic", align_corners=False)
    eye = torch.eye(2, 3, device=x.device, dtype=x.dtype).expand(b, 2, 3)
    grid = F.affine_grid(eye, [b, x.shape[1], h, w], align_corners=False)
    grid = grid + s[:, 0].view(-1, 1, 1, 1) * field.permute(0, 2, 3, 1)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    still = (s[:, 0] == 0).view(-1, 1, 1, 1)  # grid_sample's identity is ~1e-6 off; keep x exact there
    return torch.where(still, x.detach() + (out - out.detach()), out)


PRIMITIVES: dict[str, Primitive] = {
    # The paper's four (§4.2), with its ranges: α ∈ (0.2, 1.8), β ∈ (−0.5, 0.5); blur mix (0, 1), variance
    # (0, 1.8); noise variance (0, 0.12). The affine bounds are ours (the paper's are "as in STN").
    "contrast_brightness": Primitive(((0.2, 1.8), (-0.5, 0.5)), (1.0, 0.0), contrast_brightness),
    "affine": Primitive(
        ((-0.25, 0.25), (-0.25, 0.25), (-0.5, 0.5), (-0.25, 0.25), (-0.15, 0.15), (-0.15, 0.15)), (0.0,) * 6, affine
    ),
    "gaussian_blur": Primitive(((0.0, 1.0), (0.0, 1.8)), (0.0, 0.9), gaussian_blur),
    "gaussian_noise": Primitive(((0.0, 0.12),), (0.0,), gaussian_noise),
    # Three more differentiable ones, towards the paper's Fig. 3 set of 15.
    "saturation": Primitive(((0.0, 2.0),), (1.0,), saturation),
    "sharpness": Primitive(((0.0, 2.0),), (1.0,), sharpness),
    "elastic": Primitive(((0.0, 0.1),), (0.0,), elastic),
}
"""Name → primitive; a config's ``aug_primitives`` picks a subset, in order."""


def get_primitive(name: str) -> Primitive:
    """The registered primitive ``name``; :class:`PrimitiveError` naming the known ones otherwise."""
    if name not in PRIMITIVES:
        raise PrimitiveError(f"unknown primitive {name!r}; known: {', '.join(PRIMITIVES)}")
    return PRIMITIVES[name]


def scaled_ranges(name: str, scale: float = 1.0) -> tuple[tuple[float, float], ...]:
    """The primitive's strength intervals shrunk (scale < 1) or widened around its neutral strengths.

    Args:
        name: a key of :data:`PRIMITIVES`.
        scale: factor on each side's distance from the neutral strength; 1 keeps the registry's ranges.

    Returns:
        One (low, high) per strength.
    """
    prim = get_primitive(name)
    return tuple(
        (n - scale * (n - lo), n + scale * (hi - n)) for (lo, hi), n in zip(prim.ranges, prim.neutral, strict=True)
    )


def init_position(name: str, scale: float = 1.0) -> tuple[float, ...]:
    """Where each strength starts inside its interval, in (0, 1): at the neutral, nudged 5% off a boundary."""
    prim = get_primitive(name)
    return tuple(
        min(max((n - lo) / (hi - lo), 0.05), 0.95)
        for (lo, hi), n in zip(scaled_ranges(name, scale), prim.neutral, strict=True)
    )
