"""What every transfer method of the Orbit experiments shares: the config, data, teacher and student phases.

A transfer trial is teacher (trained once on the search's driver by :mod:`autoinv.teachers`, found in its cache)
→ method-specific phase (Orbit learns ρ) → student trained with ``(1 − γ)·CE + γ·Ω``. The baselines
(``student_ce``, ``student_aug``, ``kd``, ``hidden_match``, ``rdl``, ``cka``, ``attention``) are thin modules over
:func:`fit_student`; Orbit adds its ρ phase in ``fit.py``.

Datasets: ``mnist1d_shift`` (untranslated MNIST-1D with seen shifts ``[0, shift_limit)``, the registry's
``mnist1d_shift:shift=S`` of :mod:`autoinv.data`; ``mnist1d_shift:file=PATH`` reads a user's own file), or any image
dataset of :mod:`autoinv.data` with a translated or rotated test copy (``image_transform``,
:mod:`~autoinv.methods.orbit.transforms`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autoinv import loop
from autoinv.config import BaseConfig, _check
from autoinv.data import MNIST1D_LENGTH, Dataset, load_dataset, roll_signals, to_float
from autoinv.methods.orbit import plots, transforms
from autoinv.methods.orbit.core import to_layout
from autoinv.methods.orbit.hooks import check_layers, forward_with_layers
from autoinv.methods.orbit.objectives import transfer_loss
from autoinv.models import create_model
from autoinv.teachers import TeacherSpec, load_or_train

__all__ = [
    "TransferConfig",
    "SHIFT_DATASET",
    "PAPER_NETS",
    "is_shift_data",
    "dataset_name",
    "transform_of",
    "load_transfer_data",
    "teacher_specs",
    "load_teacher",
    "build_student",
    "teacher_layouts",
    "preflight",
    "to_unit",
    "to_net",
    "fit_student",
    "fit_transfer",
    "paired_loss",
    "accuracy_by_transform",
]

SHIFT_DATASET = "mnist1d_shift"
"""The dataset name of untranslated MNIST-1D with seen/unseen circular shifts."""

PAPER_NETS = ("circconv1d_teacher", "mlp_maxpool1d", "mlp_linear1d", "cnn2d_teacher", "mlp2d_student", "p4cnn")
"""The Orbit experiments' networks in ``autoinv.models.MODELS``; as teachers they train with the paper's recipe."""


@dataclasses.dataclass(frozen=True)
class TransferConfig(BaseConfig):
    """Shared fields of the transfer methods; defaults are the paper's MNIST-1D max-pool setting (supplement A.1)."""

    dataset: str = SHIFT_DATASET
    """``mnist1d_shift`` (``mnist1d_shift:file=PATH`` for your own file) or an image dataset of ``autoinv.data``."""
    model: str = "mlp_maxpool1d"
    """Student Ψ: a name of ``autoinv.models.MODELS``."""
    epochs: int = 100
    """Student epochs of ``steps_per_epoch`` steps (ASHA's rungs); the paper ran 40,000 steps (400 epochs)."""
    steps_per_epoch: int = 100
    """Student steps per epoch; 100 is the paper's evaluation interval."""
    batch_size: int = 1000
    """Batch size (the paper's 1000 for MNIST-1D)."""
    optimizer: str = "adam"
    """The paper trains every network with Adam."""
    lr: float = 1e-3
    """Student learning rate."""
    weight_decay: float = 0.0
    """Student L2 weight decay."""
    schedule: str = "constant"
    """Learning-rate schedule (the paper's plateau decay is not available; see the method card)."""
    augment: str = "none"
    """Base augmentation of image batches; ``none`` so that only the method decides which transforms are seen."""
    eval_batch_size: int = 4000
    """Evaluation batch size."""
    shift_limit: int = 30
    """MNIST-1D: train/validation shifts in [0, s), unseen test shifts in [s, 40); s in [0, 40]."""
    image_transform: str = "translate"
    """Images: the test copy (and the true augmentation) is ``translate`` or ``rotate`` (multiples of 90°)."""
    image_max_shift: int = 3
    """Images: largest circular shift per axis, in pixels, of the translated test copy."""
    teacher_arch: str = "circconv1d_teacher"
    """Teacher Φ: a name of ``autoinv.models.MODELS``."""
    teacher_epochs: int = 10
    """Teacher epochs of 100 steps (full passes for the framework's other teachers on images)."""
    teacher_batch_size: int = 250
    """Teacher batch size."""
    teacher_lr: float = 1e-2
    """Teacher learning rate (Adam)."""
    teacher_checkpoint: str = ""
    """A state dict to load instead of training the teacher."""
    teacher_layers: tuple[str, ...] = ("conv1", "conv2")
    """Teacher layers to match, by submodule name (the logits are always matched too)."""
    student_layers: tuple[str, ...] = ("fc1", "fc2")
    """Student layers, paired by position with ``teacher_layers``."""
    gamma: float = 0.0
    """γ in ``(1 − γ)·CE + γ·Ω``; 0 is plain cross-entropy."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, "shift_limit", 0 <= self.shift_limit <= MNIST1D_LENGTH, "must be in [0, 40]")
        if is_shift_data(self):
            options = self.dataset.partition(":")[2]
            _check(self, "dataset", "shift=" not in options, "sets its shift through shift_limit, not shift=")
        _check(self, "image_transform", self.image_transform in ("translate", "rotate"), "must be translate or rotate")
        _check(self, "image_max_shift", self.image_max_shift >= 1, "must be >= 1")
        _check(self, "teacher_epochs", self.teacher_epochs >= 1, "must be >= 1")
        _check(self, "teacher_lr", self.teacher_lr > 0, "must be > 0")
        _check(self, "teacher_batch_size", self.teacher_batch_size >= 1, "must be >= 1")
        _check(self, "gamma", 0.0 <= self.gamma <= 1.0, "must be in [0, 1]")
        _check(
            self,
            "student_layers",
            len(self.student_layers) == len(self.teacher_layers),
            f"must pair one-to-one with teacher_layers {self.teacher_layers}",
        )


# ---------------------------------------------------------------------------------------------------------------------
# Data and networks


def is_shift_data(cfg: TransferConfig) -> bool:
    """Whether the config's data is MNIST-1D with shifts (``mnist1d_shift``, with or without options)."""
    return cfg.dataset.partition(":")[0] == SHIFT_DATASET


def dataset_name(cfg: TransferConfig) -> str:
    """The config's dataset as a registry name: ``mnist1d_shift`` takes ``shift_limit`` as its ``shift=`` option.

    At ``shift_limit=30``: ``mnist1d_shift`` → ``mnist1d_shift:shift=30``, and ``mnist1d_shift:file=m.npz`` →
    ``mnist1d_shift:shift=30,file=m.npz``.
    """
    if not is_shift_data(cfg):
        return cfg.dataset
    options = cfg.dataset.partition(":")[2]
    return f"{SHIFT_DATASET}:shift={cfg.shift_limit}" + (f",{options}" if options else "")


def transform_of(cfg: TransferConfig) -> str:
    """The true transform of the config's data: ``shift`` (MNIST-1D), ``translate`` or ``rotate`` (images)."""
    return "shift" if is_shift_data(cfg) else cfg.image_transform


def load_transfer_data(cfg: TransferConfig) -> Dataset:
    """The config's data with its extra test splits (on CPU), ``train_subset`` applied."""
    if is_shift_data(cfg):
        data = load_dataset(dataset_name(cfg), cfg.data_dir, cfg.val_fraction)
    else:
        data = transforms.transformed_image_data(
            cfg.dataset, cfg.image_transform, cfg.image_max_shift, cfg.data_dir, cfg.val_fraction
        )
    if cfg.train_subset:
        data = dataclasses.replace(
            data, x_train=data.x_train[: cfg.train_subset], y_train=data.y_train[: cfg.train_subset]
        )
    return data


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """A raw batch in the space transforms act on: uint8 images → float in [0, 1]; signals unchanged."""
    return to_float(x)


def to_net(u: torch.Tensor) -> torch.Tensor:
    """:func:`to_unit`-space inputs → network inputs (the framework's standardisation for images)."""
    return loop.standardize(u) if u.dim() == 4 else u


def teacher_specs(cfg: TransferConfig) -> list[TeacherSpec]:
    """The teacher Φ, which the search trains once on its driver before the trials find it in the cache.

    Teachers on ``mnist1d_shift`` and of the Orbit experiments' own architectures (:data:`PAPER_NETS`) train with
    the paper's recipe, independent of the student's settings so every student shares one teacher: Adam, epochs
    of 100 steps, cosine decay, no weight decay, on the student's training data (``train_subset`` too). The
    framework's other architectures on images train as the framework's teachers do (SGD, full passes), on all of it.
    Neither sees base augmentation: crops would show the teacher translations the student must not see.
    """
    common = {
        "arch": cfg.teacher_arch,
        "dataset": dataset_name(cfg),
        "data_dir": cfg.data_dir,
        "val_fraction": cfg.val_fraction,
        "epochs": cfg.teacher_epochs,
        "lr": cfg.teacher_lr,
        "batch_size": cfg.teacher_batch_size,
        "augment": "none",
        "checkpoint": cfg.teacher_checkpoint,
    }
    if not is_shift_data(cfg) and cfg.teacher_arch not in PAPER_NETS:
        return [TeacherSpec(**common)]
    paper = {"steps_per_epoch": 100, "optimizer": "adam", "weight_decay": 0.0, "schedule": "cosine"}
    return [TeacherSpec(**common, **paper, train_subset=cfg.train_subset, seed=0)]


def load_teacher(cfg: TransferConfig, cache_dir: str, device: torch.device) -> nn.Module:
    """The frozen teacher Φ in eval mode on ``device``, from :mod:`autoinv.teachers`' cache (trained if absent)."""
    return load_or_train(teacher_specs(cfg)[0], cache_dir, device, progress=False)


def build_student(cfg: TransferConfig, data: Dataset, device: torch.device) -> nn.Module:
    """The student Ψ, initialised from ``cfg.seed`` alone (so methods with the same seed start from the same Ψ)."""
    loop.seed_everything(cfg.seed)
    return create_model(cfg.model, data.num_classes, data.shape).to(device)


def teacher_layouts(
    cfg: TransferConfig, teacher: nn.Module, student: nn.Module, data: Dataset
) -> list[tuple[int, ...]]:
    """Check the layer names to match and return the teacher layers' per-sample shapes.

    Raises:
        LayerError: an unknown layer name (the message lists the available ones).
        ValueError: a student layer whose size no layout rule maps onto its teacher layer.
    """
    check_layers(teacher, cfg.teacher_layers, "teacher")
    check_layers(student, cfg.student_layers, "student")
    x = to_net(to_unit(data.x_val[:2]))
    with torch.no_grad():
        _, t_acts = forward_with_layers(teacher, x, cfg.teacher_layers)
        was_training = student.training
        _, s_acts = forward_with_layers(student.eval(), x, cfg.student_layers)
        student.train(was_training)
    layouts = [tuple(a.shape[1:]) for a in t_acts]
    for name, s, layout in zip(cfg.student_layers, s_acts, layouts):
        try:
            to_layout(s, layout)
        except ValueError as error:
            raise ValueError(f"student layer {name!r}: {error}") from None
    return layouts


def preflight(cfg: TransferConfig, uses_layers: bool = True) -> None:
    """Check, before any training, that the data loads and the layers to match exist and fit each other.

    Builds untrained teacher and student on the CPU. Raises the same one-line ``ValueError`` subclasses ``fit`` would.
    """
    data = load_transfer_data(cfg)
    teacher = create_model(cfg.teacher_arch, data.num_classes, data.shape).eval()
    student = create_model(cfg.model, data.num_classes, data.shape)
    if uses_layers:
        teacher_layouts(cfg, teacher, student, data)


# ---------------------------------------------------------------------------------------------------------------------
# Student phase


StudentLoss = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]
"""``loss(student, x, y) -> (loss, logs)`` with x the raw batch (uint8 images or float signals)."""


def fit_student(
    cfg: TransferConfig,
    run: loop.Run,
    data: Dataset,
    teacher: nn.Module,
    student: nn.Module,
    loss: StudentLoss,
    label: str,
    extra_state: dict[str, Any] | None = None,
    extra_metrics: dict[str, float] | None = None,
) -> dict[str, float]:
    """Train the student with ``loss`` through the framework's resumable epoch loop.

    Every epoch reports ``val/acc`` (seen transforms; the search metric) plus ``extra_metrics``. At the last epoch
    it sends the accuracy-against-transform picture (teacher and this student), and with ``cfg.eval_test`` the
    framework's loop adds ``test/acc`` (seen) and the data's extra test splits (``test/acc_unseen``,
    ``test/acc_all``, or ``test/acc_translated`` / ``test/acc_rotated``).

    Args:
        cfg: The method's config.
        run: Where reports, figures and the model go.
        data: The data on the training device.
        teacher: Φ (frozen; evaluated for the picture).
        student: Ψ.
        loss: See :data:`StudentLoss`.
        label: The method's name, for the picture's legend.
        extra_state: Saved with every checkpoint (Orbit's learned ρ).
        extra_metrics: Constant metrics added to every report (Orbit's ρ-learning losses).
    """

    def on_epoch(epoch: int) -> dict[str, float]:
        metrics = dict(extra_metrics or {})
        if epoch != cfg.epochs - 1:
            return metrics
        curves = {
            "teacher": accuracy_by_transform(teacher, data, cfg),
            label: accuracy_by_transform(student, data, cfg),
        }
        run.figure(
            "transfer/acc_vs_transform", plots.accuracy_curves(curves, transform_of(cfg), cfg.shift_limit), epoch
        )
        return metrics

    def loss_fn(model, x, y, generator):
        return loss(model, x, y)

    return loop.train_classifier(cfg, run, data, student, loss_fn, extra_state=extra_state, on_epoch=on_epoch)


def fit_transfer(
    cfg: TransferConfig,
    run: loop.Run,
    label: str,
    make_loss: Callable[[nn.Module, Dataset], StudentLoss],
    uses_layers: bool = True,
) -> dict[str, float]:
    """A whole baseline trial: data → teacher (cached) → student trained with ``make_loss(teacher, data)``.

    Args:
        cfg: The baseline's config.
        run: Where reports go.
        label: The method's name (legend of the picture).
        make_loss: Builds the per-batch student loss from the frozen teacher and the data.
        uses_layers: Check ``teacher_layers`` / ``student_layers`` before training (hidden-layer methods).
    """
    device = loop.pick_device(cfg.device)
    data = load_transfer_data(cfg).to(device)
    teacher = load_teacher(cfg, run.cache_dir, device)
    student = build_student(cfg, data, device)
    if uses_layers:
        teacher_layouts(cfg, teacher, student, data)
    return fit_student(cfg, run, data, teacher, student, make_loss(teacher, data), label)


PairedTerm = Callable[[list[torch.Tensor], list[torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor]
"""``term(student_acts, teacher_acts, student_logits, teacher_logits) -> Ω``, on the same batch."""


def paired_loss(cfg: TransferConfig, teacher: nn.Module, term: PairedTerm, name: str) -> StudentLoss:
    """Student loss ``(1 − γ)·CE + γ·Ω`` where Ω compares matched layers of student and teacher on the batch.

    Args:
        cfg: Names the layers (``student_layers`` paired with ``teacher_layers``) and γ.
        teacher: Φ, frozen.
        term: Computes Ω.
        name: Ω's log key, ``train/<name>``.
    """

    def loss(student: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        x = to_net(to_unit(x))
        with torch.no_grad():
            t_logits, t_acts = forward_with_layers(teacher, x, cfg.teacher_layers)
        s_logits, s_acts = forward_with_layers(student, x, cfg.student_layers)
        ce = F.cross_entropy(s_logits, y)
        if cfg.gamma == 0:
            return ce, {"train/ce": ce.item()}
        term_value = term(s_acts, t_acts, s_logits, t_logits)
        return transfer_loss(ce, term_value, cfg.gamma), {"train/ce": ce.item(), f"train/{name}": term_value.item()}

    return loss


def accuracy_by_transform(model: nn.Module, data: Dataset, cfg: TransferConfig) -> dict[int, float]:
    """Test accuracy of ``model`` with every test sample moved by the same transform, one entry per transform.

    MNIST-1D: circular shifts 0..39; translated images: horizontal shifts −m..m; rotated images: 0..3 quarters.
    """
    transform = transform_of(cfg)
    if transform == "shift":
        moves = range(MNIST1D_LENGTH)
    elif transform == "translate":
        moves = range(-cfg.image_max_shift, cfg.image_max_shift + 1)
    else:
        moves = range(4)
    out = {}
    for m in moves:
        n = len(data.x_base)
        move = torch.full((n,), m, dtype=torch.long)
        if transform == "shift":
            x = roll_signals(data.x_base, move)
        elif transform == "translate":
            x = transforms.roll_images(data.x_base, torch.zeros_like(move), move)
        else:
            x = transforms.rotate_images(data.x_base, move)
        out[m] = loop.evaluate(model, x, data.y_base, cfg.eval_batch_size, cfg.amp)["acc"]
    return out
