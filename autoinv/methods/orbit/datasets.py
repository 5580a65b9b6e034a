"""Data of the Orbit-transfer experiments: MNIST-1D with seen/unseen circular shifts, and transformed image test copies.

MNIST-1D (Greydanus, 2020) is generated *untranslated* by the ``mnist1d`` package (4000 train / 1000 test signals
of length 40), then every signal is circularly shifted once, with a fixed per-split seed:

- train and validation (10% of train): shifts in ``[0, s)`` ("seen");
- ``test/acc``: the test set with seen shifts; ``test/acc_unseen``: shifts in ``[s, 40)``; ``test/acc_all``:
  shifts in ``[0, 40)``.

An empty range collapses to the single shift ``s mod 40``: s = 0 trains on unshifted signals, and at s = 40
"unseen" is the unshifted test set (the reference code's rule; the paper plots s = 0, 10, ..., 40).

For images, the project makes the shifted or rotated test copies itself (MNIST-C is not available offline):
``test/acc_translated`` uses circular shifts uniform in ``[-m, m]`` per axis, ``test/acc_rotated`` rotations by
a uniformly drawn multiple of 90 degrees.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import random
from pathlib import Path

import numpy as np
import torch

from autoinv import data as data_lib

__all__ = [
    "TransferData",
    "ShiftLimitError",
    "SIGNAL_LENGTH",
    "untranslated_mnist1d",
    "shifted_mnist1d",
    "draw_shifts",
    "roll_signals",
    "roll_images",
    "rotate_images",
    "transformed_image_data",
    "true_transform",
]

SIGNAL_LENGTH = 40
"""MNIST-1D signal length, so the shift group has 40 elements."""


class ShiftLimitError(ValueError):
    """The shift limit is outside [0, 40]."""


@dataclasses.dataclass(frozen=True, eq=False)
class TransferData:
    """A dataset with the extra test splits of the transfer experiments; duck-types :class:`autoinv.data.Dataset`.

    Attributes:
        name: Dataset name, e.g. ``"mnist1d_shift:30"``.
        x_train, y_train, x_val, y_val: Training and validation data (seen transforms only).
        x_test, y_test: The test split under seen transforms (``test/acc``; centred images for 2-D).
        extra_tests: Metric suffix → (x, y) of the other test splits (``"acc_unseen"``, ``"acc_all"``, or
            ``"acc_translated"`` / ``"acc_rotated"``).
        x_base, y_base: The untransformed test set, for accuracy-against-transform curves.
        num_classes: K.
        kind: ``"signal"`` or ``"image"``.
        transform: ``"shift"`` (1-D), ``"translate"`` or ``"rotate"`` (2-D).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    extra_tests: dict[str, tuple[torch.Tensor, torch.Tensor]]
    x_base: torch.Tensor
    y_base: torch.Tensor
    num_classes: int
    kind: str
    transform: str

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-sample shape, ``(1, 40)`` or ``(C, H, W)``."""
        return tuple(self.x_train.shape[1:])

    def to(self, device: torch.device | str) -> TransferData:
        """A copy with every tensor on ``device``."""
        moved = {
            f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self) if f.name[:2] in ("x_", "y_")
        }
        extra = {k: (x.to(device), y.to(device)) for k, (x, y) in self.extra_tests.items()}
        return dataclasses.replace(self, **moved, extra_tests=extra)


def _data_root(data_dir: str) -> Path:
    return Path(data_dir or os.environ.get("AUTOINV_DATA") or Path.home() / ".cache" / "autoinv" / "data").expanduser()


@functools.lru_cache(maxsize=2)
def untranslated_mnist1d(data_dir: str = "") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """MNIST-1D generated without its random translation, cached as ``mnist1d_untranslated.npz`` in the data root.

    Returns:
        ``x_train (4000, 1, 40)``, ``y_train (4000,)``, ``x_test (1000, 1, 40)``, ``y_test (1000,)``; float32 signals
        standardised by the package, int64 labels.
    """
    path = _data_root(data_dir) / "mnist1d_untranslated.npz"
    if path.is_file():
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
    else:
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.max_translation = 1  # the package draws k ~ U{0..max-1}: 1 means no translation
        # make_dataset seeds the global numpy and random generators; restore them so trial seeding is untouched.
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            made = make_dataset(args)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        arrays = {k: made[k] for k in ("x", "y", "x_test", "y_test")}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")  # write then rename: readers never see half
            np.savez(tmp, **arrays)
            tmp.replace(path)
        except OSError:
            pass
    return (
        torch.from_numpy(arrays["x"]).float()[:, None],
        torch.from_numpy(arrays["y"]).long(),
        torch.from_numpy(arrays["x_test"]).float()[:, None],
        torch.from_numpy(arrays["y_test"]).long(),
    )


def draw_shifts(n: int, low: int, high: int, seed: int, length: int = SIGNAL_LENGTH) -> torch.Tensor:
    """``n`` shifts uniform in ``[low, high)``; an empty range gives the constant ``low mod length``. ``(n,)``."""
    if low >= high:
        return torch.full((n,), low % length, dtype=torch.long)
    return torch.randint(low, high, (n,), generator=torch.Generator().manual_seed(seed))


def roll_signals(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Circularly shift each signal right by its own amount: ``out[b, :, i] = x[b, :, i - shifts[b]]``.

    Args:
        x: Signals ``(B, C, L)``.
        shifts: Integer shifts ``(B,)`` (any sign).
    """
    length = x.shape[-1]
    idx = (torch.arange(length, device=x.device) - shifts.to(x.device)[:, None]) % length  # (B, L)
    return x.gather(2, idx[:, None, :].expand_as(x))


def shifted_mnist1d(shift_limit: int, data_dir: str = "", val_fraction: float = 0.1, seed: int = 0) -> TransferData:
    """Untranslated MNIST-1D with seen shifts ``[0, s)`` for train/val/test and unseen/all test copies.

    Args:
        shift_limit: s in [0, 40].
        data_dir: Data root (empty: ``$AUTOINV_DATA`` or ``~/.cache/autoinv/data``).
        val_fraction: Share of the 4000 training signals held out for validation.
        seed: Data seed: the validation split and every split's shifts (fixed across a search's trials).

    Raises:
        ShiftLimitError: ``shift_limit`` outside [0, 40].
    """
    if not 0 <= shift_limit <= SIGNAL_LENGTH:
        raise ShiftLimitError(f"shift_limit={shift_limit} must be in [0, {SIGNAL_LENGTH}] (MNIST-1D has 40 positions)")
    x, y, x_test, y_test = untranslated_mnist1d(data_dir)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_val = round(len(y) * val_fraction)
    val, train = perm[:n_val], perm[n_val:]
    s = shift_limit

    def shifted(xs: torch.Tensor, low: int, high: int, split: int) -> torch.Tensor:
        return roll_signals(xs, draw_shifts(len(xs), low, high, seed * 10 + split))

    return TransferData(
        name=f"mnist1d_shift:{s}",
        x_train=shifted(x[train], 0, s, 1),
        y_train=y[train],
        x_val=shifted(x[val], 0, s, 2),
        y_val=y[val],
        x_test=shifted(x_test, 0, s, 3),
        y_test=y_test,
        extra_tests={
            "acc_unseen": (shifted(x_test, s, SIGNAL_LENGTH, 4), y_test),
            "acc_all": (shifted(x_test, 0, SIGNAL_LENGTH, 5), y_test),
        },
        x_base=x_test,
        y_base=y_test,
        num_classes=int(y.max()) + 1,
        kind="signal",
        transform="shift",
    )


def roll_images(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """Circularly shift each image by its own ``(dy, dx)``: ``out[b, :, i, j] = x[b, :, i - dy[b], j - dx[b]]``."""
    _, _, h, w = x.shape
    rows = (torch.arange(h, device=x.device) - dy.to(x.device)[:, None]) % h  # (B, H)
    cols = (torch.arange(w, device=x.device) - dx.to(x.device)[:, None]) % w  # (B, W)
    x = x.gather(2, rows[:, None, :, None].expand(-1, x.shape[1], -1, w))
    return x.gather(3, cols[:, None, None, :].expand(-1, x.shape[1], h, -1))


def rotate_images(x: torch.Tensor, quarters: torch.Tensor) -> torch.Tensor:
    """Rotate each image by ``quarters[b]`` x 90 degrees counter-clockwise (square images)."""
    out = x.clone()
    for r in range(1, 4):
        mask = (quarters.to(x.device) % 4) == r
        if mask.any():
            out[mask] = torch.rot90(x[mask], r, dims=(2, 3))
    return out


def true_transform(x: torch.Tensor, transform: str, generator: torch.Generator, max_shift: int = 0) -> torch.Tensor:
    """Apply a random element of the true group to each sample (the "+ augmentation" control).

    Args:
        x: Signals ``(B, C, L)`` or images ``(B, C, H, W)``.
        transform: ``"shift"`` (any circular shift of a signal), ``"translate"`` (image shifts uniform in
            ``[-max_shift, max_shift]`` per axis, as the translated test copy), or ``"rotate"`` (multiples of 90°).
        generator: CPU generator for the draws.
        max_shift: Largest image shift for ``"translate"``.
    """
    b = len(x)
    if transform == "shift":
        return roll_signals(x, torch.randint(x.shape[-1], (b,), generator=generator))
    if transform == "translate":
        dy, dx = (torch.randint(-max_shift, max_shift + 1, (b,), generator=generator) for _ in range(2))
        return roll_images(x, dy, dx)
    if transform == "rotate":
        return rotate_images(x, torch.randint(4, (b,), generator=generator))
    raise ValueError(f"unknown transform {transform!r}; use shift, translate or rotate")


def transformed_image_data(
    dataset: str, transform: str, max_shift: int, data_dir: str = "", val_fraction: float = 0.1, seed: int = 0
) -> TransferData:
    """An image dataset of :mod:`autoinv.data` with a translated or rotated copy of its test set.

    Args:
        dataset: A name ``autoinv.data.load_dataset`` knows (``digits``, ``fashionmnist``, ...).
        transform: ``"translate"`` or ``"rotate"``.
        max_shift: Largest shift per axis of the translated copy, in pixels.
        data_dir: Data root.
        val_fraction: Validation share.
        seed: Data seed (the split and the test copy's draws).
    """
    ds = data_lib.load_dataset(dataset, data_dir=data_dir, val_fraction=val_fraction)
    if ds.kind != "image":
        raise ValueError(f"dataset {dataset!r} holds signals; 2-D orbit transfer needs images")
    if transform == "translate" and not 0 < max_shift < min(ds.shape[1:]):
        raise ValueError(f"image_max_shift={max_shift} must be in [1, {min(ds.shape[1:]) - 1}] for {dataset!r}")
    if transform == "rotate" and ds.shape[1] != ds.shape[2]:
        raise ValueError(f"rotated test copies need square images; {dataset!r} has {ds.shape[1:]}")
    copy = true_transform(ds.x_test, transform, torch.Generator().manual_seed(seed + 7), max_shift)
    return TransferData(
        name=dataset,
        x_train=ds.x_train,
        y_train=ds.y_train,
        x_val=ds.x_val,
        y_val=ds.y_val,
        x_test=ds.x_test,
        y_test=ds.y_test,
        extra_tests={f"acc_{'translated' if transform == 'translate' else 'rotated'}": (copy, ds.y_test)},
        x_base=ds.x_test,
        y_base=ds.y_test,
        num_classes=ds.num_classes,
        kind="image",
        transform=transform,
    )
