"""TransformMix training: learn a mixing module from a frozen teacher, then train a task network on its mixes.

``fit`` runs two stages in one trial. The search stage trains f_s, f_m and τ so that the frozen teacher classifies
each mix x' as its mixed label y' (soft-label cross-entropy). The task stage trains a fresh task network on the
frozen mixer's images through ``loop.train_classifier``, so reports, resumption and evaluation are the shared ones;
the mixer's weights ride in every checkpoint, and a resumed trial skips the search stage.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autoinv import loop
from autoinv.config import BaseConfig, _check
from autoinv.data import Dataset, load_dataset, to_float
from autoinv.methods.transformmix.core import (
    Mixer,
    MixerError,
    gather_partners,
    load_mixer,
    mix,
    mix_labels,
    mixer_from_payload,
    mixer_payload,
    partner_indices,
    sample_lambdas,
    transformmix_batch,
    warp_stack,
)
from autoinv.methods.transformmix.saliency import (
    CamBatches,
    base_augment,
    box_masks,
    cam_teacher_spec,
    check_cam_teacher,
    dataset_cams,
    teacher_cams,
)
from autoinv.models import create_model
from autoinv.teachers import TeacherSpec, load_or_train

__all__ = ["ARTIFACT_FIELDS", "Config", "preflight", "fit", "teacher_specs", "search_mixer", "compare_mixes"]

ARTIFACT_FIELDS = {"mixer": "mixer_from"}
"""Export downloads the trial's ``mixer.pt`` and sets ``mixer_from`` to it, so final training reuses the mixer."""


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """TransformMix's knobs on top of the shared fields (which drive the task network)."""

    model_pretrained: bool = False
    """Start the task network from its downloadable weights (``tv:`` models): fine-tuning, as in the paper's Table 3."""
    teacher_arch: str = "small_cnn"
    """Frozen teacher that supplies CAMs and supervises the mixer; needs a global-pool + linear head."""
    teacher_epochs: int = 10
    """Epochs to train the teacher (once per search, cached)."""
    teacher_lr: float = 0.05
    """Peak SGD learning rate of the teacher."""
    teacher_pretrained: bool = False
    """Start the teacher from downloadable weights (``tv:`` models) before its ``teacher_epochs`` of training."""
    teacher_checkpoint: str = ""
    """Load the teacher's state dict from this path instead of training it."""
    teacher_seed: int = 0
    """Seed of the teacher's training; fixed so trials with different ``seed`` share one teacher."""
    mix_k: int = 2
    """Images per mix; λ ~ Beta(α, α) for 2, Dirichlet(α) for more."""
    mix_alpha: float = 1.0
    """Concentration α of the mixing weights λ."""
    mix_layers: int = 3
    """Hidden conv layers of the mask network f_m."""
    mix_channels: int = 32
    """Channels of every hidden layer of f_m."""
    mix_kernel: int = 3
    """Kernel size of f_m's hidden layers (odd)."""
    mix_tau_init: float = 1.0
    """Initial softmax temperature τ of the masks (learned)."""
    mix_optimizer: str = "adam"
    """Optimiser of the search stage: ``adam`` (AdamW; trains the mixer in a few epochs) or ``sgd`` (the paper's,
    with the config's Nesterov ``momentum``; at the paper's lr 5e-4 it needs its 100 epochs)."""
    mix_lr: float = 1e-3
    """Learning rate of the mixer in the search stage (paper, with SGD: 5e-4)."""
    mix_weight_decay: float = 0.01
    """Weight decay of f_s and f_m in the search stage (paper: 0.01; τ is not decayed)."""
    mix_epochs: int = 10
    """Epochs of the search stage (paper: 100); 0 keeps the untrained mixer (identity warps)."""
    mix_steps_per_epoch: int = 0
    """Steps per search-stage epoch; 0 takes the task's ``steps_per_epoch`` (0 there: one pass over the data)."""
    mix_prob: float = 1.0
    """Probability that a task-network batch is mixed (otherwise it trains on the plain batch)."""
    mixer_from: str = ""
    """A saved mixer to reuse: ``mixer.pt`` from export or its folder (searches and ``autoinv.train`` also take
    ``runs:/RUN_ID`` of a trial and hand fit the downloaded file); skips the search stage; the mixer decides k."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self, "mix_k", self.mix_k >= 2, "must be >= 2 (a mix needs at least two images)")
        _check(self, "mix_alpha", self.mix_alpha > 0, "must be > 0")
        _check(self, "mix_layers", self.mix_layers >= 1, "must be >= 1")
        _check(self, "mix_channels", self.mix_channels >= 1, "must be >= 1")
        _check(self, "mix_kernel", self.mix_kernel >= 1 and self.mix_kernel % 2 == 1, "must be odd (3, 5, 7)")
        _check(self, "mix_tau_init", self.mix_tau_init > 0, "must be > 0")
        _check(self, "mix_optimizer", self.mix_optimizer in ("adam", "sgd"), "must be adam or sgd")
        _check(self, "mix_lr", self.mix_lr > 0, "must be > 0")
        _check(self, "mix_weight_decay", self.mix_weight_decay >= 0, "must be >= 0")
        _check(self, "mix_epochs", self.mix_epochs >= 0, "must be >= 0")
        _check(self, "mix_steps_per_epoch", self.mix_steps_per_epoch >= 0, "must be >= 0")
        _check(self, "mix_prob", 0.0 <= self.mix_prob <= 1.0, "must be in [0, 1]")
        _check(self, "teacher_epochs", self.teacher_epochs >= 0, "must be >= 0")
        _check(self, "teacher_lr", self.teacher_lr > 0, "must be > 0")


def teacher_specs(cfg: Config) -> list[TeacherSpec]:
    """The one teacher a TransformMix search needs; the search trains it on the driver before trials start."""
    return [cam_teacher_spec(cfg)]


def preflight(cfg: Config) -> None:
    """Fail on the driver before any trial starts: the data, both networks, the teacher's CAM head, ``mixer_from``."""
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction)
    _checked_inputs(cfg, data)
    create_model(cfg.model, data.num_classes, data.shape)  # an unknown name raises ModelError in one line


def fit(cfg: Config, run: loop.Run) -> dict[str, float]:
    """Search the mixer (or reuse one), then train the task network on its mixes; report ``val/acc`` per epoch."""
    device, data = loop.start(cfg)
    transferred = _checked_inputs(cfg, data)  # fail on bad input before any training

    # Saliency: CAMs of the whole training set, once; batches replay their flips and crops on them.
    teacher = load_or_train(teacher_specs(cfg)[0], run.cache_dir, device, progress=False)
    cams = dataset_cams(teacher, data.x_train, data.y_train, cfg.eval_batch_size)

    # Stage 1: the mixer, from a resumed checkpoint, a transferred file, or the search stage.
    state = run.resume()
    if state is not None and "mixer" in state:
        mixer, summary = mixer_from_payload(state["mixer"]).to(device), state["mix_summary"]
    else:
        if transferred is not None:
            mixer = transferred.to(device)
        else:
            mixer, history = search_mixer(cfg, teacher, data, cams)
            from autoinv.methods.transformmix.figures import search_stage_figure  # matplotlib where it draws

            run.figure("mix/search", search_stage_figure(history), 0)
        mixer.eval().requires_grad_(False)
        summary = _summarise(cfg, teacher, mixer, data)
        run.artifact("mixer", mixer_payload(mixer))
        run.figure("mix/grid", _grid(cfg, teacher, mixer, data), 0)
    mixer.eval().requires_grad_(False)

    # Stage 2: a fresh task network on the frozen mixer's images, evaluated on clean validation images.
    with loop.seeded(cfg.seed):
        model = create_model(cfg.model, data.num_classes, data.shape, pretrained=cfg.model_pretrained).to(device)
    batches = CamBatches(data, cams, cfg.augment, teacher)  # base-augments images and CAMs with the same params
    return loop.train_classifier(
        cfg,
        run,
        data,
        model,
        _task_loss(cfg, mixer, batches),
        extra_state={"mixer": mixer_payload(mixer), "mix_summary": summary},
        on_epoch=lambda epoch: summary,
        batch_fn=batches,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Phases


def search_mixer(
    cfg: Config, teacher: nn.Module, data: Dataset, cams: torch.Tensor
) -> tuple[Mixer, list[dict[str, float]]]:
    """The search stage: train f_s, f_m and τ so the frozen teacher classifies mixes as their mixed labels.

    Args:
        cfg: Config (``mix_*`` fields, ``batch_size``, ``steps_per_epoch`` unless ``mix_steps_per_epoch`` is set,
            ``momentum``, ``augment``, ``seed``).
        teacher: Frozen teacher on the data's device.
        data: Dataset on the device.
        cams: uint8 CAMs of ``data.x_train``, (N, 1, H, W).

    Returns:
        The trained mixer and one record per epoch: ``teacher_ce`` (mean over the epoch) and ``tau`` (at its end).
    """
    device = data.x_train.device
    with loop.seeded(cfg.seed + 12):  # initial weights from the seed alone, not from whatever ran before
        mixer = Mixer(cfg.mix_k, cfg.mix_layers, cfg.mix_channels, cfg.mix_kernel, cfg.mix_tau_init, data.shape[1:])
    mixer = mixer.to(device).train()
    nets = [p for name, p in mixer.named_parameters() if name != "log_tau"]
    groups = [{"params": nets, "weight_decay": cfg.mix_weight_decay}, {"params": [mixer.log_tau], "weight_decay": 0.0}]
    if cfg.mix_optimizer == "adam":
        # Per-parameter step sizes: with SGD the STN's last layer (whose gradient moves every pixel) drifts while
        # the mask head barely moves, and a few epochs do not lower the teacher's CE (README, deviations).
        optimizer = torch.optim.AdamW(groups, lr=cfg.mix_lr)
    else:
        optimizer = torch.optim.SGD(groups, lr=cfg.mix_lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    gen, rng = torch.Generator().manual_seed(cfg.seed + 10), np.random.default_rng(cfg.seed + 10)
    device_gen = torch.Generator(device=device).manual_seed(cfg.seed + 11)

    history = []
    for epoch in range(cfg.mix_epochs):
        ce_sum, seen = 0.0, 0
        steps = cfg.mix_steps_per_epoch or cfg.steps_per_epoch
        for idx in loop.batch_indices(len(data.x_train), cfg.batch_size, gen, device, steps):
            x, c = base_augment(data.x_train[idx], cams[idx], data.y_train[idx], cfg.augment, device_gen, teacher)
            y = F.one_hot(data.y_train[idx], data.num_classes).float()
            partners, lam = (
                partner_indices(len(idx), cfg.mix_k, gen),
                sample_lambdas(len(idx), cfg.mix_k, cfg.mix_alpha, rng),
            )
            with loop.autocast(device, cfg.amp):
                x_mix, y_mix, _ = transformmix_batch(mixer, x, c, y, partners, lam, generator=device_gen)
                loss = loop.soft_cross_entropy(teacher(loop.standardize(x_mix)).float(), y_mix)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"mixer loss became {loss.item()} at search epoch {epoch}; lower mix_lr")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ce_sum, seen = ce_sum + loss.item() * len(idx), seen + len(idx)
        history.append({"epoch": epoch, "teacher_ce": ce_sum / max(seen, 1), "tau": mixer.tau.item()})
    return mixer.eval(), history


def _checked_inputs(cfg: Config, data: Dataset) -> Mixer | None:
    """Check what a trial would fail on (images, the teacher's CAM head) and load ``mixer_from``, or ``None``.

    ``mixer_from`` is a local file or folder: the search, export and train layers resolve ``runs:/`` references
    before a method sees its config (``tracking.resolve_artifact_fields``), so methods never talk to MLflow.
    """
    if data.kind != "image":
        raise ValueError(f"transformmix needs images; dataset {cfg.dataset!r} holds signals")
    check_cam_teacher(cfg.teacher_arch, data.num_classes, data.shape)
    if cfg.mixer_from.startswith("runs:/"):
        raise MixerError(f"mixer_from={cfg.mixer_from!r} is an MLflow reference; run through autoinv.search/train")
    return load_mixer(cfg.mixer_from) if cfg.mixer_from else None


def _task_loss(cfg: Config, mixer: Mixer, batches: CamBatches) -> Any:
    """The task network's per-batch loss: soft-label CE on the frozen mixer's images (with probability mix_prob).

    The loop hands it the batch that ``batches`` just built; ``batches.cams`` holds that batch's CAMs (B, H, W).
    """
    gen, rng = torch.Generator().manual_seed(cfg.seed + 2), np.random.default_rng(cfg.seed + 2)
    num_classes = batches.data.num_classes

    def loss_fn(model, x, y, generator):
        if rng.random() >= cfg.mix_prob:
            return F.cross_entropy(model(loop.standardize(x)), y), {}
        partners, lam = partner_indices(len(x), mixer.k, gen), sample_lambdas(len(x), mixer.k, cfg.mix_alpha, rng)
        with torch.no_grad():
            y_onehot = F.one_hot(y, num_classes).float()
            x_mix, y_mix, _ = transformmix_batch(mixer, x, batches.cams, y_onehot, partners, lam, generator=generator)
        return loop.soft_cross_entropy(model(loop.standardize(x_mix)), y_mix), {}

    return loss_fn


def _summarise(cfg: Config, teacher: nn.Module, mixer: Mixer, data: Dataset) -> dict[str, float]:
    """Constant per-trial metrics of the mixer, reported with every epoch: τ and the teacher's view of its mixes."""
    val_cams = to_float(dataset_cams(teacher, data.x_val, data.y_val, cfg.eval_batch_size))[:, 0]
    return {
        "mix/tau": mixer.tau.item(),
        **compare_mixes(teacher, mixer, data.x_val, val_cams, data.y_val, data.num_classes, cfg.mix_alpha, cfg.seed),
    }


@torch.no_grad()
def _grid(cfg: Config, teacher: nn.Module, mixer: Mixer, data: Dataset, n: int = 8) -> Any:
    """The Figure 3/8 grid for the first validation images, mixed with the next ones (not curated)."""
    from autoinv.methods.transformmix.figures import mix_grid_figure  # matplotlib only where it draws

    k, device = mixer.k, data.x_val.device
    n = min(n, len(data.x_val) // k)
    rows = torch.arange(n * k, device=device).view(k, n)  # sample j mixes with j + n (and j + 2n, ...)
    xs = gather_partners(to_float(data.x_val), rows)
    cams = gather_partners(teacher_cams(teacher, loop.prepare(data.x_val[: n * k]), data.y_val[: n * k]), rows)
    lam = sample_lambdas(n, k, cfg.mix_alpha, np.random.default_rng(cfg.seed)).to(device)
    params = mixer(cams, lam, generator=torch.Generator(device=device).manual_seed(cfg.seed))
    warped = warp_stack(xs, params.theta)
    return mix_grid_figure(xs, cams, warped, params.masks, mix(xs, params.theta, params.masks), lam)


# ---------------------------------------------------------------------------------------------------------------------
# Diagnostics: the paper's claim as numbers, and the Figure 3/8 grid


@torch.no_grad()
def compare_mixes(
    teacher: nn.Module,
    mixer: Mixer,
    x: torch.Tensor,
    cams: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    alpha: float = 1.0,
    seed: int = 0,
    chunk: int = 256,
) -> dict[str, float]:
    """Teacher's view of TransformMix vs Mixup vs CutMix images made from the same partners and λ.

    Mixup is the mix with identity affines and masks equal to λ. CutMix pastes a box of area 1 − λ at a random
    place (one box per sample) and, as in training, corrects its label weights to the box's real area. CutMix is
    reported for k = 2 only.

    Args:
        teacher: Frozen teacher.
        mixer: Mixing module (its k sets the number of images per mix).
        x: uint8 images (N, C, H, W), e.g. the validation set.
        cams: Their CAMs (N, H, W) float in [0, 1].
        labels: (N,).
        num_classes: K.
        alpha: Concentration of λ.
        seed: Seed of partners, λ, boxes and noise.
        chunk: Mixes per teacher forward pass.

    Returns:
        ``mix/teacher_ce[_mixup|_cutmix]``: mean soft-label CE of the teacher; ``mix/recovered[_mixup|_cutmix]``:
        fraction of mixes of k distinct classes whose teacher top-k holds all k classes.
    """
    k, device, (height, width) = mixer.k, x.device, x.shape[-2:]
    gen, rng = torch.Generator().manual_seed(seed), np.random.default_rng(seed)
    noise_gen = torch.Generator(device=device).manual_seed(seed)
    idx = partner_indices(len(x), k, gen).to(device)  # (k, N)
    lam_all = sample_lambdas(len(x), k, alpha, rng).to(device)  # (N, k)
    centers_all = torch.randint(0, min(height, width), (len(x), 2), generator=gen).to(device)
    kinds = ["", "_mixup"] + (["_cutmix"] if k == 2 else [])
    ce, hits, distinct_total = dict.fromkeys(kinds, 0.0), dict.fromkeys(kinds, 0.0), 0
    for rows, lam, centers in zip(idx.split(chunk, 1), lam_all.split(chunk), centers_all.split(chunk)):
        xs, cs = gather_partners(to_float(x), rows), gather_partners(cams, rows)  # (b, k, C, H, W), (b, k, H, W)
        ys = gather_partners(F.one_hot(labels, num_classes).float(), rows)  # (b, k, K)
        params = mixer(cs, lam, generator=noise_gen)
        identity = torch.eye(2, 3, device=device).expand(len(lam), k, 2, 3)
        mixes = {
            "": (mix(xs, params.theta, params.masks), mix_labels(ys, lam)),
            "_mixup": (mix(xs, identity, lam[:, :, None, None].expand_as(cs)), mix_labels(ys, lam)),
        }
        if k == 2:
            keep = box_masks(height, width, lam[:, 0], centers)  # (b, 1, H, W)
            kept = keep.mean((1, 2, 3))[:, None]
            mixes["_cutmix"] = (keep * xs[:, 0] + (1 - keep) * xs[:, 1], kept * ys[:, 0] + (1 - kept) * ys[:, 1])
        tuple_labels = labels[rows].T  # (b, k)
        distinct = (tuple_labels[:, :, None] == tuple_labels[:, None, :]).sum((1, 2)) == k  # only self-matches
        distinct_total += int(distinct.sum())
        for kind, (x_mix, y_mix) in mixes.items():
            logits = teacher(loop.standardize(x_mix)).float()
            ce[kind] += loop.soft_cross_entropy(logits, y_mix).item() * len(lam)
            top = logits.topk(k, dim=1).indices  # (b, k)
            found = (tuple_labels[:, :, None] == top[:, None, :]).any(2).all(1)
            hits[kind] += (found & distinct).sum().item()
    out = {f"mix/teacher_ce{kind}": ce[kind] / max(len(x), 1) for kind in kinds}
    out.update({f"mix/recovered{kind}": hits[kind] / max(distinct_total, 1) for kind in kinds})
    return out
