"""Mixup (Zhang et al., 2018, https://arxiv.org/abs/1710.09412): train on convex combinations of pairs.

``mixup_batch`` is the pure function: x' = λ x + (1 − λ) x[perm], y' = λ y + (1 − λ) y[perm], with
λ ~ Beta(α, α) once per batch and partners given by a permutation of the batch.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from autoinv import loop
from autoinv.config import BaseConfig, _check
from autoinv.data import to_float
from autoinv.models import create_model

__all__ = ["Config", "fit", "mixup_batch", "sample_pairing"]


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """Mixup's knobs on top of the shared fields."""

    mix_alpha: float = 1.0
    """α of the Beta(α, α) distribution of the mixing weight λ."""
    mix_prob: float = 1.0
    """Probability that a batch is mixed (otherwise it trains on the plain batch)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, "mix_alpha", self.mix_alpha > 0, "must be > 0")
        _check(self, "mix_prob", 0.0 <= self.mix_prob <= 1.0, "must be in [0, 1]")


def sample_pairing(
    batch_size: int, alpha: float, generator: torch.Generator, rng: np.random.Generator, device: torch.device
) -> tuple[torch.Tensor, float]:
    """A random partner permutation (B,) from the CPU ``generator`` and one λ ~ Beta(α, α) from ``rng``."""
    perm = torch.randperm(batch_size, generator=generator).to(device)
    return perm, float(rng.beta(alpha, alpha))


def mixup_batch(
    x: torch.Tensor, y_onehot: torch.Tensor, lam: float, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix a batch with its permuted copy.

    Args:
        x: Inputs (B, ...), float.
        y_onehot: One-hot or soft labels (B, K).
        lam: Weight of the original sample.
        perm: Partner index per sample (B,).

    Returns:
        Mixed inputs (B, ...) and soft labels (B, K) whose rows still sum to one.
    """
    return lam * x + (1 - lam) * x[perm], lam * y_onehot + (1 - lam) * y_onehot[perm]


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Train the task network on Mixup batches; report ``val/acc`` per epoch."""
    device, data = loop.start(cfg)
    model = create_model(cfg.model, data.num_classes, data.shape).to(device)
    gen, rng = torch.Generator().manual_seed(cfg.seed + 2), np.random.default_rng(cfg.seed + 2)

    def loss_fn(model, x, y, generator):
        x = to_float(x) if x.dtype == torch.uint8 else x
        if rng.random() >= cfg.mix_prob:
            return F.cross_entropy(model(_input(x)), y), {"mix/lam": 1.0}
        perm, lam = sample_pairing(len(x), cfg.mix_alpha, gen, rng, x.device)
        x_mix, y_mix = mixup_batch(x, F.one_hot(y, data.num_classes).float(), lam, perm)
        return loop.soft_cross_entropy(model(_input(x_mix)), y_mix), {"mix/lam": lam}

    return loop.train_classifier(cfg, run, data, model, loss_fn)


def _input(x: torch.Tensor) -> torch.Tensor:
    # Images are mixed in [0, 1] space and standardised afterwards; signals are already network inputs.
    return loop.standardize(x) if x.dim() == 4 else x
