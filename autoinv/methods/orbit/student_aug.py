"""The student with augmentation by the true group (the paper's "+ Augment" control).

Every training batch is moved by random circular shifts of all 40 positions (MNIST-1D), random image shifts as in
the translated test copy, or random multiples of 90° rotation.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from autoinv import loop
from autoinv.methods.orbit import transfer, transforms
from autoinv.methods.orbit.transfer import teacher_specs as teacher_specs

__all__ = ["Config", "fit", "preflight", "teacher_specs"]


@dataclasses.dataclass(frozen=True)
class Config(transfer.TransferConfig):
    """The augmented student; the teacher is trained (or found cached) only for the picture."""

    weight_decay: float = 1e-4
    """Student L2 weight decay (as the CE student)."""


def preflight(cfg: Config) -> None:
    """Fail fast when the data or the networks cannot be built (this method matches no hidden layers)."""
    transfer.preflight(cfg, uses_layers=False)


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Train the student with cross-entropy on truly transformed batches; reports ``val/acc`` per epoch."""
    generator = torch.Generator().manual_seed(cfg.seed + 6)

    def make_loss(teacher, data):
        def loss(student, x, y):
            moved = transforms.true_transform(x, transfer.transform_of(cfg), generator, cfg.image_max_shift)
            ce = F.cross_entropy(student(transfer.to_net(transfer.to_unit(moved))), y)
            return ce, {"train/ce": ce.item()}

        return loss

    return transfer.fit_transfer(cfg, run, "student_aug", make_loss, uses_layers=False)
