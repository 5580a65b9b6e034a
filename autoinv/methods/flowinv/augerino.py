"""Augerino (Benton et al., 2020) as a method: one learned uniform width per coefficient, shared by all inputs.

Same data, classifier, parameterisation and joint loop as FlowInv; the loss is Augerino's own,
``CE(orig) + mean CE(copies) − augerino_reg · ‖width‖₂``.
"""

from __future__ import annotations

import dataclasses

from autoinv import loop
from autoinv.config import _check
from autoinv.methods.flowinv.baselines import AugerinoAugmenter
from autoinv.methods.flowinv.training import AugConfig, FixedWeight, check_inputs, train_augmented
from autoinv.methods.flowinv.training import preflight as preflight

__all__ = ["ARTIFACT_FIELDS", "Config", "fit", "preflight"]

ARTIFACT_FIELDS = {"augmenter": "augmenter_from"}
"""Export ships the trial's ``augmenter.pt`` (the learned widths) and sets ``augmenter_from`` to it."""


@dataclasses.dataclass(frozen=True)
class Config(AugConfig):
    """Augerino's knobs on top of the shared augmenter fields."""

    augerino_reg: float = 0.01
    """Weight of the width regulariser −‖width‖₂ (original Mario-Iggy: 0.01 … 0.1)."""
    augerino_init_width: float = 0.1
    """Initial full width of every coefficient (units of w; 1 = ±90° of rotation)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, "augerino_reg", self.augerino_reg >= 0, "must be >= 0")
        _check(self, "augerino_init_width", self.augerino_init_width > 0, "must be > 0")


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Train classifier and shared widths together; report ``val/acc``, ``val/acc_tta``, ``aug/*`` per epoch."""
    device, data = loop.start(cfg)
    loaded = check_inputs(cfg, data)
    if loaded is None:
        with loop.seeded(cfg.seed + 7):
            loaded_or_new = AugerinoAugmenter(cfg.aug_type, cfg.augerino_init_width, cfg.aug_trans_scale)
    else:
        loaded_or_new = loaded
    augmenter = loaded_or_new.to(device)
    return train_augmented(cfg, run, data, augmenter, FixedWeight(cfg.augerino_reg), frozen=loaded is not None)
