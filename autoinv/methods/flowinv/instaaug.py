"""InstaAug (Miao et al., 2023) as a method: input-conditional mean-field ranges with an entropy-window scheduler.

Same data, classifier, parameterisation and joint loop as FlowInv; λ · mean log q with λ moved by InstaAug's
window scheduler (×``insta_factor`` or ÷ it when the entropy stays out of ``[insta_entropy_min, insta_entropy_max]``).
"""

from __future__ import annotations

import dataclasses

from autoinv import loop
from autoinv.config import _check
from autoinv.methods.flowinv.baselines import InstaAugmenter, WindowScheduler
from autoinv.methods.flowinv.training import AugConfig, check_inputs, train_augmented
from autoinv.methods.flowinv.training import preflight as preflight

__all__ = ["ARTIFACT_FIELDS", "Config", "fit", "preflight"]

ARTIFACT_FIELDS = {"augmenter": "augmenter_from"}
"""Export ships the trial's ``augmenter.pt`` and sets ``augmenter_from`` to it."""


@dataclasses.dataclass(frozen=True)
class Config(AugConfig):
    """InstaAug's knobs on top of the shared augmenter fields (defaults: its Mario-Iggy config, scaled)."""

    pose_width: int = 16
    """Width c of the range network's CNN (the same pose CNN as FlowInv's)."""
    pose_dim: int = 32
    """Embedding size before the linear range head."""
    insta_init_width: float = 0.1
    """Initial half-width of every coefficient (units of w)."""
    insta_weight: float = 0.1
    """Initial entropy weight λ (InstaAug Mario-Iggy: 0.1)."""
    insta_entropy_min: float = 0.0
    """Lower end of the entropy window (nats)."""
    insta_entropy_max: float = 3.14
    """Upper end of the entropy window (nats)."""
    insta_factor: float = 1.2
    """Factor λ moves by at each scheduler step."""
    insta_max_steps: int = 50
    """At most this many scheduler steps."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, "pose_width", self.pose_width >= 1, "must be >= 1")
        _check(self, "pose_dim", self.pose_dim >= 1, "must be >= 1")
        _check(self, "insta_init_width", self.insta_init_width > 0, "must be > 0")
        _check(self, "insta_weight", self.insta_weight >= 0, "must be >= 0")
        _check(
            self, "insta_entropy_max", self.insta_entropy_max > self.insta_entropy_min, "must be > insta_entropy_min"
        )
        _check(self, "insta_factor", self.insta_factor > 1, "must be > 1")
        _check(self, "insta_max_steps", self.insta_max_steps >= 0, "must be >= 0")


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Train classifier and range network together; report ``val/acc``, ``val/acc_tta``, ``aug/*`` per epoch."""
    device, data = loop.start(cfg)
    loaded = check_inputs(cfg, data)
    if loaded is None:
        with loop.seeded(cfg.seed + 7):
            loaded = InstaAugmenter(
                cfg.aug_type, data.shape[0], cfg.pose_width, cfg.pose_dim, cfg.insta_init_width, cfg.aug_trans_scale
            )
        frozen = False
    else:
        frozen = True
    scheduler = WindowScheduler(
        cfg.insta_weight, cfg.insta_entropy_min, cfg.insta_entropy_max, cfg.insta_factor, cfg.insta_max_steps
    )
    return train_augmented(cfg, run, data, loaded.to(device), scheduler, frozen=frozen)
