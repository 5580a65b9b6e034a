"""What TransformMix and SaliencyMix share: a frozen teacher's CAMs, replayed through augmentation, and CutMix boxes.

CAMs (Zhou et al., 2016, "Learning deep features for discriminative localization") of a frozen teacher depend only
on the image, so they are computed once per dataset and stored as uint8 next to the images. Each batch's flip and
crop is then applied to images and CAMs with the same parameters (:func:`base_augment`), instead of running the
teacher every step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autoinv import augment, loop
from autoinv.data import Dataset, to_float
from autoinv.models import ModelError, cam_parts, create_model
from autoinv.teachers import TeacherSpec

__all__ = [
    "normalize_maps",
    "class_activation_maps",
    "teacher_cams",
    "dataset_cams",
    "base_augment",
    "CamBatches",
    "check_cam_teacher",
    "cam_teacher_spec",
    "box_masks",
]


def normalize_maps(maps: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Min-max normalise each map to [0, 1]; a constant map becomes all zeros.

    Args:
        maps: (B, H, W).
        eps: Smallest range divided by, so a flat map does not divide by zero.

    Returns:
        (B, H, W) in [0, 1].
    """
    low = maps.amin(dim=(1, 2), keepdim=True)
    high = maps.amax(dim=(1, 2), keepdim=True)
    return (maps - low) / (high - low).clamp_min(eps)


def class_activation_maps(
    features: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """CAM of class ``labels[b]``: the classifier's weights for that class times the last conv features.

    Args:
        features: Last feature maps before global pooling, (B, D, h, w).
        weight: Weight of the linear head, (K, D). Its bias shifts a map by a constant, which normalisation removes.
        labels: Class per sample whose map to take, (B,).
        size: Output (H, W), usually the image size.

    Returns:
        CAMs (B, H, W), bilinearly upsampled, then min-max normalised to [0, 1].
    """
    maps = torch.einsum("bd,bdhw->bhw", weight[labels].float(), features.float())
    maps = F.interpolate(maps[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return normalize_maps(maps)


@torch.no_grad()
def teacher_cams(teacher: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CAMs of a frozen teacher with a global-pool + linear head.

    Args:
        teacher: Classifier accepted by ``autoinv.models.cam_parts`` (raises ``ModelError`` otherwise).
        x: Network inputs (B, C, H, W), already standardised.
        labels: Class per sample (B,).

    Returns:
        (B, H, W) in [0, 1].
    """
    features_fn, linear = cam_parts(teacher)
    return class_activation_maps(features_fn(x), linear.weight, labels, tuple(x.shape[-2:]))


@torch.no_grad()
def dataset_cams(teacher: nn.Module, x: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """CAMs of a whole uint8 image set for its labels, quantised to uint8 so they travel with the images.

    A frozen teacher's CAM depends only on the image, so this runs once per dataset; each batch's flip/crop is
    then replayed on the stored CAMs instead of running the teacher every step.

    Args:
        teacher: Frozen classifier with a CAM head.
        x: uint8 images (N, C, H, W), on the teacher's device.
        labels: (N,).
        batch_size: Images per teacher forward pass.

    Returns:
        uint8 CAMs (N, 1, H, W); divide by 255 for [0, 1].
    """
    out = [
        (teacher_cams(teacher, loop.prepare(xb), yb) * 255).round().to(torch.uint8)[:, None]
        for xb, yb in zip(x.split(batch_size), labels.split(batch_size))
    ]
    return torch.cat(out) if out else torch.zeros(0, 1, *x.shape[-2:], dtype=torch.uint8, device=x.device)


def base_augment(
    x: torch.Tensor,
    cams: torch.Tensor,
    labels: torch.Tensor,
    name: str,
    generator: torch.Generator,
    teacher: nn.Module,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's base augmentation, applied to its images and, with the same parameters, to their CAMs.

    Flips and crops are replayed on the stored CAMs (the teacher is frozen, so the CAM of a flipped image is the
    flipped CAM). Other policies (RandAugment, ...) change pixels in ways a CAM cannot follow, so their CAMs are
    recomputed with a teacher forward pass.

    Args:
        x: uint8 images (B, C, H, W).
        cams: uint8 CAMs (B, 1, H, W) of the un-augmented images.
        labels: (B,), for recomputed CAMs.
        name: ``BaseConfig.augment`` policy.
        generator: Generator on the images' device.
        teacher: Frozen teacher, for recomputed CAMs.

    Returns:
        Images (B, C, H, W) float in [0, 1] and CAMs (B, H, W) float in [0, 1].
    """
    if name == "flip_crop":
        height, width = x.shape[-2:]
        padding = max(1, round(min(height, width) / 8))  # as augment.augment_batch pads, so ERM sees the same crops
        params = augment.flip_crop_params(len(x), (height, width), padding, generator=generator, device=x.device)
        x, cams = augment.flip_crop(x, params), augment.flip_crop(cams, params)
    elif name != "none":
        x = augment.augment_batch(x, name, generator)
        return to_float(x), teacher_cams(teacher, loop.prepare(x), labels)
    return to_float(x), to_float(cams)[:, 0]


class CamBatches:
    """``batch_fn`` for ``loop.train_classifier``: base-augmented image batches whose CAMs move with them.

    Called with a batch of sample indices, it applies the base augmentation to the images and, with the same
    flip/crop parameters, to their stored CAMs (:func:`base_augment`). It returns ``(x, y)`` for the loop and keeps
    the matching CAMs in :attr:`cams` until the next call, so the method's loss (called by the loop right after, on
    the same batch) reads the saliency of exactly the images it gets.

    Args:
        data: Dataset on the training device.
        cams: uint8 CAMs of ``data.x_train``, (N, 1, H, W), from :func:`dataset_cams`.
        policy: ``BaseConfig.augment`` policy.
        teacher: Frozen teacher, for policies whose CAMs must be recomputed.
    """

    def __init__(self, data: Dataset, cams: torch.Tensor, policy: str, teacher: nn.Module) -> None:
        self.data, self.stored, self.policy, self.teacher = data, cams, policy, teacher
        self.cams: torch.Tensor | None = None
        """CAMs (B, H, W) float in [0, 1] of the last batch returned, aligned with its images."""

    def __call__(self, idx: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, C, H, W) float in [0, 1] and labels (B,) of samples ``idx`` (B,); sets :attr:`cams`."""
        y = self.data.y_train[idx]
        x, self.cams = base_augment(self.data.x_train[idx], self.stored[idx], y, self.policy, generator, self.teacher)
        return x, y


def check_cam_teacher(arch: str, num_classes: int, shape: tuple[int, ...]) -> None:
    """Raise a one-line ``ModelError`` unless ``arch`` has a global-pool + linear head (so it can give CAMs)."""
    try:
        cam_parts(create_model(arch, num_classes, shape))
    except ModelError as error:
        raise ModelError(f"teacher_arch={arch!r} cannot give CAMs: {error}") from None


def cam_teacher_spec(cfg: Any) -> TeacherSpec:
    """The teacher described by a config's ``teacher_*`` fields (TransformMix's and SaliencyMix's share a cache entry).

    Raises:
        ModelError: ``teacher_arch`` has no global-pool + linear head, so it cannot give CAMs (checked before any
            teacher is trained).
    """
    check_cam_teacher(cfg.teacher_arch, 10, (3, 32, 32))
    return TeacherSpec(
        arch=cfg.teacher_arch,
        dataset=cfg.dataset,
        data_dir=cfg.data_dir,
        val_fraction=cfg.val_fraction,
        epochs=cfg.teacher_epochs,
        lr=cfg.teacher_lr,
        batch_size=cfg.batch_size,
        augment=cfg.augment,
        train_subset=cfg.train_subset,
        seed=cfg.teacher_seed,
        pretrained=cfg.teacher_pretrained,
        checkpoint=cfg.teacher_checkpoint,
    )


def box_masks(height: int, width: int, lam: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Per-sample CutMix boxes: 0 inside a box of area ≈ (1 − λ)·H·W around ``centers``, clipped at the borders.

    Same geometry as ``autoinv.methods.cutmix.cutmix_box``, one box per sample.

    Args:
        height: H.
        width: W.
        lam: Kept fraction per sample (B,).
        centers: Box centres in pixels (B, 2), (row, column).

    Returns:
        float masks (B, 1, H, W): 1 where the target image is kept, 0 where the partner is pasted.
    """
    cut = (1.0 - lam.float()).clamp_min(0).sqrt()
    half_h, half_w = (height * cut / 2).floor().long(), (width * cut / 2).floor().long()
    top, bottom = (centers[:, 0] - half_h).clamp_min(0), (centers[:, 0] + half_h).clamp_max(height)
    left, right = (centers[:, 1] - half_w).clamp_min(0), (centers[:, 1] + half_w).clamp_max(width)
    rows = torch.arange(height, device=centers.device)
    cols = torch.arange(width, device=centers.device)
    in_rows = (rows >= top[:, None]) & (rows < bottom[:, None])  # (B, H)
    in_cols = (cols >= left[:, None]) & (cols < right[:, None])  # (B, W)
    return (~(in_rows[:, :, None] & in_cols[:, None, :])).float()[:, None]
