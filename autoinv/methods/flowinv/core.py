"""FlowInv's core: transform parameterisation, the image-conditional flow over it, the PID, TTA and alignment.

FlowInv ("Learning to Transform for Generalizable Instance-wise Invariance") learns a distribution g(T | x) over
transformations of each input: a pose-embedding CNN maps the image to e, a base distribution projected from e
draws z, and conditional affine couplings with tanh bounds turn z into Lie-algebra coefficients w with a
tractable log q(w | x). The coefficients are applied with the project's affine warp, so the classifier's loss
back-propagates into the flow (reparameterisation).

The split follows the project's "generate params, then apply them" rule: :class:`FlowAugmenter` generates ``w``
and ``log q``; :func:`lie_params` and ``autoinv.augment.affine_from_lie`` / ``warp`` apply them. Every random draw
takes an optional generator so tests can pin it.

normflows pieces used: ``nf.flows.Flow`` (the base class of our coupling and tanh layers, so they share its
``forward(z, context) -> (z, log_det)`` contract), ``nf.flows.Permute`` (fixed permutations between couplings) and
``nf.nets.MLP`` (the coupling networks). normflows' own affine couplings take no context (its issue #63), hence
:class:`ConditionalAffineCoupling`.

Example:
    >>> aug = FlowAugmenter(aug_type="rotate", in_channels=3)
    >>> w, log_q = aug.sample(x, n=4)                                  # (4 B, 1), (4 B,)
    >>> x_aug = apply_params(x.repeat(4, 1, 1, 1), w, "rotate")        # (4 B, C, H, W)
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import normflows as nf
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoinv import augment

__all__ = [
    "AUG_SLOTS",
    "AugmenterError",
    "lie_params",
    "apply_params",
    "rotation_degrees",
    "rotation_error",
    "generators",
    "DECOUPLED_GENERATORS",
    "tanh_bound",
    "gumbel_softmax",
    "PoseNet",
    "ConditionalAffineCoupling",
    "TanhBound",
    "UniformBase",
    "MixtureBase",
    "FlowAugmenter",
    "PIDState",
    "pid_step",
    "select_plausible",
    "tta_logits",
    "mean_shift_align",
    "augmenter_payload",
    "augmenter_from_payload",
    "load_augmenter",
]

AUG_SLOTS: dict[str, tuple[int, ...]] = {
    "rotate": (2,),
    "translate": (0, 1),
    "rotate_translate": (0, 1, 2),
    "full": (0, 1, 2, 3, 4, 5),
    "crop": (0, 1, 3, 4),
    "decoupled": (0, 1, 2, 3, 4, 5),
}
"""aug_type → which of ``augment.LIE_GENERATORS`` (tx, ty, rotate, scale, stretch, shear) its coefficients fill;
``decoupled`` fills the six entries of :data:`DECOUPLED_GENERATORS` instead."""

DECOUPLED_GENERATORS = torch.zeros(6, 3, 3)
DECOUPLED_GENERATORS[[0, 1, 2, 3, 4, 5], [0, 0, 0, 1, 1, 1], [0, 1, 2, 0, 1, 2]] = 1.0
"""The paper's T_Decoupled (eq. 13, rotation discovery): one coefficient per entry of the 2×3 algebra
``[[a, b, c], [d, e, f]]``, row-major. It is a rotation when a = e = 0 and b = −d; nothing in the basis says so."""

AUGMENTER_FORMAT = "autoinv.flowinv.augmenter/1"
"""Tag stored in a saved augmenter so :func:`load_augmenter` tells it from any other ``.pt`` file."""


class AugmenterError(ValueError):
    """A saved augmenter that is missing, unreadable or does not fit the config."""


# ---------------------------------------------------------------------------------------------------------------------
# Parameterisation


def lie_params(w: Tensor, aug_type: str, trans_scale: float = 0.1) -> Tensor:
    """Flow output → the 6 Lie-algebra coefficients of ``augment.affine_from_lie``.

    As in the paper: clamp to [-1, 1] (no gradient outside), rotation times π (so w = ±1 is ±180°), translations
    times ``trans_scale`` (in normalised units, 1 = half the image); scale, stretch and shear are used as is.

    Args:
        w: flow samples (N, d) with d = ``len(AUG_SLOTS[aug_type])``.
        aug_type: a key of :data:`AUG_SLOTS`.
        trans_scale: translation per unit of w.

    Returns:
        Coefficients (N, 6); the slots the aug_type does not use are zero.
    """
    slots = AUG_SLOTS[aug_type]
    # decoupled: entries as is (the reference's ROTGEN has no π), the translation column times trans_scale
    scales = [1.0, 1.0, trans_scale, 1.0, 1.0, trans_scale] if aug_type == "decoupled" else None
    units = torch.tensor(scales or [trans_scale, trans_scale, math.pi, 1.0, 1.0, 1.0], device=w.device, dtype=w.dtype)
    out = w.new_zeros(len(w), 6)
    out[:, list(slots)] = w.clamp(-1.0, 1.0)
    return out * units


def generators(aug_type: str) -> Tensor:
    """The basis (6, 3, 3) that :func:`lie_params`' coefficients of ``aug_type`` multiply."""
    return DECOUPLED_GENERATORS if aug_type == "decoupled" else augment.LIE_GENERATORS


def apply_params(x: Tensor, w: Tensor, aug_type: str, trans_scale: float = 0.1) -> Tensor:
    """Warp images (N, C, H, W) in [0, 1] by flow samples w (N, d); differentiable in both."""
    theta = augment.affine_from_lie(lie_params(w, aug_type, trans_scale), generators(aug_type))
    return augment.warp(x, theta)


def rotation_error(w: Tensor, aug_type: str = "decoupled") -> Tensor:
    """How far each sample's linear part is from a rotation (paper Fig. 7a): ``‖M − R‖_F / ‖R‖_F``.

    Args:
        w: flow samples (N, d).
        aug_type: a key of :data:`AUG_SLOTS`.

    Returns:
        (N,): M is the 2×2 linear part of the sample's affine map, R the rotation nearest to it in Frobenius norm
        (the orthogonal polar factor, its determinant forced to +1); 0 for exact rotations.
    """
    m = augment.affine_from_lie(lie_params(w, aug_type), generators(aug_type))[:, :, :2]
    u, _, vh = torch.linalg.svd(m)
    flip = torch.ones_like(m[:, 0])
    flip[:, 1] = torch.linalg.det(u @ vh).sign()
    r = u @ torch.diag_embed(flip) @ vh
    return torch.linalg.matrix_norm(m - r) / math.sqrt(2.0)


def rotation_degrees(w: Tensor, aug_type: str) -> Tensor:
    """The rotation (degrees) that flow samples w (..., d) apply; zeros when the aug_type has no rotation."""
    slots = AUG_SLOTS[aug_type]
    if aug_type == "decoupled":  # the algebra's antisymmetric part: b = −r, d = r (radians)
        return (w[..., 3].clamp(-1, 1) - w[..., 1].clamp(-1, 1)) / 2 * (180.0 / math.pi)
    if 2 not in slots:
        return w.new_zeros(w.shape[:-1])
    return w[..., slots.index(2)].clamp(-1, 1) * 180.0


def tanh_bound(z: Tensor, width: float) -> tuple[Tensor, Tensor]:
    """``y = width · tanh(z / width)`` per coordinate and its log|det J| (N,); z is (N, d)."""
    t = torch.tanh(z / width)
    # log(1 - tanh²(u)) written stably as 2 (log 2 - u - softplus(-2u)).
    u = z / width
    log_det = (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(1)
    return width * t, log_det


def gumbel_softmax(
    logits: Tensor,
    tau: float,
    hard: bool = False,
    generator: torch.Generator | None = None,
    straight_through: bool = True,
) -> Tensor:
    """Mode weights (N, K) summing to one: softmax((logits + Gumbel noise) / τ), one-hot if hard.

    A hard draw passes the soft weights' gradient through (straight-through) unless ``straight_through`` is False;
    then it is a plain sample of the categorical softmax(logits), with no gradient, for a score-function estimator.
    """
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    gumbel = -torch.log((-torch.log(u.clamp_min(1e-10))).clamp_min(1e-10))
    soft = F.softmax((logits + gumbel) / tau, dim=-1)
    if not hard:
        return soft
    one_hot = F.one_hot(soft.argmax(-1), logits.shape[-1]).to(soft.dtype)
    return one_hot + soft - soft.detach() if straight_through else one_hot.detach()


# ---------------------------------------------------------------------------------------------------------------------
# Modules


class PoseNet(nn.Module):
    """The pose-embedding CNN: conv widths c, 2c, 4c, 8c (3×3, ReLU, max-pools), global max-pool, linear to ``dim``.

    Maps images (B, C, H, W) to embeddings (B, dim). Like the reference there is no BatchNorm, so an embedding
    depends on its own image only (copies and evaluation batches do not interact).
    """

    def __init__(self, in_channels: int, width: int = 16, dim: int = 32) -> None:
        super().__init__()
        c = width
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, c, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c, 2 * c, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * c, 4 * c, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(4 * c, 8 * c, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(8 * c, dim)
        for module in self.body:
            if isinstance(module, nn.Conv2d):  # He init keeps the features' scale through the 4 unnormalised convs
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.body(x))


class ConditionalAffineCoupling(nf.flows.Flow):
    """Affine coupling conditioned on a context: ``z_b ← z_b · exp(s) + t`` with ``(s, t) = MLP([z_a, e])``.

    ``z_a`` is the first ``floor(d / 2)`` coordinates (kept), ``z_b`` the rest. For d = 1, ``z_a`` is empty and the
    layer is an affine map of z conditioned on e alone (the reference's coupling is a no-op there). The MLP's last
    layer starts at 1 % of its default init, so the layer starts near the identity.

    Args:
        dim: d.
        context_dim: size of e.
        width: hidden units of the MLP (one hidden layer).
    """

    def __init__(self, dim: int, context_dim: int, width: int = 32) -> None:
        super().__init__()
        self.keep = dim // 2
        self.change = dim - self.keep
        self.net = nf.nets.MLP([self.keep + context_dim, width, 2 * self.change])
        last = self.net.net[-1]
        with torch.no_grad():
            last.weight.mul_(0.01)
            last.bias.mul_(0.01)

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Base direction: z (N, d), context (N, context_dim) → (z', log|det| (N,))."""
        z_a, z_b = z[:, : self.keep], z[:, self.keep :]
        shift, scale = self.net(torch.cat([z_a, context], 1)).chunk(2, dim=1)
        return torch.cat([z_a, z_b * torch.exp(scale) + shift], 1), scale.sum(1)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Sample direction back to the base: (z, −log|det|)."""
        z_a, z_b = z[:, : self.keep], z[:, self.keep :]
        shift, scale = self.net(torch.cat([z_a, context], 1)).chunk(2, dim=1)
        return torch.cat([z_a, (z_b - shift) * torch.exp(-scale)], 1), -scale.sum(1)


class TanhBound(nf.flows.Flow):
    """Bounds every coordinate to (−width, width) with :func:`tanh_bound`."""

    def __init__(self, width: float) -> None:
        super().__init__()
        self.width = width

    def forward(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return tanh_bound(z, self.width)

    def inverse(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        y = torch.atanh(z / self.width) * self.width
        _, log_det = tanh_bound(y, self.width)
        return y, -log_det


class UniformBase(nn.Module):
    """A box per input: ``z = loc + (u − ½) · exp(log_scale)``, u ~ U(0, 1)^d; log p = −Σ log_scale.

    ``loc`` and ``log_scale`` are learned globals plus a projection of the context (``context_params`` values).
    """

    n_context = 2

    def __init__(self, dim: int, scale: float = 0.1, loc_std: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.loc = nn.Parameter((torch.rand(dim) - 0.5) * 2 * loc_std)
        self.log_scale = nn.Parameter(torch.full((dim,), math.log(scale)))

    def param_len(self) -> int:
        return 2 * self.dim

    def forward(
        self,
        params: Tensor,
        generator: torch.Generator | None = None,
        tau: float = 1.0,
        hard: bool = False,
        score: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Context params (N, 2d) from the context → z (N, d), log p(z) (N,), and zeros (N,): no discrete draw."""
        d_loc, d_scale = params.chunk(2, dim=1)
        loc = self.loc + d_loc
        log_scale = (self.log_scale + d_scale).clamp(-6.0, math.log(2.0))
        u = torch.rand(loc.shape, generator=generator, device=loc.device, dtype=loc.dtype)
        return loc + (u - 0.5) * log_scale.exp(), -log_scale.sum(1), log_scale.new_zeros(len(loc))


class MixtureBase(nn.Module):
    """A mixture of K diagonal Gaussians per input, its mode drawn by Gumbel-softmax (soft or hard).

    With soft weights m (N, K) the sample mixes the modes' parameters, ``z = Σ m_k loc_k + ε Σ m_k σ_k``, and log p
    is the exact mixture density at z (the reference's choice). ``loc``, ``log σ`` and the mode logits are learned
    globals plus a projection of the context.
    """

    def __init__(self, dim: int, modes: int = 1, scale: float = 0.1, loc_std: float = 0.5) -> None:
        super().__init__()
        self.dim, self.modes = dim, modes
        self.loc = nn.Parameter((torch.rand(modes, dim) - 0.5) * 2 * loc_std)
        self.log_scale = nn.Parameter(torch.full((modes, dim), math.log(scale)))
        self.logits = nn.Parameter(torch.zeros(modes))

    def param_len(self) -> int:
        return self.modes * (2 * self.dim + 1)

    def forward(
        self,
        params: Tensor,
        generator: torch.Generator | None = None,
        tau: float = 0.1,
        hard: bool = False,
        score: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Context params (N, K(2d + 1)) from the context → z (N, d), log p(z) (N,), log P(drawn mode) (N,).

        With ``hard`` and ``score`` the mode is a plain categorical draw (no straight-through gradient): its log
        probability, the third output, is what a score-function estimator weights by each sample's cost. Otherwise
        the third output is zeros.
        """
        n, k, d = len(params), self.modes, self.dim
        d_loc, d_scale, d_logit = params.split([k * d, k * d, k], dim=1)
        loc = (self.loc + d_loc.view(n, k, d)).clamp(-1.0, 1.0)
        log_scale = (self.log_scale + d_scale.view(n, k, d)).clamp(-6.0, math.log(2.0))
        logits = F.log_softmax(self.logits + d_logit, dim=1)
        weights = gumbel_softmax(logits, tau, hard, generator, straight_through=not score)  # (N, K)
        eps = torch.randn((n, d), generator=generator, device=params.device, dtype=params.dtype)
        z = (weights[:, :, None] * loc).sum(1) + eps * (weights[:, :, None] * log_scale.exp()).sum(1)
        diff = (z[:, None, :] - loc) / log_scale.exp()
        log_normal = -0.5 * diff.pow(2).sum(2) - log_scale.sum(2) - 0.5 * d * math.log(2 * math.pi)
        log_mode = (weights * logits).sum(1) if hard and score else logits.new_zeros(n)
        return z, torch.logsumexp(logits + log_normal, dim=1), log_mode


class FlowAugmenter(nn.Module):
    """g(T | x): pose CNN → base distribution projected from e → couplings, permutations, tanh bounds → w, log q.

    Args:
        aug_type: a key of :data:`AUG_SLOTS` (sets d).
        in_channels: image channels.
        layers: coupling layers.
        width: hidden units of each coupling's MLP.
        tanh_width: final bound: every coordinate of w lies in (−tanh_width, tanh_width).
        inner_tanh: bound after every coupling (0 = none); keeps the stack numerically tame.
        base: ``"uniform"`` or ``"gmm"``.
        modes: mixture modes (gmm).
        gumbel_tau: Gumbel-softmax temperature of the mode weights (gmm).
        gumbel_hard: one-hot mode weights with straight-through gradients (gmm).
        mode_gradient: how a hard draw's mode weights learn: ``"straight_through"`` (the soft weights' gradient) or
            ``"score"`` (no gradient through the draw; the training loss adds a score-function term, see
            :meth:`sample_with_mode`).
        base_scale: initial scale of the base (box width or σ).
        loc_std: initial spread of the base's locations.
        pose_width: width c of the pose CNN.
        pose_dim: size of the embedding e.
        trans_scale: translation per unit of w (kept here so a saved augmenter applies its own parameterisation).
    """

    def __init__(
        self,
        aug_type: str = "rotate_translate",
        in_channels: int = 3,
        layers: int = 4,
        width: int = 32,
        tanh_width: float = 1.0,
        inner_tanh: float = 6.0,
        base: str = "uniform",
        modes: int = 1,
        gumbel_tau: float = 0.1,
        gumbel_hard: bool = False,
        base_scale: float = 0.1,
        loc_std: float = 0.0,
        pose_width: int = 16,
        pose_dim: int = 32,
        trans_scale: float = 0.1,
        mode_gradient: str = "straight_through",
    ) -> None:
        super().__init__()
        self.arch = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.aug_type, self.trans_scale = aug_type, trans_scale
        self.gumbel_tau, self.gumbel_hard = gumbel_tau, gumbel_hard
        self.score_modes = base == "gmm" and gumbel_hard and mode_gradient == "score"
        self.dim = d = len(AUG_SLOTS[aug_type])
        self.pose = PoseNet(in_channels, pose_width, pose_dim)
        self.base = (
            UniformBase(d, base_scale, loc_std) if base == "uniform" else MixtureBase(d, modes, base_scale, loc_std)
        )
        self.project = nn.Linear(pose_dim, self.base.param_len())
        with torch.no_grad():  # the context starts as a small correction to the base's globals
            self.project.weight.mul_(0.01)
            self.project.bias.mul_(0.01)
        flows: list[nn.Module] = []
        for i in range(layers):
            flows.append(ConditionalAffineCoupling(d, pose_dim, width))
            if d > 1:
                flows.append(nf.flows.Permute(d, mode="shuffle" if d > 2 else "swap"))
            if inner_tanh > 0 and i < layers - 1:
                flows.append(TanhBound(inner_tanh))
        flows.append(TanhBound(tanh_width))
        self.flows = nn.ModuleList(flows)

    def embed(self, x: Tensor) -> Tensor:
        """Images (B, C, H, W) in [0, 1] → pose embeddings e (B, pose_dim)."""
        return self.pose((x - 0.5) / 0.25)

    def transform(self, z: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        """Base samples z (N, d) and contexts e (N, pose_dim) → w (N, d) and Σ log|det J| (N,)."""
        log_det = z.new_zeros(len(z))
        for flow in self.flows:
            z, step = flow(z, context=e)
            log_det = log_det + step
        return z, log_det

    def sample(self, x: Tensor, n: int = 1, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw n samples per image.

        Args:
            x: images (B, C, H, W) in [0, 1].
            n: samples per image.
            generator: randomness on x's device (optional).

        Returns:
            w (n·B, d), copy-major (rows j·B … j·B + B − 1 are copy j of every image), and log q(w | x) (n·B,).
        """
        w, log_q, _ = self.sample_with_mode(x, n, generator)
        return w, log_q

    def sample_with_mode(
        self, x: Tensor, n: int = 1, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`sample`, plus the log probability of each sample's drawn mixture mode (n·B,).

        The third output is non-zero only with ``score_modes`` (a gmm base, hard draws, ``mode_gradient="score"``):
        a loss adds ``mean((cost − baseline) · log P(mode))`` with the cost detached, so a mode's weight falls when
        its samples cost more than the batch's average and rises when they cost less. Straight-through cannot tell
        that: it sees only how the loss changes as the sample slides along the line between the modes' locations.
        """
        with torch.autocast(x.device.type, enabled=False):
            e = self.embed(x.float()).repeat(n, 1)
            params = self.project(e)
            z, log_p, log_mode = self.base(params, generator, self.gumbel_tau, self.gumbel_hard, self.score_modes)
            w, log_det = self.transform(z, e)
        return w, log_p - log_det, log_mode

    def penalty(self, log_q: Tensor) -> Tensor:
        """The regulariser λ multiplies: mean log q (its minimisation raises the entropy)."""
        return log_q.mean()

    def entropy_bound(self) -> float:
        """Largest reachable entropy (nats): a uniform over the tanh box."""
        return self.dim * math.log(2 * self.arch["tanh_width"])


# ---------------------------------------------------------------------------------------------------------------------
# Entropy control


@dataclass
class PIDState:
    """The controller's state: the weight λ, the integral of the error, the last error, the smoothed entropy."""

    lam: float
    integral: float = 0.0
    last_error: float | None = None
    entropy: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"lam": self.lam, "integral": self.integral, "last_error": self.last_error, "entropy": self.entropy}


def pid_step(
    state: PIDState,
    entropy: float,
    target: float,
    gains: tuple[float, float, float],
    bounds: tuple[float, float],
    ema: float = 0.9,
) -> PIDState:
    """One controller step: smooth the entropy, and move λ so the smoothed entropy approaches ``target``.

    ``error = target − H_ema``: entropy below target gives a positive error and raises λ, which weighs the
    −λ·H term more and widens the distribution. ``λ = clip(k_p·error + k_i·Σ error + k_d·Δerror, λ_min, λ_max)``;
    the integral stops growing while λ sits at a bound in the error's direction (anti-windup), so λ leaves a bound
    as soon as the error changes sign.

    Args:
        state: the previous state.
        entropy: this step's entropy estimate −mean log q (nats).
        target: the entropy to hold (nats).
        gains: (k_p, k_i, k_d).
        bounds: (λ_min, λ_max).
        ema: decay of the entropy's exponential moving average (0 = no smoothing).

    Returns:
        The next state; its ``lam`` is the weight for the next step.
    """
    kp, ki, kd = gains
    smoothed = entropy if state.entropy is None else ema * state.entropy + (1 - ema) * entropy
    error = target - smoothed
    derivative = 0.0 if state.last_error is None else error - state.last_error
    integral = state.integral + error
    raw = kp * error + ki * integral + kd * derivative
    lam = min(max(raw, bounds[0]), bounds[1])
    if raw != lam and (raw > lam) == (error > 0):  # saturated in the error's direction: do not wind up
        integral = state.integral
    return PIDState(lam=lam, integral=integral, last_error=error, entropy=smoothed)


# ---------------------------------------------------------------------------------------------------------------------
# Test-time averaging and alignment


def select_plausible(w: Tensor, n: int) -> Tensor:
    """Keep n of each image's pool of samples, those inside the parameter box first.

    A sample is accepted when every coordinate lies in [−1, 1] (where :func:`lie_params` does not clamp); the first
    n accepted are kept, and when fewer are accepted the first rejected fill up, so there are always exactly n.

    Args:
        w: pools of samples (B, M, d), M ≥ n.
        n: samples to keep.

    Returns:
        (B, n, d).
    """
    if w.shape[1] < n:
        raise ValueError(f"a pool of {w.shape[1]} samples cannot give {n}")
    rejected = (w.abs() > 1).any(2).to(torch.int64)  # (B, M)
    order = torch.argsort(rejected, dim=1, stable=True)[:, :n]  # accepted first, then rejected, both in draw order
    return w.gather(1, order[:, :, None].expand(-1, -1, w.shape[2]))


@torch.no_grad()
def tta_logits(
    model: nn.Module,
    augmenter: nn.Module,
    x: Tensor,
    n: int = 10,
    pool: int = 300,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Logits averaged over the original image and n augmenter samples (rejection-sampled when n ≤ 30).

    Args:
        model: classifier taking standardised images.
        augmenter: has ``sample(x, n, generator)``, ``aug_type`` and ``trans_scale``.
        x: images (B, C, H, W) in [0, 1].
        n: augmented views per image.
        pool: samples drawn per image to select n from, when n ≤ 30.
        generator: randomness on x's device.

    Returns:
        Mean logits (B, K) over n + 1 views.
    """
    b = len(x)
    draw = max(pool, n) if n <= 30 else n
    w, _ = augmenter.sample(x, draw, generator)  # (draw·B, d), copy-major
    w = w.view(draw, b, -1).transpose(0, 1)  # (B, draw, d)
    if n <= 30:
        w = select_plausible(w, n)
    w = w.transpose(0, 1).reshape(n * b, -1)
    views = apply_params(x.repeat(n, 1, 1, 1), w, augmenter.aug_type, augmenter.trans_scale)
    logits = model((torch.cat([x, views]) - 0.5) / 0.25).float()  # ((n + 1)·B, K)
    return logits.view(n + 1, b, -1).mean(0)


@torch.no_grad()
def mean_shift_align(
    augmenter: nn.Module,
    x: Tensor,
    steps: int = 20,
    step_size: float = 0.1,
    samples: int = 100,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Align images by repeatedly moving along the mean of their conditional transform distribution (paper Fig. 10).

    Each step embeds the current image, takes the mean m of ``samples`` Lie-algebra coefficient vectors, adds
    ``step_size · m`` to the accumulated coefficients, and re-warps the *original* image by the accumulated vector
    (so interpolation errors do not compound). An image whose conditional mean is zero is a fixed point.

    Args:
        augmenter: a :class:`FlowAugmenter` (or anything with ``sample``, ``aug_type``, ``trans_scale``).
        x: images (B, C, H, W) in [0, 1].
        steps: iterations.
        step_size: α.
        samples: samples per image for the mean.
        generator: randomness on x's device.

    Returns:
        Aligned images (B, C, H, W) and the accumulated coefficients (B, 6).
    """
    total = x.new_zeros(len(x), 6)
    current = x
    for _ in range(steps):
        w, _ = augmenter.sample(current, samples, generator)
        coefficients = lie_params(w, augmenter.aug_type, augmenter.trans_scale).view(samples, len(x), 6).mean(0)
        total = total + step_size * coefficients
        current = augment.warp(x, augment.affine_from_lie(total, generators(augmenter.aug_type)))
    return current, total


# ---------------------------------------------------------------------------------------------------------------------
# Saving and loading


def augmenter_payload(augmenter: FlowAugmenter) -> dict[str, Any]:
    """A saved augmenter: plain tensors and containers, loadable with ``torch.load(weights_only=True)``."""
    return {
        "format": AUGMENTER_FORMAT,
        "kind": type(augmenter).__name__,
        "arch": dict(augmenter.arch),
        "state": {k: v.detach().cpu().clone() for k, v in augmenter.state_dict().items()},
    }


def augmenter_from_payload(payload: Any, source: str = "augmenter") -> nn.Module:
    """Rebuild an augmenter (FlowInv, Augerino or InstaAug) from :func:`augmenter_payload`'s dict."""
    from autoinv.methods.flowinv.baselines import AugerinoAugmenter, InstaAugmenter

    kinds = {"FlowAugmenter": FlowAugmenter, "AugerinoAugmenter": AugerinoAugmenter, "InstaAugmenter": InstaAugmenter}
    if not isinstance(payload, dict) or payload.get("format") != AUGMENTER_FORMAT or payload.get("kind") not in kinds:
        raise AugmenterError(f"{source} is not a saved autoinv augmenter (flowinv, augerino or instaaug)")
    try:
        with torch.random.fork_rng(devices=[]):
            augmenter = kinds[payload["kind"]](**payload["arch"])
        augmenter.load_state_dict(payload["state"])
    except (TypeError, RuntimeError) as error:
        raise AugmenterError(f"{source} does not match its own architecture: {str(error).splitlines()[0]}") from None
    return augmenter


def load_augmenter(path: str) -> nn.Module:
    """Load a saved augmenter from a ``.pt`` file or a folder holding ``augmenter.pt``; on the CPU, in eval mode."""
    file = os.path.join(path, "augmenter.pt") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise AugmenterError(f"augmenter_from={path!r} does not exist; point it at an exported augmenter.pt")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file is the same user error
        raise AugmenterError(f"augmenter_from={path!r} is not a readable torch file: {type(error).__name__}") from None
    return augmenter_from_payload(payload, source=f"augmenter_from={path!r}").eval()
