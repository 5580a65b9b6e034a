"""Orbit models ρ_g^(l): thin modules that own a learned group representation and apply it with :mod:`.core`.

- :class:`ConvOrbit`: one circular filter per group element (length k for signals, k x k for images) and, per
  later layer, a learned affine projection of that filter (paper Fig. 4); the logits get a projection to a
  K-tap filter acting on the K logits as a circular 1-D signal.
- :class:`AffineOrbit`: one 3-D affine per layer and group element acting on (depth, height, width), like a
  spatial transformer; depth is the channel axis, or the rotation axis of p4 features.

Both take ``forward(x, g, layer, repeats)``: activations of layer ``layer`` (0 = input, 1..m = matched hidden
layers, m + 1 = logits), group elements ``g`` ``(B,)`` one per sample, or ``(n,)`` one per block of ``B / n``
consecutive samples (:func:`~.core.sample_balanced_elements`), and return ``ρ_g^(layer) x``.
``inverse[g]`` is the explicit group inverse used by L_inv.
"""

from __future__ import annotations

import torch
from torch import nn

from autoinv.methods.orbit import core

__all__ = ["ConvOrbit", "AffineOrbit"]

CIRCULANT_MIN_ROWS = 4
"""Fewest signal rows (samples x channels) per group element for which :class:`ConvOrbit` acts on a short 1-D
signal by circulant matmul instead of the FFT."""


class ConvOrbit(nn.Module):
    """Group representation by learned circular filters, factorised over layers.

    Args:
        group_size: G, the number of group elements (one filter each).
        filter_size: k, the filter length (1-D) or side (2-D).
        dims: 1 for signals, 2 for images.
        num_hidden: m, the number of matched hidden layers (each gets a k^d x k^d affine projection).
        num_classes: K, the logits' length (the last projection maps a filter to K taps).
        inverse: Group inverse table ``(G,)``; defaults to the cyclic group's ``-g mod G``.
        generator: Draws the initial filters, N(0, 1/k^d): a random filter then keeps a signal's norm on average
            (the reference's N(0, 1) multiplies it by about sqrt(k^d), which slows learning down).
    """

    def __init__(
        self,
        group_size: int,
        filter_size: int,
        dims: int,
        num_hidden: int,
        num_classes: int,
        inverse: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.dims, self.filter_size = dims, filter_size
        taps = filter_size**dims
        self.filters = nn.Parameter(torch.randn(group_size, taps, generator=generator) / taps**0.5)
        self.projections = nn.ModuleList(
            [nn.Linear(taps, taps) for _ in range(num_hidden)] + [nn.Linear(taps, num_classes)]
        )
        with torch.no_grad():
            # Hidden projections start at the identity: "layer l is acted on like the input" is the neutral guess
            # for stride-1 convolutional teachers; the equivariance loss moves them where the teacher needs.
            for proj in self.projections[:-1]:
                proj.weight.copy_(torch.eye(taps))
                proj.bias.zero_()
        self.register_buffer("inverse", core.cyclic_inverse(group_size) if inverse is None else inverse.clone())
        self._frozen_circulants: dict[tuple, torch.Tensor] = {}

    @property
    def group_size(self) -> int:
        """G."""
        return len(self.filters)

    def filter(self, g: torch.Tensor, layer: int = 0) -> torch.Tensor:
        """Filters of elements ``g`` ``(B,)`` at ``layer``: ``(B, k)``/``(B, k, k)``, or ``(B, K)`` for the logits."""
        f = self.filters[g]  # (B, k^d)
        if layer == 0:
            return f.view(len(g), *(self.filter_size,) * self.dims)
        f = self.projections[layer - 1](f)
        if layer == len(self.projections):
            return f  # logits: a 1-D filter with K taps
        return f.view(len(g), *(self.filter_size,) * self.dims)

    def group_params(self) -> torch.Tensor:
        """The input-layer representations of all elements ``(G, k^d)``, compared by Eq. 3."""
        return self.filters

    def circulants(self, layer: int, length: int, repeats: int = 1) -> torch.Tensor:
        """Circulant matrices of every element's 1-D filter at ``layer``, applied ``repeats`` times: ``(G, L, L)``.

        While nothing can differentiate them (ρ frozen for the student, or no grad mode), they are kept and reused
        until a parameter changes: built afresh on every call they took ~30 % of an Orbit student step on an H100
        (G = 40, four layers: 39 of the step's 120 small kernel-launching ops). Parameters' version counters, which
        every in-place change (optimizer step, ``load_state_dict``) increments, tell when kept matrices are stale.
        """
        params, device = (self.filters, *self.projections.parameters()), self.filters.device
        frozen = not (torch.is_grad_enabled() and any(p.requires_grad for p in params))
        # Under autocast the projections give bfloat16 filters, so matrices built there are kept apart.
        versions, autocast = tuple(p._version for p in params), torch.is_autocast_enabled(device.type)
        key = (versions, device, autocast, layer, length, repeats)
        if frozen and key in self._frozen_circulants:
            return self._frozen_circulants[key]
        every = torch.arange(self.group_size, device=device)
        matrices = core.circulant(self.filter(every, layer).reshape(self.group_size, -1), length)
        if repeats != 1:
            matrices = torch.linalg.matrix_power(matrices, repeats)
        if frozen:
            kept = {k: v for k, v in self._frozen_circulants.items() if k[:2] == key[:2]}  # drop stale ones
            self._frozen_circulants = {**kept, key: matrices}
        return matrices

    def forward(self, x: torch.Tensor, g: torch.Tensor, layer: int = 0, repeats: int = 1) -> torch.Tensor:
        """``ρ_g^(layer) x`` for activations ``x`` ``(B, ...)``, elements ``g`` ``(B,)`` or ``(n,)``; shape of ``x``."""
        dims = 1 if layer == len(self.projections) else self.dims  # the logits are a 1-D signal
        # Axes before the last ``dims`` ones (channels; p4 rotations) all get the same filter.
        flat = x.reshape(len(x), -1, *x.shape[x.dim() - dims :])
        rows = core.block_size(g, len(x)) * flat.shape[1]  # signal rows that share one element's matrix
        if dims == 1 and flat.shape[-1] <= core.CIRCULANT_MAX_LENGTH and rows >= CIRCULANT_MIN_ROWS:
            # Short signals: one circulant matrix per group element, picked for each of g, one batched matmul. The
            # (L, L) matrices pay off once several rows share each: measured on CPU at L = 40, 15 channels per
            # sample 1.5x faster than the FFT and 1 channel 2.5x slower; in block form (25 samples per element at
            # batch 1000) also the one-channel input and the logits: 0.4 vs 1.1 ms and 0.2 vs 0.45 ms.
            matrices = self.circulants(layer, flat.shape[-1], repeats)[g].to(flat.dtype)  # (n, L, L)
            # Block form: the samples of one block share a matrix, so the blocks stack into one (n, B/n · C, L)
            # batch; no per-sample matrices (their gather and the transposed bmm in backward cost ~3x more on CPU).
            return torch.bmm(flat.reshape(len(g), rows, flat.shape[-1]), matrices).reshape(x.shape)
        return core.circular_conv(flat, self.filter(core.per_sample(g, len(x)), layer), repeats).reshape(x.shape)


class AffineOrbit(nn.Module):
    """Group representation by one learned 3-D affine per layer and group element.

    Input and hidden-layer affines start at random in-plane affines within a fair range (supplement A.3.2; the
    reference recipe left them at the identity, where Eq. 3 cannot separate the elements); the logits' affines
    start at the identity, because both teachers used here end in invariant pooling.

    Args:
        group_size: G.
        num_hidden: m, the number of matched hidden layers.
        inverse: Group inverse table ``(G,)``; defaults to the cyclic group's.
        generator: Draws the initial affines.
    """

    def __init__(
        self,
        group_size: int,
        num_hidden: int,
        inverse: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        layers = [core.random_affines(group_size, generator) for _ in range(num_hidden + 1)]
        layers.append(core.identity_affines(group_size))
        self.theta = nn.Parameter(torch.stack(layers))  # (m + 2, G, 3, 4)
        self.register_buffer("inverse", core.cyclic_inverse(group_size) if inverse is None else inverse.clone())

    @property
    def group_size(self) -> int:
        """G."""
        return self.theta.shape[1]

    def group_params(self) -> torch.Tensor:
        """The input-layer affines of all elements, flattened ``(G, 12)``, compared by Eq. 3."""
        return self.theta[0].flatten(1)

    def forward(self, x: torch.Tensor, g: torch.Tensor, layer: int = 0, repeats: int = 1) -> torch.Tensor:
        """``ρ_g^(layer) x`` for activations ``x`` ``(B, ...)``, elements ``g`` ``(B,)`` or ``(n,)``; shape of ``x``."""
        v = core.warp_volume(core.to_volume(x), self.theta[layer, core.per_sample(g, len(x))], repeats)
        return core.from_volume(v, x)
