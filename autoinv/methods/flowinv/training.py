"""Joint training of a classifier and a learned augmenter, shared by FlowInv, Augerino and InstaAug.

Per batch: ``loss = CE(f(x)) [aug_include_orig] + mean over aug_copies of CE(f(warp(x, T))) + λ · penalty``, with
T sampled from the augmenter (differentiably), and λ from the method's controller (FlowInv: a PID on the entropy;
InstaAug: a window scheduler; Augerino: fixed). During ``aug_warmup_epochs`` the classifier trains on the original
images alone. The epoch loop is ``loop.train_classifier``, so reports, resumption and plain ``val/acc`` are the
shared ones; this module adds ``val/acc_tta``, the ``aug/*`` metrics and the pictures.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from autoinv import augment, loop
from autoinv.config import BaseConfig, _check
from autoinv.data import Dataset, load_dataset, marioiggy_sprites, to_float
from autoinv.methods.flowinv.core import (
    AUG_SLOTS,
    AugmenterError,
    PIDState,
    apply_params,
    augmenter_payload,
    load_augmenter,
    mean_shift_align,
    pid_step,
    rotation_degrees,
    rotation_error,
    tta_logits,
)
from autoinv.models import create_model

__all__ = [
    "AugConfig",
    "Controller",
    "PIDController",
    "FixedWeight",
    "check_inputs",
    "preflight",
    "augmented_loss",
    "train_augmented",
    "rotation_band",
    "sprite_band_summary",
    "range_summary",
    "mode_mass",
    "rotation_discovery",
]


@dataclasses.dataclass(frozen=True)
class AugConfig(BaseConfig):
    """Fields of every learned-augmenter method; the defaults are the paper's Mario-Iggy setting, scaled down."""

    dataset: str = "marioiggy"
    """Dataset name; ``marioiggy`` (±90°), ``marioiggy:rot=30,modes=3`` (3 modes), or any image set."""
    augment: str = "none"
    """Base augmentation before the learned one (none: the learned augmenter is the only augmentation)."""
    optimizer: str = "adam"
    """One optimiser over classifier and augmenter, as the reference (which uses AdamW)."""
    lr: float = 1e-3
    """Peak learning rate (reference mario_90: 1e-3)."""
    weight_decay: float = 0.0
    """L2 weight decay (reference: 0)."""
    aug_type: str = "rotate_translate"
    """Transformations learned: rotate, translate, rotate_translate, full (6-D affine) or crop (translate, scale,
    stretch)."""
    aug_trans_scale: float = 0.1
    """Translation per unit of w, in normalised units (1 = half the image)."""
    aug_copies: int = 1
    """Augmented copies per image in the training loss."""
    aug_include_orig: bool = True
    """Also take the cross-entropy on the original image."""
    aug_warmup_epochs: int = 1
    """Epochs of plain training before augmenting (and before the entropy controller starts)."""
    aug_lr: float = 0.0
    """Learning rate of the augmenter (0 = ``lr``)."""
    aug_freeze_classifier: bool = False
    """After the warm-up, only the augmenter trains, against the classifier the warm-up trained (in eval mode), as
    the reference's multi-modal and rotation-discovery scripts; ignored with ``augmenter_from`` (then the classifier
    is what trains)."""
    tta_samples: int = 10
    """Augmented views per image in test-time averaging (``val/acc_tta``, ``test/acc_tta``); 0 = off."""
    tta_pool: int = 300
    """Samples drawn per image to keep the tta_samples most plausible from (when tta_samples ≤ 30)."""
    augmenter_from: str = ""
    """A saved augmenter (``augmenter.pt`` from export, or its folder) to reuse frozen: only the classifier trains."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, "aug_type", self.aug_type in AUG_SLOTS, f"must be one of {', '.join(AUG_SLOTS)}")
        _check(self, "aug_copies", self.aug_copies >= 1, "must be >= 1")
        _check(self, "aug_trans_scale", self.aug_trans_scale > 0, "must be > 0")
        _check(self, "aug_warmup_epochs", self.aug_warmup_epochs >= 0, "must be >= 0")
        _check(self, "aug_lr", self.aug_lr >= 0, "must be >= 0")
        _check(self, "tta_samples", self.tta_samples >= 0, "must be >= 0")
        _check(self, "tta_pool", self.tta_pool >= max(self.tta_samples, 1), "must be >= tta_samples")


class Controller(Protocol):
    """What sets λ: stepped with every training step's entropy, told when an epoch ends, resumable."""

    lam: float
    entropy: float

    def step(self, entropy: float) -> None: ...

    def end_epoch(self) -> None: ...

    def state(self) -> dict[str, Any]: ...

    def load(self, state: dict[str, Any]) -> None: ...


class PIDController:
    """FlowInv's controller: :func:`~autoinv.methods.flowinv.core.pid_step` once per training step."""

    def __init__(self, target: float, gains: tuple[float, float, float], bounds: tuple[float, float], ema: float):
        self.target, self.gains, self.bounds, self.ema = target, gains, bounds, ema
        self.pid = PIDState(lam=bounds[0])

    @property
    def lam(self) -> float:
        return self.pid.lam

    @property
    def entropy(self) -> float:
        return float("nan") if self.pid.entropy is None else self.pid.entropy

    def step(self, entropy: float) -> None:
        self.pid = pid_step(self.pid, entropy, self.target, self.gains, self.bounds, self.ema)

    def end_epoch(self) -> None:
        pass

    def state(self) -> dict[str, Any]:
        return self.pid.as_dict()

    def load(self, state: dict[str, Any]) -> None:
        self.pid = PIDState(**state)


class FixedWeight:
    """A constant λ (Augerino's regulariser weight); tracks the last entropy for reporting."""

    def __init__(self, lam: float) -> None:
        self.lam, self.entropy = lam, float("nan")

    def step(self, entropy: float) -> None:
        self.entropy = entropy

    def end_epoch(self) -> None:
        pass

    def state(self) -> dict[str, Any]:
        return {"lam": self.lam}

    def load(self, state: dict[str, Any]) -> None:
        self.lam = state["lam"]


def check_inputs(cfg: AugConfig, data: Dataset) -> nn.Module | None:
    """Fail on what a trial would fail on: signals instead of images; load ``augmenter_from`` (or ``None``)."""
    if data.kind != "image":
        raise ValueError(f"learned image augmenters need images; dataset {cfg.dataset!r} holds signals")
    if not cfg.augmenter_from:
        return None
    augmenter = load_augmenter(cfg.augmenter_from)
    if augmenter.aug_type != cfg.aug_type:
        raise AugmenterError(
            f"augmenter_from={cfg.augmenter_from!r} learned aug_type={augmenter.aug_type!r}, "
            f"but the config says aug_type={cfg.aug_type!r}"
        )
    channels = augmenter.arch.get("in_channels", data.shape[0])
    if channels != data.shape[0]:
        raise AugmenterError(
            f"augmenter_from={cfg.augmenter_from!r} takes {channels}-channel images; "
            f"{cfg.dataset!r} has {data.shape[0]}"
        )
    return augmenter


def preflight(cfg: AugConfig) -> None:
    """Fail on the driver before any trial starts: the data, the classifier's name, ``augmenter_from``."""
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction)
    check_inputs(cfg, data)
    create_model(cfg.model, data.num_classes, data.shape)  # an unknown name raises ModelError in one line


def augmented_loss(
    cfg: AugConfig,
    model: nn.Module,
    augmenter: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator | None,
    lam: float,
    *,
    frozen: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One joint training loss after the warm-up: CE on ``aug_copies`` sampled views (+ the original) + λ·penalty.

    Args:
        cfg: Config (``aug_copies``, ``aug_include_orig``).
        model: The classifier.
        augmenter: A FlowInv, Augerino or InstaAug augmenter.
        x: Float images in [0, 1], (B, C, H, W).
        y: Labels, (B,).
        generator: Draws the augmenter's samples.
        lam: Weight of ``augmenter.penalty``; ignored when ``frozen``.
        frozen: Sample without gradients to the augmenter and add no penalty.

    Returns:
        The loss (scalar), the CE over the views (scalar), the views' logits (n·B, classes) and log q (n·B,).
    """
    n = cfg.aug_copies
    score = not frozen and getattr(augmenter, "score_modes", False)
    with torch.set_grad_enabled(not frozen and torch.is_grad_enabled()):
        if score:
            w, log_q, log_mode = augmenter.sample_with_mode(x, n, generator)
        else:
            w, log_q = augmenter.sample(x, n, generator)
        views = apply_params(x.repeat(n, 1, 1, 1), w, augmenter.aug_type, augmenter.trans_scale)
    inputs = torch.cat([x, views]) if cfg.aug_include_orig else views
    logits = model(loop.standardize(inputs)).float()
    orig, aug = (logits[: len(x)], logits[len(x) :]) if cfg.aug_include_orig else (None, logits)
    ce_aug = F.cross_entropy(aug, y.repeat(n))
    loss = ce_aug + (F.cross_entropy(orig, y) if orig is not None else 0.0)
    if not frozen:
        loss = loss + lam * augmenter.penalty(log_q)
    if score:  # REINFORCE on the mode draws, each sample's own cost against the batch mean as the baseline
        cost = (F.cross_entropy(aug.detach(), y.repeat(n), reduction="none") + lam * log_q).detach()
        loss = loss + ((cost - cost.mean()) * log_mode).mean()
    return loss, ce_aug, aug, log_q


def train_augmented(
    cfg: AugConfig,
    run: loop.Run,
    data: Dataset,
    augmenter: nn.Module,
    controller: Controller,
    *,
    frozen: bool = False,
) -> dict[str, float]:
    """Train the classifier and (unless ``frozen``) the augmenter together; report per epoch; resumable.

    Args:
        cfg: Config (shared fields drive the loop; ``aug_*`` and ``tta_*`` the augmentation).
        run: Where metrics, state, pictures and the ``augmenter`` artifact go.
        data: Image dataset on the device.
        augmenter: A FlowInv, Augerino or InstaAug augmenter on the device.
        controller: Sets λ.
        frozen: Keep the augmenter fixed (a reused ``augmenter_from``): no penalty, no controller.

    Returns:
        The last epoch's metrics (``val/acc``, ``val/acc_tta``, ``aug/*``; ``test/*`` with ``eval_test``).
    """
    device = data.x_train.device
    with loop.seeded(cfg.seed):
        model = create_model(cfg.model, data.num_classes, data.shape).to(device)
    progress = {"epoch": 0, "history": []}
    state = run.resume()
    if state is not None:
        augmenter.load_state_dict(state["augmenter"])
        controller.load(state["controller"])
        progress = {"epoch": state["epoch"] + 1, "history": list(state["aug_history"])}
    extra: dict[str, Any] = {}

    def loss_fn(model, x, y, generator):
        xf = to_float(x)
        if progress["epoch"] < cfg.aug_warmup_epochs:
            logits = model(loop.standardize(xf))
            return F.cross_entropy(logits, y), {"train/acc": (logits.argmax(1) == y).float().mean().item()}
        if cfg.aug_freeze_classifier and not frozen:  # the loop sets train mode each epoch; the warm-up's f is kept
            model.eval()
            model.requires_grad_(False)
        lam = 0.0 if frozen else controller.lam
        loss, ce_aug, aug_logits, log_q = augmented_loss(cfg, model, augmenter, xf, y, generator, lam, frozen=frozen)
        entropy = -log_q.mean().item()
        y_aug = y.repeat(cfg.aug_copies)
        logs = {"train/ce_aug": ce_aug.item(), "train/acc": (aug_logits.argmax(1) == y_aug).float().mean().item()}
        if not frozen:
            logs["train/lambda"] = lam
            controller.step(entropy)
            progress["history"].append((float(progress["epoch"]), entropy, controller.lam, controller.entropy))
        return loss, logs

    def on_epoch(epoch: int) -> dict[str, float]:
        controller.end_epoch()
        metrics = _epoch_metrics(cfg, model, augmenter, data, controller, epoch)
        if epoch == cfg.epochs - 1 or epoch == 0:
            _pictures(cfg, run, augmenter, data, progress["history"], epoch)
        progress["epoch"] = epoch + 1
        extra["augmenter"] = {k: v.detach().clone() for k, v in augmenter.state_dict().items()}
        extra["controller"] = controller.state()
        extra["aug_history"] = list(progress["history"])
        if epoch == cfg.epochs - 1:  # before the loop's last report, which is when a Ray trial ships its artifacts
            run.artifact("augmenter", augmenter_payload(augmenter))
        return metrics

    aug_params = [] if frozen else list(augmenter.parameters())
    augmenter.requires_grad_(not frozen)
    params = [{"params": list(model.parameters())}]
    if aug_params:
        params.append({"params": aug_params, "lr": cfg.aug_lr or cfg.lr})
    return loop.train_classifier(cfg, run, data, model, loss_fn, extra_state=extra, on_epoch=on_epoch, params=params)


# ---------------------------------------------------------------------------------------------------------------------
# Metrics and pictures


@torch.no_grad()
def _tta_accuracy(cfg: AugConfig, model: nn.Module, augmenter: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    was_training = model.training
    model.eval()
    generator = torch.Generator(device=x.device).manual_seed(cfg.seed + 5)
    correct, chunk = 0, max(1, cfg.eval_batch_size // (cfg.tta_samples + 1))
    for start in range(0, len(x), chunk):
        xb = to_float(x[start : start + chunk])
        with loop.autocast(x.device, cfg.amp):
            logits = tta_logits(model, augmenter, xb, cfg.tta_samples, cfg.tta_pool, generator)
        correct += (logits.argmax(1) == y[start : start + chunk]).sum().item()
    model.train(was_training)
    return correct / max(len(x), 1)


@torch.no_grad()
def range_summary(
    augmenter: nn.Module, x: torch.Tensor, y: torch.Tensor, samples: int = 64, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Per image: the 1st–99th percentile half-range of the sampled rotation (degrees) and its mean.

    Args:
        augmenter: any learned augmenter.
        x: uint8 or [0, 1] images (N, C, H, W).
        y: labels (N,).
        samples: samples per image.
        seed: seed of the draws.

    Returns:
        ``half_range`` (N,), ``mean`` (N,) and ``entropy`` (N,) (−log q averaged over the samples).
    """
    xf = to_float(x) if x.dtype == torch.uint8 else x
    generator = torch.Generator(device=x.device).manual_seed(seed)
    halves, means, entropies = [], [], []
    for xb in xf.split(256):
        w, log_q = augmenter.sample(xb, samples, generator)
        angle = rotation_degrees(w, augmenter.aug_type).view(samples, len(xb))
        low, high = torch.quantile(angle, torch.tensor([0.01, 0.99], device=x.device), dim=0)
        halves.append((high - low) / 2)
        means.append(angle.mean(0))
        entropies.append(-log_q.view(samples, len(xb)).mean(0))
    return {"half_range": torch.cat(halves), "mean": torch.cat(means), "entropy": torch.cat(entropies)}


@torch.no_grad()
def rotation_band(
    augmenter: nn.Module, probe: torch.Tensor, angles: torch.Tensor, samples: int = 200, seed: int = 0
) -> torch.Tensor:
    """Rotate one image to each input angle and take percentiles of the sampled rotation (paper Fig. 4).

    Args:
        augmenter: any learned augmenter.
        probe: an image (C, H, W) in [0, 1], upright.
        angles: input rotations (A,) in degrees.
        samples: samples per input.
        seed: seed of the draws.

    Returns:
        (A, 3): the 1st, 50th and 99th percentile of the sampled rotation (degrees), and in column 3 the mean: (A, 4).
    """
    generator = torch.Generator(device=probe.device).manual_seed(seed)
    w, _ = augmenter.sample(_rotated(probe, angles), samples, generator)
    sampled = rotation_degrees(w, augmenter.aug_type).view(samples, len(angles))
    q = torch.quantile(sampled, torch.tensor([0.01, 0.5, 0.99], device=probe.device), dim=0).T  # (A, 3)
    return torch.cat([q, sampled.mean(0)[:, None]], 1)


def _rotated(probe: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """One image (C, H, W) turned by each of ``angles`` (A,) degrees: (A, C, H, W)."""
    lie = probe.new_zeros(len(angles), 6)
    lie[:, 2] = torch.deg2rad(angles.to(probe))
    return augment.warp(probe.expand(len(angles), *probe.shape), augment.affine_from_lie(lie))


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a, b]))[0, 1].item()


@torch.no_grad()
def sprite_band_summary(augmenter: nn.Module, samples: int = 200, seed: int = 0) -> dict[str, float]:
    """The ±90° Mario-Iggy claim in numbers: each sprite rotated to −90…90° (10° steps), its sampled rotations.

    Returns:
        Per sprite (``mario``, ``iggy``): ``half_<sprite>``, the median over input angles of half the 1st–99th
        percentile span (degrees; ideal 90), and ``corr_<sprite>``, the correlation of the mean sampled angle with
        the input angle over the inner angles −80…80° (ideal −1: the distribution shifts back by the input's
        rotation); ``half`` (the smaller), ``corr`` (over both sprites' inner inputs) and ``corr_all`` (over all 19).
        At exactly ±90° the upright sprite turned by 90° is pixel for pixel the upside-down one turned by −90°, whose
        ideal shift is the opposite, so no augmenter can be right there for both classes; ``corr`` leaves these two
        angles out.
    """
    angles = torch.linspace(-90, 90, 19)
    inner = angles.abs() < 90
    out, means = {}, []
    for name, probe in zip(("mario", "iggy"), marioiggy_sprites()):
        band = rotation_band(augmenter, probe, angles, samples, seed)
        out[f"half_{name}"] = ((band[:, 2] - band[:, 0]) / 2).median().item()
        out[f"corr_{name}"] = _corr(band[inner, 3], angles[inner])
        means.append(band[:, 3])
    out["half"] = min(out["half_mario"], out["half_iggy"])
    out["corr"] = _corr(torch.cat([m[inner] for m in means]), angles[inner].repeat(2))
    out["corr_all"] = _corr(torch.cat(means), angles.repeat(2))
    return out


@torch.no_grad()
def mode_mass(augmenter: nn.Module, modes: int = 3, rot: float = 30.0, samples: int = 200, seed: int = 0) -> dict:
    """The multi-modal Mario-Iggy claim in numbers: where the sampled rotations put each upright sprite.

    Each sprite is rotated to 7 angles within ``±rot`` of each of the ``modes`` upright orientations (0°, 360°/M, …).
    A sample lands in relative mode k when the input's angle plus the sampled rotation lies within ``rot`` of the
    orientation k·360°/M away from the input's own mode (there the label is unchanged; between the modes lie the
    upside-down class's orientations). Relative mode 0 keeps the input in its mode; 1 … M−1 move it to the others.

    Returns:
        ``mass`` (M,): the fraction of all samples (both sprites, all inputs) in each relative mode; ``mass_min``, the
        smallest (the claim: ≥ 0.15 each, ideal 1/M); ``mass_label``, the fraction in any mode (ideal 1).
    """
    centres = torch.arange(modes) * 360.0 / modes
    own = centres.repeat_interleave(7)  # each input's own mode
    angles = own + torch.linspace(-rot, rot, 7).repeat(modes)
    mass = torch.zeros(modes)
    for probe in marioiggy_sprites():
        band_angles = angles.to(probe)
        generator = torch.Generator(device=probe.device).manual_seed(seed)
        w, _ = augmenter.sample(_rotated(probe, band_angles), samples, generator)
        landed = band_angles + rotation_degrees(w, augmenter.aug_type).view(samples, len(band_angles))
        relative = landed - own.to(probe)
        offset = torch.remainder(relative[..., None] - centres.to(probe) + 180.0, 360.0) - 180.0  # (S, A, M)
        mass += (offset.abs() <= rot).float().mean((0, 1)).cpu() / 2
    return {"mass": mass, "mass_min": mass.min().item(), "mass_label": mass.sum().item()}


@torch.no_grad()
def rotation_discovery(augmenter: nn.Module, x: torch.Tensor, samples: int = 64, seed: int = 0) -> dict[str, Any]:
    """The rotation-discovery claim in numbers (paper Fig. 7): how close decoupled samples are to rotations.

    Besides the median relative error to the nearest rotation (``core.rotation_error``) it gives the error of the same
    samples with each coordinate shuffled independently among each image's samples: a mean-field distribution with
    the same per-image marginals (what InstaAug can represent at best). A flow that learned the joint constraint
    b = −d has ``error`` well below ``error_mean_field``; a mean-field augmenter has them equal.

    Args:
        augmenter: any learned augmenter with ``aug_type="decoupled"``.
        x: uint8 or [0, 1] images (N, C, H, W).
        samples: samples per image.
        seed: seed of the draws and the shuffle.

    Returns:
        ``error`` and ``error_mean_field`` (medians over all samples), ``half_range_deg`` (median over images of half
        the 1st–99th percentile span of the rotation part, ``rotation_degrees``) and ``w`` (samples·N, 6).
    """
    xf = to_float(x) if x.dtype == torch.uint8 else x
    generator = torch.Generator(device=x.device).manual_seed(seed)
    w, _ = augmenter.sample(xf, samples, generator)
    per_image = w.view(samples, len(xf), -1)
    order = torch.rand(per_image.shape, generator=generator, device=x.device).argsort(0)
    shuffled = per_image.gather(0, order).view_as(w)
    angle = rotation_degrees(w, augmenter.aug_type).view(samples, len(xf))
    low, high = torch.quantile(angle, torch.tensor([0.01, 0.99], device=x.device), dim=0)
    return {
        "error": rotation_error(w, augmenter.aug_type).median().item(),
        "error_mean_field": rotation_error(shuffled, augmenter.aug_type).median().item(),
        "half_range_deg": ((high - low) / 2).median().item(),
        "w": w,
    }


def _epoch_metrics(
    cfg: AugConfig, model: nn.Module, augmenter: nn.Module, data: Dataset, controller: Controller, epoch: int
) -> dict[str, float]:
    augmenter.eval()
    summary = range_summary(augmenter, data.x_val[:256], data.y_val[:256], samples=32, seed=cfg.seed)
    metrics = {
        "aug/entropy": controller.entropy,
        "aug/entropy_val": summary["entropy"].mean().item(),
        "aug/lambda": controller.lam,
        "aug/half_range_deg": summary["half_range"].median().item(),
    }
    if cfg.aug_type == "decoupled":
        found = rotation_discovery(augmenter, data.x_val[:256], samples=32, seed=cfg.seed)
        metrics["aug/rotation_error"] = found["error"]
        metrics["aug/rotation_error_mean_field"] = found["error_mean_field"]
    if cfg.tta_samples:
        metrics["val/acc_tta"] = _tta_accuracy(cfg, model, augmenter, data.x_val, data.y_val)
        if cfg.eval_test and epoch == cfg.epochs - 1:
            metrics["test/acc_tta"] = _tta_accuracy(cfg, model, augmenter, data.x_test, data.y_test)
    augmenter.train()
    return {k: (v if math.isfinite(v) else 0.0) for k, v in metrics.items()}


@torch.no_grad()
def _pictures(cfg: AugConfig, run: loop.Run, augmenter: nn.Module, data: Dataset, history: list, epoch: int) -> None:
    from autoinv.methods.flowinv import figures  # matplotlib only where pictures are drawn (the CLIs start faster)

    augmenter.eval()
    device = data.x_val.device
    generator = torch.Generator(device=device).manual_seed(cfg.seed + 6)
    x = to_float(data.x_val[:6])
    w, _ = augmenter.sample(x, 5, generator)
    views = apply_params(x.repeat(5, 1, 1, 1), w, augmenter.aug_type, augmenter.trans_scale)
    run.figure("aug/samples", figures.samples_figure(x, views.view(5, *x.shape)), epoch)
    if 2 in AUG_SLOTS[augmenter.aug_type]:
        base, options = _marioiggy_options(cfg.dataset)
        probe = marioiggy_sprites()[0].to(device) if base == "marioiggy" else x[0]
        rot, modes = options.get("rot", 90.0), int(options.get("modes", 1))
        angles = torch.linspace(-rot, rot, 19, device=device)
        band = rotation_band(augmenter, probe, angles, samples=100, seed=cfg.seed)
        ideal = rot if base == "marioiggy" and modes == 1 else None
        run.figure("aug/rotation_band", figures.band_figure(angles.cpu(), band.cpu(), ideal), epoch)
        summary = range_summary(augmenter, data.x_val[:256], data.y_val[:256], samples=32, seed=cfg.seed)
        per_class = [summary["half_range"][data.y_val[:256] == k].median().item() for k in range(data.num_classes)]
        run.figure("aug/class_range", figures.class_range_figure(per_class), epoch)
    if augmenter.aug_type == "decoupled":
        found = rotation_discovery(augmenter, data.x_val[:64], samples=16, seed=cfg.seed)
        errors = rotation_error(found["w"], augmenter.aug_type)
        run.figure("aug/rotation_discovery", figures.rotation_scatter_figure(found["w"], errors), epoch)
    if history:
        run.figure("aug/control", figures.control_figure(history), epoch)
    if epoch == cfg.epochs - 1 and hasattr(augmenter, "embed"):
        aligned, _ = mean_shift_align(augmenter, x, steps=10, step_size=0.2, samples=32, generator=generator)
        run.figure("aug/alignment", figures.alignment_figure(x, aligned), epoch)
    augmenter.train()


def _marioiggy_options(name: str) -> tuple[str, dict[str, float]]:
    base, _, text = name.partition(":")
    options = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        try:
            options[key] = float(value)
        except ValueError:
            pass
    return base, options
