"""Batched augmentation ops: generate params, then apply them.

Every augmentation here is split in two, following kornia's generator/apply design:

* a ``*_params`` function draws per-sample parameters from an explicit ``torch.Generator`` (or the global RNG),
* a deterministic apply function consumes them (``warp``, ``flip_crop``, ``apply_ops``, ``apply_augmix``, ...).

Passing the same params again replays the same augmentation, so a teacher and a student can see the same
transform, and a learned augmenter (a flow, a mask network) is just another source of params. All ops run on the
device of their input, batched, with per-sample randomness; the auto-augment family groups samples by the op they
drew and runs each op once on its group, so there is no per-sample Python loop.

Two kinds of data flow through here:

* uint8 images ``(B, C, H, W)``, ``C`` in {1, 3}, as stored on the device by ``autoinv.data``: the base
  augmentations (``flip_crop``, RandAugment, TrivialAugment, AutoAugment, AugMix) take and return uint8, so they
  compose with each other and with the float conversion done later;
* float images in ``[0, 1]``: the differentiable ops (``warp``, ``adjust_color``, ``gaussian_blur``, ``add_noise``)
  that learned augmenters backpropagate through.
"""

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

# kornia and torchvision are imported where used: together they take over a second to import, and the CLIs import
# this module to answer --help and --dry-run at once (issue 12).

__all__ = [
    "AUTO_OPS",
    "BASE_AUGMENTS",
    "LIE_GENERATORS",
    "add_noise",
    "adjust_color",
    "affine_from_lie",
    "apply_augmix",
    "apply_ops",
    "augment_batch",
    "augmix",
    "augmix_params",
    "autoaugment",
    "autoaugment_params",
    "flip_crop",
    "flip_crop_params",
    "gaussian_blur",
    "randaugment",
    "randaugment_params",
    "trivialaugment",
    "trivialaugment_params",
    "warp",
]

BASE_AUGMENTS = ("none", "flip_crop", "randaugment", "trivialaugment", "autoaugment", "augmix")
"""Names accepted by :func:`augment_batch`: the ERM baselines' data augmentations."""


# ---------------------------------------------------------------------------------------------------------------------
# Randomness helpers: sample where the generator lives, then move to the data's device.
# ---------------------------------------------------------------------------------------------------------------------


def _devices(generator: torch.Generator | None, device: torch.device | str | None) -> tuple[torch.device, torch.device]:
    """Return (device to sample on, device to return on).

    A generator only draws on its own device, so a CPU generator pinned by a test still works for CUDA data: we
    sample on the CPU and move the (small) params tensors.
    """
    if device is not None:
        target = torch.device(device)
    elif generator is not None:
        target = generator.device
    else:
        target = torch.device("cpu")
    return (generator.device if generator is not None else target), target


def _moved(params: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device) for k, v in params.items()}


def _per_sample(values: Tensor | float, like: Tensor) -> Tensor:
    """Return ``values``, a (B,) tensor or a scalar, as a (B,) tensor on ``like``'s device and dtype."""
    return torch.as_tensor(values, device=like.device, dtype=like.dtype).expand(len(like))


def _broadcast(values: Tensor, like: Tensor) -> Tensor:
    """View (B,) ``values`` as (B, 1, ..., 1) to broadcast over ``like`` (B, ...)."""
    return values.view(-1, *([1] * (like.dim() - 1)))


# ---------------------------------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------------------------------


def warp(x: Tensor, theta: Tensor, padding_mode: str = "zeros", mode: str = "bilinear") -> Tensor:
    """Warp images with per-sample affine maps, differentiably in ``x`` and ``theta``.

    ``theta`` follows :func:`torch.nn.functional.affine_grid` (``align_corners=False``): it maps each *output*
    location, in normalised coordinates (x right, y down, both in [-1, 1] across the image), to the *input*
    location it samples. The visible motion of the content is therefore the inverse of ``theta``.

    Args:
        x: images (B, C, H, W), floating point.
        theta: affine maps (B, 2, 3).
        padding_mode: value outside the image, ``"zeros"``, ``"border"`` or ``"reflection"``.
        mode: ``"bilinear"`` (differentiable) or ``"nearest"`` (what the auto-augment policies use).

    Returns:
        Warped images (B, C, H, W). Samples whose ``theta`` is exactly the identity come back bit for bit.
    """
    theta = theta.to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=False)
    # grid_sample's normalise/unnormalise round trip is off by ~1e-6 for sizes that are not powers of two, so the
    # identity would blur a little. Identity samples take x's exact value but keep the sampling path's gradient
    # (out - out.detach() is exactly zero), so learning starting at the identity still gets d/dtheta.
    eye = torch.eye(2, 3, device=theta.device, dtype=theta.dtype)
    identity = (theta == eye).all(dim=(1, 2)).view(-1, 1, 1, 1)
    return torch.where(identity, x.detach() + (out - out.detach()), out)


LIE_GENERATORS = torch.tensor(
    [
        [[0, 0, 1], [0, 0, 0], [0, 0, 0]],  # translate x
        [[0, 0, 0], [0, 0, 1], [0, 0, 0]],  # translate y
        [[0, -1, 0], [1, 0, 0], [0, 0, 0]],  # rotate
        [[1, 0, 0], [0, 1, 0], [0, 0, 0]],  # scale (isotropic)
        [[1, 0, 0], [0, -1, 0], [0, 0, 0]],  # stretch (aspect ratio)
        [[0, 1, 0], [1, 0, 0], [0, 0, 0]],  # shear (symmetric)
    ],
    dtype=torch.float32,
)
"""Basis (6, 3, 3) of the affine Lie algebra in homogeneous normalised coordinates.

Order and units of the coefficients (see :func:`affine_from_lie`): translate x, translate y (normalised units,
1.0 = half the image), rotate (radians), scale (log factor), stretch (log aspect: x grows by e^s, y shrinks by
e^-s), shear (symmetric, as in Augerino)."""


def affine_from_lie(params: Tensor, generators: Tensor | None = None) -> Tensor:
    """Map Lie-algebra coefficients to affine maps: ``theta = expm(sum_i params_i G_i)[:2]``.

    The result is a sampling map for :func:`warp` (output -> input coordinates), so on a square image a positive
    rotation turns the content counter-clockwise on screen (as ``torch.rot90(x, 1, dims=(-2, -1))`` for pi/2), a
    positive x translation moves it left, and a positive scale zooms out. Rotation is in normalised coordinates, so
    on non-square images it is a rotation only up to the aspect ratio.

    Args:
        params: coefficients (B, 6) in the order of :data:`LIE_GENERATORS`: translate x, translate y, rotate
            (radians), scale (log), stretch (log aspect), shear.
        generators: another basis (6, 3, 3) for the coefficients (default :data:`LIE_GENERATORS`).

    Returns:
        theta (B, 2, 3); exactly the identity for zero coefficients. Computed in at least float32 because
        ``matrix_exp`` has no half-precision kernels.
    """
    dtype = torch.promote_types(params.dtype, torch.float32)
    generators = (LIE_GENERATORS if generators is None else generators).to(params.device, dtype)
    algebra = (params.to(dtype)[:, :, None, None] * generators).sum(dim=1)  # (B, 3, 3)
    return torch.linalg.matrix_exp(algebra)[:, :2, :]


def flip_crop_params(
    batch_size: int,
    image_size: tuple[int, int],
    padding: int = 4,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> dict[str, Tensor]:
    """Draw per-sample params for :func:`flip_crop` (random horizontal flip + random crop with padding).

    Args:
        batch_size: B.
        image_size: (H, W); only checked against ``padding``, the params themselves do not depend on it.
        padding: the crop window moves by at most this many pixels each way (4 on CIFAR).
        generator: source of randomness; on any device.
        device: where the params are returned (default: the generator's device, else CPU).

    Returns:
        ``flip`` bool (B,), flip with probability 1/2; ``shift`` int64 (B, 2), the (rows, columns) offset of the
        crop window, uniform in [-padding, padding].
    """
    if not 0 <= padding < min(image_size):
        raise ValueError(f"padding must be in [0, {min(image_size)}) for images of size {tuple(image_size)}")
    source, target = _devices(generator, device)
    flip = torch.rand(batch_size, generator=generator, device=source) < 0.5
    shift = torch.randint(-padding, padding + 1, (batch_size, 2), generator=generator, device=source)
    return _moved({"flip": flip, "shift": shift}, target)


def _reflect_index(index: Tensor, size: int) -> Tensor:
    """Mirror out-of-range indices without repeating the edge, as ``F.pad(mode="reflect")`` does."""
    index = index.abs()  # -k -> k
    index = (size - 1) - ((size - 1) - index).abs()  # size - 1 + k -> size - 1 - k
    # Shifts of a full image size or more have no reflection; clamping keeps the gather in range.
    return index.clamp(0, size - 1)


def flip_crop(x: Tensor, params: dict[str, Tensor], padding_mode: str = "zeros") -> Tensor:
    """Flip horizontally, then crop a window shifted by ``params["shift"]`` from the padded image.

    Equivalent to ``F.pad`` by the padding, a per-sample crop and a per-sample flip, done as one gather over
    precomputed indices. It is pure indexing, so it works on any dtype and any number of channels (an image and its
    saliency map given the same params move together), and is differentiable for float inputs. For
    ``padding_mode="zeros"`` it equals :func:`warp` with ``theta = [[s, 0, 2 s dx / W], [0, 1, 2 dy / H]]``,
    ``s = -1`` if flipped else 1.

    Args:
        x: images (B, C, H, W), any dtype.
        params: from :func:`flip_crop_params`; ``flip`` (B,) bool, ``shift`` (B, 2) int (rows, columns).
        padding_mode: ``"zeros"`` (the CIFAR standard) or ``"reflect"``.

    Returns:
        (B, C, H, W), same dtype: ``out[b, :, i, j] = flipped(x)[b, :, i + dy_b, j + dx_b]``, padded where out of range.
    """
    if x.dim() != 4:
        raise ValueError(f"flip_crop needs images (B, C, H, W), got shape {tuple(x.shape)}")
    if padding_mode not in ("zeros", "reflect"):
        raise ValueError(f"padding_mode must be 'zeros' or 'reflect', got {padding_mode!r}")
    batch, channels, height, width = x.shape
    shift = params["shift"].to(x.device)
    flip = params["flip"].to(x.device)
    rows = torch.arange(height, device=x.device) + shift[:, :1]  # (B, H) source row of each output row
    cols = torch.arange(width, device=x.device) + shift[:, 1:]  # (B, W) source column in the flipped image
    cols = torch.where(flip[:, None], width - 1 - cols, cols)  # ... and in x
    if padding_mode == "reflect":
        rows, cols = _reflect_index(rows, height), _reflect_index(cols, width)
        inside = None
    else:
        inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
        rows, cols = rows.clamp(0, height - 1), cols.clamp(0, width - 1)
    index = (rows[:, :, None] * width + cols[:, None, :]).view(batch, 1, height * width)
    out = x.flatten(2).gather(2, index.expand(batch, channels, height * width)).view_as(x)
    return out if inside is None else out.masked_fill(~inside[:, None], 0)


# ---------------------------------------------------------------------------------------------------------------------
# Auto-augment ops: uint8 (b, C, H, W) in and out, one magnitude per sample (b,)
# ---------------------------------------------------------------------------------------------------------------------


def _pixel_affine(x: Tensor, linear: Tensor, offset: Tensor) -> Tensor:
    """Warp uint8 images by ``q_in = linear @ q_out + offset`` in pixel units centred on the image (x right, y down).

    Nearest sampling and zero fill, as torchvision's auto-augment defaults; nearest only copies values, so the
    round trip through float is exact.
    """
    height, width = x.shape[-2:]
    scale = linear.new_tensor([2.0 / width, 2.0 / height])  # centred pixels -> normalised coordinates
    theta = torch.cat([linear * scale[:, None] / scale[None, :], (offset * scale)[..., None]], dim=-1)
    return warp(x.float(), theta, mode="nearest").to(torch.uint8)


def _affine_from_entries(a: Tensor, b: Tensor, c: Tensor, d: Tensor, tx: Tensor, ty: Tensor) -> tuple[Tensor, Tensor]:
    return torch.stack([a, b, c, d], dim=-1).view(-1, 2, 2), torch.stack([tx, ty], dim=-1)


def _shear_x(x: Tensor, m: Tensor) -> Tensor:
    # About the top-left corner, like PIL's AutoAugment transform (1, m, 0, 0, 1, 0) and torchvision's center=[0, 0].
    one, zero = torch.ones_like(m), torch.zeros_like(m)
    return _pixel_affine(x, *_affine_from_entries(one, m, zero, one, m * x.shape[-2] / 2, zero))


def _shear_y(x: Tensor, m: Tensor) -> Tensor:
    one, zero = torch.ones_like(m), torch.zeros_like(m)
    return _pixel_affine(x, *_affine_from_entries(one, zero, m, one, zero, m * x.shape[-1] / 2))


def _translate_x(x: Tensor, m: Tensor) -> Tensor:
    # Whole pixels (torchvision truncates with int()); content moves right for m > 0.
    one, zero = torch.ones_like(m), torch.zeros_like(m)
    return _pixel_affine(x, *_affine_from_entries(one, zero, zero, one, -m.trunc(), zero))


def _translate_y(x: Tensor, m: Tensor) -> Tensor:
    one, zero = torch.ones_like(m), torch.zeros_like(m)
    return _pixel_affine(x, *_affine_from_entries(one, zero, zero, one, zero, -m.trunc()))


def _rotate(x: Tensor, m: Tensor) -> Tensor:
    # m in degrees, counter-clockwise on screen, about the image centre.
    cos, sin, zero = torch.cos(torch.deg2rad(m)), torch.sin(torch.deg2rad(m)), torch.zeros_like(m)
    return _pixel_affine(x, *_affine_from_entries(cos, -sin, sin, cos, zero, zero))


def _on_unit_range(fn: Callable[[Tensor, Tensor], Tensor], x: Tensor, factor: Tensor) -> Tensor:
    """Run a float [0, 1] enhancement on uint8 images and round back, so every op is uint8 -> uint8."""
    return (fn(x.float() / 255, factor) * 255).round().to(torch.uint8)


def _scale_brightness(x: Tensor, factor: Tensor) -> Tensor:
    # PIL's brightness is a blend with black, i.e. multiplicative; kornia's adjust_brightness is additive.
    return (x * _broadcast(_per_sample(factor, x), x)).clamp(0, 1)


def _brightness(x: Tensor, m: Tensor) -> Tensor:
    return _on_unit_range(_scale_brightness, x, 1 + m)


def _color(x: Tensor, m: Tensor) -> Tensor:
    import kornia

    return _on_unit_range(kornia.enhance.adjust_saturation_with_gray_subtraction, x, 1 + m)


def _contrast(x: Tensor, m: Tensor) -> Tensor:
    import kornia

    return _on_unit_range(kornia.enhance.adjust_contrast_with_mean_subtraction, x, 1 + m)


def _sharpness(x: Tensor, m: Tensor) -> Tensor:
    import kornia

    return _on_unit_range(kornia.enhance.sharpness, x, 1 + m)


def _posterize(x: Tensor, m: Tensor) -> Tensor:
    # Keep the top m bits: 8 -> 0xFF, 4 -> 0xF0, 0 -> 0x00.
    mask = (255 << (8 - m.long())) & 255
    return x & mask.to(torch.uint8).view(-1, 1, 1, 1)


def _solarize(x: Tensor, m: Tensor) -> Tensor:
    return torch.where(x >= m.view(-1, 1, 1, 1), 255 - x, x)


def _tv_functional():
    """The v2 functional ops of torchvision, imported on first use."""
    import torchvision.transforms.v2.functional

    return torchvision.transforms.v2.functional


_OP_FNS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "identity": lambda x, m: x,
    "shear_x": _shear_x,
    "shear_y": _shear_y,
    "translate_x": _translate_x,
    "translate_y": _translate_y,
    "rotate": _rotate,
    "brightness": _brightness,
    "color": _color,
    "contrast": _contrast,
    "sharpness": _sharpness,
    "posterize": _posterize,
    "solarize": _solarize,
    # Magnitude-free ops: torchvision's kernels are already batched over uint8 images.
    "autocontrast": lambda x, m: _tv_functional().autocontrast(x),
    "equalize": lambda x, m: _tv_functional().equalize(x),
    "invert": lambda x, m: _tv_functional().invert(x),
}

AUTO_OPS = tuple(_OP_FNS)
"""Op names indexed by ``params["ops"]`` of the auto-augment family; index 0 is the identity.

Magnitude units: shear = shear factor (tan of the angle), translate = pixels, rotate = degrees, brightness / color /
contrast / sharpness = enhancement factor minus 1, posterize = bits kept, solarize = threshold in [0, 255]; the rest
ignore it."""


def _apply_op_step(x: Tensor, op: Tensor, magnitude: Tensor) -> Tensor:
    """Apply op ``op[b]`` with magnitude ``magnitude[b]`` to each sample: one batched call per op present."""
    # A single host sync per step: sort samples by op and cut the order into per-op groups.
    counts = torch.bincount(op, minlength=len(AUTO_OPS)).tolist()
    groups = torch.argsort(op).split(counts)
    out = x.clone()
    for name, index in zip(AUTO_OPS, groups):
        if name != "identity" and index.numel() > 0:
            out[index] = _OP_FNS[name](x[index], magnitude[index])
    return out


def apply_ops(x: Tensor, params: dict[str, Tensor]) -> Tensor:
    """Apply a per-sample sequence of auto-augment ops (the apply half of RandAugment / TrivialAugment / AutoAugment).

    Args:
        x: uint8 images (B, C, H, W), C in {1, 3}.
        params: ``ops`` int64 (B, K), indices into :data:`AUTO_OPS`, applied in order k = 0..K-1;
            ``magnitudes`` float (B, K) in the units listed under :data:`AUTO_OPS` (sign included).

    Returns:
        uint8 images (B, C, H, W).
    """
    _check_uint8_images(x)
    ops, magnitudes = params["ops"].to(x.device), params["magnitudes"].to(x.device, torch.float32)
    for k in range(ops.shape[1]):
        x = _apply_op_step(x, ops[:, k], magnitudes[:, k])
    return x


def _check_uint8_images(x: Tensor) -> None:
    if x.dim() != 4 or x.dtype != torch.uint8 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected uint8 images (B, C, H, W) with C in {{1, 3}}, got {x.dtype} {tuple(x.shape)}")


# ---------------------------------------------------------------------------------------------------------------------
# Auto-augment policies: magnitude spaces and param generators
# ---------------------------------------------------------------------------------------------------------------------


class _Space(NamedTuple):
    """Largest magnitude of each op in one policy family (torchvision's augmentation spaces)."""

    shear: float
    translate: float
    translate_is_fraction: bool  # of the image side, else pixels
    rotate: float  # degrees
    enhance: float  # brightness / color / contrast / sharpness
    posterize_bits: int  # bits kept at bin 0
    posterize_drop: int  # bits dropped at the last bin


_SPACES = {
    "randaugment": _Space(0.3, 150.0 / 331.0, True, 30.0, 0.9, 8, 4),  # also AutoAugment, with 10 bins
    "trivialaugment": _Space(0.99, 32.0, False, 135.0, 0.99, 8, 6),  # TrivialAugment "wide"
    "augmix": _Space(0.3, 1.0 / 3.0, True, 30.0, 0.9, 4, 4),
}

_RAND_OPS = (
    "identity",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "rotate",
    "brightness",
    "color",
    "contrast",
    "sharpness",
    "posterize",
    "solarize",
    "autocontrast",
    "equalize",
)
"""Ops RandAugment and TrivialAugment choose from, uniformly."""

_AUGMIX_OPS = _RAND_OPS[1:]  # AugMix (all_ops=True) has no identity in its chains

# AutoAugment's CIFAR-10 policy (Cubuk et al. 2019, appendix), as torchvision documents it: 25 sub-policies of two
# (op, probability, magnitude bin out of 10) steps; bin None for ops without a magnitude.
_AUTOAUGMENT_POLICIES = {
    "cifar10": (
        (("invert", 0.1, None), ("contrast", 0.2, 6)),
        (("rotate", 0.7, 2), ("translate_x", 0.3, 9)),
        (("sharpness", 0.8, 1), ("sharpness", 0.9, 3)),
        (("shear_y", 0.5, 8), ("translate_y", 0.7, 9)),
        (("autocontrast", 0.5, None), ("equalize", 0.9, None)),
        (("shear_y", 0.2, 7), ("posterize", 0.3, 7)),
        (("color", 0.4, 3), ("brightness", 0.6, 7)),
        (("sharpness", 0.3, 9), ("brightness", 0.7, 9)),
        (("equalize", 0.6, None), ("equalize", 0.5, None)),
        (("contrast", 0.6, 7), ("sharpness", 0.6, 5)),
        (("color", 0.7, 7), ("translate_x", 0.5, 8)),
        (("equalize", 0.3, None), ("autocontrast", 0.4, None)),
        (("translate_y", 0.4, 3), ("sharpness", 0.2, 6)),
        (("brightness", 0.9, 6), ("color", 0.2, 8)),
        (("solarize", 0.5, 2), ("invert", 0.0, None)),
        (("equalize", 0.2, None), ("autocontrast", 0.6, None)),
        (("equalize", 0.2, None), ("equalize", 0.6, None)),
        (("color", 0.9, 9), ("equalize", 0.6, None)),
        (("autocontrast", 0.8, None), ("solarize", 0.2, 8)),
        (("brightness", 0.1, 3), ("color", 0.7, 0)),
        (("solarize", 0.4, 5), ("autocontrast", 0.9, None)),
        (("translate_y", 0.9, 9), ("translate_y", 0.7, 9)),
        (("autocontrast", 0.9, None), ("solarize", 0.8, 3)),
        (("equalize", 0.8, None), ("invert", 0.1, None)),
        (("translate_y", 0.7, 9), ("autocontrast", 0.9, None)),
    ),
}


def _magnitude_table(
    family: str, ops: Sequence[str], num_bins: int, image_size: tuple[int, int]
) -> tuple[Tensor, Tensor, Tensor]:
    """Tabulate a policy family's magnitude space on the CPU.

    Returns:
        ``ids`` (K,) indices of ``ops`` into :data:`AUTO_OPS`; ``table`` (K, num_bins) magnitude of each op at each
        bin (zeros for magnitude-free ops); ``signed`` (K,) whether the op's magnitude gets a random sign.
    """
    if num_bins < 2:
        raise ValueError(f"num_bins must be at least 2, got {num_bins}")
    space = _SPACES[family]
    height, width = image_size
    ramp = torch.linspace(0.0, 1.0, num_bins)
    linear = {
        "shear_x": space.shear,
        "shear_y": space.shear,
        "translate_x": space.translate * (width if space.translate_is_fraction else 1),
        "translate_y": space.translate * (height if space.translate_is_fraction else 1),
        "rotate": space.rotate,
        "brightness": space.enhance,
        "color": space.enhance,
        "contrast": space.enhance,
        "sharpness": space.enhance,
    }
    rows = []
    for op in ops:
        if op in linear:
            rows.append(linear[op] * ramp)
        elif op == "posterize":
            rows.append(space.posterize_bits - (ramp * space.posterize_drop).round())
        elif op == "solarize":
            rows.append(255.0 * (1.0 - ramp))
        else:
            rows.append(torch.zeros(num_bins))
    ids = torch.tensor([AUTO_OPS.index(op) for op in ops])
    signed = torch.tensor([op in linear for op in ops])
    return ids, torch.stack(rows), signed


def _random_sign(magnitudes: Tensor, signed: Tensor, generator: torch.Generator | None) -> Tensor:
    flip = signed & (torch.rand(magnitudes.shape, generator=generator, device=magnitudes.device) < 0.5)
    return torch.where(flip, -magnitudes, magnitudes)


def randaugment_params(
    batch_size: int,
    image_size: tuple[int, int],
    num_ops: int = 2,
    magnitude: int = 9,
    num_bins: int = 31,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> dict[str, Tensor]:
    """Draw RandAugment params: each sample picks ``num_ops`` ops uniformly, all at the same magnitude bin.

    `RandAugment <https://arxiv.org/abs/1909.13719>`_ with torchvision's magnitude space (31 bins).

    Args:
        batch_size: B.
        image_size: (H, W); translations scale with it.
        num_ops: ops per sample, K.
        magnitude: bin in [0, num_bins) shared by all ops.
        num_bins: number of magnitude bins.
        generator: source of randomness; on any device.
        device: where the params are returned (default: the generator's device, else CPU).

    Returns:
        ``ops`` (B, K) and ``magnitudes`` (B, K) for :func:`apply_ops`.
    """
    if not 0 <= magnitude < num_bins:
        raise ValueError(f"magnitude must be in [0, {num_bins}), got {magnitude}")
    source, target = _devices(generator, device)
    ids, table, signed = (t.to(source) for t in _magnitude_table("randaugment", _RAND_OPS, num_bins, image_size))
    choice = torch.randint(len(_RAND_OPS), (batch_size, num_ops), generator=generator, device=source)
    magnitudes = _random_sign(table[choice, magnitude], signed[choice], generator)
    return _moved({"ops": ids[choice], "magnitudes": magnitudes}, target)


def trivialaugment_params(
    batch_size: int,
    image_size: tuple[int, int],
    num_bins: int = 31,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> dict[str, Tensor]:
    """Draw TrivialAugment params: each sample picks one op and one magnitude bin, both uniformly.

    `TrivialAugment <https://arxiv.org/abs/2103.10158>`_ "wide" space, as torchvision's ``TrivialAugmentWide``
    (translations up to 32 pixels whatever the image size).

    Args:
        batch_size: B.
        image_size: (H, W).
        num_bins: number of magnitude bins.
        generator: source of randomness; on any device.
        device: where the params are returned (default: the generator's device, else CPU).

    Returns:
        ``ops`` (B, 1) and ``magnitudes`` (B, 1) for :func:`apply_ops`.
    """
    source, target = _devices(generator, device)
    ids, table, signed = (t.to(source) for t in _magnitude_table("trivialaugment", _RAND_OPS, num_bins, image_size))
    choice = torch.randint(len(_RAND_OPS), (batch_size, 1), generator=generator, device=source)
    bins = torch.randint(num_bins, (batch_size, 1), generator=generator, device=source)
    magnitudes = _random_sign(table[choice, bins], signed[choice], generator)
    return _moved({"ops": ids[choice], "magnitudes": magnitudes}, target)


def autoaugment_params(
    batch_size: int,
    image_size: tuple[int, int],
    policy: str = "cifar10",
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> dict[str, Tensor]:
    """Draw AutoAugment params: each sample picks a sub-policy; each of its two steps fires with its probability.

    `AutoAugment <https://arxiv.org/abs/1805.09501>`_ with the published sub-policies and torchvision's 10-bin
    magnitude space. Steps that do not fire become the identity.

    Args:
        batch_size: B.
        image_size: (H, W); translations scale with it.
        policy: ``"cifar10"``.
        generator: source of randomness; on any device.
        device: where the params are returned (default: the generator's device, else CPU).

    Returns:
        ``ops`` (B, 2) and ``magnitudes`` (B, 2) for :func:`apply_ops`.
    """
    if policy not in _AUTOAUGMENT_POLICIES:
        raise ValueError(f"unknown AutoAugment policy {policy!r}; available: {sorted(_AUTOAUGMENT_POLICIES)}")
    steps = [step for sub_policy in _AUTOAUGMENT_POLICIES[policy] for step in sub_policy]
    ids, table, signed = _magnitude_table("randaugment", [op for op, _, _ in steps], 10, image_size)
    bins = torch.tensor([0 if b is None else b for _, _, b in steps])
    source, target = _devices(generator, device)
    # (P, 2) tables over sub-policies and their two steps
    ids, signed = ids.view(-1, 2).to(source), signed.view(-1, 2).to(source)
    step_magnitudes = table[torch.arange(len(steps)), bins].view(-1, 2).to(source)
    probabilities = torch.tensor([p for _, p, _ in steps]).view(-1, 2).to(source)

    choice = torch.randint(len(ids), (batch_size,), generator=generator, device=source)
    fires = torch.rand(batch_size, 2, generator=generator, device=source) < probabilities[choice]
    ops = torch.where(fires, ids[choice], AUTO_OPS.index("identity"))
    magnitudes = _random_sign(step_magnitudes[choice], signed[choice], generator)
    return _moved({"ops": ops, "magnitudes": magnitudes}, target)


def augmix_params(
    batch_size: int,
    image_size: tuple[int, int],
    severity: int = 3,
    width: int = 3,
    depth: int = -1,
    alpha: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> dict[str, Tensor]:
    """Draw AugMix params: ``width`` op chains per sample and the weights that mix them with the original.

    `AugMix <https://arxiv.org/abs/1912.02781>`_ as torchvision's ``AugMix(all_ops=True)``, except that every
    sample draws its own ops, chain depths and weights (torchvision shares ops and depths across a batch).

    Args:
        batch_size: B.
        image_size: (H, W); translations scale with it.
        severity: magnitude bins are drawn uniformly from [0, severity), out of 10.
        width: number of chains, W'.
        depth: ops per chain; -1 draws a depth in {1, 2, 3} per chain and sample.
        alpha: concentration of the Dirichlet over chains and of the Beta between original and mix.
        generator: source of randomness; on any device.
        device: where the params are returned (default: the generator's device, else CPU).

    Returns:
        ``ops`` (B, W', D) and ``magnitudes`` (B, W', D) per chain step (identity past a chain's depth), and
        ``weights`` (B, 1 + W'), the convex weights of the original image and of each chain.
    """
    if not 1 <= severity <= 10:
        raise ValueError(f"severity must be in [1, 10], got {severity}")
    source, target = _devices(generator, device)
    ids, table, signed = (t.to(source) for t in _magnitude_table("augmix", _AUGMIX_OPS, 10, image_size))
    steps = depth if depth > 0 else 3
    shape = (batch_size, width, steps)
    choice = torch.randint(len(_AUGMIX_OPS), shape, generator=generator, device=source)
    bins = torch.randint(severity, shape, generator=generator, device=source)
    magnitudes = _random_sign(table[choice, bins], signed[choice], generator)
    ops = ids[choice]
    if depth <= 0:
        chain_depth = torch.randint(1, 4, (batch_size, width, 1), generator=generator, device=source)
        ops = torch.where(torch.arange(steps, device=source) < chain_depth, ops, AUTO_OPS.index("identity"))
    # torch._sample_dirichlet is the sampler torchvision's AugMix uses; unlike torch.distributions it takes a generator.
    original = torch._sample_dirichlet(torch.full((batch_size, 2), float(alpha), device=source), generator)
    chains = torch._sample_dirichlet(torch.full((batch_size, width), float(alpha), device=source), generator)
    weights = torch.cat([original[:, :1], chains * original[:, 1:]], dim=1)
    return _moved({"ops": ops, "magnitudes": magnitudes, "weights": weights}, target)


def apply_augmix(x: Tensor, params: dict[str, Tensor]) -> Tensor:
    """Run every chain of every sample as one :func:`apply_ops` call, then mix them with the original.

    Args:
        x: uint8 images (B, C, H, W).
        params: from :func:`augmix_params`.

    Returns:
        uint8 images (B, C, H, W), ``round(w_0 x + sum_i w_i chain_i(x))``.
    """
    _check_uint8_images(x)
    batch, width, steps = params["ops"].shape
    chains = x.unsqueeze(1).expand(batch, width, *x.shape[1:]).reshape(batch * width, *x.shape[1:])
    flat = {"ops": params["ops"].reshape(-1, steps), "magnitudes": params["magnitudes"].reshape(-1, steps)}
    chains = apply_ops(chains, flat).view(batch, width, *x.shape[1:]).float()
    weights = params["weights"].to(x.device, torch.float32)
    mixed = weights[:, 0].view(-1, 1, 1, 1) * x.float() + (weights[:, 1:, None, None, None] * chains).sum(dim=1)
    return mixed.round().clamp(0, 255).to(torch.uint8)


def randaugment(x: Tensor, num_ops: int = 2, magnitude: int = 9, generator: torch.Generator | None = None) -> Tensor:
    """RandAugment on a batch, each sample with its own ops; see :func:`randaugment_params`.

    Args:
        x: uint8 images (B, C, H, W), C in {1, 3}.
        num_ops: ops per sample.
        magnitude: magnitude bin out of 31.
        generator: source of randomness.

    Returns:
        uint8 images (B, C, H, W).
    """
    _check_uint8_images(x)
    params = randaugment_params(len(x), x.shape[-2:], num_ops, magnitude, generator=generator, device=x.device)
    return apply_ops(x, params)


def trivialaugment(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """TrivialAugment (wide) on a batch, each sample with its own op and magnitude; see :func:`trivialaugment_params`.

    Args:
        x: uint8 images (B, C, H, W), C in {1, 3}.
        generator: source of randomness.

    Returns:
        uint8 images (B, C, H, W).
    """
    _check_uint8_images(x)
    return apply_ops(x, trivialaugment_params(len(x), x.shape[-2:], generator=generator, device=x.device))


def autoaugment(x: Tensor, policy: str = "cifar10", generator: torch.Generator | None = None) -> Tensor:
    """AutoAugment on a batch, each sample with its own sub-policy; see :func:`autoaugment_params`.

    Args:
        x: uint8 images (B, C, H, W), C in {1, 3}.
        policy: ``"cifar10"``.
        generator: source of randomness.

    Returns:
        uint8 images (B, C, H, W).
    """
    _check_uint8_images(x)
    return apply_ops(x, autoaugment_params(len(x), x.shape[-2:], policy, generator=generator, device=x.device))


def augmix(
    x: Tensor,
    severity: int = 3,
    width: int = 3,
    depth: int = -1,
    alpha: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """AugMix on a batch, each sample with its own chains and weights; see :func:`augmix_params`.

    Args:
        x: uint8 images (B, C, H, W), C in {1, 3}.
        severity: magnitude bins drawn from [0, severity), out of 10.
        width: number of chains.
        depth: ops per chain; -1 for a random depth in {1, 2, 3}.
        alpha: Dirichlet / Beta concentration.
        generator: source of randomness.

    Returns:
        uint8 images (B, C, H, W).
    """
    _check_uint8_images(x)
    params = augmix_params(len(x), x.shape[-2:], severity, width, depth, alpha, generator=generator, device=x.device)
    return apply_augmix(x, params)


_POLICIES: dict[str, Callable[..., Tensor]] = {
    "randaugment": randaugment,
    "trivialaugment": trivialaugment,
    "autoaugment": autoaugment,
    "augmix": augmix,
}


def augment_batch(x: Tensor, name: str, generator: torch.Generator | None = None) -> Tensor:
    """Apply one of the ERM baselines' data augmentations (:data:`BASE_AUGMENTS`) to a batch.

    ``"flip_crop"`` is a random horizontal flip and a random crop from the zero-padded image, padding
    ``max(1, round(min(H, W) / 8))`` (4 on 32 x 32, as on CIFAR). The auto policies run after flip + crop, with
    their published defaults, as in the CIFAR pipelines of the AutoAugment, RandAugment, TrivialAugment and AugMix
    papers. Whether flipping suits a dataset (digits, say) is the caller's choice of name.

    Args:
        x: uint8 images (B, C, H, W), C in {1, 3}; with ``"none"``, any tensor, e.g. signals (B, C, L).
        name: one of :data:`BASE_AUGMENTS`.
        generator: source of randomness.

    Returns:
        Augmented uint8 images (B, C, H, W); ``x`` itself for ``"none"``.
    """
    if name not in BASE_AUGMENTS:
        raise ValueError(f"unknown augmentation {name!r}; choose one of {BASE_AUGMENTS}")
    if name == "none":
        return x
    if x.dim() != 4:
        raise ValueError(
            f"augmentation {name!r} needs images (B, C, H, W), got shape {tuple(x.shape)}; "
            "use 'none' for 1-D signals (B, C, L)"
        )
    _check_uint8_images(x)
    height, width = x.shape[-2:]
    padding = max(1, round(min(height, width) / 8))
    x = flip_crop(x, flip_crop_params(len(x), (height, width), padding, generator=generator, device=x.device))
    return x if name == "flip_crop" else _POLICIES[name](x, generator=generator)


# ---------------------------------------------------------------------------------------------------------------------
# Differentiable photometric ops on float images in [0, 1]
# ---------------------------------------------------------------------------------------------------------------------


def adjust_color(
    x: Tensor,
    brightness: Tensor | float = 1.0,
    contrast: Tensor | float = 1.0,
    saturation: Tensor | float = 1.0,
    hue: Tensor | float = 0.0,
) -> Tensor:
    """Colour jitter with given per-sample factors, in torchvision ``ColorJitter``'s order and meaning.

    Differentiable in ``x`` and every factor (except where a step clamps to [0, 1], as ColorJitter does).

    Args:
        x: float images (B, C, H, W) in [0, 1], C in {1, 3}.
        brightness: (B,) or scalar; multiplies the image (1 = unchanged).
        contrast: (B,) or scalar; blends with the mean grey level (1 = unchanged, 0 = flat grey).
        saturation: (B,) or scalar; blends with the greyscale image (1 = unchanged, 0 = grey). Ignored if C = 1.
        hue: (B,) or scalar; hue rotation in radians, in [-pi, pi] (0 = unchanged). Ignored if C = 1.

    Returns:
        Float images (B, C, H, W) in [0, 1]; ``x`` up to float rounding at the neutral factors.
    """
    import kornia

    x = _scale_brightness(x, brightness)
    x = kornia.enhance.adjust_contrast_with_mean_subtraction(x, _per_sample(contrast, x))
    if x.shape[1] == 3:
        x = kornia.enhance.adjust_saturation_with_gray_subtraction(x, _per_sample(saturation, x))
        x = kornia.enhance.adjust_hue(x, _per_sample(hue, x))
    return x


def gaussian_blur(x: Tensor, sigma: Tensor | float, kernel_size: int | None = None) -> Tensor:
    """Gaussian blur with a per-sample standard deviation, differentiable in ``x`` and ``sigma``.

    Args:
        x: float images (B, C, H, W).
        sigma: (B,) or scalar, in pixels. Values below 1e-3 act as 1e-3, which leaves the image unchanged
            (the kernel's off-centre taps underflow to zero).
        kernel_size: odd kernel side; by default ``2 * ceil(3 * max(sigma)) + 1`` (one host sync to read the
            max), capped so the reflection padding fits in the image.

    Returns:
        Blurred images (B, C, H, W), with reflected borders.
    """
    sigma = _per_sample(sigma, x).clamp_min(1e-3)
    if kernel_size is None:
        kernel_size = 2 * math.ceil(3 * float(sigma.detach().max())) + 1
    kernel_size = min(kernel_size, 2 * min(x.shape[-2:]) - 1)  # reflection padding needs kernel_size // 2 < side
    import kornia

    return kornia.filters.gaussian_blur2d(x, kernel_size, torch.stack([sigma, sigma], dim=-1), border_type="reflect")


def add_noise(
    x: Tensor, std: Tensor | float, noise: Tensor | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """Add Gaussian noise with a per-sample standard deviation: ``x + std * noise``.

    Works on any (B, ...) tensor, images or signals; no clamping, so it stays differentiable everywhere.

    Args:
        x: float tensor (B, ...).
        std: (B,) or scalar standard deviation.
        noise: standard-normal noise shaped like ``x``, to replay a draw; drawn from ``generator`` when omitted.
        generator: source of randomness when ``noise`` is omitted; on any device.

    Returns:
        Tensor shaped like ``x``.
    """
    if noise is None:
        source = generator.device if generator is not None else x.device
        noise = torch.randn(x.shape, generator=generator, device=source, dtype=x.dtype).to(x.device)
    return x + _broadcast(_per_sample(std, x), x) * noise
