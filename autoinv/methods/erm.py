"""ERM: plain empirical risk minimisation with a fixed base augmentation (none, flip_crop, RandAugment, ...).

The reference point every learned method is compared against; ``augment`` picks the baseline policy.
"""

from __future__ import annotations

import dataclasses

import torch.nn.functional as F

from autoinv import loop
from autoinv.config import BaseConfig
from autoinv.models import create_model

__all__ = ["Config", "fit"]


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """ERM uses only the shared fields; ``augment`` selects the baseline augmentation."""


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Train the task network with cross-entropy on base-augmented batches; report ``val/acc`` per epoch."""
    device, data = loop.start(cfg)
    model = create_model(cfg.model, data.num_classes, data.shape).to(device)

    def loss_fn(model, x, y, generator):
        logits = model(loop.prepare(x))
        return F.cross_entropy(logits, y), {"train/acc": (logits.argmax(1) == y).float().mean().item()}

    return loop.train_classifier(cfg, run, data, model, loss_fn)
