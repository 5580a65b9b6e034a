"""Orbit transfer's two objectives on real networks: learning ρ from a frozen teacher, and Ω on a student.

Both run a forward pass on the clean and one on the ρ-transformed batch, read the matched layers through hooks,
and compare ``f(ρ_g x)`` with ``ρ_g f(x)`` layer by layer, the logits included. Two passes rather than one on
``cat([x, ρ_g x])``: the same work, without the concatenation and the split's backward (measured on CPU: ~6% of an
Orbit student step), and a student's batch-norm layers see each batch as its own, as in plain training.

Inputs: images are acted on in ``[0, 1]`` pixel space and standardised afterwards (``to_net``); signals are acted
on as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from autoinv.methods.orbit import core
from autoinv.methods.orbit.hooks import forward_with_layers

__all__ = ["orbit_objectives", "omega", "transfer_loss"]


def _equivariance_pairs(
    rho: nn.Module,
    clean: tuple[torch.Tensor, list[torch.Tensor]],
    moved: tuple[torch.Tensor, list[torch.Tensor]],
    g: torch.Tensor,
    repeats: int,
    layouts: list[tuple[int, ...]],
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Pair (f(ρ_g x), ρ_g f(x)) per matched layer, logits last, from the (logits, activations) of both passes."""
    transformed, expected = [], []
    pairs = zip(clean[1] + [clean[0]], moved[1] + [moved[0]], layouts + [None])
    for layer, (a, a_moved, layout) in enumerate(pairs, start=1):
        transformed.append(core.to_layout(a_moved, layout) if layout else a_moved)
        expected.append(rho(core.to_layout(a, layout) if layout else a, g, layer, repeats))
    return transformed, expected


def orbit_objectives(
    rho: nn.Module,
    teacher: nn.Module,
    layers: tuple[str, ...],
    x: torch.Tensor,
    y: torch.Tensor,
    g: torch.Tensor,
    h: torch.Tensor,
    repeats: int,
    to_net,
    group_loss: str = "params",
    cut_input_grad: bool = False,
) -> dict[str, torch.Tensor]:
    """The four terms of Eq. 5 for one batch, with the teacher frozen.

    Args:
        rho: The orbit model (``ConvOrbit`` or ``AffineOrbit``).
        teacher: Φ, frozen and in eval mode.
        layers: Teacher layer names to make equivariant (the logits are always included).
        x: Inputs in the space ρ acts on, ``(B, ...)`` (float).
        y: Labels ``(B,)``, for γ_CE.
        g: Group elements, one per sample ``(B,)`` or per block of samples ``(n,)`` (block form, see
            :func:`~autoinv.methods.orbit.core.sample_balanced_elements`).
        h: A different element for each of ``g`` (for the transformed-input variant of L_group).
        repeats: How many times each ρ is applied.
        to_net: Maps ``x``-space inputs to the teacher's input (standardisation for images, identity for signals).
        group_loss: ``"params"`` (Eq. 3 on the input-layer filters/affines) or ``"inputs"`` (on ρ_g x vs ρ_h x).
        cut_input_grad: Detach ρ_g x before the teacher (supplement A.2.3), so ρ^(0) learns only through the
            later layers' ρ^(l).

    Returns:
        ``{"equiv", "group", "inv", "ce"}`` scalars.
    """
    rho_x = rho(x, g, 0, repeats)
    clean = forward_with_layers(teacher, to_net(x), layers)
    moved = forward_with_layers(teacher, to_net(rho_x.detach() if cut_input_grad else rho_x), layers)
    layouts = [tuple(a.shape[1:]) for a in clean[1]]
    transformed, expected = _equivariance_pairs(rho, clean, moved, g, repeats, layouts)
    back = rho(rho_x, rho.inverse[g], 0, repeats)  # ρ_{g⁻¹} ρ_g x, with the explicit group inverse
    if group_loss == "params":
        group = core.group_loss_params(rho.group_params())
    else:
        group = core.group_loss_inputs(rho_x, rho(x, h, 0, repeats))
    return {
        "equiv": core.equivariance_loss(transformed, expected),
        "group": group,
        "inv": core.inverse_loss(x, back),
        "ce": F.cross_entropy(moved[0], y),
    }


def omega(
    rho: nn.Module,
    student: nn.Module,
    layers: tuple[str, ...],
    layouts: list[tuple[int, ...]],
    x: torch.Tensor,
    g: torch.Tensor,
    repeats: int,
    to_net,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Eq. 6: Ω = ‖Ψ(ρ_g x) − ρ_g Ψ(x)‖² / H over the matched student layers and the logits, with ρ frozen.

    Args:
        rho: The learned orbit model (frozen).
        student: Ψ.
        layers: Student layer names, paired by position with the teacher's.
        layouts: Per-sample shapes of the paired teacher layers; flat student activations take these layouts by
            :func:`~autoinv.methods.orbit.core.to_layout`.
        x: Inputs in the space ρ acts on ``(B, ...)``.
        g: Group elements, one per sample ``(B,)`` or per block of samples ``(n,)``.
        repeats: How many times each ρ is applied.
        to_net: Maps ``x``-space inputs to the student's input.

    Returns:
        Ω (scalar), the student's logits on x ``(B, K)`` and on ρ_g x ``(B, K)``.
    """
    with torch.no_grad():
        rho_x = rho(x, g, 0, repeats)
    clean = forward_with_layers(student, to_net(x), layers)
    moved = forward_with_layers(student, to_net(rho_x), layers)
    transformed, expected = _equivariance_pairs(rho, clean, moved, g, repeats, layouts)
    return core.equivariance_loss(transformed, expected), clean[0], moved[0]


def transfer_loss(ce: torch.Tensor, term: torch.Tensor, gamma: float) -> torch.Tensor:
    """``(1 − γ)·CE + γ·Ω``: the interpolation every transfer method uses (paper Section 2.1)."""
    return (1.0 - gamma) * ce + gamma * term
