"""Representational distance learning (McClure and Kriegeskorte, 2016) as a transfer baseline.

Ω = Σ_l ‖RDM(Ψ^(l)) − RDM(Φ^(l))‖²_F / B² over the matched layers and the logits, with correlation RDMs over
the batch; layers may differ in size.
"""

from __future__ import annotations

import dataclasses

from autoinv import loop
from autoinv.methods.orbit import transfer
from autoinv.methods.orbit.baselines import rdl_loss
from autoinv.methods.orbit.transfer import preflight as preflight
from autoinv.methods.orbit.transfer import teacher_specs as teacher_specs

__all__ = ["Config", "fit", "preflight", "teacher_specs"]


@dataclasses.dataclass(frozen=True)
class Config(transfer.TransferConfig):
    """RDL's knobs; defaults are the paper's selection for the max-pool student (supplement A.1)."""

    gamma: float = 0.9
    """γ in ``(1 − γ)·CE + γ·RDL``."""
    lr: float = 1e-4
    """Student learning rate (the reference recipe's selection)."""


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Teacher → student trained with ``(1 − γ)·CE + γ·RDL``; reports ``val/acc`` per epoch."""

    def term(s_acts, t_acts, s_logits, t_logits):
        return rdl_loss([*s_acts, s_logits], [*t_acts, t_logits])

    return transfer.fit_transfer(cfg, run, "rdl", lambda teacher, data: transfer.paired_loss(cfg, teacher, term, "rdl"))
