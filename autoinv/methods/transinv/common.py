"""Shared by TransInv and its fine-tuning baselines: teacher fields and specs, target init, corrupted eval."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from autoinv import corruptions, loop
from autoinv.config import BaseConfig, _check
from autoinv.data import Dataset, load_dataset, to_float
from autoinv.models import create_model
from autoinv.teachers import TeacherSpec

__all__ = [
    "TeacherFields",
    "TransInvError",
    "check_inputs",
    "corrupted_accuracy",
    "corruption_metrics",
    "init_from_teacher",
    "robust_teacher_spec",
]

EMA = "ema"
"""Teacher name of the target's own exponential moving average (paper §4.3, TeachAugment)."""
CLEAN = "clean"
"""Teacher name of a teacher trained without a corruption."""


class TransInvError(ValueError):
    """A user-facing input problem of TransInv or its baselines (teachers, data, init)."""


@dataclasses.dataclass(frozen=True)
class TeacherFields(BaseConfig):
    """The robust teachers' fields (shared by ``transinv`` and ``ft``)."""

    teacher_arch: str = "small_cnn"
    """Architecture of every trained teacher."""
    teacher_dataset: str = ""
    """Source dataset of the teachers ('' = the target ``dataset``); may have other classes (CIFAR-10 → CIFAR-100)."""
    teacher_epochs: int = 10
    """Epochs to train each teacher (once per search, cached)."""
    teacher_lr: float = 0.05
    """Peak SGD learning rate of the teachers."""
    teacher_augment: str = "flip_crop"
    """Base augmentation of the teachers' training (before their corruption)."""
    teacher_train_subset: int = 0
    """Train the teachers on the first N source samples (0 = all)."""
    teacher_seed: int = 0
    """Seed of the teachers' training; fixed so trials with different ``seed`` share them."""
    init: str = "teacher"
    """Target initialisation: ``teacher`` (the first trained teacher's weights, head re-made when the label spaces
    differ: fine-tuning) or ``scratch``."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, "teacher_epochs", self.teacher_epochs >= 0, "must be >= 0")
        _check(self, "teacher_lr", self.teacher_lr > 0, "must be > 0")
        _check(self, "init", self.init in ("teacher", "scratch"), "must be teacher or scratch")


def robust_teacher_spec(cfg: TeacherFields, name: str) -> TeacherSpec:
    """The spec of the teacher named ``name``: ``clean`` or a corruption it is trained robust to."""
    if name != CLEAN and name not in corruptions.CORRUPTIONS:
        known = ", ".join((CLEAN, EMA, *corruptions.CORRUPTIONS))
        raise TransInvError(f"unknown teacher {name!r}; known: {known}")
    return TeacherSpec(
        arch=cfg.teacher_arch,
        dataset=cfg.teacher_dataset or cfg.dataset,
        data_dir=cfg.data_dir,
        val_fraction=cfg.val_fraction,
        epochs=cfg.teacher_epochs,
        lr=cfg.teacher_lr,
        augment=cfg.teacher_augment,
        train_subset=cfg.teacher_train_subset,
        seed=cfg.teacher_seed,
        corruption="" if name == CLEAN else name,
    )


def check_inputs(cfg: TeacherFields, data: Dataset, teachers: tuple[str, ...]) -> None:
    """Fail in one line on what a trial would fail on: non-images, unknown teachers, shapes, the init choice."""
    if data.kind != "image":
        raise TransInvError(f"{cfg.dataset!r} holds signals; TransInv and its baselines need images")
    if not teachers:
        raise TransInvError("the teacher set is empty; name at least one teacher (clean, ema or a corruption)")
    trained = [name for name in teachers if name != EMA]
    for name in trained:
        robust_teacher_spec(cfg, name)
    if trained:
        source = load_dataset(cfg.teacher_dataset or cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction)
        if source.shape != data.shape:
            raise TransInvError(
                f"teacher_dataset {cfg.teacher_dataset!r} has inputs {source.shape} but dataset {cfg.dataset!r} "
                f"has {data.shape}; the teachers must read the target's images"
            )
        create_model(cfg.teacher_arch, source.num_classes, source.shape)  # an unknown name raises in one line
    create_model(cfg.model, data.num_classes, data.shape)
    if cfg.init == "teacher":
        if not trained:
            raise TransInvError("init=teacher needs a trained teacher (not only ema); use init=scratch")
        if cfg.model != cfg.teacher_arch:
            raise TransInvError(f"init=teacher needs model == teacher_arch; got {cfg.model!r} and {cfg.teacher_arch!r}")


def init_from_teacher(model: nn.Module, teacher: nn.Module) -> nn.Module:
    """Copy every teacher weight whose name and shape fit into ``model`` (the head stays fresh if classes differ)."""
    own = model.state_dict()
    fitting = {k: v for k, v in teacher.state_dict().items() if k in own and own[k].shape == v.shape}
    own.update(fitting)
    model.load_state_dict(own)
    return model


@torch.no_grad()
def corrupted_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str, seed: int = 0, batch_size: int = 1024
) -> float:
    """Accuracy on ``x`` (uint8 (N, C, H, W)) corrupted with ``name`` at severities drawn uniformly from 1-5.

    The severities and the corruption's randomness come from ``seed`` alone, so every method sees the same images.
    """
    was_training = model.training
    model.eval()
    gen = torch.Generator(device=x.device).manual_seed(seed)
    correct = 0
    for start in range(0, len(x), batch_size):
        xb = corruptions.random_corrupt(to_float(x[start : start + batch_size]), name, gen)
        correct += (model(loop.standardize(xb)).argmax(1) == y[start : start + batch_size]).sum().item()
    model.train(was_training)
    return correct / max(len(x), 1)


def corruption_metrics(
    model: nn.Module, data: Dataset, names: tuple[str, ...], split: str = "val", batch_size: int = 1024
) -> dict[str, float]:
    """``<split>/acc_<corruption>`` for each corruption in ``names`` (``clean`` and ``ema`` are skipped)."""
    x, y = (data.x_val, data.y_val) if split == "val" else (data.x_test, data.y_test)
    wanted = [n for n in dict.fromkeys(names) if n in corruptions.CORRUPTIONS]
    return {f"{split}/acc_{n}": corrupted_accuracy(model, x, y, n, seed=1234, batch_size=batch_size) for n in wanted}
