"""TransInv training: a target network and one augmenter per teacher, optimised min-max (Algorithm 1).

Every ``n_inner`` target steps the augmenters take one ascent step on CE(y, F(A(x))) − L₂(T(x), T(A(x))) on a
fresh batch (target and teachers frozen for it); the target steps descend CE on the augmenters' images. The
target's epoch loop is ``loop.train_classifier``'s, so reports, resumption and evaluation are the shared ones; the
augmenters, their optimiser, the EMA teacher and the step counter ride in every checkpoint.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autoinv import augment, loop
from autoinv.config import _check
from autoinv.data import Dataset, load_dataset, to_float
from autoinv.methods.transinv.augmenter import Augmenter, AugmenterSet, augmenter_payload, load_augmenter
from autoinv.methods.transinv.common import (
    EMA,
    TeacherFields,
    check_inputs,
    corruption_metrics,
    init_from_teacher,
    robust_teacher_spec,
)
from autoinv.methods.transinv.primitives import get_primitive
from autoinv.models import create_model
from autoinv.teachers import TeacherSpec, load_or_train

__all__ = ["ARTIFACT_FIELDS", "Config", "MinMax", "fit", "preflight", "teacher_specs"]

ARTIFACT_FIELDS = {"augmenter": "augmenter_from"}
"""Export ships the trial's ``augmenter.pt`` and sets ``augmenter_from`` to it: final training reuses it, frozen."""

PAPER_PRIMITIVES = ("contrast_brightness", "affine", "gaussian_blur", "gaussian_noise")


@dataclasses.dataclass(frozen=True)
class Config(TeacherFields):
    """TransInv's knobs on top of the shared and teacher fields."""

    teachers: tuple[str, ...] = ("gaussian_noise",)
    """Teacher set: each ``clean``, ``ema`` (EMA of the target) or a corruption it is trained robust to."""
    aug_primitives: tuple[str, ...] = PAPER_PRIMITIVES
    """Primitives of every augmenter, in order (``primitives.PRIMITIVES``); the paper's §4.2 four by default."""
    aug_z_dim: int = 128
    """Dimension M of the noise z fed to the strength MLPs."""
    aug_width: int = 128
    """Hidden width of every strength MLP."""
    aug_range_scale: float = 1.0
    """Factor on every strength interval around its neutral value (1 = the paper's ranges)."""
    aug_lr: float = 1e-3
    """Adam learning rate of the augmenters (φ, p, q, r)."""
    aug_q_init: float = 0.5
    """Initial apply probability q."""
    aug_init_strength: float = 0.0
    """0 starts every primitive at the identity for every z; in (0, 1) starts the strengths spread away from it."""
    aug_learn_strengths: bool = True
    """Learn the strength MLPs φ; False learns only p, q and r over fixed strengths (the paper's §4.1 toy)."""
    aug_teacher_weight: float = 1.0
    """Weight of the teacher-consistency term L₂ in the augmenter's objective (the paper's: 1)."""
    tau_p: float = 1.0
    """Gumbel-softmax temperature of the primitive selection p."""
    tau_q: float = 0.05
    """Relaxed-Bernoulli temperature of the apply choice q (TeachAugment's 0.05)."""
    tau_r: float = 1.0
    """Gumbel-softmax temperature of the augmenter (teacher) selection r."""
    aug_hard: bool = True
    """Straight-through one-hot samples for p and r (one primitive per sample, as Eq. 3); else soft mixtures."""
    n_inner: int = 5
    """Target steps per augmenter step."""
    ema_decay: float = 0.999
    """Decay of the EMA-of-target teacher (``ema`` in ``teachers``)."""
    augmenter_from: str = ""
    """A saved augmenter (``augmenter.pt`` or its folder) to reuse frozen; no augmenter steps then."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, "n_inner", self.n_inner >= 1, "must be >= 1")
        _check(self, "teachers", len(self.teachers) >= 1, "must name at least one teacher")
        _check(self, "aug_primitives", len(self.aug_primitives) >= 1, "must name at least one primitive")
        for name in self.aug_primitives:
            get_primitive(name)
        _check(self, "aug_z_dim", self.aug_z_dim >= 1, "must be >= 1")
        _check(self, "aug_width", self.aug_width >= 1, "must be >= 1")
        _check(self, "aug_range_scale", 0 < self.aug_range_scale <= 1, "must be in (0, 1]")
        _check(self, "aug_lr", self.aug_lr > 0, "must be > 0")
        _check(self, "aug_q_init", 0 < self.aug_q_init < 1, "must be in (0, 1)")
        _check(self, "aug_init_strength", 0 <= self.aug_init_strength < 1, "must be in [0, 1)")
        _check(self, "aug_teacher_weight", self.aug_teacher_weight >= 0, "must be >= 0")
        for field in ("tau_p", "tau_q", "tau_r"):
            _check(self, field, getattr(self, field) > 0, "must be > 0")
        _check(self, "ema_decay", 0 <= self.ema_decay < 1, "must be in [0, 1)")


def teacher_specs(cfg: Config) -> list[TeacherSpec]:
    """The trained teachers of the set (not ``ema``); a search trains them on the driver before trials start."""
    return [robust_teacher_spec(cfg, name) for name in cfg.teachers if name != EMA]


def preflight(cfg: Config) -> None:
    """Fail on the driver before any trial: data, teachers, models, init and ``augmenter_from``."""
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction)
    check_inputs(cfg, data, cfg.teachers)
    if cfg.augmenter_from:
        load_augmenter(cfg.augmenter_from)


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Train the target with TransInv's min-max augmenters (or a reused frozen one); report ``val/acc`` per epoch."""
    device, data = loop.start(cfg)
    check_inputs(cfg, data, cfg.teachers)
    frozen = load_augmenter(cfg.augmenter_from).to(device) if cfg.augmenter_from else None

    # Teachers (frozen, trained once per search) and the target, from scratch or from the first teacher.
    trained = [load_or_train(spec, run.cache_dir, device, progress=False) for spec in teacher_specs(cfg)]
    with loop.seeded(cfg.seed):
        target = create_model(cfg.model, data.num_classes, data.shape).to(device)
    if cfg.init == "teacher":
        init_from_teacher(target, trained[0])

    minmax = MinMax(cfg, data, target, trained, frozen)
    state = run.resume()
    if state is not None:
        minmax.load_state(state["transinv"])
    extra: dict[str, Any] = {}

    def on_epoch(epoch: int) -> dict[str, float]:
        extra["transinv"] = minmax.state()
        metrics = {**minmax.epoch_metrics(), **corruption_metrics(target, data, cfg.teachers, "val")}
        if cfg.eval_test and epoch == cfg.epochs - 1:
            metrics.update(corruption_metrics(target, data, cfg.teachers, "test"))
        if epoch in (0, cfg.epochs - 1):
            _figures(cfg, run, minmax, data, epoch)
        if epoch == cfg.epochs - 1:
            run.artifact("augmenter", minmax.payload())
        return metrics

    return loop.train_classifier(cfg, run, data, target, minmax.loss_fn, extra_state=extra, on_epoch=on_epoch)


# ---------------------------------------------------------------------------------------------------------------------
# The min-max


class MinMax:
    """Algorithm 1 as a per-batch loss for ``loop.train_classifier``, plus the augmenters' own ascent steps.

    Args:
        cfg: the config.
        data: dataset on the training device (the augmenter steps draw their own fresh batches from it).
        target: the target network F (trained by the caller's optimiser through :attr:`loss_fn`).
        teachers: frozen trained teachers, in ``cfg.teachers`` order without ``ema``.
        frozen: a reused augmenter set; when given, it is never updated.
    """

    def __init__(
        self,
        cfg: Config,
        data: Dataset,
        target: nn.Module,
        teachers: list[nn.Module],
        frozen: AugmenterSet | None = None,
    ) -> None:
        self.cfg, self.data, self.target = cfg, data, target
        device = data.x_train.device
        self.ema = copy.deepcopy(target).eval().requires_grad_(False) if EMA in cfg.teachers else None
        trained = iter(teachers)
        self.teachers = [self.ema if name == EMA else next(trained) for name in cfg.teachers]
        self.settings = {
            "primitives": [list(cfg.aug_primitives)] * len(cfg.teachers),
            "z_dim": cfg.aug_z_dim,
            "width": cfg.aug_width,
            "range_scale": cfg.aug_range_scale,
        }
        if frozen is not None:
            self.augmenters, self.learn = frozen.eval().requires_grad_(False), False
        else:
            with loop.seeded(cfg.seed + 20):
                augs = [
                    Augmenter(
                        cfg.aug_primitives,
                        cfg.aug_z_dim,
                        cfg.aug_width,
                        cfg.aug_range_scale,
                        cfg.aug_q_init,
                        cfg.aug_init_strength,
                    )
                    for _ in cfg.teachers
                ]
            self.augmenters, self.learn = AugmenterSet(augs).to(device), True
        learned = [
            p for name, p in self.augmenters.named_parameters() if cfg.aug_learn_strengths or ".heads." not in name
        ]
        self.params = learned
        self.optimizer = torch.optim.Adam(learned, lr=cfg.aug_lr) if self.learn else None
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed + 21)
        self.batch_generator = torch.Generator().manual_seed(cfg.seed + 22)
        self.target_steps, self.aug_steps = 0, 0
        self.history: list[dict[str, float]] = []
        self._sums: dict[str, float] = {}
        self._reported_steps = 0

    # -- the two steps ------------------------------------------------------------------------------------------------

    def loss_fn(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> Any:
        """One target step's loss: CE of F on A(x); every ``n_inner``-th call first takes an augmenter step."""
        if self.learn and self.target_steps % self.cfg.n_inner == 0:
            self.augmenter_step()
        if self.ema is not None:
            self._update_ema()
        self.target_steps += 1
        with torch.no_grad():
            x_aug, _, _ = self._augment(to_float(x))
        logits = model(loop.standardize(x_aug))
        return F.cross_entropy(logits, y), {"train/acc": (logits.argmax(1) == y).float().mean().item()}

    def augmenter_step(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None) -> dict[str, float]:
        """One ascent step of (φ, p, q, r) on CE(y, F(A(x))) − w · L₂(T(x), T(A(x))).

        Args:
            x: float images (B, C, H, W) in [0, 1]; by default a fresh base-augmented training batch.
            y: their labels (B,).

        Returns:
            The step's ``target_ce``, ``teacher_l2`` and ``objective`` (before the update).
        """
        if x is None:
            x, y = self._fresh_batch()
        was_training = self.target.training
        self.target.eval()  # the augmenter's step must not move the target's BN statistics
        objective, logs = self.objective(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        (-objective).backward(inputs=self.params)  # ascent; the target and the teachers get no gradients
        self.optimizer.step()
        self.target.train(was_training)
        self.aug_steps += 1
        for key, value in logs.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        return logs

    def objective(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """The augmenters' objective (Eq. 5 / 6) on a batch, differentiable in (φ, p, q, r).

        Args:
            x: float images (B, C, H, W) in [0, 1].
            y: labels (B,).

        Returns:
            The scalar objective and its parts as floats.
        """
        x_aug, outs, h = self._augment(x)
        target_ce = F.cross_entropy(self.target(loop.standardize(x_aug)), y)
        consistency = x.new_zeros(())
        for k, teacher in enumerate(self.teachers):
            with torch.no_grad():
                clean = torch.softmax(teacher(loop.standardize(x)).float(), 1)
            per_sample = -(clean * F.log_softmax(teacher(loop.standardize(outs[k])).float(), 1)).sum(1)
            consistency = consistency + (h[:, k] * per_sample).mean()  # each sample counts for its own augmenter
        objective = target_ce - self.cfg.aug_teacher_weight * consistency
        logs = {"target_ce": target_ce.item(), "teacher_l2": consistency.item(), "objective": objective.item()}
        return objective, logs

    def _fresh_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, data = self.cfg, self.data
        idx = torch.randint(len(data.x_train), (cfg.batch_size,), generator=self.batch_generator)
        idx = idx.to(data.x_train.device)
        x = augment.augment_batch(data.x_train[idx], cfg.augment, generator=self.generator)
        return to_float(x), data.y_train[idx]

    def _augment(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        cfg = self.cfg
        return self.augmenters(x, cfg.tau_p, cfg.tau_q, cfg.tau_r, cfg.aug_hard, self.generator)

    @torch.no_grad()
    def _update_ema(self) -> None:
        for ema, live in zip(self.ema.state_dict().values(), self.target.state_dict().values()):
            if ema.dtype.is_floating_point:
                ema.lerp_(live, 1 - self.cfg.ema_decay)
            else:
                ema.copy_(live)

    # -- what gets reported and saved -------------------------------------------------------------------------------

    def epoch_metrics(self) -> dict[str, float]:
        """This epoch's ``aug/*`` metrics (p per primitive, q, r, mean augmenter-step losses); resets the sums."""
        out: dict[str, float] = {}
        for k, aug in enumerate(self.augmenters.augmenters):
            tag = "" if len(self.augmenters.augmenters) == 1 else f"{k}_{self.cfg.teachers[k]}/"
            for name, value in zip(aug.names, aug.p.tolist()):
                out[f"aug/{tag}p_{name}"] = value
            out[f"aug/{tag}q"] = aug.q.item()
        if len(self.augmenters.augmenters) > 1:
            for k, value in enumerate(self.augmenters.r.tolist()):
                out[f"aug/r_{k}_{self.cfg.teachers[k]}"] = value
        steps = max(self.aug_steps - self._reported_steps, 1)
        out.update({f"aug/{key}": value / steps for key, value in self._sums.items()})
        out["aug/steps"] = float(self.aug_steps)
        self.history.append(dict(out))
        self._sums, self._reported_steps = {}, self.aug_steps
        return out

    def state(self) -> dict[str, Any]:
        """Everything a resumed trial needs beside the target (tensors and plain containers)."""
        return {
            "augmenters": self.augmenters.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else {},
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "generator": self.generator.get_state(),
            "batch_generator": self.batch_generator.get_state(),
            "steps": [self.target_steps, self.aug_steps],
            "history": [dict(h) for h in self.history],
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state`'s output."""
        self.augmenters.load_state_dict(state["augmenters"])
        if self.optimizer is not None and state["optimizer"]:
            self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None and state["ema"]:
            self.ema.load_state_dict(state["ema"])
        self.generator.set_state(state["generator"])
        self.batch_generator.set_state(state["batch_generator"])
        self.target_steps, self.aug_steps = state["steps"]
        self._reported_steps = self.aug_steps
        self.history = [dict(h) for h in state["history"]]

    def payload(self) -> dict[str, Any]:
        """The learned augmenters for export (``augmenter.pt``)."""
        return augmenter_payload(self.augmenters, self.settings)


def _figures(cfg: Config, run: loop.Run, minmax: MinMax, data: Dataset, epoch: int) -> None:
    # matplotlib only where pictures are drawn (the CLIs start faster)
    from autoinv.methods.transinv.figures import history_figure, p_figure, primitive_grid_figure

    x = to_float(data.x_val[:6])
    gen = torch.Generator(device=x.device).manual_seed(cfg.seed)
    for k, aug in enumerate(minmax.augmenters.augmenters):
        suffix = "" if len(cfg.teachers) == 1 else f"_{k}_{cfg.teachers[k]}"
        with torch.no_grad():
            rows = [aug(x, only=i, hard=False, generator=gen)[0] for i in range(len(aug.names))]
        run.figure(f"aug/primitives{suffix}", primitive_grid_figure(x, rows, aug.names, aug.p.tolist()), epoch)
        run.figure(f"aug/p{suffix}", p_figure(aug.names, aug.p.tolist(), cfg.teachers[k]), epoch)
    run.figure("aug/history", history_figure(minmax.history), epoch)
