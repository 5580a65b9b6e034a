"""TransInv's augmentation model: strength MLPs per primitive, Gumbel-softmax selection p, relaxed Bernoulli q.

A(x) = b · Σ_i g_i a_i(x, s_i(z)) + (1 − b) · x, with z ~ N(0, I), g a (straight-through hard or soft)
Gumbel-softmax sample of p, b a relaxed Bernoulli sample of q. Several teachers get one :class:`Augmenter` each,
and an :class:`AugmenterSet` picks one per sample with a second Gumbel-softmax selection r.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from autoinv.methods.transinv.primitives import PrimitiveError, get_primitive, init_position, scaled_ranges

__all__ = [
    "Augmenter",
    "AugmenterError",
    "AugmenterSet",
    "StrengthMLP",
    "augmenter_from_payload",
    "augmenter_payload",
    "compose",
    "gumbel_softmax",
    "load_augmenter",
    "relaxed_bernoulli",
]


class AugmenterError(ValueError):
    """A saved augmenter that cannot be read or does not fit the config."""


def _uniform(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
    source = generator.device if generator is not None else like.device
    u = torch.rand(shape, generator=generator, device=source, dtype=torch.float32).to(like.device)
    return u.clamp(1e-6, 1 - 1e-6)


def gumbel_softmax(
    logits: Tensor, tau: float, hard: bool = True, generator: torch.Generator | None = None, rows: int = 1
) -> Tensor:
    """Relaxed categorical samples, one per row: softmax((logits + Gumbel noise) / tau).

    Args:
        logits: unnormalised log-probabilities (K,).
        tau: temperature > 0 (lower = closer to one-hot).
        hard: return exact one-hot rows whose gradient is the soft sample's (straight-through).
        generator: source of the Gumbel noise.
        rows: number of independent samples.

    Returns:
        Samples (rows, K), each summing to one.
    """
    gumbel = -torch.log(-torch.log(_uniform((rows, len(logits)), logits, generator)))
    soft = torch.softmax((logits.float() + gumbel) / tau, dim=1)
    if not hard:
        return soft
    one_hot = torch.zeros_like(soft).scatter_(1, soft.argmax(1, keepdim=True), 1.0)
    return one_hot - soft.detach() + soft


def relaxed_bernoulli(
    logit: Tensor, tau: float, rows: int, hard: bool = False, generator: torch.Generator | None = None
) -> Tensor:
    """Relaxed Bernoulli (binary Concrete) samples: sigmoid((logit + log u − log(1 − u)) / tau).

    Args:
        logit: log-odds of applying the augmentation, a scalar tensor.
        tau: temperature > 0.
        rows: number of samples.
        hard: round to {0, 1} with the relaxed sample's gradient (straight-through).
        generator: source of the logistic noise.

    Returns:
        Samples (rows,) in (0, 1), or in {0, 1} when ``hard``.
    """
    u = _uniform((rows,), logit, generator)
    soft = torch.sigmoid((logit.float() + torch.log(u) - torch.log1p(-u)) / tau)
    return (soft > 0.5).float() - soft.detach() + soft if hard else soft


def compose(x: Tensor, outs: Tensor, g: Tensor, b: Tensor) -> Tensor:
    """The augmenter's output b · Σ_i g_i outs_i + (1 − b) · x, clipped to [0, 1].

    Args:
        x: clean images (B, C, H, W) in [0, 1].
        outs: every primitive's output (K, B, C, H, W).
        g: selection weights (B, K), rows summing to one.
        b: apply weights (B,).

    Returns:
        Augmented images (B, C, H, W).
    """
    picked = torch.einsum("bk,kbchw->bchw", g.to(outs.dtype), outs)
    b = b.to(x.dtype).view(-1, 1, 1, 1)
    return (b * picked + (1 - b) * x).clamp(0, 1)


class StrengthMLP(nn.Module):
    """φ_i: noise z (B, M) → strengths (B, n) inside the primitive's intervals (sigmoid onto each (low, high)).

    By default the last layer starts at zero weight with the bias at the neutral strengths, so a fresh primitive is
    (close to) the identity for every z; ``init_strength`` > 0 starts it spread away from the identity instead.
    """

    def __init__(self, name: str, z_dim: int, width: int, range_scale: float = 1.0, init_strength: float = 0.0) -> None:
        super().__init__()
        ranges = torch.tensor(scaled_ranges(name, range_scale))
        self.register_buffer("low", ranges[:, 0])
        self.register_buffer("span", ranges[:, 1] - ranges[:, 0])
        self.net = nn.Sequential(nn.Linear(z_dim, width), nn.LeakyReLU(0.2), nn.Linear(width, width), nn.LeakyReLU(0.2))
        self.head = nn.Linear(width, len(ranges))
        start = torch.tensor(init_position(name, range_scale))
        nn.init.zeros_(self.head.weight)
        if init_strength > 0:
            # Start away from the identity: one-sided strengths (neutral at a bound) move init_strength of the way
            # in; every strength spreads over z, by a logit spread fitted on a probe batch of noise.
            one_sided = (start <= 0.05) | (start >= 0.95)
            start = torch.where(one_sided, (start - 0.5).sign() * (0.5 - init_strength) + 0.5, start).clamp(0.05, 0.95)
            with torch.no_grad():
                nn.init.zeros_(self.head.bias)
                self.head.weight.normal_()
                hidden = self.net(torch.randn(512, z_dim, generator=torch.Generator().manual_seed(0)))
                self.head.weight.mul_((2.0 * init_strength / self.head(hidden).std(0).clamp_min(1e-6))[:, None])
                offset = self.head(hidden).mean(0)  # centre the spread on the start position
        else:
            offset = torch.zeros(len(ranges))
        with torch.no_grad():
            self.head.bias.copy_(torch.logit(start) - offset)

    def forward(self, z: Tensor) -> Tensor:
        """Strengths (B, n) for noise z (B, M)."""
        return self.low + self.span * torch.sigmoid(self.head(self.net(z)))


class Augmenter(nn.Module):
    """One teacher's augmentation model (φ, p, q) over a chosen list of primitives.

    Args:
        primitives: names from ``PRIMITIVES``, in order (the order of p).
        z_dim: dimension M of the noise z.
        width: hidden width of every strength MLP.
        range_scale: factor on every strength interval around its neutral value (``scaled_ranges``).
        q_init: initial probability of applying the augmentation.
        init_strength: 0 starts every primitive at the identity; in (0, 1) starts the strengths spread away from it
            (``StrengthMLP``).
    """

    def __init__(
        self,
        primitives: tuple[str, ...],
        z_dim: int = 128,
        width: int = 128,
        range_scale: float = 1.0,
        q_init: float = 0.5,
        init_strength: float = 0.0,
    ) -> None:
        super().__init__()
        if not primitives:
            raise PrimitiveError("aug_primitives is empty; name at least one primitive")
        self.names = tuple(primitives)
        self.fns = [get_primitive(name).apply for name in self.names]
        self.z_dim = z_dim
        self.heads = nn.ModuleList(StrengthMLP(name, z_dim, width, range_scale, init_strength) for name in self.names)
        self.p_logits = nn.Parameter(torch.zeros(len(self.names)))
        self.q_logit = nn.Parameter(torch.tensor(math.log(q_init / (1 - q_init))))

    @property
    def p(self) -> Tensor:
        """Primitive-selection probabilities (K,), summing to one."""
        return torch.softmax(self.p_logits, 0)

    @property
    def q(self) -> Tensor:
        """Probability of augmenting a sample, a scalar."""
        return torch.sigmoid(self.q_logit)

    def strengths(self, z: Tensor) -> list[Tensor]:
        """Each primitive's strengths, [(B, n_i)] for noise z (B, M)."""
        return [head(z) for head in self.heads]

    def forward(
        self,
        x: Tensor,
        tau_p: float = 1.0,
        tau_q: float = 0.05,
        hard: bool = True,
        generator: torch.Generator | None = None,
        only: int | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Augment a batch.

        Without gradients and with ``hard`` selection each sample runs only its selected primitive; otherwise
        every primitive runs on the whole batch (the straight-through gradient of p needs all of them).

        Args:
            x: float images (B, C, H, W) in [0, 1].
            tau_p: Gumbel-softmax temperature of p.
            tau_q: relaxed-Bernoulli temperature of q.
            hard: straight-through one-hot selection (else soft mixtures of primitives).
            generator: all randomness (z, Gumbel and logistic noise, the primitives' own draws).
            only: apply this primitive index to every sample, always (figures); ignores p and q.

        Returns:
            Augmented images (B, C, H, W) and ``{"g": (B, K), "b": (B,)}``.
        """
        n = len(x)
        source = generator.device if generator is not None else x.device
        z = torch.randn(n, self.z_dim, generator=generator, device=source).to(x.device)
        if only is not None:
            g = torch.zeros(n, len(self.names), device=x.device).index_fill_(
                1, torch.tensor([only], device=x.device), 1
            )
            b = torch.ones(n, device=x.device)
        else:
            g = gumbel_softmax(self.p_logits, tau_p, hard, generator, rows=n)
            b = relaxed_bernoulli(self.q_logit, tau_q, n, generator=generator)
        if hard and not torch.is_grad_enabled():
            out = x.clone()
            choice = g.argmax(1)
            for i, fn in enumerate(self.fns):
                idx = (choice == i).nonzero()[:, 0]
                if len(idx):
                    out[idx] = fn(x[idx], self.heads[i](z[idx]), generator).to(x.dtype)
            bv = b.to(x.dtype).view(-1, 1, 1, 1)
            return (bv * out + (1 - bv) * x).clamp(0, 1), {"g": g, "b": b}
        outs = torch.stack([fn(x, head(z), generator).to(x.dtype) for fn, head in zip(self.fns, self.heads)])
        return compose(x, outs, g, b), {"g": g, "b": b}


class AugmenterSet(nn.Module):
    """L augmenters, one per teacher, and a learned selection r over them (Gumbel-softmax, per sample).

    Args:
        augmenters: one :class:`Augmenter` per teacher.
    """

    def __init__(self, augmenters: list[Augmenter]) -> None:
        super().__init__()
        self.augmenters = nn.ModuleList(augmenters)
        self.r_logits = nn.Parameter(torch.zeros(len(augmenters)))

    @property
    def r(self) -> Tensor:
        """Augmenter-selection probabilities (L,)."""
        return torch.softmax(self.r_logits, 0)

    def forward(
        self,
        x: Tensor,
        tau_p: float = 1.0,
        tau_q: float = 0.05,
        tau_r: float = 1.0,
        hard: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, list[Tensor], Tensor]:
        """Augment a batch with a per-sample choice of augmenter.

        Args:
            x: float images (B, C, H, W) in [0, 1].
            tau_p: Gumbel-softmax temperature of every p.
            tau_q: relaxed-Bernoulli temperature of every q.
            tau_r: Gumbel-softmax temperature of r.
            hard: straight-through one-hot selections (p and r).
            generator: all randomness.

        Returns:
            The mixed batch Σ_k h_k A_k(x) (B, C, H, W), every augmenter's own output [A_k(x) (B, C, H, W)] (empty
            without gradients, where each sample only runs its selected augmenter), and h (B, L).
        """
        n, count = len(x), len(self.augmenters)
        if count == 1:
            out, _ = self.augmenters[0](x, tau_p, tau_q, hard, generator)
            return out, [out] if torch.is_grad_enabled() else [], torch.ones(n, 1, device=x.device)
        h = gumbel_softmax(self.r_logits, tau_r, hard, generator, rows=n)
        if hard and not torch.is_grad_enabled():
            out, choice = x.clone(), h.argmax(1)
            for k, aug in enumerate(self.augmenters):
                idx = (choice == k).nonzero()[:, 0]
                if len(idx):
                    out[idx] = aug(x[idx], tau_p, tau_q, hard, generator)[0]
            return out, [], h
        outs = [aug(x, tau_p, tau_q, hard, generator)[0] for aug in self.augmenters]
        return torch.einsum("bk,kbchw->bchw", h.to(x.dtype), torch.stack(outs)), outs, h


def augmenter_payload(augmenters: AugmenterSet, settings: dict[str, Any]) -> dict[str, Any]:
    """The learned augmenters as plain tensors and containers (loadable with ``torch.load(weights_only=True)``).

    Args:
        augmenters: the trained set.
        settings: how to rebuild it: ``primitives`` (per augmenter), ``z_dim``, ``width``, ``range_scale``.
    """
    return {"settings": dict(settings), "state": {k: v.detach().cpu() for k, v in augmenters.state_dict().items()}}


def augmenter_from_payload(payload: dict[str, Any]) -> AugmenterSet:
    """Rebuild an :class:`AugmenterSet` from :func:`augmenter_payload`'s dict; :class:`AugmenterError` if it fails."""
    try:
        s = payload["settings"]
        augs = [Augmenter(tuple(names), s["z_dim"], s["width"], s["range_scale"]) for names in s["primitives"]]
        model = AugmenterSet(augs)
        model.load_state_dict(payload["state"])
    except (KeyError, TypeError, RuntimeError, PrimitiveError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AugmenterError(f"saved augmenter does not fit: {first}") from None
    return model


def load_augmenter(path: str) -> AugmenterSet:
    """Load ``augmenter.pt`` (or a folder holding it) written from :func:`augmenter_payload`.

    Args:
        path: a ``.pt`` file or a folder containing ``augmenter.pt``.
    """
    import os

    file = os.path.join(path, "augmenter.pt") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise AugmenterError(f"augmenter_from={path!r}: no such file (expected augmenter.pt or a folder holding it)")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user error
        raise AugmenterError(f"augmenter_from={path!r} is not a readable augmenter: {type(error).__name__}") from None
    if not isinstance(payload, dict):
        raise AugmenterError(f"augmenter_from={path!r} does not hold an augmenter payload")
    return augmenter_from_payload(payload)
