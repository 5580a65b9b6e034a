"""FlowInv training: a classifier and an image-conditional flow over its input's transformations, trained together.

``fit`` builds the flow (or loads a saved one, frozen), then runs the shared joint loop of ``training.py`` with a
PID controller that holds the flow's entropy at ``entropy_target``. The flow's weights ride in every checkpoint
and are saved as the ``augmenter`` artifact, which export wires into ``augmenter_from``.
"""

from __future__ import annotations

import dataclasses
import math

from autoinv import loop
from autoinv.config import _check
from autoinv.methods.flowinv.core import AUG_SLOTS, FlowAugmenter
from autoinv.methods.flowinv.training import AugConfig, PIDController, check_inputs, train_augmented
from autoinv.methods.flowinv.training import preflight as preflight

__all__ = ["ARTIFACT_FIELDS", "Config", "fit", "preflight", "build_augmenter"]

ARTIFACT_FIELDS = {"augmenter": "augmenter_from"}
"""Export ships the trial's ``augmenter.pt`` and sets ``augmenter_from`` to it; final training reuses it frozen."""


@dataclasses.dataclass(frozen=True)
class Config(AugConfig):
    """FlowInv's knobs; defaults follow the reference's ``mario_90`` script except where the card says why not."""

    flow_layers: int = 4
    """Conditional affine coupling layers (paper 4–12; mario_90: 4)."""
    flow_width: int = 32
    """Hidden units of each coupling's MLP (reference 32; paper CIFAR 64)."""
    flow_tanh_width: float = 1.0
    """Final tanh bound of every coordinate of w; 1 matches the [−1, 1] parameter box (reference NFAug: 2)."""
    flow_inner_tanh: float = 6.0
    """Tanh bound after each coupling (0 = none), as the reference's intermediate TanhFlow(6)."""
    flow_base: str = "uniform"
    """Base distribution: ``uniform`` (a box per input; mario_90) or ``gmm`` (Gaussian mixture, Gumbel modes)."""
    flow_modes: int = 1
    """Mixture modes of the gmm base (multi-modal Mario-Iggy: paper 120, script 90)."""
    flow_gumbel_tau: float = 0.1
    """Gumbel-softmax temperature of the mode weights."""
    flow_gumbel_hard: bool = False
    """One-hot mode weights instead of soft ones."""
    flow_mode_gradient: str = "straight_through"
    """How hard mode draws learn their weights: ``straight_through`` (the soft weights' gradient, the reference) or
    ``score`` (a score-function term: each sample's cost against the batch mean; ours, see the card)."""
    flow_base_scale: float = 0.1
    """Initial width (uniform) or σ (gmm) of the base."""
    flow_loc_std: float = 0.5
    """Initial spread of the gmm's mode locations, U(−s, s); the uniform base starts centred."""
    pose_width: int = 8
    """Width c of the pose-embedding CNN (c, 2c, 4c, 8c; reference code 8, paper 32–256)."""
    pose_dim: int = 32
    """Size of the pose embedding e."""
    entropy_target: float = 0.0
    """Entropy (nats, of w before the clamp) the PID holds; must be below aug dims × log(2 flow_tanh_width)."""
    pid_kp: float = 0.01
    """Proportional gain."""
    pid_ki: float = 0.01
    """Integral gain (per step)."""
    pid_kd: float = 0.01
    """Derivative gain."""
    pid_ema: float = 0.9
    """Decay of the entropy's moving average the PID sees."""
    pid_lambda_min: float = 1e-3
    """Lower clip of λ (mario_90: 1e-3)."""
    pid_lambda_max: float = 0.5
    """Upper clip of λ (mario_90: 0.5); set equal to pid_lambda_min for a fixed λ."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, "flow_layers", self.flow_layers >= 1, "must be >= 1")
        _check(self, "flow_width", self.flow_width >= 1, "must be >= 1")
        _check(self, "flow_tanh_width", self.flow_tanh_width > 0, "must be > 0")
        _check(self, "flow_inner_tanh", self.flow_inner_tanh >= 0, "must be >= 0 (0 = none)")
        _check(self, "flow_base", self.flow_base in ("uniform", "gmm"), "must be uniform or gmm")
        _check(self, "flow_modes", self.flow_modes >= 1, "must be >= 1")
        _check(self, "flow_gumbel_tau", self.flow_gumbel_tau > 0, "must be > 0")
        _check(
            self,
            "flow_mode_gradient",
            self.flow_mode_gradient in ("straight_through", "score"),
            "must be straight_through or score",
        )
        _check(self, "flow_base_scale", self.flow_base_scale > 0, "must be > 0")
        _check(self, "flow_loc_std", self.flow_loc_std >= 0, "must be >= 0")
        _check(self, "pose_width", self.pose_width >= 1, "must be >= 1")
        _check(self, "pose_dim", self.pose_dim >= 1, "must be >= 1")
        dims = len(AUG_SLOTS[self.aug_type])
        reach = dims * math.log(2 * self.flow_tanh_width)
        _check(
            self,
            "entropy_target",
            -6.0 * dims < self.entropy_target < reach,
            f"is unreachable: {self.aug_type} with flow_tanh_width={self.flow_tanh_width} reaches at most "
            f"{reach:.2f} nats (and no less than {-6.0 * dims:.0f})",
        )
        _check(self, "pid_ema", 0 <= self.pid_ema < 1, "must be in [0, 1)")
        _check(self, "pid_lambda_min", self.pid_lambda_min >= 0, "must be >= 0")
        _check(self, "pid_lambda_max", self.pid_lambda_max >= self.pid_lambda_min, "must be >= pid_lambda_min")


def build_augmenter(cfg: Config, in_channels: int) -> FlowAugmenter:
    """A fresh flow for ``cfg``, its weights (and permutations) from the seed alone."""
    with loop.seeded(cfg.seed + 7):
        return FlowAugmenter(
            aug_type=cfg.aug_type,
            in_channels=in_channels,
            layers=cfg.flow_layers,
            width=cfg.flow_width,
            tanh_width=cfg.flow_tanh_width,
            inner_tanh=cfg.flow_inner_tanh,
            base=cfg.flow_base,
            modes=cfg.flow_modes,
            gumbel_tau=cfg.flow_gumbel_tau,
            gumbel_hard=cfg.flow_gumbel_hard,
            base_scale=cfg.flow_base_scale,
            loc_std=cfg.flow_loc_std if cfg.flow_base == "gmm" else 0.0,
            pose_width=cfg.pose_width,
            pose_dim=cfg.pose_dim,
            trans_scale=cfg.aug_trans_scale,
            mode_gradient=cfg.flow_mode_gradient,
        )


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Train classifier and flow with the entropy held by the PID; report ``val/acc``, ``val/acc_tta``, ``aug/*``."""
    device, data = loop.start(cfg)
    loaded = check_inputs(cfg, data)  # fail on bad input before any training
    augmenter = (loaded or build_augmenter(cfg, data.shape[0])).to(device)
    gains = (cfg.pid_kp, cfg.pid_ki, cfg.pid_kd)
    controller = PIDController(cfg.entropy_target, gains, (cfg.pid_lambda_min, cfg.pid_lambda_max), cfg.pid_ema)
    return train_augmented(cfg, run, data, augmenter, controller, frozen=loaded is not None)
