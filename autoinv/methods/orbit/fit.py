"""Orbit transfer (Nix et al., 2022, https://arxiv.org/abs/2111.00156, Section 5): learn ρ, then transfer it.

The orbit model ρ learns the group representation a frozen teacher is equivariant to; a student is then regularised
to the same equivariance. One trial: teacher (cached) → orbit model ρ (Eq. 5, teacher frozen) → student with ρ
frozen and ``(1 − γ)·CE(Ψ(x)) + γ·(Ω + γ_aug·CE(Ψ(ρ_g x)))`` (Eq. 6). ASHA acts on the student's epochs; ρ is
saved in every checkpoint, so a resumed trial does not learn it again.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autoinv import loop
from autoinv.config import _check
from autoinv.data import MNIST1D_LENGTH, Dataset
from autoinv.methods.orbit import core, plots, transfer
from autoinv.methods.orbit.objectives import omega, orbit_objectives, transfer_loss
from autoinv.methods.orbit.rho import AffineOrbit, ConvOrbit
from autoinv.methods.orbit.transfer import (
    TransferConfig,
    build_student,
    fit_student,
    is_shift_data,
    load_teacher,
    load_transfer_data,
    teacher_layouts,
    to_net,
    to_unit,
)
from autoinv.methods.orbit.transfer import teacher_specs as teacher_specs

__all__ = [
    "Config",
    "fit",
    "teacher_specs",
    "preflight",
    "GroupSizeError",
    "make_orbit",
    "learn_orbit",
    "orbit_student_loss",
]


class GroupSizeError(ValueError):
    """The orbit model's group or filter size does not fit the data."""


@dataclasses.dataclass(frozen=True)
class Config(TransferConfig):
    """Orbit's knobs; defaults are the paper's MNIST-1D max-pool setting at s = 30 (supplement A.1)."""

    lr: float = 1e-2
    """Student learning rate (the paper's selected 0.01 for Orbit)."""
    gamma: float = 1.0
    """γ: weight of the equivariance term against plain CE (the paper selected 1.0)."""
    gamma_aug: float = 1.0
    """Weight, inside the γ term, of CE on ρ-transformed inputs (learned augmentation; the reference always adds it)."""
    orbit_model: str = "conv"
    """``conv`` (a learned circular filter per element, Fig. 4) or ``affine`` (a learned 3-D affine per element)."""
    orbit_group_kind: str = "cyclic"
    """Which inverse L_inv pairs elements with: ``cyclic`` (-g mod G) or ``grid`` (Z_m x Z_m, 2-D shifts)."""
    orbit_group_size: int = 40
    """G, the number of group elements (40: every circular shift of MNIST-1D)."""
    orbit_filter_size: int = 40
    """k, the filter length (1-D) or side (2-D) of the conv model."""
    orbit_repeats: int = 1
    """Each ρ is applied n ~ U{1..orbit_repeats} times per batch, to reach larger transforms with small filters."""
    gamma_equiv: float = 0.1
    """γ_equiv, weight of L_equiv (Eq. 2)."""
    gamma_group: float = 10.0
    """γ_group, weight of L_group (Eq. 3)."""
    gamma_inv: float = 10.0
    """γ_inv, weight of L_inv (Eq. 4)."""
    gamma_ce: float = 0.0
    """γ_CE, weight of the teacher's CE on ρ-transformed inputs while learning ρ (the paper fixed it to 0)."""
    orbit_group_loss: str = "params"
    """L_group on the input filters/affines (``params``, Eq. 3) or on transformed inputs (``inputs``)."""
    orbit_cut_input_grad: bool = False
    """Detach ρ_g x before the teacher, so ρ^(0) learns only through later layers (supplement A.2.3, 2-D)."""
    orbit_steps: int = 1500
    """Adam steps to learn ρ (the reference ran up to 40,000 at batch 1000; see the method card)."""
    orbit_lr: float = 3e-2
    """Learning rate of ρ."""
    orbit_batch_size: int = 128
    """Batch size while learning ρ."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, "gamma_aug", self.gamma_aug >= 0, "must be >= 0")
        _check(self, "orbit_model", self.orbit_model in ("conv", "affine"), "must be conv or affine")
        _check(self, "orbit_group_kind", self.orbit_group_kind in ("cyclic", "grid"), "must be cyclic or grid")
        _check(self, "orbit_group_size", self.orbit_group_size >= 2, "must be >= 2")
        _check(self, "orbit_filter_size", self.orbit_filter_size >= 1, "must be >= 1")
        _check(self, "orbit_repeats", self.orbit_repeats >= 1, "must be >= 1")
        for name in ("gamma_equiv", "gamma_group", "gamma_inv", "gamma_ce"):
            _check(self, name, getattr(self, name) >= 0, "must be >= 0")
        _check(self, "orbit_group_loss", self.orbit_group_loss in ("params", "inputs"), "must be params or inputs")
        _check(self, "orbit_steps", self.orbit_steps >= 0, "must be >= 0")
        _check(self, "orbit_lr", self.orbit_lr > 0, "must be > 0")
        _check(self, "orbit_batch_size", self.orbit_batch_size >= 2, "must be >= 2")
        if self.orbit_group_kind == "grid":
            m = math.isqrt(self.orbit_group_size)
            _check(
                self, "orbit_group_size", m * m == self.orbit_group_size, "must be a square for orbit_group_kind=grid"
            )
        if is_shift_data(self):
            check_fit(self, (1, MNIST1D_LENGTH))


def check_fit(cfg: Config, shape: tuple[int, ...]) -> None:
    """Raise :class:`GroupSizeError` when the group or filter size cannot fit data of per-sample ``shape``.

    A circular shift group of signals of length L has L elements (of images, H*W); a filter longer than the
    signal (or wider than the image) wraps onto itself.
    """
    if cfg.orbit_model != "conv":
        return
    spatial = shape[1:]
    elements = math.prod(spatial)
    if cfg.orbit_group_size > elements:
        raise GroupSizeError(
            f"orbit_group_size={cfg.orbit_group_size} does not fit the data: its shift group has {elements} elements "
            f"(per-sample shape {tuple(shape)})"
        )
    if cfg.orbit_filter_size > min(spatial):
        raise GroupSizeError(
            f"orbit_filter_size={cfg.orbit_filter_size} does not fit the data: at most {min(spatial)} "
            f"(per-sample shape {tuple(shape)})"
        )


def preflight(cfg: Config) -> None:
    """Fail fast, before any training: unknown layer names, layouts that do not fit, a group that does not fit."""
    transfer.preflight(cfg)
    check_fit(cfg, load_transfer_data(cfg).shape)


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Teacher → orbit model → student; reports ``val/acc`` (seen shifts) and the loss terms once per epoch."""
    device = loop.pick_device(cfg.device)
    data = load_transfer_data(cfg).to(device)
    check_fit(cfg, data.shape)
    teacher = load_teacher(cfg, run.cache_dir, device)
    student = build_student(cfg, data, device)
    layouts = teacher_layouts(cfg, teacher, student, data)

    rho = make_orbit(cfg, data).to(device)
    state = run.resume()
    if state is not None and "orbit" in state:
        rho.load_state_dict(state["orbit"])  # resumed trial: ρ was learned before the first checkpoint
        orbit_metrics = {k: float(v) for k, v in state["orbit_metrics"].items()}
    else:
        orbit_metrics = learn_orbit(cfg, rho, teacher, data)
        _show_orbit(run, rho, data)
        run.artifact("orbit", _orbit_artifact(cfg, rho, orbit_metrics))
    rho.eval().requires_grad_(False)

    loss = orbit_student_loss(cfg, rho, layouts, data.num_classes)
    extra_state = {"orbit": rho.state_dict(), "orbit_metrics": orbit_metrics}
    return fit_student(cfg, run, data, teacher, student, loss, "orbit", extra_state, orbit_metrics)


# ---------------------------------------------------------------------------------------------------------------------
# Phase 2: the orbit model


def make_orbit(cfg: Config, data: Dataset) -> nn.Module:
    """A fresh orbit model for the data's layout, initialised from ``cfg.seed``."""
    generator = torch.Generator().manual_seed(cfg.seed + 3)
    size = cfg.orbit_group_size
    inverse = core.grid_inverse(size) if cfg.orbit_group_kind == "grid" else core.cyclic_inverse(size)
    num_hidden = len(cfg.teacher_layers)
    if cfg.orbit_model == "affine":
        return AffineOrbit(size, num_hidden, inverse, generator)
    dims = len(data.shape) - 1
    return ConvOrbit(size, cfg.orbit_filter_size, dims, num_hidden, data.num_classes, inverse, generator)


def learn_orbit(cfg: Config, rho: nn.Module, teacher: nn.Module, data: Dataset) -> dict[str, float]:
    """Fit ρ to the frozen teacher with Eq. 5 on random training batches (Adam, ``orbit_steps`` steps).

    Returns:
        The loss terms averaged over the last tenth of the steps: ``orbit/equiv``, ``orbit/group``, ``orbit/inv``,
        ``orbit/ce`` and the weighted total ``orbit/loss``.
    """
    generator = torch.Generator().manual_seed(cfg.seed + 4)
    device = data.x_train.device
    optimizer = torch.optim.Adam(rho.parameters(), lr=cfg.orbit_lr)
    weights = {"equiv": cfg.gamma_equiv, "group": cfg.gamma_group, "inv": cfg.gamma_inv, "ce": cfg.gamma_ce}
    tail = max(cfg.orbit_steps // 10, 1)
    sums = dict.fromkeys([*weights, "loss"], 0.0)
    rho.train()
    for step in range(cfg.orbit_steps):
        idx = torch.randint(len(data.x_train), (min(cfg.orbit_batch_size, len(data.x_train)),), generator=generator)
        x, y = to_unit(data.x_train[idx.to(device)]), data.y_train[idx.to(device)]
        g = core.sample_balanced_elements(len(x), rho.group_size, generator)
        h = core.sample_other_elements(g, rho.group_size, generator)
        repeats = int(torch.randint(1, cfg.orbit_repeats + 1, (), generator=generator))
        terms = orbit_objectives(
            rho, teacher, cfg.teacher_layers, x, y, g.to(device), h.to(device), repeats, to_net,
            cfg.orbit_group_loss, cfg.orbit_cut_input_grad,
        )  # fmt: skip
        total = sum(weights[k] * terms[k] for k in weights)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if step >= cfg.orbit_steps - tail:
            for k in weights:
                sums[k] += terms[k].item() / tail
            sums["loss"] += total.item() / tail
    return {f"orbit/{k}": v for k, v in sums.items()}


def _show_orbit(run: loop.Run, rho: nn.Module, data: Dataset) -> None:
    """Figure 5: every element's filter and one validation input transformed by each."""
    x = to_unit(data.x_val[:1])
    g = torch.arange(rho.group_size, device=x.device)
    with torch.no_grad():
        transformed = rho(x.expand(len(g), *x.shape[1:]), g, 0, 1)
        filters = rho.filter(g, 0) if isinstance(rho, ConvOrbit) else None
    run.figure("orbit/elements", plots.orbit_elements(filters, transformed, x[0]), 0)


def _orbit_artifact(cfg: Config, rho: nn.Module, metrics: dict[str, float]) -> dict[str, Any]:
    return {
        "model": cfg.orbit_model,
        "group_size": cfg.orbit_group_size,
        "filter_size": cfg.orbit_filter_size,
        "group_kind": cfg.orbit_group_kind,
        "teacher_layers": list(cfg.teacher_layers),
        "state": {k: v.detach().cpu() for k, v in rho.state_dict().items()},
        "metrics": metrics,
    }


# ---------------------------------------------------------------------------------------------------------------------
# Phase 3: the student's loss


def orbit_student_loss(cfg: Config, rho: nn.Module, layouts: list[tuple[int, ...]], num_classes: int):
    """The per-batch student loss ``(1 − γ)·CE(Ψ(x)) + γ·(Ω + γ_aug·CE(Ψ(ρ_g x)))`` with ρ frozen.

    With γ = 0 it is exactly the plain CE student (one forward pass, no ρ).
    """
    generator = torch.Generator().manual_seed(cfg.seed + 5)

    def loss(student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        u = to_unit(x)
        if cfg.gamma == 0:
            ce = F.cross_entropy(student(to_net(u)), y)
            return ce, {"train/ce": ce.item()}
        g = core.sample_balanced_elements(len(u), rho.group_size, generator).to(u.device)
        repeats = int(torch.randint(1, cfg.orbit_repeats + 1, (), generator=generator))
        om, logits, logits_rho = omega(rho, student, cfg.student_layers, layouts, u, g, repeats, to_net)
        ce, ce_rho = F.cross_entropy(logits, y), F.cross_entropy(logits_rho, y)
        total = transfer_loss(ce, om + cfg.gamma_aug * ce_rho, cfg.gamma)
        return total, {"train/ce": ce.item(), "train/omega": om.item(), "train/ce_rho": ce_rho.item()}

    return loss
