"""Direct matching of hidden layers plus KD on the logits (paper Section 4, Fig. 1B) as a transfer baseline.

Ω = Σ_l MSE(Ψ^(l)(x), Φ^(l)(x)) + T²·KL(p_t ‖ p_s); the matched layers must have equal sizes.
"""

from __future__ import annotations

import dataclasses

from autoinv import loop
from autoinv.config import _check
from autoinv.methods.orbit import transfer
from autoinv.methods.orbit.baselines import kd_loss, match_loss
from autoinv.methods.orbit.transfer import preflight as preflight
from autoinv.methods.orbit.transfer import teacher_specs as teacher_specs

__all__ = ["Config", "fit", "preflight", "teacher_specs"]


@dataclasses.dataclass(frozen=True)
class Config(transfer.TransferConfig):
    """Direct matching's knobs; defaults are the paper's selection for the max-pool student (supplement A.1)."""

    gamma: float = 0.4
    """γ in ``(1 − γ)·CE + γ·(match + KD)``."""
    weight_decay: float = 1e-8
    """Student L2 weight decay (the reference recipe's selection)."""
    kd_temperature: float = 5.0
    """Softmax temperature T of the KD part."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, "kd_temperature", self.kd_temperature > 0, "must be > 0")


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Teacher → student trained with ``(1 − γ)·CE + γ·(Σ_l MSE + KD)``; reports ``val/acc`` per epoch."""

    def term(s_acts, t_acts, s_logits, t_logits):
        return match_loss(s_acts, t_acts) + kd_loss(s_logits, t_logits, cfg.kd_temperature)

    return transfer.fit_transfer(
        cfg, run, "hidden_match", lambda teacher, data: transfer.paired_loss(cfg, teacher, term, "match")
    )
