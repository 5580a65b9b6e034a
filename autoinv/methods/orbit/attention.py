"""Attention transfer (Zagoruyko and Komodakis, 2017) as a transfer baseline (paper Section 4.1).

Ω = Σ_l MSE of the L2-normalised spatial attention maps ``Σ_c |a_c|^p`` of matched layers.
"""

from __future__ import annotations

import dataclasses

from autoinv import loop
from autoinv.config import _check
from autoinv.methods.orbit import transfer
from autoinv.methods.orbit.baselines import attention_loss
from autoinv.methods.orbit.transfer import preflight as preflight
from autoinv.methods.orbit.transfer import teacher_specs as teacher_specs

__all__ = ["Config", "fit", "preflight", "teacher_specs"]


@dataclasses.dataclass(frozen=True)
class Config(transfer.TransferConfig):
    """Attention transfer's knobs; defaults are the paper's selection for the max-pool student (supplement A.1)."""

    gamma: float = 0.9
    """γ in ``(1 − γ)·CE + γ·AT``."""
    attention_power: float = 2.0
    """p of the attention map ``Σ_c |a_c|^p`` (2 as Zagoruyko and Komodakis and the reference code; the paper's
    formula writes p = 1)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, "attention_power", self.attention_power > 0, "must be > 0")


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Teacher → student trained with ``(1 − γ)·CE + γ·AT``; reports ``val/acc`` per epoch."""

    def term(s_acts, t_acts, s_logits, t_logits):
        return attention_loss(s_acts, t_acts, cfg.attention_power)

    return transfer.fit_transfer(
        cfg, run, "attention", lambda teacher, data: transfer.paired_loss(cfg, teacher, term, "attention")
    )
