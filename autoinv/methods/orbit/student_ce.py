"""The student alone: plain cross-entropy, the transfer experiments' lower baseline ("Student" in the paper)."""

from __future__ import annotations

import dataclasses

import torch.nn.functional as F

from autoinv import loop
from autoinv.methods.orbit import transfer
from autoinv.methods.orbit.transfer import teacher_specs as teacher_specs

__all__ = ["Config", "fit", "preflight", "teacher_specs"]


@dataclasses.dataclass(frozen=True)
class Config(transfer.TransferConfig):
    """The student alone; the teacher is trained (or found cached) only for the accuracy-against-shift picture."""

    weight_decay: float = 1e-4
    """Student L2 weight decay (the reference recipe's selection for the CE student)."""


def preflight(cfg: Config) -> None:
    """Fail fast when the data or the networks cannot be built (this method matches no hidden layers)."""
    transfer.preflight(cfg, uses_layers=False)


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Train the student with cross-entropy on seen transforms only; reports ``val/acc`` per epoch."""

    def make_loss(teacher, data):
        def loss(student, x, y):
            ce = F.cross_entropy(student(transfer.to_net(transfer.to_unit(x))), y)
            return ce, {"train/ce": ce.item()}

        return loss

    return transfer.fit_transfer(cfg, run, "student", make_loss, uses_layers=False)
