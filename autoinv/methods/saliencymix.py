"""SaliencyMix (Uddin et al., 2021, https://arxiv.org/abs/2006.01791): CutMix cut around the partner's saliency peak.

The box of area ≈ (1 − λ)·H·W is centred on the most salient pixel of the partner (source) image and pasted, at the
same location, into the target image, so the pasted patch is likely to hold the partner's object. Labels follow the
box's real area, as in CutMix. Saliency here is the class activation map of a frozen teacher, computed once per
dataset and replayed through each batch's flips and crops (shared with TransformMix, so both use one teacher).

``box_masks`` and ``saliencymix_batch`` are the pure functions.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
import torch.nn.functional as F

from autoinv import loop
from autoinv.config import BaseConfig, _check
from autoinv.methods.transformmix.saliency import (
    CamBatches,
    box_masks,
    cam_teacher_spec,
    check_cam_teacher,
    dataset_cams,
)
from autoinv.models import create_model
from autoinv.teachers import TeacherSpec, load_or_train

__all__ = ["Config", "fit", "teacher_specs", "box_masks", "salient_centers", "saliencymix_batch"]


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """SaliencyMix's knobs on top of the shared fields; the teacher fields match TransformMix's (one cached teacher)."""

    mix_alpha: float = 1.0
    """α of the Beta(α, α) distribution of the kept area λ."""
    mix_prob: float = 0.5
    """Probability that a batch is mixed (0.5 as in the paper's CIFAR runs)."""
    teacher_arch: str = "small_cnn"
    """Frozen teacher whose CAMs are the saliency maps; needs a global-pool + linear head."""
    teacher_epochs: int = 10
    """Epochs to train the teacher (once per search, cached)."""
    teacher_lr: float = 0.05
    """Peak SGD learning rate of the teacher."""
    teacher_pretrained: bool = False
    """Start the teacher from downloadable weights (``tv:`` models)."""
    teacher_checkpoint: str = ""
    """Load the teacher's state dict from this path instead of training it."""
    teacher_seed: int = 0
    """Seed of the teacher's training."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, "mix_alpha", self.mix_alpha > 0, "must be > 0")
        _check(self, "mix_prob", 0.0 <= self.mix_prob <= 1.0, "must be in [0, 1]")
        _check(self, "teacher_epochs", self.teacher_epochs >= 0, "must be >= 0")
        _check(self, "teacher_lr", self.teacher_lr > 0, "must be > 0")


def teacher_specs(cfg: Config) -> list[TeacherSpec]:
    """The teacher that supplies saliency; equal ``teacher_*`` fields give TransformMix's cached teacher."""
    return [cam_teacher_spec(cfg)]


def salient_centers(saliency: torch.Tensor) -> torch.Tensor:
    """Pixel (row, column) of each map's maximum (the first one on ties): saliency (B, H, W) → long (B, 2)."""
    flat = saliency.flatten(1).argmax(1)
    width = saliency.shape[-1]
    return torch.stack([flat // width, flat % width], dim=1)


def saliencymix_batch(
    x: torch.Tensor, y_onehot: torch.Tensor, saliency: torch.Tensor, lam: torch.Tensor, perm: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Paste, into every image, the box around its partner's saliency peak.

    Args:
        x: Images (B, C, H, W).
        y_onehot: Labels (B, K).
        saliency: Saliency maps of ``x`` (B, H, W); the partner's map picks the box.
        lam: Kept fraction per sample (B,) (a scalar broadcast is fine).
        perm: Partner index per sample (B,).

    Returns:
        Mixed images (B, C, H, W), labels (B, K), and the real kept fraction per sample (B,).
    """
    height, width = x.shape[-2:]
    lam = torch.as_tensor(lam, dtype=torch.float32, device=x.device).expand(len(x))
    keep = box_masks(height, width, lam, salient_centers(saliency[perm]))
    kept = keep.mean((1, 2, 3))
    y_mix = kept[:, None] * y_onehot + (1 - kept[:, None]) * y_onehot[perm]
    return keep * x + (1 - keep) * x[perm], y_mix, kept


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Train the task network on SaliencyMix batches; report ``val/acc`` per epoch."""
    device = loop.pick_device(cfg.device)
    data = loop.load_data(cfg, device)
    if data.kind != "image":
        raise ValueError(f"saliencymix needs images; dataset {cfg.dataset!r} holds signals")
    check_cam_teacher(cfg.teacher_arch, data.num_classes, data.shape)
    teacher = load_or_train(teacher_specs(cfg)[0], run.cache_dir, device, progress=False)
    cams = dataset_cams(teacher, data.x_train, data.y_train, cfg.eval_batch_size)
    model = create_model(cfg.model, data.num_classes, data.shape).to(device)
    gen, rng = torch.Generator().manual_seed(cfg.seed + 2), np.random.default_rng(cfg.seed + 2)

    batches = CamBatches(data, cams, cfg.augment, teacher)  # flips and crops move images and CAMs alike

    def loss_fn(model, x, y, generator):
        saliency = batches.cams  # the CAMs of this very batch, set by batches(idx, generator) just before
        if rng.random() >= cfg.mix_prob:
            return F.cross_entropy(model(loop.standardize(x)), y), {"mix/lam": 1.0}
        perm = torch.randperm(len(x), generator=gen).to(x.device)
        lam = torch.tensor(float(rng.beta(cfg.mix_alpha, cfg.mix_alpha)), device=x.device)
        x_mix, y_mix, kept = saliencymix_batch(x, F.one_hot(y, data.num_classes).float(), saliency, lam, perm)
        return loop.soft_cross_entropy(model(loop.standardize(x_mix)), y_mix), {"mix/lam": kept.mean().item()}

    return loop.train_classifier(cfg, run, data, model, loss_fn, batch_fn=batches)
