"""Linear CKA (Kornblith et al., 2019) as a transfer baseline.

Ω = Σ_l (1 − CKA(Ψ^(l), Φ^(l))) over the matched layers and the logits.
"""

from __future__ import annotations

import dataclasses

from autoinv import loop
from autoinv.methods.orbit import transfer
from autoinv.methods.orbit.baselines import cka_loss
from autoinv.methods.orbit.transfer import preflight as preflight
from autoinv.methods.orbit.transfer import teacher_specs as teacher_specs

__all__ = ["Config", "fit", "preflight", "teacher_specs"]


@dataclasses.dataclass(frozen=True)
class Config(transfer.TransferConfig):
    """CKA's knobs (the paper reports CKA only in its search results; γ as RDL's)."""

    gamma: float = 0.9
    """γ in ``(1 − γ)·CE + γ·Σ(1 − CKA)``."""


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Teacher → student trained with ``(1 − γ)·CE + γ·Σ(1 − CKA)``; reports ``val/acc`` per epoch."""

    def term(s_acts, t_acts, s_logits, t_logits):
        return cka_loss([*s_acts, s_logits], [*t_acts, t_logits])

    return transfer.fit_transfer(cfg, run, "cka", lambda teacher, data: transfer.paired_loss(cfg, teacher, term, "cka"))
