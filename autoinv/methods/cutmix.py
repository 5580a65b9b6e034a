"""CutMix (Yun et al., 2019, https://arxiv.org/abs/1905.04899): paste a random box from a partner image.

``cutmix_batch`` is the pure function. The box covers a fraction 1 − λ of the image (λ ~ Beta(α, α)); after
clipping at the borders, λ is recomputed from the box's real area so labels match pixels.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F

from autoinv import loop
from autoinv.config import BaseConfig, _check
from autoinv.data import to_float
from autoinv.methods.mixup import sample_pairing
from autoinv.models import create_model

__all__ = ["Config", "fit", "cutmix_box", "cutmix_batch"]


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """CutMix's knobs on top of the shared fields."""

    mix_alpha: float = 1.0
    """α of the Beta(α, α) distribution of the kept area λ."""
    mix_prob: float = 0.5
    """Probability that a batch is mixed (the paper uses 0.5 on CIFAR)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, "mix_alpha", self.mix_alpha > 0, "must be > 0")
        _check(self, "mix_prob", 0.0 <= self.mix_prob <= 1.0, "must be in [0, 1]")


def cutmix_box(height: int, width: int, lam: float, center: tuple[float, float]) -> tuple[int, int, int, int]:
    """Box (top, bottom, left, right) of area ≈ (1 − λ)·H·W centred at ``center`` (fractions of H, W), clipped."""
    cut = math.sqrt(1.0 - lam)
    cy, cx = int(center[0] * height), int(center[1] * width)
    half_h, half_w = int(height * cut / 2), int(width * cut / 2)
    return max(cy - half_h, 0), min(cy + half_h, height), max(cx - half_w, 0), min(cx + half_w, width)


def cutmix_batch(
    x: torch.Tensor, y_onehot: torch.Tensor, box: tuple[int, int, int, int], perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Paste ``box`` of each partner image into each image.

    Args:
        x: Images (B, C, H, W).
        y_onehot: One-hot or soft labels (B, K).
        box: (top, bottom, left, right) in pixels, shared by the batch.
        perm: Partner index per sample (B,).

    Returns:
        Mixed images (B, C, H, W), soft labels (B, K), and the kept fraction λ matching the real box area.
    """
    top, bottom, left, right = box
    mask = torch.ones_like(x[:1, :1])
    mask[..., top:bottom, left:right] = 0
    lam = mask.mean().item()
    return mask * x + (1 - mask) * x[perm], lam * y_onehot + (1 - lam) * y_onehot[perm], lam


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Train the task network on CutMix batches; report ``val/acc`` per epoch."""
    device, data = loop.start(cfg)
    if data.kind != "image":
        raise ValueError(f"cutmix needs images; dataset {cfg.dataset!r} holds signals")
    model = create_model(cfg.model, data.num_classes, data.shape).to(device)
    gen, rng = torch.Generator().manual_seed(cfg.seed + 2), np.random.default_rng(cfg.seed + 2)

    def loss_fn(model, x, y, generator):
        x = to_float(x)
        if rng.random() >= cfg.mix_prob:
            return F.cross_entropy(model(loop.standardize(x)), y), {"mix/lam": 1.0}
        perm, lam = sample_pairing(len(x), cfg.mix_alpha, gen, rng, x.device)
        box = cutmix_box(x.shape[2], x.shape[3], lam, (rng.random(), rng.random()))
        x_mix, y_mix, lam = cutmix_batch(x, F.one_hot(y, data.num_classes).float(), box, perm)
        return loop.soft_cross_entropy(model(loop.standardize(x_mix)), y_mix), {"mix/lam": lam}

    return loop.train_classifier(cfg, run, data, model, loss_fn)
