"""TransformMix's core: the mixing module (f_s, f_m, τ), the sampling of partners and λ, and the mix itself.

TransformMix ("TransformMix: Learning Transformation and Mixing Strategies for Sample-Mixing Data Augmentation")
mixes k images as x' = Σ_i m_i ⊙ warp(x_i, θ_i) with labels y' = Σ_i λ_i y_i. A spatial transformer
f_s predicts one affine θ_i per image from the images' CAMs, the mixing weights λ and a noise map; a mask network
f_m predicts per-pixel masks m = softmax(o / τ) over the k images from the warped CAMs and λ, with a learnable
temperature τ.

Saliency (CAMs and their replay through flips and crops) lives in ``saliency.py``. The split follows the project's
"generate params, then apply them" rule: :class:`Mixer` generates ``(θ, masks)`` from saliency alone; :func:`mix`
applies them to the images with ``autoinv.augment.warp``. Everything random (partners, λ, noise) is an argument so
tests can pin it.

Example:
    >>> mixer = Mixer(k=2, size=(32, 32))
    >>> idx = partner_indices(8, 2, torch.Generator().manual_seed(0))              # (2, 8)
    >>> lam = sample_lambdas(8, 2, 1.0, np.random.default_rng(0))                # (8, 2)
    >>> x_mix, y_mix = transformmix_batch(mixer, x, cams, y_onehot, idx, lam)    # (8, C, H, W), (8, K)
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autoinv import augment

__all__ = [
    "MixerError",
    "MixParams",
    "SpatialTransformer",
    "MaskNet",
    "Mixer",
    "partner_indices",
    "sample_lambdas",
    "gather_partners",
    "mask_softmax",
    "warp_stack",
    "mix",
    "mix_labels",
    "transformmix_batch",
    "mixer_payload",
    "mixer_from_payload",
    "load_mixer",
]

MIXER_FORMAT = "autoinv.transformmix.mixer/1"
"""Tag stored in a saved mixer so :func:`load_mixer` can tell a mixer file from any other ``.pt`` file."""

NOISE_GRID = 4
"""Side of the low-resolution noise map z (upsampled to the mixer's size): smooth noise that survives the STN's
pooling, where per-pixel white noise would average out and add little diversity."""


class MixerError(ValueError):
    """A user-facing mixer problem: a missing, unreadable or incompatible saved mixer."""


class MixParams(NamedTuple):
    """What the mixing module generates for a batch of k-tuples."""

    theta: torch.Tensor
    """Affine per image, (B, k, 2, 3), in ``affine_grid``'s normalised coordinates."""
    masks: torch.Tensor
    """Mixing masks (B, k, H, W), non-negative, summing to one over k at every pixel."""


# ---------------------------------------------------------------------------------------------------------------------
# Sampling: partners and mixing weights


def partner_indices(batch_size: int, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Who mixes with whom: row 0 is the batch itself, rows 1..k-1 are random permutations of it.

    Args:
        batch_size: B.
        k: Images per mix.
        generator: CPU generator for the permutations.

    Returns:
        Long tensor (k, B) on the CPU.
    """
    rows = [torch.arange(batch_size)] + [torch.randperm(batch_size, generator=generator) for _ in range(k - 1)]
    return torch.stack(rows)


def sample_lambdas(batch_size: int, k: int, alpha: float, rng: np.random.Generator | None = None) -> torch.Tensor:
    """Mixing weights per sample: Dirichlet(α, ..., α) over k images, i.e. (λ, 1 − λ) with λ ~ Beta(α, α) for k = 2.

    Args:
        batch_size: B.
        k: Images per mix.
        alpha: Concentration α > 0.
        rng: NumPy generator (torch's Dirichlet cannot take a generator).

    Returns:
        float32 (B, k) on the CPU, rows summing to one.
    """
    rng = rng if rng is not None else np.random.default_rng()
    return torch.from_numpy(rng.dirichlet([alpha] * k, size=batch_size)).float()


def gather_partners(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Stack each sample's k mixing partners: x (B, ...) and idx (k, B) → (B, k, ...)."""
    return x[idx.to(x.device)].transpose(0, 1)


# ---------------------------------------------------------------------------------------------------------------------
# Applying parameters: masks, warps, the mix


def mask_softmax(logits: torch.Tensor, tau: torch.Tensor | float, lam: torch.Tensor | None = None) -> torch.Tensor:
    """Masks from the mask network's output: softmax(o / τ + log λ) over the k images.

    Args:
        logits: o, (B, k, H, W).
        tau: Temperature τ > 0; lower gives sharper boundaries between images.
        lam: Optional mixing weights (B, k). Their log is a fixed offset, so o = 0 gives masks equal to λ (Mixup);
            ``None`` gives the plain softmax(o / τ).

    Returns:
        (B, k, H, W), summing to one over dim 1.
    """
    scores = logits / tau
    if lam is not None:
        scores = scores + lam.to(scores).clamp_min(1e-6).log()[:, :, None, None]
    return torch.softmax(scores, dim=1)


def warp_stack(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Warp each of k stacked images with its own affine.

    Args:
        x: (B, k, C, H, W) or maps (B, k, H, W).
        theta: (B, k, 2, 3).

    Returns:
        Same shape as ``x``.
    """
    maps = x.dim() == 4
    stacked = x[:, :, None] if maps else x
    b, k = stacked.shape[:2]
    out = augment.warp(stacked.flatten(0, 1), theta.flatten(0, 1).to(stacked.dtype)).unflatten(0, (b, k))
    return out[:, :, 0] if maps else out


def mix(xs: torch.Tensor, theta: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Mix k images through their affines and masks: x' = Σ_i m_i ⊙ warp(x_i, θ_i).

    Args:
        xs: The k images of every mix, (B, k, C, H, W), float in [0, 1].
        theta: Affines (B, k, 2, 3).
        masks: (B, k, H, W), summing to one over k.

    Returns:
        Mixed images (B, C, H, W).
    """
    return (masks[:, :, None] * warp_stack(xs, theta)).sum(1)


def mix_labels(ys: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Mix labels, y' = Σ_i λ_i y_i: ys (B, k, K) one-hot or soft labels, lam (B, k) → (B, K), rows summing to one."""
    return (lam[:, :, None].to(ys.dtype) * ys).sum(1)


# ---------------------------------------------------------------------------------------------------------------------
# The mixing module: thin modules that own parameters and generate (θ, masks)


def _identity_affines(k: int) -> torch.Tensor:
    return torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).repeat(k)


class SpatialTransformer(nn.Module):
    """f_s: [k CAMs, k − 1 λ maps, noise map] (B, 2k, H, W) → one affine per image (B, k, 2, 3).

    The localisation net follows Jaderberg et al. (2015) (two conv + max-pool stages, two linear layers), with an
    adaptive pool so any image size works and a last layer widened to 6k outputs. That layer starts at zero weight
    and identity bias, so an untrained mixer does not move the images.

    Args:
        k: Images per mix.
    """

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.features = nn.Sequential(
            nn.Conv2d(2 * k, 8, kernel_size=7, padding=3),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.Conv2d(8, 10, kernel_size=5, padding=2),
            nn.MaxPool2d(2),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(10 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 6 * k))
        nn.init.zeros_(self.head[-1].weight)
        with torch.no_grad():
            self.head[-1].bias.copy_(_identity_affines(k))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Affines (B, k, 2, 3) from inputs (B, 2k, H, W)."""
        return self.head(self.features(inputs)).view(-1, self.k, 2, 3)


class MaskNet(nn.Module):
    """f_m: [k warped CAMs, k − 1 λ maps] (B, 2k − 1, H, W) → mask logits o (B, k, H, W).

    ``layers`` × (conv ``kernel``×``kernel`` with ``channels`` channels, ReLU), then a 1×1 conv to k channels;
    padding keeps the spatial size. The 1×1 conv starts at zero, so the masks start at λ (see :func:`mask_softmax`).

    Args:
        k: Images per mix.
        layers: Hidden conv layers (paper: 3).
        channels: Width of every hidden layer (paper: 32).
        kernel: Odd kernel size of the hidden layers (paper: 3).
    """

    def __init__(self, k: int, layers: int = 3, channels: int = 32, kernel: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = 2 * k - 1
        for _ in range(layers):
            blocks += [nn.Conv2d(width, channels, kernel_size=kernel, padding=kernel // 2), nn.ReLU()]
            width = channels
        blocks.append(nn.Conv2d(width, k, kernel_size=1))
        nn.init.zeros_(blocks[-1].weight)
        nn.init.zeros_(blocks[-1].bias)
        self.net = nn.Sequential(*blocks)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Mask logits (B, k, H, W) from inputs (B, 2k − 1, H, W)."""
        return self.net(inputs)


class Mixer(nn.Module):
    """The mixing module: f_s, f_m and the temperature τ, working at a fixed resolution ``size``.

    Untrained, it is Mixup: identity affines and masks equal to λ. It sees only saliency (CAMs) and λ, never pixels,
    which is what lets a mixer trained on one dataset mix another. Inputs at another resolution are resized to
    ``size``; affines are resolution-free, and masks are resized back bilinearly, which keeps them summing to one.

    Args:
        k: Images per mix (≥ 2).
        layers: Hidden conv layers of f_m.
        channels: Width of f_m.
        kernel: Kernel size of f_m.
        tau_init: Initial temperature τ (stored as log τ so it stays positive).
        size: (H, W) the mixer works at: the training images' size.
    """

    def __init__(
        self,
        k: int = 2,
        layers: int = 3,
        channels: int = 32,
        kernel: int = 3,
        tau_init: float = 1.0,
        size: tuple[int, int] = (32, 32),
    ) -> None:
        super().__init__()
        if k < 2:
            raise MixerError(f"a mixer needs k >= 2 images, got k={k}")
        self.arch = {"k": k, "layers": layers, "channels": channels, "kernel": kernel, "tau_init": tau_init}
        self.k, self.size = k, (int(size[0]), int(size[1]))
        self.stn = SpatialTransformer(k)
        self.masknet = MaskNet(k, layers, channels, kernel)
        self.log_tau = nn.Parameter(torch.tensor(float(np.log(tau_init))))

    @property
    def tau(self) -> torch.Tensor:
        """Current temperature τ (scalar tensor)."""
        return self.log_tau.exp()

    def forward(
        self,
        cams: torch.Tensor,
        lam: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> MixParams:
        """Generate affines and masks for k-tuples of images from their CAMs.

        Args:
            cams: CAMs of the k images of every mix, (B, k, H, W) in [0, 1].
            lam: Mixing weights (B, k).
            noise: z, (B, 1, g, g) standard normal; drawn with ``generator`` when not given.
            generator: Generator on the CAMs' device for the noise.

        Returns:
            :class:`MixParams` with θ (B, k, 2, 3) and masks (B, k, H, W) at the CAMs' resolution.
        """
        b, k, h, w = cams.shape
        if k != self.k:
            raise MixerError(f"this mixer mixes k={self.k} images, got CAMs of {k}")
        cams = cams.float()
        if (h, w) != self.size:
            cams = F.interpolate(cams, size=self.size, mode="bilinear", align_corners=False)
        lam_maps = lam[:, : k - 1, None, None].to(cams).expand(b, k - 1, *self.size)  # λ_k is implied by the rest
        if noise is None:
            noise = torch.randn(b, 1, NOISE_GRID, NOISE_GRID, generator=generator, device=cams.device)
        noise = F.interpolate(noise.to(cams), size=self.size, mode="bilinear", align_corners=False)

        theta = self.stn(torch.cat([cams, lam_maps, noise], dim=1))
        logits = self.masknet(torch.cat([warp_stack(cams, theta), lam_maps], dim=1))
        masks = mask_softmax(logits, self.tau, lam)
        if (h, w) != self.size:
            masks = F.interpolate(masks, size=(h, w), mode="bilinear", align_corners=False)
        return MixParams(theta, masks)


def transformmix_batch(
    mixer: Mixer,
    x: torch.Tensor,
    cams: torch.Tensor,
    y_onehot: torch.Tensor,
    idx: torch.Tensor,
    lam: torch.Tensor,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, MixParams]:
    """Mix a batch: every sample with its k − 1 partners, through the mixer's affines and masks.

    Args:
        mixer: The mixing module.
        x: Images (B, C, H, W), float in [0, 1].
        cams: CAMs (B, H, W) in [0, 1], aligned with ``x`` (same flips/crops).
        y_onehot: Labels (B, K), one-hot or soft.
        idx: Partners (k, B) from :func:`partner_indices`.
        lam: Weights (B, k) from :func:`sample_lambdas`.
        noise: Optional z (B, 1, g, g) to pin the mixer's randomness.
        generator: Generator on ``x``'s device for the noise.

    Returns:
        Mixed images (B, C, H, W), mixed labels (B, K), and the :class:`MixParams` used.
    """
    lam = lam.to(x.device)
    params = mixer(gather_partners(cams, idx), lam, noise=noise, generator=generator)
    x_mix = mix(gather_partners(x, idx), params.theta, params.masks.to(x.dtype))
    return x_mix, mix_labels(gather_partners(y_onehot, idx), lam), params


# ---------------------------------------------------------------------------------------------------------------------
# Saving and loading a mixer (export ships it; ``mixer_from`` reads it)


def mixer_payload(mixer: Mixer) -> dict[str, Any]:
    """Everything needed to rebuild ``mixer``: its architecture, resolution and weights (CPU tensors)."""
    return {
        "format": MIXER_FORMAT,
        **mixer.arch,
        "size": list(mixer.size),
        "state_dict": {name: t.detach().cpu() for name, t in mixer.state_dict().items()},
    }


def mixer_from_payload(payload: Any, source: str = "mixer") -> Mixer:
    """Rebuild a :class:`Mixer` on the CPU from :func:`mixer_payload`'s dict; :class:`MixerError` if it does not fit."""
    if not isinstance(payload, dict) or payload.get("format") != MIXER_FORMAT:
        raise MixerError(f"{source} is not a TransformMix mixer (no {MIXER_FORMAT!r} tag); export one from a search")
    try:
        mixer = Mixer(
            k=int(payload["k"]),
            layers=int(payload["layers"]),
            channels=int(payload["channels"]),
            kernel=int(payload["kernel"]),
            tau_init=float(payload["tau_init"]),
            size=tuple(payload["size"]),
        )
        mixer.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise MixerError(f"{source} is an incompatible mixer: {first}") from None
    return mixer


def load_mixer(path: str) -> Mixer:
    """Load a saved mixer: a ``.pt`` file holding :func:`mixer_payload`'s dict, or a folder with ``mixer.pt``.

    Args:
        path: Local path (MLflow ``runs:/`` URIs are resolved to a local path by the caller).

    Returns:
        The mixer on the CPU, in eval mode.
    """
    file = os.path.join(path, "mixer.pt") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise MixerError(f"mixer_from={path!r} does not exist; point it at an exported mixer.pt")
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file is the same user error
        raise MixerError(f"mixer_from={path!r} is not a readable torch file: {type(error).__name__}") from None
    return mixer_from_payload(payload, source=f"mixer_from={path!r}").eval()
