"""Orbit transfer (Nix et al., 2022): learn a teacher's group representation ρ and transfer its equivariance.

``Config`` and ``fit`` are the method; the core functions and orbit models live in the submodules, the data
(``mnist1d_shift``) and networks (``circconv1d_teacher``, ``mlp_maxpool1d``, ...) in the framework's registries.
The transfer baselines are registered as their own methods (``student_ce``, ``student_aug``, ``kd``,
``hidden_match``, ``rdl``, ``cka``, ``attention``), each a thin module in this package.
"""

from autoinv.methods.orbit.baselines import attention_loss, cka_loss, kd_loss, match_loss, rdl_loss
from autoinv.methods.orbit.core import (
    circular_conv,
    equivariance_loss,
    group_loss_inputs,
    group_loss_params,
    inverse_loss,
    to_layout,
)
from autoinv.methods.orbit.fit import Config, GroupSizeError, fit, learn_orbit, make_orbit, preflight, teacher_specs
from autoinv.methods.orbit.hooks import LayerError
from autoinv.methods.orbit.objectives import omega, orbit_objectives
from autoinv.methods.orbit.rho import AffineOrbit, ConvOrbit

__all__ = [
    "Config",
    "fit",
    "teacher_specs",
    "preflight",
    "make_orbit",
    "learn_orbit",
    "GroupSizeError",
    "LayerError",
    "ConvOrbit",
    "AffineOrbit",
    "orbit_objectives",
    "omega",
    "circular_conv",
    "to_layout",
    "equivariance_loss",
    "group_loss_params",
    "group_loss_inputs",
    "inverse_loss",
    "kd_loss",
    "match_loss",
    "rdl_loss",
    "cka_loss",
    "attention_loss",
]
