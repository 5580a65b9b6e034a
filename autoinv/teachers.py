"""Frozen teachers: train once per search from a config, cache by the config's hash, or load a checkpoint.

TransformMix, Orbit transfer and TransInv all need a trained classifier to learn from. A search trains the
teacher before its trials start (``autoinv.search`` calls :func:`load_or_train` in a Ray task); every trial
then finds it in the cache. A file lock keeps two processes from training the same teacher at once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from typing import Any

import torch
import torch.nn.functional as F
from filelock import FileLock
from torch import nn

from autoinv import corruptions, loop, storage
from autoinv.config import BaseConfig
from autoinv.data import to_float
from autoinv.models import create_model

__all__ = ["TeacherSpec", "TeacherError", "teacher_key", "is_cached", "load_or_train"]


class TeacherError(ValueError):
    """A user-facing teacher problem (unreadable or mismatched checkpoint)."""


@dataclasses.dataclass(frozen=True)
class TeacherSpec:
    """Everything that decides a teacher's weights; its hash names the cache entry."""

    arch: str = "small_cnn"
    """Teacher network (``autoinv.models``)."""
    dataset: str = "shapes"
    """Dataset the teacher learns."""
    data_dir: str = ""
    """Dataset root."""
    val_fraction: float = 0.1
    """Validation split (the same fixed split as the trials)."""
    epochs: int = 10
    """Training epochs."""
    steps_per_epoch: int = 0
    """Steps per epoch (0 = one pass over the training set)."""
    optimizer: str = "sgd"
    """``sgd`` (Nesterov momentum 0.9) or ``adam``."""
    lr: float = 0.05
    """Peak learning rate."""
    weight_decay: float = 5e-4
    """L2 weight decay."""
    schedule: str = "cosine"
    """Learning-rate schedule: ``cosine`` (per step, to zero) or ``constant``."""
    batch_size: int = 128
    """Batch size."""
    augment: str = "flip_crop"
    """Base augmentation while training."""
    train_subset: int = 0
    """Use only the first N training samples (0 = all)."""
    seed: int = 0
    """Seed of the teacher's training."""
    pretrained: bool = False
    """Start from the architecture's downloadable weights (``tv:`` models), then fine-tune for ``epochs``."""
    checkpoint: str = ""
    """Path of a state dict to load instead of training (the other fields must still describe the model)."""
    corruption: str = ""
    """Train with this ``autoinv.corruptions`` corruption at uniformly drawn severities 1-5 (a robust teacher)."""


_LATER_FIELDS = ("corruption", "steps_per_epoch", "optimizer", "weight_decay", "schedule")
"""Fields added after caches existed: they stay out of the key at their defaults, so old caches stay valid."""


def teacher_key(spec: TeacherSpec) -> str:
    """A short stable hash of the spec: the cache entry's name."""
    defaults = TeacherSpec()
    fields = dataclasses.asdict(spec)
    for name in _LATER_FIELDS:
        if fields[name] == getattr(defaults, name):
            del fields[name]
    blob = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def is_cached(spec: TeacherSpec, cache_dir: str) -> bool:
    """Whether the search's cache (a folder or a storage URI) already holds the teacher ``spec`` trains.

    The driver asks before it starts a Ray task to train it.
    """
    return storage.open_storage(cache_dir).join("teachers").exists(f"{teacher_key(spec)}.pt")


def load_or_train(
    spec: TeacherSpec, cache_dir: str, device: torch.device | str = "cpu", progress: bool = True
) -> nn.Module:
    """The frozen teacher described by ``spec``, in eval mode on ``device``.

    Loads ``spec.checkpoint`` when given; otherwise loads ``<cache_dir>/teachers/<key>.pt`` or trains it there.
    When ``cache_dir`` is in object storage the file is downloaded to a node-local copy first, and a teacher
    trained here is uploaded.

    Args:
        spec: The teacher's description.
        cache_dir: Root of the search's shared cache: a local folder or a storage URI (``autoinv.storage``).
        device: Where the returned model lives.
        progress: Print one line per training epoch (to stderr).
    """
    device = torch.device(device)
    if spec.corruption and spec.corruption not in corruptions.CORRUPTIONS:
        raise TeacherError(
            f"unknown teacher corruption {spec.corruption!r}; known: {', '.join(corruptions.CORRUPTIONS)}"
        )
    data = loop.load_data(_as_config(spec), device)
    with loop.seeded(spec.seed):  # initial weights from the spec alone: the cached teacher is one and the same
        model = create_model(spec.arch, data.num_classes, data.shape, pretrained=spec.pretrained).to(device)
    path = spec.checkpoint or _cached(spec, storage.open_storage(cache_dir).join("teachers"), data, model, progress)
    _load_into(model, path, spec)
    model.zero_grad(set_to_none=True)  # a teacher trained in this process would keep its last gradients
    model.eval().requires_grad_(False)
    return model


def _cached(spec: TeacherSpec, store: storage.Storage, data: Any, model: nn.Module, progress: bool) -> str:
    """The local path of the teacher's cached weights: found locally, downloaded from ``store``, or trained.

    A teacher trained here is uploaded to ``store`` (a no-op when the store is local), so trials on other nodes
    download it instead of training it again.
    """
    name = f"{teacher_key(spec)}.pt"
    path = os.path.join(store.local_cache(), name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with FileLock(path + ".lock"):
        if os.path.exists(path):
            return path
        if not store.is_local and store.exists(name):
            store.download(name, path)
            return path
        trained = _train(spec, data, model, progress)
        tmp = path + ".tmp"
        torch.save({"spec": dataclasses.asdict(spec), "model": trained.state_dict()}, tmp)
        os.replace(tmp, path)  # atomic: a reader never sees half a file
        if not store.is_local:
            store.upload(path, name)
    return path


def _as_config(spec: TeacherSpec) -> BaseConfig:
    return BaseConfig(
        dataset=spec.dataset,
        data_dir=spec.data_dir,
        val_fraction=spec.val_fraction,
        train_subset=spec.train_subset,
        model=spec.arch,
        epochs=spec.epochs,
        steps_per_epoch=spec.steps_per_epoch,
        batch_size=spec.batch_size,
        optimizer=spec.optimizer,
        lr=spec.lr,
        weight_decay=spec.weight_decay,
        schedule=spec.schedule,
        augment=spec.augment,
        seed=spec.seed,
    )


class _ProgressRun(loop.MemoryRun):
    def __init__(self, spec: TeacherSpec, show: bool) -> None:
        super().__init__()
        self.spec, self.show = spec, show

    def report(self, epoch: int, metrics: dict[str, float], state: dict[str, Any] | None = None) -> None:
        super().report(epoch, metrics, None)  # keep no per-epoch states: only the final model matters
        if self.show:
            print(
                f"teacher {self.spec.arch} on {self.spec.dataset}: epoch {epoch + 1}/{self.spec.epochs} "
                f"val/acc {metrics['val/acc']:.3f}",
                file=sys.stderr,
                flush=True,
            )


def _train(spec: TeacherSpec, data: Any, model: nn.Module, progress: bool) -> nn.Module:
    def loss_fn(model, x, y, generator):
        if spec.corruption:
            x = loop.standardize(corruptions.random_corrupt(to_float(x), spec.corruption, generator))
        return F.cross_entropy(model(loop.prepare(x)), y), {}

    run = _ProgressRun(spec, progress)
    with loop.generators_kept():  # the caller's draws are the same whether its teacher was cached or trained here
        loop.train_classifier(_as_config(spec), run, data, model, loss_fn)
    return model


def _load_into(model: nn.Module, path: str, spec: TeacherSpec) -> None:
    if not os.path.exists(path):
        raise TeacherError(
            f"teacher checkpoint {path!r} does not exist; fix teacher_checkpoint or leave it empty to train one"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(blob.get("model", blob))
    except (RuntimeError, KeyError, OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TeacherError(f"teacher checkpoint {path!r} does not fit arch {spec.arch!r}: {first}") from None
