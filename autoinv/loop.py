"""Training plumbing every method shares: the Run protocol, seeding, device, batches on device, evaluation.

A method's ``fit(cfg, run)`` talks to the outside world only through a :class:`Run`. Three implementations
exist: Ray Tune trials (``autoinv.search``), final training (``autoinv.train``) and :class:`MemoryRun` for
tests and notebooks. ``train_classifier`` is the epoch loop of every method whose last phase trains a
classifier with a per-batch loss (ERM, the mixing baselines, TransformMix's task network, transfer students).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from autoinv import augment
from autoinv.config import BaseConfig
from autoinv.data import Dataset, load_dataset, to_float

__all__ = [
    "Run",
    "MemoryRun",
    "seed_everything",
    "seeded",
    "pick_device",
    "load_data",
    "start",
    "standardize",
    "prepare",
    "batch_indices",
    "make_optimizer",
    "make_scheduler",
    "autocast",
    "evaluate",
    "soft_cross_entropy",
    "train_classifier",
]


class Run(Protocol):
    """Where a method's ``fit`` sends its progress; see the module docstring for the implementations."""

    cache_dir: str
    """Directory for artifacts shared across trials of one search (teachers, CAMs); created on demand."""

    def report(self, epoch: int, metrics: dict[str, float], state: dict[str, Any] | None = None) -> None:
        """Record one epoch's metrics (0-based ``epoch``) and a resumable state (tensors and plain containers)."""

    def resume(self) -> dict[str, Any] | None:
        """The state of the last report before an interruption, or ``None`` for a fresh start."""

    def figure(self, name: str, fig: Any, epoch: int) -> None:
        """Keep a matplotlib figure (augmented samples, masks, filters...) under ``name`` for ``epoch``."""

    def artifact(self, name: str, obj: dict[str, Any]) -> None:
        """Keep small learned weights (a mixer, an orbit model) with the run so export can ship them."""

    def save_model(self, model: nn.Module) -> None:
        """Offer the final trained task network (final training logs it; searches ignore it)."""


class MemoryRun:
    """A :class:`Run` that keeps everything in memory: for tests, notebooks and quick experiments.

    Args:
        state: A state to resume from (as a previous run's ``states[-1]``).
        cache_dir: Directory for shared artifacts such as cached teachers.
    """

    def __init__(self, state: dict[str, Any] | None = None, cache_dir: str = "") -> None:
        self.cache_dir = cache_dir or _default_cache_dir()
        self.metrics: list[dict[str, float]] = []
        self.states: list[dict[str, Any]] = []
        self.figures: dict[str, Any] = {}
        self.artifacts: dict[str, dict[str, Any]] = {}
        self.model: nn.Module | None = None
        self._resume_state = state

    def report(self, epoch: int, metrics: dict[str, float], state: dict[str, Any] | None = None) -> None:
        self.metrics.append({"epoch": epoch, **metrics})
        if state is not None:
            self.states.append(state)

    def resume(self) -> dict[str, Any] | None:
        return self._resume_state

    def figure(self, name: str, fig: Any, epoch: int) -> None:
        import matplotlib.pyplot as plt

        self.figures[name] = fig
        plt.close(fig)

    def artifact(self, name: str, obj: dict[str, Any]) -> None:
        self.artifacts[name] = obj

    def save_model(self, model: nn.Module) -> None:
        self.model = model


def _default_cache_dir() -> str:
    import os

    return os.path.join(os.path.expanduser("~"), ".cache", "autoinv", "runs")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded the same way for explicit sampling."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU generator seeded, and give the caller its generator state back afterwards.

    For building networks whose initial weights must depend on a seed alone, not on what the process did before
    (a teacher trained inside a test session, a Ray worker or ``autoinv.train`` must build the same weights).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def generator_states() -> tuple[Any, Any, torch.Tensor]:
    """The states of Python's, NumPy's and torch's global CPU generators, for :func:`set_generator_states`."""
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def set_generator_states(states: tuple[Any, Any, torch.Tensor]) -> None:
    """Put the global generators back to ``states`` (from :func:`generator_states`)."""
    random.setstate(states[0])
    np.random.set_state(states[1])
    torch.set_rng_state(states[2])


@contextlib.contextmanager
def generators_kept() -> Iterator[None]:
    """Run the block, then put the global generators (CUDA's included) back as they were.

    For work that seeds them itself in the middle of another's run: a teacher trained inside a method's ``fit``
    must leave the method's draws as they would be with the teacher found in the cache.
    """
    states = generator_states()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=cuda):
        try:
            yield
        finally:
            set_generator_states(states)


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when this process sees a GPU (Ray sets ``CUDA_VISIBLE_DEVICES`` per trial)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA device is visible; use device=auto or cpu")
    return torch.device(name)


def load_data(cfg: BaseConfig, device: torch.device) -> Dataset:
    """The config's dataset on ``device``, with ``train_subset`` applied."""
    data = load_dataset(cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction)
    if cfg.train_subset:
        import dataclasses

        data = dataclasses.replace(
            data, x_train=data.x_train[: cfg.train_subset], y_train=data.y_train[: cfg.train_subset]
        )
    return data.to(device)


def start(cfg: BaseConfig) -> tuple[torch.device, Dataset]:
    """Every ``fit`` begins here: seed everything, pick the device, load the data onto it.

    Seeding first makes model initialisation depend on ``cfg.seed`` alone, not on what the process did before
    (a Ray worker and ``autoinv.train`` must build the same initial weights).
    """
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    return device, load_data(cfg, device)


def standardize(x: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1] → roughly zero mean, unit scale; the fixed affine keeps mixing and warping in [0, 1] space."""
    return (x - 0.5) / 0.25


def prepare(x: torch.Tensor) -> torch.Tensor:
    """Raw batch (uint8 images or float signals) → network input (standardised float images, signals as is)."""
    if x.dtype == torch.uint8:
        return standardize(to_float(x))
    return x


def batch_indices(
    n: int, batch_size: int, generator: torch.Generator, device: torch.device, steps: int = 0
) -> Iterator[torch.Tensor]:
    """Shuffled index batches over ``n`` samples, drawn on ``device`` so data never leaves it.

    Args:
        n: Number of samples.
        batch_size: Samples per batch (the last partial batch is dropped when ``n >= batch_size``).
        generator: CPU generator that decides the order.
        device: Where the index tensors live.
        steps: Number of batches to yield (0 = one pass); more than one pass reshuffles.
    """
    per_pass = max(n // batch_size, 1)
    total = steps or per_pass
    done = 0
    while done < total:
        order = torch.randperm(n, generator=generator).to(device)
        for i in range(min(per_pass, total - done)):
            yield order[i * batch_size : (i + 1) * batch_size]
        done += per_pass


def make_optimizer(params: Any, cfg: BaseConfig, lr: float | None = None) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum or Adam, from the config's optimizer fields."""
    lr = cfg.lr if lr is None else lr
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params, lr=lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0, weight_decay=cfg.weight_decay
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: BaseConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-step cosine decay to zero over ``total_steps`` (or a constant rate)."""
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step / max(total_steps, 1), 1.0)))
    )


def autocast(device: torch.device, enabled: bool = True) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA (no loss scaling needed); a no-op on CPU."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024, amp: bool = True
) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on raw tensors ``x`` (N, ...) and labels ``y`` (N,)."""
    was_training = model.training
    model.eval()
    correct, loss_sum = 0, 0.0
    for start in range(0, len(x), batch_size):
        xb, yb = prepare(x[start : start + batch_size]), y[start : start + batch_size]
        with autocast(xb.device, amp):
            logits = model(xb).float()
        loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
        correct += (logits.argmax(1) == yb).sum().item()
    model.train(was_training)
    n = max(len(x), 1)
    return {"acc": correct / n, "loss": loss_sum / n}


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against soft labels: logits (B, K), targets (B, K) rows summing to one → scalar mean."""
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()


LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, dict[str, float]]]
"""``loss_fn(model, x, y, generator) -> (loss, logs)``: x is the augmented uint8/float batch, y int labels (B,)."""


def train_classifier(
    cfg: BaseConfig,
    run: Run,
    data: Dataset,
    model: nn.Module,
    loss_fn: LossFn,
    *,
    extra_state: dict[str, Any] | None = None,
    on_epoch: Callable[[int], dict[str, float]] | None = None,
    params: Any = None,
    batch_fn: Callable[[torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> dict[str, float]:
    """Train ``model`` for ``cfg.epochs`` with ``loss_fn`` per batch; report ``val/*`` once per epoch; resumable.

    Each batch is the base augmentation (``cfg.augment``) of a shuffled batch of training samples, applied on
    the device; ``loss_fn`` turns it into a loss (plain CE, a mix, a transfer loss...).

    Args:
        cfg: The method's config (its shared fields drive the loop).
        run: Where metrics, state and the final model go.
        data: Dataset on the training device.
        model: Task network on the training device.
        loss_fn: See :data:`LossFn`.
        extra_state: Method state saved in every checkpoint beside the model (e.g. a learned mixer), so a
            resumed trial does not redo earlier phases; read it back from ``run.resume()``.
        on_epoch: Called after each epoch's evaluation with the epoch number; returns extra metrics (and may
            send figures through ``run.figure``).
        params: Parameters to optimise (default: ``model.parameters()``).
        batch_fn: ``batch_fn(idx, generator) -> (x, y)`` builds the training batch from the sample indices
            (B,) instead of the default base augmentation; for methods that keep per-sample side data (e.g.
            saliency maps) and must augment it with the same parameters as the images.

    Returns:
        The last epoch's metrics, plus ``test/acc``, ``test/loss`` and ``test/<key>`` for each of the data's
        ``extra_tests`` when ``cfg.eval_test`` is set.
    """
    device = data.x_train.device
    generator = seed_everything(cfg.seed)
    aug_generator = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    if device.type == "cuda" and cfg.channels_last and data.x_train.dim() == 4:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model.parameters() if params is None else params, cfg)
    steps_per_epoch = cfg.steps_per_epoch or max(len(data.x_train) // cfg.batch_size, 1)
    scheduler = make_scheduler(optimizer, cfg, cfg.epochs * steps_per_epoch)

    start_epoch = 0
    state = run.resume()
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        start_epoch = state["epoch"] + 1

    metrics: dict[str, float] = {}
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        # Sums stay on the device and are read once per epoch: a read inside the step would stall the host
        # on every batch (a GPU runs ahead of Python only while nothing asks it for a number).
        started, seen, logs_sum = time.perf_counter(), 0, {}
        loss_sum = torch.zeros((), device=device)
        finite = torch.ones((), dtype=torch.bool, device=device)
        for step, idx in enumerate(
            batch_indices(len(data.x_train), cfg.batch_size, generator, device, cfg.steps_per_epoch)
        ):
            if batch_fn is not None:
                x, y = batch_fn(idx, aug_generator)
            else:
                x, y = data.x_train[idx], data.y_train[idx]
                if data.kind == "image":
                    x = augment.augment_batch(x, cfg.augment, generator=aug_generator)
            if step == 0 and epoch in (start_epoch, cfg.epochs - 1):
                title = f"training batch after augment={cfg.augment}, epoch {epoch + 1}"
                from autoinv.figures import batch_figure  # matplotlib only where a picture is drawn (CLI start-up)

                run.figure("augmented_samples", batch_figure(x, y, title), epoch)
            with autocast(device, cfg.amp):
                loss, logs = loss_fn(model, x, y, aug_generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            finite = finite & torch.isfinite(loss.detach())
            loss_sum, seen = loss_sum + loss.detach().float() * len(idx), seen + len(idx)
            for key, value in logs.items():
                value = value.detach().float() if isinstance(value, torch.Tensor) else value
                logs_sum[key] = logs_sum.get(key, 0.0) + value * len(idx)
        if not bool(finite):  # one check per epoch; the trial still fails with the same clear error
            raise FloatingPointError(f"training loss became non-finite in epoch {epoch}; lower lr")

        val = evaluate(model, data.x_val, data.y_val, cfg.eval_batch_size, cfg.amp)
        metrics = {
            "train/loss": float(loss_sum) / max(seen, 1),
            **{key: float(value) / max(seen, 1) for key, value in logs_sum.items()},
            "val/acc": val["acc"],
            "val/loss": val["loss"],
            "train/lr": scheduler.get_last_lr()[0],
            "time/epoch_s": time.perf_counter() - started,
        }
        if on_epoch is not None:
            metrics.update(on_epoch(epoch))
        if getattr(cfg, "eval_test", False) and epoch == cfg.epochs - 1:
            test = evaluate(model, data.x_test, data.y_test, cfg.eval_batch_size, cfg.amp)
            metrics.update({"test/acc": test["acc"], "test/loss": test["loss"]})
            for key, (x, y) in data.extra_tests.items():  # e.g. mnist1d_shift's unseen shifts: test/acc_unseen
                metrics[f"test/{key}"] = evaluate(model, x, y, cfg.eval_batch_size, cfg.amp)["acc"]
        state = {
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "generator": generator.get_state(),
            **(extra_state or {}),
        }
        run.report(epoch, metrics, state)
    run.save_model(model)
    return metrics
