"""Orbit transfer's math as pure functions (Nix et al., 2022, https://arxiv.org/abs/2111.00156, Section 5).

A group element g acts on layer l's activations through ρ_g^(l). These functions apply a given representation
(a per-sample circular filter, or a per-sample 3-D affine), compute the four objectives that learn ρ from a frozen
teacher Φ (Eq. 2-5) and the transfer term Ω (Eq. 6), and fix the layout in which flat activations are acted on.

Layer indices: 0 is the input, 1..m the matched hidden layers, m + 1 the logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = [
    "circular_conv",
    "circulant",
    "identity_filter",
    "warp_volume",
    "to_volume",
    "from_volume",
    "random_affines",
    "identity_affines",
    "to_layout",
    "cyclic_inverse",
    "grid_inverse",
    "sample_elements",
    "sample_balanced_elements",
    "per_sample",
    "block_size",
    "sample_other_elements",
    "equivariance_loss",
    "group_loss_params",
    "group_loss_inputs",
    "inverse_loss",
]


# ---------------------------------------------------------------------------------------------------------------------
# Applying a representation


CIRCULANT_MAX_LENGTH = 128
"""Longest 1-D signal that ``ConvOrbit`` acts on by circulant matmul (O(L²) per channel) instead of the FFT."""


def circulant(filters: torch.Tensor, length: int) -> torch.Tensor:
    """Circulant matrices M, one per filter, with ``x @ M`` = the circular cross-correlation of ``x`` with the filter.

    Tap t reads offset ``s = t − c`` (c the centre tap), wrapped mod L; taps that wrap onto one offset add up, as in
    :func:`circular_conv`. Output l reads input ``j = l + s``, so ``M[j, l]`` is the filter's weight at offset
    ``(j − l) mod L``.

    Args:
        filters: ``(G, k)``, e.g. one filter per group element.
        length: L, the signal length.

    Returns:
        ``(G, L, L)``, differentiable in ``filters``.
    """
    k, positions = filters.shape[1], torch.arange(length, device=filters.device)
    offsets = (torch.arange(k, device=filters.device) - (k - 1) // 2) % length
    by_offset = filters.new_zeros(len(filters), length).index_add(1, offsets, filters)  # (G, L)
    # Row l of Mᵀ is by_offset rotated by l: a window of by_offset repeated twice (copied row by row, no scatter).
    windows = torch.cat([by_offset, by_offset], 1).unfold(1, length, 1)  # (G, L + 1, L), windows[i] = [i, i + L)
    return windows[:, length - positions].transpose(1, 2)


def circular_conv(x: torch.Tensor, filters: torch.Tensor, repeats: int = 1) -> torch.Tensor:
    """Convolve every channel of each sample circularly with that sample's filter, ``repeats`` times.

    The filter is a cross-correlation kernel whose centre tap ``c = (k - 1) // 2`` is "no shift": a one-hot filter
    at index ``c + t`` moves the signal by ``-t`` positions (``torch.roll(x, -t)``), exactly what ``F.conv1d`` with
    circular padding ``(c, k - 1 - c)`` computes. It runs in the Fourier domain, where repeating a filter n times
    (paper Section 5.1: small filters reaching larger transforms) is the n-th power of its spectrum; that is far
    faster on CPUs than a grouped convolution with one group per sample and channel. (For short signals,
    :class:`~autoinv.methods.orbit.rho.ConvOrbit` uses :func:`circulant` matrices instead.)

    Args:
        x: Activations ``(B, C, L)`` for 1-D filters or ``(B, C, H, W)`` for 2-D filters.
        filters: One filter per sample, ``(B, k)`` or ``(B, k, k)``.
        repeats: How many times to apply the filter.

    Returns:
        Same shape and dtype as ``x``.
    """
    dims = filters.dim() - 1
    spatial = tuple(x.shape[2:])
    if len(spatial) != dims:
        raise ValueError(
            f"{dims}-D filters need activations (B, C, {'L' if dims == 1 else 'H, W'}), got {tuple(x.shape)}"
        )
    axes = tuple(range(-dims, 0))
    kernel = filters.float()
    for axis, size in zip(axes, spatial):
        k = kernel.shape[axis]
        where = (torch.arange(k, device=x.device) - (k - 1) // 2) % size  # tap t sits at offset t - c, wrapped
        shape = list(kernel.shape)
        shape[axis] = size
        kernel = kernel.new_zeros(shape).index_add_(kernel.dim() + axis, where, kernel)
    spectrum = torch.fft.rfftn(kernel, dim=axes).conj() ** repeats  # (B, *freq): correlation = conjugate product
    out = torch.fft.irfftn(torch.fft.rfftn(x.float(), dim=axes) * spectrum[:, None], s=spatial, dim=axes)
    return out.to(x.dtype)


def identity_filter(size: int, dims: int = 1) -> torch.Tensor:
    """The filter that leaves a signal unchanged under :func:`circular_conv`: one-hot at the centre, ``(k,)*dims``."""
    f = torch.zeros((size,) * dims)
    f[((size - 1) // 2,) * dims] = 1.0
    return f


def to_volume(x: torch.Tensor) -> torch.Tensor:
    """View activations as a 3-D volume ``(B, C', D, H, W)`` for an affine over (depth, height, width).

    ``(B, K)`` logits → ``(B, 1, 1, 1, K)``; ``(B, C, L)`` → ``(B, 1, 1, C, L)``; ``(B, C, H, W)`` →
    ``(B, 1, C, H, W)`` (channels become depth, so an affine can act across channels); ``(B, C, R, H, W)`` p4
    features stay as they are (depth = the rotation axis).
    """
    if x.dim() == 2:
        return x[:, None, None, None, :]
    if x.dim() == 3:
        return x[:, None, None]
    if x.dim() == 4:
        return x[:, None]
    if x.dim() == 5:
        return x
    raise ValueError(f"cannot view activations of shape {tuple(x.shape)} as a volume")


def from_volume(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Undo :func:`to_volume` for activations shaped like ``like``."""
    return v.reshape(like.shape)


def warp_volume(v: torch.Tensor, theta: torch.Tensor, repeats: int = 1) -> torch.Tensor:
    """Resample volumes with per-sample 3-D affines (spatial-transformer style), ``repeats`` times.

    Args:
        v: Volumes ``(B, C, D, H, W)``.
        theta: Affines ``(B, 3, 4)`` mapping output to input coordinates in ``[-1, 1]`` (x, y, z order, as
            ``F.affine_grid``); the identity is ``[I | 0]``.
        repeats: How many times to apply the warp.

    Returns:
        ``(B, C, D, H, W)``; points sampled outside the volume read zero.
    """
    grid = F.affine_grid(theta.to(v.dtype), list(v.shape), align_corners=False)
    for _ in range(repeats):
        v = F.grid_sample(v, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return v


def identity_affines(n: int) -> torch.Tensor:
    """``n`` identity affines ``(n, 3, 4)``."""
    return torch.eye(3, 4).expand(n, 3, 4).clone()


def random_affines(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random in-plane affines "within a fair range" (paper supplement A.3.2), embedded in 3-D, ``(n, 3, 4)``.

    Rotation uniform in [0°, 360°), translation uniform in [-0.1, 0.1] of the half-width along x and y, scale uniform
    in [0.8, 1.2] per axis, shear angle uniform in [0°, 15°]. The depth row stays the identity: a random tilt out of
    the image plane would move a one-slice input out of its volume.
    """

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, generator=generator)

    angle = uniform(0.0, 2 * math.pi)
    shear = torch.tan(torch.deg2rad(uniform(0.0, 15.0)))
    sx, sy = uniform(0.8, 1.2), uniform(0.8, 1.2)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (n, 2, 2)
    shear_m = torch.eye(2).repeat(n, 1, 1)
    shear_m[:, 0, 1] = shear
    scale = torch.diag_embed(torch.stack([sx, sy], -1))
    theta = identity_affines(n)
    theta[:, :2, :2] = rotation @ shear_m @ scale
    theta[:, 0, 3], theta[:, 1, 3] = uniform(-0.1, 0.1), uniform(-0.1, 0.1)
    return theta


# ---------------------------------------------------------------------------------------------------------------------
# Layout of flat activations


def to_layout(h: torch.Tensor, teacher_shape: tuple[int, ...]) -> torch.Tensor:
    """Reshape a student's activations to the layout that the orbit model acts on for this layer.

    The rule, in order:

    1. Activations that already have spatial axes are returned unchanged.
    2. Flat activations ``(B, N)`` with as many units as the teacher's layer (``N == prod(teacher_shape)``) take the
       teacher's layout ``(B, *teacher_shape)``, channel-major: unit ``n`` is channel ``n // L``, position
       ``n % L``. This is how the MNIST-1D max-pool student reads its own ``(K, L)`` output, so the action on
       the student is the teacher's per-channel circular shift.
    3. Otherwise, for a 1-D teacher ``(C, L)``: ``(B, N // L, L)`` when ``L`` divides ``N``.
    4. Otherwise, for a spatial 2-D teacher: ``(B, c, s, s)`` with the smallest channel count ``c`` that makes
       ``N / c`` a perfect square (512 → (2, 16, 16), 128 → (2, 8, 8), 32 → (2, 4, 4)).

    Args:
        h: Student activations ``(B, N)`` or ``(B, C, ...)``.
        teacher_shape: Per-sample shape of the matched teacher layer, e.g. ``(15, 40)`` or ``(128, 26, 26)``.

    Returns:
        The activations in the chosen layout.

    Raises:
        ValueError: no rule applies.
    """
    if h.dim() > 2:
        return h
    b, n = h.shape
    if n == math.prod(teacher_shape):
        return h.reshape(b, *teacher_shape)
    if len(teacher_shape) == 2 and n % teacher_shape[1] == 0:
        return h.reshape(b, n // teacher_shape[1], teacher_shape[1])
    if len(teacher_shape) >= 3:
        for c in range(1, n + 1):
            side = math.isqrt(n // c)
            if n % c == 0 and side * side == n // c:
                return h.reshape(b, c, side, side)
    raise ValueError(f"no layout rule maps {n} flat units onto a teacher layer of shape {tuple(teacher_shape)}")


# ---------------------------------------------------------------------------------------------------------------------
# Group structure


def cyclic_inverse(group_size: int) -> torch.Tensor:
    """Inverse table of the cyclic group Z_G: ``inverse[g] = -g mod G`` (1-D shifts, rotations), ``(G,)``."""
    return (-torch.arange(group_size)) % group_size


def grid_inverse(group_size: int) -> torch.Tensor:
    """Inverse table of Z_m x Z_m with ``g = m * i + j``: ``(i, j) → (-i mod m, -j mod m)`` (2-D shifts), ``(G,)``.

    Raises:
        ValueError: ``group_size`` is not a perfect square.
    """
    m = math.isqrt(group_size)
    if m * m != group_size:
        raise ValueError(f"a grid group needs a square group size, got {group_size}")
    i, j = torch.arange(group_size) // m, torch.arange(group_size) % m
    return ((-i) % m) * m + (-j) % m


def sample_elements(n: int, group_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` group elements drawn uniformly, ``(n,)`` int64."""
    return torch.randint(group_size, (n,), generator=generator)


def sample_balanced_elements(n: int, group_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Group elements for a batch of ``n`` in block form ``(m,)``: sample ``i`` gets element ``g[i // (n / m)]``.

    ``m`` is the smallest divisor of ``n`` that is at least ``G`` (``n`` itself when ``n < G``), so each element
    acts on a block of ``n / m`` consecutive samples of the (already shuffled) batch: at batch 1000 and G = 40, 40
    blocks of 25; at 250, 50 blocks of 5. The elements are drawn as concatenated random permutations of the group,
    so every element is used equally often, give or take one (stratified, not i.i.d.). The orbit models apply ρ to
    a block form as one matmul per block instead of gathering one matrix per sample.
    """
    blocks = next(m for m in range(min(group_size, n), n + 1) if n % m == 0)
    rounds = -(-blocks // group_size)
    return torch.cat([torch.randperm(group_size, generator=generator) for _ in range(rounds)])[:blocks]


def per_sample(g: torch.Tensor, batch: int) -> torch.Tensor:
    """Expand elements in block form ``(n,)`` to one per sample ``(batch,)``; ``n == batch`` is returned as is.

    Raises:
        ValueError: ``n`` does not divide ``batch``.
    """
    return g if len(g) == batch else g.repeat_interleave(block_size(g, batch))


def block_size(g: torch.Tensor, batch: int) -> int:
    """How many consecutive samples each of the elements ``g`` ``(n,)`` acts on in a batch of ``batch``.

    Raises:
        ValueError: ``n`` does not divide ``batch``.
    """
    if len(g) == 0 or batch % len(g):
        raise ValueError(f"{len(g)} group elements cannot act on a batch of {batch} in equal blocks")
    return batch // len(g)


def sample_other_elements(g: torch.Tensor, group_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """For each element of ``g`` a uniformly drawn *different* element, ``(n,)``."""
    return (g + torch.randint(1, group_size, g.shape, generator=generator)) % group_size


# ---------------------------------------------------------------------------------------------------------------------
# Objectives


def equivariance_loss(transformed: list[torch.Tensor], expected: list[torch.Tensor]) -> torch.Tensor:
    """Eq. 2 and Eq. 6: ``‖f(ρ_g x) − ρ_g f(x)‖² / H`` over all given layers, averaged over the batch.

    Args:
        transformed: Per layer, activations of the transformed input ``f^(l)(ρ_g^(0) x)``, ``(B, ...)``.
        expected: Per layer, the transformed activations ``ρ_g^(l) f^(l)(x)``, same shapes.

    Returns:
        Scalar: squared error summed over the layers' H units in total, divided by H, mean over B.
    """
    # Summing per layer equals the MSE of the concatenated features without copying them into one tensor.
    # mse_loss fuses the difference, square and sum (measured: ~2 ms a step less than autograd of the three ops).
    total = sum(F.mse_loss(t, e, reduction="sum") for t, e in zip(transformed, expected))
    units = sum(t[0].numel() for t in transformed)
    return total / (len(transformed[0]) * units)


def group_loss_params(params: torch.Tensor) -> torch.Tensor:
    """Eq. 3: mean absolute cosine similarity between the representations of distinct group elements.

    Args:
        params: One flattened representation per element ``(G, P)`` (filters, or affines).

    Returns:
        Scalar in [0, 1]; 0 when all representations are mutually orthogonal.
    """
    unit = F.normalize(params.flatten(1), dim=1)
    cos = unit @ unit.T  # (G, G)
    g = len(params)
    return (cos.abs().sum() - cos.diagonal().abs().sum()) / (g * (g - 1))


def group_loss_inputs(rho_g_x: torch.Tensor, rho_h_x: torch.Tensor) -> torch.Tensor:
    """Eq. 3's transformed-input variant: mean ``|cos(ρ_g x, ρ_h x)|`` for pairs ``g ≠ h``, over the batch."""
    return F.cosine_similarity(rho_g_x.flatten(1), rho_h_x.flatten(1), dim=1, eps=1e-8).abs().mean()


def inverse_loss(x: torch.Tensor, back: torch.Tensor) -> torch.Tensor:
    """Eq. 4: ``‖ρ_{g⁻¹} ρ_g x − x‖²``, divided by the number of units like Eq. 2, mean over the batch."""
    return F.mse_loss(back, x)
