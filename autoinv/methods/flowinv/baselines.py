"""The two learned-invariance baselines FlowInv is compared with, on its parameterisation and training loop.

- **Augerino** (Benton et al., 2020): one uniform width per Lie-algebra coefficient, shared by all inputs,
  ``w ~ U(−width/2, width/2)``, regularised by ``−reg · ‖width‖₂`` (its original regulariser).
- **InstaAug** (Miao et al., 2023): input-conditional mean-field ranges, ``w = loc(x) + width(x) · U(−1, 1)`` from a
  pose CNN, with an entropy term whose weight a window scheduler moves (×1.2 or ÷1.2 when the entropy stays out of
  ``[min, max]``).

Both expose the augmenter interface of :class:`~autoinv.methods.flowinv.core.FlowAugmenter`: ``sample(x, n,
generator) -> (w, log q)``, ``penalty(log q)``, ``aug_type``, ``trans_scale``, ``arch``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from autoinv.methods.flowinv.core import AUG_SLOTS, PoseNet

__all__ = ["AugerinoAugmenter", "InstaAugmenter", "WindowScheduler"]


def _inverse_softplus(value: float) -> float:
    return value + math.log(-math.expm1(-value))


class AugerinoAugmenter(nn.Module):
    """One learned width per coefficient, shared by every input.

    Args:
        aug_type: a key of ``AUG_SLOTS``.
        init_width: initial full width of every coefficient's uniform (in units of w; 1 = ±90° for rotation).
        trans_scale: translation per unit of w.
    """

    def __init__(self, aug_type: str = "rotate_translate", init_width: float = 0.1, trans_scale: float = 0.1) -> None:
        super().__init__()
        self.arch = {"aug_type": aug_type, "init_width": init_width, "trans_scale": trans_scale}
        self.aug_type, self.trans_scale = aug_type, trans_scale
        self.dim = len(AUG_SLOTS[aug_type])
        self.raw_width = nn.Parameter(torch.full((self.dim,), _inverse_softplus(init_width)))

    @property
    def width(self) -> Tensor:
        """Full widths (d,), positive."""
        return F.softplus(self.raw_width)

    def sample(self, x: Tensor, n: int = 1, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Samples w (n·B, d) copy-major and log q (n·B,) for images x (B, C, H, W); one law for every x."""
        u = torch.rand((n * len(x), self.dim), generator=generator, device=x.device)
        width = self.width
        return (u - 0.5) * width, (-torch.log(width).sum()).expand(n * len(x))

    def penalty(self, log_q: Tensor) -> Tensor:
        """Augerino's regulariser: −‖width‖₂ (λ multiplies it)."""
        return -self.width.norm()


class InstaAugmenter(nn.Module):
    """Input-conditional ranges: ``w = loc(x) + width(x) · U(−1, 1)``, loc in [−1, 1], width = softplus.

    Args:
        aug_type: a key of ``AUG_SLOTS``.
        in_channels: image channels.
        pose_width: width c of the pose CNN.
        pose_dim: embedding size.
        init_width: initial half-width (units of w).
        trans_scale: translation per unit of w.
    """

    def __init__(
        self,
        aug_type: str = "rotate_translate",
        in_channels: int = 3,
        pose_width: int = 16,
        pose_dim: int = 32,
        init_width: float = 0.1,
        trans_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.arch = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        self.aug_type, self.trans_scale = aug_type, trans_scale
        self.dim = d = len(AUG_SLOTS[aug_type])
        self.pose = PoseNet(in_channels, pose_width, pose_dim)
        self.head = nn.Linear(pose_dim, 2 * d)
        with torch.no_grad():
            self.head.weight.mul_(0.01)
            self.head.bias.zero_()
            self.head.bias[d:] = _inverse_softplus(init_width)

    def ranges(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Images (B, C, H, W) in [0, 1] → centres (B, d) and half-widths (B, d)."""
        out = self.head(self.pose((x - 0.5) / 0.25))
        loc, raw = out.chunk(2, dim=1)
        return loc.clamp(-1.0, 1.0), F.softplus(raw) + 1e-6

    def sample(self, x: Tensor, n: int = 1, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Samples w (n·B, d) copy-major and log q (n·B,): the log-density of the box, −Σ log(2 · half-width)."""
        with torch.autocast(x.device.type, enabled=False):
            loc, half = self.ranges(x.float())
            loc, half = loc.repeat(n, 1), half.repeat(n, 1)
            u = torch.rand(loc.shape, generator=generator, device=x.device)
            return loc + (2 * u - 1) * half, -torch.log(2 * half).sum(1)

    def penalty(self, log_q: Tensor) -> Tensor:
        """The mean log q, as FlowInv's."""
        return log_q.mean()


class WindowScheduler:
    """InstaAug's entropy-window scheduler for the entropy weight λ, checked once per epoch.

    When the epoch's mean entropy has been below ``low`` on two consecutive checks without rising by at least
    ``tolerance`` since the previous check, λ is multiplied by ``factor`` (a stronger push to widen); above
    ``high`` likewise, λ is divided by it. At most ``max_steps`` changes in all.
    """

    def __init__(
        self,
        lam: float = 0.1,
        low: float = 0.0,
        high: float = 3.14,
        factor: float = 1.2,
        max_steps: int = 50,
        tolerance: float = 0.005,
    ) -> None:
        self.lam, self.low, self.high, self.factor = lam, low, high, factor
        self.max_steps, self.tolerance = max_steps, tolerance
        self.steps, self.below, self.above = 0, 0, 0
        self.last: float | None = None
        self._sum, self._count = 0.0, 0
        self.entropy = float("nan")

    def step(self, entropy: float) -> None:
        """Accumulate one training step's entropy (nats)."""
        self._sum, self._count = self._sum + entropy, self._count + 1
        self.entropy = entropy

    def end_epoch(self) -> None:
        """The per-epoch check."""
        if not self._count:
            return
        mean, self._sum, self._count = self._sum / self._count, 0.0, 0
        moved_up = self.last is not None and mean - self.last >= self.tolerance
        moved_down = self.last is not None and self.last - mean >= self.tolerance
        self.below = self.below + 1 if mean < self.low and not moved_up else 0
        self.above = self.above + 1 if mean > self.high and not moved_down else 0
        if self.steps < self.max_steps and self.below >= 2:
            self.lam, self.steps, self.below = self.lam * self.factor, self.steps + 1, 0
        elif self.steps < self.max_steps and self.above >= 2:
            self.lam, self.steps, self.above = self.lam / self.factor, self.steps + 1, 0
        self.last = mean

    def state(self) -> dict[str, Any]:
        return {"lam": self.lam, "steps": self.steps, "below": self.below, "above": self.above, "last": self.last}

    def load(self, state: dict[str, Any]) -> None:
        self.lam, self.steps, self.below, self.above, self.last = (
            state["lam"],
            state["steps"],
            state["below"],
            state["above"],
            state["last"],
        )
