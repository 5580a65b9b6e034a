"""Knowledge distillation (Hinton et al., 2015) as a transfer baseline: Ω = T²·KL(p_t ‖ p_s) on the logits."""

from __future__ import annotations

import dataclasses

from autoinv import loop
from autoinv.config import _check
from autoinv.methods.orbit import transfer
from autoinv.methods.orbit.baselines import kd_loss
from autoinv.methods.orbit.transfer import teacher_specs as teacher_specs

__all__ = ["Config", "fit", "preflight", "teacher_specs"]


@dataclasses.dataclass(frozen=True)
class Config(transfer.TransferConfig):
    """KD's knobs; defaults are the paper's selection for the max-pool student (supplement A.1, reference recipe)."""

    gamma: float = 0.6
    """γ in ``(1 − γ)·CE + γ·KD``."""
    weight_decay: float = 1e-4
    """Student L2 weight decay (the reference recipe's selection)."""
    kd_temperature: float = 1.0
    """Softmax temperature T."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, "kd_temperature", self.kd_temperature > 0, "must be > 0")


def preflight(cfg: Config) -> None:
    """Fail fast when the data or the networks cannot be built (this method matches no hidden layers)."""
    transfer.preflight(cfg, uses_layers=False)


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Teacher → student trained with ``(1 − γ)·CE + γ·KD``; reports ``val/acc`` per epoch."""

    def make_loss(teacher, data):
        return transfer.paired_loss(cfg, teacher, lambda s, t, sl, tl: kd_loss(sl, tl, cfg.kd_temperature), "kd")

    return transfer.fit_transfer(cfg, run, "kd", make_loss, uses_layers=False)
