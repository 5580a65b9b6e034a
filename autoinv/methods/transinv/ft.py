"""Fine-tuning baselines of TransInv (paper §4.2): FT, FT + AugMix, FT + FixedAug, one method.

The target starts from a robust teacher's weights (``init=teacher``) and trains with cross-entropy. FT+AugMix is
``augment=augmix``; FT+FixedAug adds the teacher's own corruption at a uniformly drawn severity (``ft_fixedaug``)
with probability ``ft_fixedaug_prob``. Three search files (``ft``, ``ft_augmix``, ``ft_fixedaug``) pin each one.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from autoinv import corruptions, loop
from autoinv.config import _check
from autoinv.data import load_dataset, to_float
from autoinv.methods.transinv.common import (
    TeacherFields,
    check_inputs,
    corruption_metrics,
    init_from_teacher,
    robust_teacher_spec,
)
from autoinv.models import create_model
from autoinv.teachers import TeacherSpec, load_or_train

__all__ = ["Config", "fit", "preflight", "teacher_specs"]


@dataclasses.dataclass(frozen=True)
class Config(TeacherFields):
    """The teacher to start from and the FixedAug corruption."""

    teacher: str = "gaussian_noise"
    """The teacher whose weights start the target: ``clean`` or the corruption it was trained robust to."""
    ft_fixedaug: str = ""
    """FixedAug: train with this corruption at uniform severities 1-5 ('' = none; usually the teacher's own)."""
    ft_fixedaug_prob: float = 0.5
    """Probability that a training sample gets the FixedAug corruption."""

    def __post_init__(self) -> None:
        super().__post_init__()
        known = ("", *corruptions.CORRUPTIONS)
        _check(self, "ft_fixedaug", self.ft_fixedaug in known, f"must be '' or one of {', '.join(known[1:])}")
        _check(self, "ft_fixedaug_prob", 0 <= self.ft_fixedaug_prob <= 1, "must be in [0, 1]")
        _check(self, "teacher", self.teacher != "ema", "cannot be ema (fine-tuning needs trained weights)")


def teacher_specs(cfg: Config) -> list[TeacherSpec]:
    """The one teacher the target starts from."""
    return [robust_teacher_spec(cfg, cfg.teacher)]


def preflight(cfg: Config) -> None:
    """Fail on the driver before any trial: data, teacher, models, init."""
    check_inputs(cfg, load_dataset(cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction), (cfg.teacher,))


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Fine-tune (or train from scratch) with CE, optionally with FixedAug; report ``val/acc`` per epoch."""
    device, data = loop.start(cfg)
    check_inputs(cfg, data, (cfg.teacher,))
    with loop.seeded(cfg.seed):
        model = create_model(cfg.model, data.num_classes, data.shape).to(device)
    if cfg.init == "teacher":
        init_from_teacher(model, load_or_train(teacher_specs(cfg)[0], run.cache_dir, device, progress=False))
    names = tuple(n for n in (cfg.teacher, cfg.ft_fixedaug) if n)

    def loss_fn(model, x, y, generator):
        x = to_float(x)
        if cfg.ft_fixedaug:
            keep = (torch.rand(len(x), generator=generator, device=generator.device) >= cfg.ft_fixedaug_prob).view(
                -1, 1, 1, 1
            )
            x = torch.where(keep, x, corruptions.random_corrupt(x, cfg.ft_fixedaug, generator))
        logits = model(loop.standardize(x))
        return F.cross_entropy(logits, y), {"train/acc": (logits.argmax(1) == y).float().mean().item()}

    def on_epoch(epoch: int) -> dict[str, float]:
        metrics = corruption_metrics(model, data, names, "val")
        if cfg.eval_test and epoch == cfg.epochs - 1:
            metrics.update(corruption_metrics(model, data, names, "test"))
        return metrics

    return loop.train_classifier(cfg, run, data, model, loss_fn, on_epoch=on_epoch)
