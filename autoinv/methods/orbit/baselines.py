"""Functional transfer baselines as pure losses: KD, direct matching, RDL, CKA and attention transfer.

Each compares a student Ψ with a frozen teacher Φ on the same batch (paper Sections 3-4); the student's loss is
``(1 − γ)·CE + γ·Ω`` with Ω one of these. Hidden activations come from matched layers (see
:mod:`autoinv.methods.orbit.hooks`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from autoinv.methods.orbit.core import to_layout

__all__ = [
    "kd_loss",
    "match_loss",
    "correlation_rdm",
    "rdl_loss",
    "linear_cka",
    "cka_loss",
    "attention_map",
    "attention_loss",
]


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Knowledge distillation (Hinton et al., 2015): ``T² · KL(p_t ‖ p_s)`` of the tempered softmaxes, batch mean.

    Args:
        student_logits: ``(B, K)``.
        teacher_logits: ``(B, K)``.
        temperature: T > 0; the T² factor keeps gradient scale independent of T.
    """
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)
    p_t = F.softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_p_s, p_t, reduction="batchmean") * temperature**2


def match_loss(student_acts: list[torch.Tensor], teacher_acts: list[torch.Tensor]) -> torch.Tensor:
    """Direct matching: sum over layers of the mean squared error between flattened activations.

    Raises:
        ValueError: a pair of layers differs in size (direct matching needs equal sizes).
    """
    total = student_acts[0].new_zeros(())
    for i, (s, t) in enumerate(zip(student_acts, teacher_acts)):
        s, t = s.flatten(1), t.flatten(1)
        if s.shape != t.shape:
            raise ValueError(
                f"direct matching needs equal layer sizes; pair {i} has {s.shape[1]} vs {t.shape[1]} units"
            )
        total = total + F.mse_loss(s, t)
    return total


def correlation_rdm(h: torch.Tensor) -> torch.Tensor:
    """Representational dissimilarity as a correlation matrix over the batch (McClure and Kriegeskorte, 2016).

    Features are centred by their batch mean, then each sample's vector is normalised; entry (n, m) is the
    correlation between samples n and m.

    Args:
        h: Activations ``(B, ...)``.

    Returns:
        ``(B, B)``.
    """
    x = h.flatten(1)
    x = F.normalize(x - x.mean(dim=0, keepdim=True), dim=1, eps=1e-8)
    return x @ x.T


def rdl_loss(student_acts: list[torch.Tensor], teacher_acts: list[torch.Tensor]) -> torch.Tensor:
    """RDL: sum over layers of ``‖RDM_s − RDM_t‖_F² / B²`` with correlation RDMs (layers may differ in size)."""
    total = student_acts[0].new_zeros(())
    for s, t in zip(student_acts, teacher_acts):
        total = total + F.mse_loss(correlation_rdm(s), correlation_rdm(t))
    return total


def linear_cka(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Linear centred kernel alignment (Kornblith et al., 2019) between two batches of features, in [0, 1].

    Args:
        a: ``(B, ...)``.
        b: ``(B, ...)``; may differ from ``a`` in size.
    """
    a, b = a.flatten(1), b.flatten(1)
    a, b = a - a.mean(dim=0, keepdim=True), b - b.mean(dim=0, keepdim=True)
    cross = (b.T @ a).square().sum()
    return cross / ((a.T @ a).norm() * (b.T @ b).norm() + 1e-12)


def cka_loss(student_acts: list[torch.Tensor], teacher_acts: list[torch.Tensor]) -> torch.Tensor:
    """CKA transfer: sum over layers of ``1 − CKA``, a distance (the reference's 2-D module added +CKA instead)."""
    total = student_acts[0].new_zeros(())
    for s, t in zip(student_acts, teacher_acts):
        total = total + (1.0 - linear_cka(s, t))
    return total


def attention_map(h: torch.Tensor, power: float = 2.0) -> torch.Tensor:
    """Spatial attention ``Σ_c |h_c|^p`` (Zagoruyko and Komodakis, 2017), L2-normalised per sample.

    Args:
        h: Activations with channels and positions, ``(B, C, L)`` or ``(B, C, H, W)``.
        power: p.

    Returns:
        ``(B, L)`` or ``(B, H, W)``.
    """
    a = h.abs().pow(power).sum(dim=1)
    return a / (a.flatten(1).norm(dim=1).view(-1, *([1] * (a.dim() - 1))) + 1e-12)


def attention_loss(
    student_acts: list[torch.Tensor], teacher_acts: list[torch.Tensor], power: float = 2.0
) -> torch.Tensor:
    """Attention transfer: sum over layers of the MSE between normalised attention maps.

    Flat student activations take the teacher layer's layout by :func:`~autoinv.methods.orbit.core.to_layout`;
    when the spatial sizes still differ the student's map is resampled (bilinearly) to the teacher's.
    """
    total = student_acts[0].new_zeros(())
    for s, t in zip(student_acts, teacher_acts):
        t_map = attention_map(t.flatten(1, t.dim() - 3) if t.dim() == 5 else t, power)  # p4: rotations as channels
        s_map = attention_map(to_layout(s, tuple(t.shape[1:])), power)
        if s_map.shape[1:] != t_map.shape[1:]:
            mode = "linear" if t_map.dim() == 2 else "bilinear"
            s_map = F.interpolate(s_map[:, None], size=t_map.shape[1:], mode=mode, align_corners=False)[:, 0]
            s_map = s_map / (s_map.flatten(1).norm(dim=1).view(-1, *([1] * (s_map.dim() - 1))) + 1e-12)
        total = total + F.mse_loss(s_map, t_map)
    return total
