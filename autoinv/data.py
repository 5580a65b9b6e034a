"""Datasets as whole in-memory tensors: offline makers, torchvision downloads, and custom ``npz:`` / ``folder:`` data.

Every dataset loads completely into memory as uint8 images ``(N, C, H, W)`` or float32 signals ``(N, C, L)``, so a
training loop can move it to the device once and index batches there. A validation split is carved from the training
set with the data ``seed`` (fixed by default, never the trial seed), so every trial of a search sees the same split.

Names:
    - offline, made here or shipped by a package: ``mnist1d``, ``mnist1d_shift``, ``digits``, ``shapes``,
      ``marioiggy``; the generated ones take options after a colon, e.g. ``marioiggy:rot=45`` (rotation range),
      ``shapes:n_train=1000,n_test=200`` or ``mnist1d_shift:shift=30,file=PATH`` (see :func:`_mnist1d_shift`);
    - downloaded through torchvision into ``data_dir``: ``cifar10``, ``cifar100``, ``mnist``, ``fashionmnist``,
      ``svhn``, and ``tinyimagenet`` (``tiny-imagenet-200.zip`` or its extracted folder);
    - custom: ``npz:PATH`` (arrays ``x``, ``y``, optional ``x_test``, ``y_test``) and ``folder:PATH``
      (one subfolder per class, optionally under ``train/`` and ``test/``).

Example:
    >>> ds = load_dataset("shapes")
    >>> ds.shape, ds.num_classes, ds.kind
    ((3, 32, 32), 10, 'image')
    >>> x = normalize(to_float(ds.x_train[:8]), ds)  # (8, 3, 32, 32) float32
"""

import dataclasses
import functools
import inspect
import io
import math
import os
import random
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = [
    "DATASETS",
    "Dataset",
    "DatasetError",
    "list_datasets",
    "load_dataset",
    "marioiggy_sprites",
    "normalize",
    "roll_signals",
    "to_float",
]

TEST_FRACTION = 0.2
"""Share of the data held out as test set when a dataset has no official test split (digits, npz, folder)."""

MNIST1D_LENGTH = 40
"""MNIST-1D signal length: its circular shift group has 40 elements."""


class DatasetError(ValueError):
    """A user-facing data problem; the message is one line that says what to do."""


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset held as tensors; treat the tensors as read-only, since loads are cached and shared in-process.

    Attributes:
        name: the name it was loaded by, e.g. ``"cifar10"`` or ``"marioiggy:rot=45"``.
        x_train: uint8 images ``(N, C, H, W)`` or float32 signals ``(N, C, L)``.
        y_train: int64 labels ``(N,)`` in ``[0, num_classes)``.
        x_val: validation inputs, carved from the training set, like ``x_train``.
        y_val: validation labels.
        x_test: test inputs (the official test split where there is one).
        y_test: test labels.
        num_classes: number of classes.
        kind: ``"image"`` or ``"signal"``.
        extra_tests: further test splits, metric suffix → ``(x, y)``, e.g. ``mnist1d_shift``'s ``"acc_unseen"``;
            with ``eval_test`` the training loop reports each as ``test/<suffix>``. Empty for most datasets.
        x_base: the test inputs before the dataset's own transform (``mnist1d_shift``: unshifted), for
            accuracy-against-transform curves; left out, it is ``x_test`` itself.
        y_base: its labels (``y_test`` when ``x_base`` is left out).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    kind: str
    extra_tests: dict[str, tuple[torch.Tensor, torch.Tensor]] = dataclasses.field(default_factory=dict)
    x_base: torch.Tensor | None = None
    y_base: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.x_base is None:  # frozen: fill the default through object.__setattr__, as dataclasses do
            object.__setattr__(self, "x_base", self.x_test)
            object.__setattr__(self, "y_base", self.y_test)

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-sample shape, e.g. ``(3, 32, 32)`` for images or ``(1, 40)`` for signals."""
        return tuple(self.x_train.shape[1:])

    @functools.cached_property
    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std ``(C,)`` of ``to_float(x_train)``, computed once, on the dataset's device."""
        dims = [0, *range(2, self.x_train.ndim)]
        total = torch.zeros(self.x_train.shape[1], dtype=torch.float64, device=self.x_train.device)
        squares = torch.zeros_like(total)
        # Chunks keep the float copy small for large uint8 sets (TinyImageNet would need ~5 GB at once).
        for chunk in self.x_train.split(4096):
            chunk = to_float(chunk).double()
            total += chunk.sum(dims)
            squares += chunk.square().sum(dims)
        count = self.x_train.numel() / self.x_train.shape[1]
        mean = total / count
        std = (squares / count - mean.square()).clamp_min(1e-12).sqrt()
        return mean.float(), std.float()

    def to(self, device: torch.device | str) -> "Dataset":
        """Return a copy with every tensor on ``device``."""
        # A base that is the test set itself stays one tensor on the device, not a second copy.
        shared = self.x_base is self.x_test
        return dataclasses.replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_val=self.x_val.to(device),
            y_val=self.y_val.to(device),
            x_test=self.x_test.to(device),
            y_test=self.y_test.to(device),
            extra_tests={k: (x.to(device), y.to(device)) for k, (x, y) in self.extra_tests.items()},
            x_base=None if shared else self.x_base.to(device),
            y_base=None if shared else self.y_base.to(device),
        )


def to_float(x: torch.Tensor) -> torch.Tensor:
    """Convert uint8 images to float32 in ``[0, 1]``; float inputs (signals) are returned unchanged.

    Args:
        x: uint8 ``(B, C, H, W)`` or float ``(B, C, L)``.

    Returns:
        float tensor of the same shape, on the same device.
    """
    return x.float().div_(255) if x.dtype == torch.uint8 else x


def normalize(x: torch.Tensor, dataset: Dataset) -> torch.Tensor:
    """Standardise each channel with the training set's mean and std (``dataset.stats``).

    Optional: every model here also trains on plain ``to_float`` inputs in ``[0, 1]``. Augmentations that assume
    ``[0, 1]`` pixels (colour, clamping) should run before this.

    Args:
        x: float ``(B, C, H, W)`` or ``(B, C, L)``, as from ``to_float``.
        dataset: the dataset ``x`` comes from.

    Returns:
        ``(x - mean) / std`` per channel, same shape as ``x``.
    """
    mean, std = dataset.stats
    view = (-1,) + (1,) * (x.ndim - 2)  # (C, 1, 1) or (C, 1)
    return (x - mean.to(x.device).view(view)) / std.to(x.device).view(view)


class _Arrays(NamedTuple):
    """What a maker returns: the full training set and the test set (and optionally more, see :class:`Dataset`)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    extra_tests: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
    x_base: torch.Tensor | None = None
    y_base: torch.Tensor | None = None


# ---------------------------------------------------------------------------------------------------------------------
# Offline datasets


def _mnist1d(root: Path, download: bool, seed: int) -> _Arrays:
    """MNIST-1D with the package's default arguments (its own seed 42): 4000 train / 1000 test signals of length 40."""

    def generate() -> dict[str, np.ndarray]:
        from mnist1d.data import get_dataset_args
        from mnist1d.data import make_dataset as make_mnist1d

        # make_dataset seeds the global numpy and random generators; restore them so trial seeding is untouched.
        np_state, py_state = np.random.get_state(), random.getstate()
        try:
            data = make_mnist1d(get_dataset_args())  # get_dataset would try to download a pickle; this only computes
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        return {k: data[k] for k in ("x", "y", "x_test", "y_test")}

    a = _cached_npz(root / "mnist1d.npz", generate)
    return _Arrays(
        torch.from_numpy(a["x"]).float()[:, None],
        torch.from_numpy(a["y"]).long(),
        torch.from_numpy(a["x_test"]).float()[:, None],
        torch.from_numpy(a["y_test"]).long(),
    )


def roll_signals(x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Circularly shift each signal right by its own amount: ``out[b, :, i] = x[b, :, i - shifts[b]]``.

    Args:
        x: Signals ``(B, C, L)``.
        shifts: Integer shifts ``(B,)`` (any sign).

    Returns:
        The shifted signals, ``(B, C, L)``.
    """
    length = x.shape[-1]
    idx = (torch.arange(length, device=x.device) - shifts.to(x.device)[:, None]) % length  # (B, L)
    return x.gather(2, idx[:, None, :].expand_as(x))


def _draw_shifts(n: int, low: int, high: int, seed: int) -> torch.Tensor:
    """``n`` shifts uniform in ``[low, high)``; an empty range gives the constant ``low mod 40``. ``(n,)``."""
    if low >= high:
        return torch.full((n,), low % MNIST1D_LENGTH, dtype=torch.long)
    return torch.randint(low, high, (n,), generator=torch.Generator().manual_seed(seed))


def _untranslated_mnist1d(root: Path, file: str) -> dict[str, np.ndarray]:
    """MNIST-1D without its random translation: ``file`` if given, else generated and cached in ``root``."""
    if not file:

        def generate() -> dict[str, np.ndarray]:
            from mnist1d.data import get_dataset_args
            from mnist1d.data import make_dataset as make_mnist1d

            args = get_dataset_args()
            args.max_translation = 1  # the package draws k ~ U{0..max-1}: 1 means no translation
            np_state, py_state = np.random.get_state(), random.getstate()  # make_dataset seeds the global generators
            try:
                made = make_mnist1d(args)
            finally:
                np.random.set_state(np_state)
                random.setstate(py_state)
            return {k: made[k] for k in ("x", "y", "x_test", "y_test")}

        return _cached_npz(root / "mnist1d_untranslated.npz", generate)
    path = Path(file).expanduser()
    how = (
        f"pass mnist1d_shift:file=PATH to a .npz with float arrays x, x_test (N, {MNIST1D_LENGTH}) and labels y, y_test"
    )
    arrays = _read_npz(path, f"mnist1d_shift file '{path}' does not exist; {how}", how)
    missing = {"x", "y", "x_test", "y_test"} - set(arrays)
    if missing:
        raise DatasetError(f"mnist1d_shift file '{path}' lacks arrays {', '.join(sorted(missing))}; {how}")
    for key in ("x", "x_test"):
        x = arrays[key]
        if not np.issubdtype(x.dtype, np.floating) or x.shape[1:] not in ((MNIST1D_LENGTH,), (1, MNIST1D_LENGTH)):
            raise DatasetError(f"mnist1d_shift file '{path}': {key} is {x.dtype} {x.shape}; {how}")
        arrays[key] = x.reshape(len(x), MNIST1D_LENGTH)
        _labels(arrays[f"y{key[1:]}"], len(x), path)  # one-line error for bad labels
    return arrays


def _mnist1d_shift(
    root: Path, download: bool, seed: int, val_fraction: float, shift: int = 30, file: str = ""
) -> _Arrays:
    """Untranslated MNIST-1D, each signal circularly shifted once: the Orbit-transfer experiments' data.

    Train and validation signals take seen shifts in ``[0, s)``, the test set too (``test/acc``); two extra test
    splits take unseen shifts in ``[s, 40)`` (``test/acc_unseen``) and any shift in ``[0, 40)`` (``test/acc_all``);
    the unshifted test set is the base of accuracy-against-shift curves. An empty range collapses to the single
    shift ``s mod 40``: s = 0 trains on unshifted signals, and at s = 40 "unseen" is the unshifted test set (the
    reference code's rule; the paper plots s = 0, 10, ..., 40). Each split's shifts come from its own generator,
    seeded by the data seed.

    Args:
        root: Data root; the generated signals are cached there as ``mnist1d_untranslated.npz``.
        download: Unused (the signals are generated offline).
        seed: Data seed: the validation split and the shifts.
        val_fraction: Validation share, to draw the validation signals' shifts from their own generator.
        shift: s in [0, 40] (``mnist1d_shift:shift=30``).
        file: A user's untranslated MNIST-1D ``.npz`` with float ``x``, ``x_test`` (N, 40) or (N, 1, 40) and integer
            ``y``, ``y_test`` (as the authors ship theirs), instead of the generated one
            (``mnist1d_shift:file=PATH``).
    """
    if not 0 <= shift <= MNIST1D_LENGTH:
        raise DatasetError(f"mnist1d_shift option shift={shift} must be in [0, {MNIST1D_LENGTH}] (40 positions)")
    a = _untranslated_mnist1d(root, file)
    x, y = torch.from_numpy(a["x"]).float()[:, None], torch.from_numpy(a["y"]).long()  # (N, 1, 40), (N,)
    x_test, y_test = torch.from_numpy(a["x_test"]).float()[:, None], torch.from_numpy(a["y_test"]).long()

    def shifted(xs: torch.Tensor, low: int, high: int, split: int) -> torch.Tensor:
        return roll_signals(xs, _draw_shifts(len(xs), low, high, seed * 10 + split))

    # Training and validation signals draw from their own generators, so the split that _split will carve is made
    # here first and each part's shifted signals are put back in place.
    val, train = _split_indices(len(y), val_fraction, seed)
    x = x.clone()
    x[train], x[val] = shifted(x[train], 0, shift, 1), shifted(x[val], 0, shift, 2)
    return _Arrays(
        x,
        y,
        shifted(x_test, 0, shift, 3),
        y_test,
        extra_tests={
            "acc_unseen": (shifted(x_test, shift, MNIST1D_LENGTH, 4), y_test),
            "acc_all": (shifted(x_test, 0, MNIST1D_LENGTH, 5), y_test),
        },
        x_base=x_test,
        y_base=y_test,
    )


def _digits(root: Path, download: bool, seed: int) -> _Arrays:
    """scikit-learn's 8x8 digits (1797 images, shipped with the package), scaled from 0..16 to 0..255."""
    from sklearn.datasets import load_digits  # here, not at the top: importing sklearn costs about a second

    digits = load_digits()
    x = torch.from_numpy(np.round(digits.images * (255 / 16))).to(torch.uint8)[:, None]  # (1797, 1, 8, 8)
    y = torch.from_numpy(digits.target).long()
    return _carve_test(x, y, seed)


def _inside_star(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Five-pointed star: the radius limit rises linearly from 0.4 between points to 1 at a point."""
    turns = torch.remainder(torch.atan2(v, u) * (5 / (2 * math.pi)) + 0.25, 1.0)  # +0.25 puts a point straight up
    return u.square() + v.square() <= (0.4 + 0.6 * (1 - 2 * (turns - 0.5).abs())).square()


def _inside_plus(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Plus sign with arm half-width 0.3."""
    return ((u.abs() <= 0.3) & (v.abs() <= 1)) | ((v.abs() <= 0.3) & (u.abs() <= 1))


# Class id = position. Each predicate takes object coordinates (u, v) scaled so the object has radius about 1 (v points
# down, as image rows do). Rotations stay within +-20 degrees, so plus/cross (45 degrees apart) stay distinct.
_SHAPES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "circle": lambda u, v: u.square() + v.square() <= 1,
    "square": lambda u, v: torch.maximum(u.abs(), v.abs()) <= 0.8,
    "triangle": lambda u, v: (v <= 0.6) & (v >= 2 * u.abs() - 1),
    "ring": lambda u, v: (u.square() + v.square() <= 1) & (u.square() + v.square() >= 0.55**2),
    "plus": _inside_plus,
    "cross": lambda u, v: _inside_plus((u + v) / math.sqrt(2), (u - v) / math.sqrt(2)),
    "star": _inside_star,
    "diamond": lambda u, v: u.abs() / 0.6 + v.abs() <= 1,
    "hexagon": lambda u, v: torch.maximum(u.abs() * math.sqrt(3) / 2 + v.abs() / 2, v.abs()) <= 0.9,
    "arrow": lambda u, v: ((v.abs() <= 0.22) & (u >= -1) & (u <= 0.1)) | ((u >= 0.1) & (v.abs() <= 0.8 * (1 - u))),
}


def _uniform(gen: torch.Generator, low: float, high: float, *shape: int) -> torch.Tensor:
    """Uniform samples in ``[low, high)``."""
    return low + (high - low) * torch.rand(shape, generator=gen)


def _blend(image: torch.Tensor, alpha: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """Paint ``colour (n, 3)`` over ``image (n, 3, S, S)`` with coverage ``alpha (n, S, S)`` in ``[0, 1]``."""
    return image + alpha[:, None] * (colour[:, :, None, None] - image)


def _render_shapes(labels: torch.Tensor, gen: torch.Generator, size: int = 32) -> torch.Tensor:
    """Draw one object per label over a cluttered background; returns uint8 ``(n, 3, size, size)``."""
    n = len(labels)
    pixel = torch.arange(size) + 0.5  # pixel centres
    ys, xs = pixel[None, :, None], pixel[None, None, :]  # (1, S, 1), (1, 1, S)

    def coverage(distance: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
        return (radius + 0.5 - distance).clamp(0, 1)  # a one-pixel ramp at the edge anti-aliases it

    def line(image: torch.Tensor) -> torch.Tensor:
        x0, y0, x1, y1 = (_uniform(gen, 0, size, n, 1, 1) for _ in range(4))
        dx, dy = x1 - x0, y1 - y0
        t = (((xs - x0) * dx + (ys - y0) * dy) / (dx.square() + dy.square() + 1e-6)).clamp(0, 1)  # nearest point
        distance = torch.hypot(xs - x0 - t * dx, ys - y0 - t * dy)
        return _blend(image, coverage(distance, _uniform(gen, 0.4, 1.0, n, 1, 1)), torch.rand(n, 3, generator=gen))

    # Background: a smooth random colour field, then small blobs and lines of random colours.
    image = 0.05 + 0.5 * F.interpolate(torch.rand(n, 3, 4, 4, generator=gen), size, mode="bilinear")
    for _ in range(4):
        cx, cy = _uniform(gen, 0, size, n, 1, 1), _uniform(gen, 0, size, n, 1, 1)
        radius = _uniform(gen, 1, 2.5, n, 1, 1)  # below the smallest object (5), so a blob is never a circle
        image = _blend(image, coverage(torch.hypot(xs - cx, ys - cy), radius), torch.rand(n, 3, generator=gen))
    image = line(line(image))

    # The object: random radius, position (fully inside), small rotation and a bright colour. Its mask is drawn at
    # twice the resolution and averaged, because the class is in its outline.
    fine = (torch.arange(2 * size) + 0.5) / 2
    fy, fx = fine[None, :, None], fine[None, None, :]
    radius = _uniform(gen, 5, 12, n, 1, 1)
    cx = radius + _uniform(gen, 0, 1, n, 1, 1) * (size - 2 * radius)
    cy = radius + _uniform(gen, 0, 1, n, 1, 1) * (size - 2 * radius)
    angle = _uniform(gen, -math.pi / 9, math.pi / 9, n, 1, 1)
    u = ((fx - cx) * angle.cos() + (fy - cy) * angle.sin()) / radius  # (n, 2S, 2S)
    v = (-(fx - cx) * angle.sin() + (fy - cy) * angle.cos()) / radius
    inside = torch.zeros(n, 2 * size, 2 * size)
    for k, shape in enumerate(_SHAPES.values()):
        idx = labels == k
        inside[idx] = shape(u[idx], v[idx]).float()
    colour = torch.rand(n, 3, generator=gen)
    colour = colour / colour.amax(1, keepdim=True) * _uniform(gen, 0.75, 1.0, n, 1)  # brightest channel in [0.75, 1]
    image = line(_blend(image, F.avg_pool2d(inside, 2), colour))  # one line on top partly occludes some objects

    image = image + 0.04 * torch.randn(n, 3, size, size, generator=gen)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)


def _shapes(root: Path, download: bool, seed: int, n_train: int = 5000, n_test: int = 1000, half: int = 0) -> _Arrays:
    """Procedural RGB 32x32 shapes: 10 balanced classes of objects at random position/scale/colour over clutter.

    ``half=1`` keeps classes 0-4 and ``half=2`` classes 5-9 (relabelled 0-4): two disjoint source/target tasks.
    """

    def generate() -> dict[str, np.ndarray]:
        gen = torch.Generator().manual_seed(seed)
        n = n_train + n_test
        labels = (torch.arange(n) % len(_SHAPES))[torch.randperm(n, generator=gen)]
        # Chunks bound the memory of the float canvases (1000 samples: ~12 MB each, ~50 MB for the 2x object mask).
        x = torch.cat([_render_shapes(chunk, gen) for chunk in labels.split(1000)])
        return {"x": x.numpy(), "y": labels.numpy()}

    # Rendering takes seconds; every trial process of a search would pay it again, so keep the result on disk.
    a = _cached_npz(root / f"shapes-v1-{seed}-{n_train}-{n_test}.npz", generate)
    x, labels = torch.from_numpy(a["x"]), torch.from_numpy(a["y"]).long()
    out = _Arrays(x[:n_train], labels[:n_train], x[n_train:], labels[n_train:])
    if half not in (0, 1, 2):
        raise DatasetError(f"shapes option half={half} must be 0 (all classes), 1 (classes 0-4) or 2 (classes 5-9)")
    if half:
        low = 5 * (half - 1)
        train, test = (out.y_train // 5 == half - 1), (out.y_test // 5 == half - 1)
        out = _Arrays(out.x_train[train], out.y_train[train] - low, out.x_test[test], out.y_test[test] - low)
    return out


# Two project-drawn 12x12 sprites, both asymmetric under flips and rotations. "." is transparent.
_PALETTE = {
    "R": (220, 40, 30),  # red
    "S": (250, 190, 140),  # skin
    "B": (120, 70, 20),  # brown
    "K": (20, 20, 20),  # black
    "U": (40, 70, 220),  # blue
    "W": (250, 250, 250),  # white
    "G": (40, 170, 60),  # green
    "O": (240, 140, 20),  # orange
    "Y": (240, 220, 60),  # yellow
}
_MARIO = (
    "...RRRRR....",
    "..RRRRRRRRR.",
    "..BBBSSKS...",
    ".BSBSSSKSSS.",
    ".BSBBSSSKSSS",
    ".BBSSSSKKKK.",
    "...SSSSSSS..",
    "..RRURRURR..",
    ".RRRUUUURRR.",
    ".SSUWUUWUSS.",
    "...UUU.UUU..",
    "..BBB...BBB.",
)
_IGGY = (
    "........GGG.",
    ".......GKGGG",
    "...OOO.GGGGY",
    "..OWOWO.GG..",
    ".OWOWOWOG...",
    ".OOWOWOOG...",
    "GOOOOOOOG...",
    ".YYYYYYYY...",
    "..GG...GG...",
    "..GG...GG...",
    ".GGG..GGG...",
    "............",
)


def _sprite(rows: tuple[str, ...], size: int = 32, zoom: int = 2) -> torch.Tensor:
    """Pixel art → float RGB ``(3, size, size)`` in ``[0, 1]``, enlarged ``zoom`` times and centred on black."""
    art = torch.tensor([[_PALETTE.get(c, (0, 0, 0)) for c in row] for row in rows], dtype=torch.float32) / 255
    art = art.permute(2, 0, 1).repeat_interleave(zoom, 1).repeat_interleave(zoom, 2)  # (3, 24, 24)
    pad = (size - art.shape[1]) // 2
    return F.pad(art, (pad, size - art.shape[2] - pad, pad, size - art.shape[1] - pad))


def marioiggy_sprites() -> torch.Tensor:
    """The two upright sprites of ``marioiggy``, mario then iggy: float (2, 3, 32, 32) in [0, 1]."""
    return torch.stack([_sprite(_MARIO), _sprite(_IGGY)])


def _marioiggy(
    root: Path, download: bool, seed: int, rot: float = 90.0, n_train: int = 5000, n_test: int = 1000, modes: int = 1
) -> _Arrays:
    """Two sprites, upright or upside down (4 classes), rotated uniformly within ``±rot`` degrees.

    Labels: 0 mario upright, 1 mario upside down, 2 iggy upright, 3 iggy upside down. An upside-down sample is
    rotated by 180° plus the same ``U(-rot, rot)``, so ``rot <= 90`` keeps the classes disjoint; at 90 the right
    invariance is exactly ±90°. With ``modes=M`` > 1 (FlowInv's multi-modal set, paper Fig. 4 bottom) an upright
    sample is centred at one of 0°, 360°/M, ... and an upside-down one halfway between (``rot <= 90 / M``).
    """
    if not 0 <= rot <= 90 / max(modes, 1) or modes < 1:
        raise DatasetError(f"marioiggy needs modes >= 1 and rot in [0, 90/modes] degrees (disjoint classes); got {rot}")
    gen = torch.Generator().manual_seed(seed)
    n = n_train + n_test
    labels = (torch.arange(n) % 4)[torch.randperm(n, generator=gen)]
    sprites = marioiggy_sprites()  # (2, 3, 32, 32)
    angle = _uniform(gen, -rot, rot, n) + 180.0 / modes * (labels % 2)
    if modes > 1:
        angle = angle + 360.0 / modes * torch.randint(modes, (n,), generator=gen)
    angle = torch.deg2rad(angle)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros(n)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)  # (n, 2, 3)
    images = sprites[labels // 2]
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    x = (F.grid_sample(images, grid, align_corners=False).clamp(0, 1) * 255).round().to(torch.uint8)
    return _Arrays(x[:n_train], labels[:n_train], x[n_train:], labels[n_train:])


# ---------------------------------------------------------------------------------------------------------------------
# Downloadable datasets


def _torchvision(cls_name: str, root: Path, download: bool, seed: int) -> _Arrays:
    """Load a torchvision dataset class (downloading into ``root`` if allowed) into uint8 tensors."""
    import torchvision

    cls = getattr(torchvision.datasets, cls_name)
    splits = [{"split": "train"}, {"split": "test"}] if cls_name == "SVHN" else [{"train": True}, {"train": False}]
    try:
        train, test = (cls(str(root), download=download, **split) for split in splits)
    except (RuntimeError, OSError) as e:  # torchvision raises RuntimeError for missing files; offline gives OSError
        raise DatasetError(_missing_message(cls_name.lower(), root, download)) from e
    return _Arrays(*_torchvision_tensors(train), *_torchvision_tensors(test))


def _torchvision_tensors(ds: torch.utils.data.Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` from a torchvision dataset's in-memory arrays, as uint8 ``(N, C, H, W)`` and int64 ``(N,)``."""
    x = torch.as_tensor(np.asarray(ds.data))
    if x.ndim == 3:  # MNIST and Fashion-MNIST store grey (N, H, W)
        x = x[:, None]
    elif x.shape[-1] == 3:  # CIFAR stores (N, H, W, C); SVHN is already (N, C, H, W)
        x = x.permute(0, 3, 1, 2)
    y = ds.labels if hasattr(ds, "labels") else ds.targets
    return x.contiguous(), torch.as_tensor(np.asarray(y), dtype=torch.int64)


_TINYIMAGENET_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


def _tinyimagenet(root: Path, download: bool, seed: int) -> _Arrays:
    """TinyImageNet-200 (64x64 RGB, 100k train, official 10k val used as test) from its zip or extracted folder.

    The first load decodes every JPEG (about a minute) and caches the arrays as ``tiny-imagenet-200.npz`` in ``root``.
    """
    folder, archive = root / "tiny-imagenet-200", root / "tiny-imagenet-200.zip"

    def read() -> dict[str, np.ndarray]:
        if not folder.is_dir() and not archive.is_file() and download:
            import torchvision

            try:
                torchvision.datasets.utils.download_url(_TINYIMAGENET_URL, str(root))
            except (RuntimeError, OSError) as e:
                raise DatasetError(_missing_message("tinyimagenet", root, download)) from e
        try:
            if folder.is_dir():
                names = [p.relative_to(root).as_posix() for p in folder.rglob("*") if p.is_file()]
                return _read_tinyimagenet(names, lambda name: (root / name).read_bytes())
            if archive.is_file():
                with zipfile.ZipFile(archive) as zf:
                    return _read_tinyimagenet(zf.namelist(), zf.read)
        except (KeyError, OSError, zipfile.BadZipFile) as e:  # a missing member, file, or a truncated zip
            raise DatasetError(f"tinyimagenet in {root} is incomplete ({e}); delete it and download it again") from e
        raise DatasetError(_missing_message("tinyimagenet", root, download))

    a = _cached_npz(root / "tiny-imagenet-200.npz", read)
    return _Arrays(*(torch.from_numpy(a[k]) for k in ("x", "y", "x_test", "y_test")))


def _read_tinyimagenet(names: list[str], read: Callable[[str], bytes]) -> dict[str, np.ndarray]:
    """Parse the TinyImageNet layout from its file ``names`` and ``read(name) -> bytes`` (same in zip and folder).

    Classes are the sorted ``wnids.txt`` ids; train images are ``train/<wnid>/images/*.JPEG``; the official validation
    set (``val/images`` labelled by ``val/val_annotations.txt``) is the test set, as its real test labels are private.
    """
    index = {w: k for k, w in enumerate(sorted(read("tiny-imagenet-200/wnids.txt").decode().split()))}
    train = sorted(
        (name, index[name.split("/")[2]])
        for name in names
        if name.startswith("tiny-imagenet-200/train/") and name.endswith(".JPEG")
    )
    lines = read("tiny-imagenet-200/val/val_annotations.txt").decode().splitlines()
    test = [(f"tiny-imagenet-200/val/images/{file}", index[wnid]) for file, wnid, *_ in map(str.split, lines)]

    def decode(samples: list[tuple[str, int]]) -> tuple[np.ndarray, np.ndarray]:
        images = [np.asarray(Image.open(io.BytesIO(read(name))).convert("RGB")) for name, _ in samples]
        return np.stack(images).transpose(0, 3, 1, 2), np.array([k for _, k in samples], dtype=np.int64)

    (x, y), (x_test, y_test) = decode(train), decode(test)
    return {"x": x, "y": y, "x_test": x_test, "y_test": y_test}


def _missing_message(name: str, root: Path, download: bool) -> str:
    how = "could not be downloaded" if download else "download=False"
    return (
        f"dataset '{name}' is not in {root} and {how}; put it there, pass --data-dir, "
        "or use --quick for an offline dataset"
    )


# ---------------------------------------------------------------------------------------------------------------------
# Registry and loading

DATASETS: dict[str, Callable[..., _Arrays]] = {
    "mnist1d": _mnist1d,
    "mnist1d_shift": _mnist1d_shift,
    "digits": _digits,
    "shapes": _shapes,
    "marioiggy": _marioiggy,
    "cifar10": functools.partial(_torchvision, "CIFAR10"),
    "cifar100": functools.partial(_torchvision, "CIFAR100"),
    "mnist": functools.partial(_torchvision, "MNIST"),
    "fashionmnist": functools.partial(_torchvision, "FashionMNIST"),
    "svhn": functools.partial(_torchvision, "SVHN"),
    "tinyimagenet": _tinyimagenet,
}
"""Name → maker ``(root, download, seed, [val_fraction,] **options) -> _Arrays``; options are ``name:k=v,k2=v2``."""


def list_datasets() -> list[str]:
    """Registered dataset names, offline ones first (``npz:PATH`` and ``folder:PATH`` are always accepted too)."""
    return list(DATASETS)


def load_dataset(
    name: str, data_dir: str = "", val_fraction: float = 0.1, seed: int = 0, download: bool = True
) -> Dataset:
    """Load a dataset as tensors, with a validation split carved from its training set.

    Loads of registered names are cached in-process, so repeated calls are cheap and return the same object.

    Args:
        name: a key of ``DATASETS``, optionally with options (``"marioiggy:rot=45"``), or ``"npz:PATH"`` /
            ``"folder:PATH"``.
        data_dir: where downloads and caches live; ``""`` means ``$AUTOINV_DATA`` if set, else
            ``~/.cache/autoinv/data``.
        val_fraction: share of the training set moved to validation, in ``(0, 1)``.
        seed: the data seed: it draws the validation split, test splits carved here, and the generated sets (shapes,
            marioiggy). Keep it fixed across the trials of a search; it is not the trial seed. mnist1d always uses the
            package's canonical generation.
        download: whether a missing torchvision dataset may be downloaded.

    Returns:
        The dataset; images are uint8 ``(N, C, H, W)``, signals float32 ``(N, C, L)``, labels int64 ``(N,)``.

    Raises:
        DatasetError: unknown name, bad options or files, or a dataset that is missing and cannot be downloaded.
    """
    if not 0 < val_fraction < 1:
        raise DatasetError(f"val_fraction must be between 0 and 1 (exclusive); got {val_fraction}")
    if name.startswith("npz:"):
        return _split(name, _load_npz(Path(name[4:]).expanduser(), seed), val_fraction, seed)
    if name.startswith("folder:"):
        return _split(name, _load_folder(Path(name[7:]).expanduser(), seed), val_fraction, seed)
    root = Path(data_dir or os.environ.get("AUTOINV_DATA") or Path.home() / ".cache" / "autoinv" / "data").expanduser()
    return _load_registered(name, str(root), val_fraction, seed, download)


@functools.lru_cache(maxsize=16)
def _load_registered(name: str, root: str, val_fraction: float, seed: int, download: bool) -> Dataset:
    """Cached body of ``load_dataset`` for registry names (custom files are re-read, since they may change)."""
    base, _, option_text = name.partition(":")
    if base not in DATASETS:
        raise DatasetError(f"unknown dataset '{name}'; known: {', '.join(DATASETS)}; or npz:PATH / folder:PATH")
    maker = DATASETS[base]
    given = ("root", "download", "seed", "val_fraction")  # passed by the loader, not options
    signature = inspect.signature(maker).parameters
    params = {k: p for k, p in signature.items() if k not in given}
    options = {"val_fraction": val_fraction} if "val_fraction" in signature else {}
    for item in filter(None, option_text.split(",")):
        key, _, value = item.partition("=")
        if key not in params:
            raise DatasetError(f"dataset '{base}' has no option '{key}'; its options: {', '.join(params) or 'none'}")
        try:
            options[key] = type(params[key].default)(value)  # int, float or str, as the maker's default
        except ValueError:
            raise DatasetError(f"bad option '{item}' in dataset '{name}'; write {base}:{key}=NUMBER") from None
    return _split(name, maker(Path(root), download, seed, **options), val_fraction, seed)


def _split(name: str, a: _Arrays, val_fraction: float, seed: int) -> Dataset:
    """Carve the validation set from ``a.x_train`` with a generator seeded by the data seed only."""
    n = len(a.y_train)
    if not 0 < round(n * val_fraction) < n:
        raise DatasetError(f"val_fraction {val_fraction} of {n} training samples leaves an empty split; change it")
    val, train = _split_indices(n, val_fraction, seed)
    return Dataset(
        name=name,
        x_train=a.x_train[train],
        y_train=a.y_train[train],
        x_val=a.x_train[val],
        y_val=a.y_train[val],
        x_test=a.x_test,
        y_test=a.y_test,
        num_classes=int(torch.cat([a.y_train, a.y_test]).max()) + 1,
        kind="image" if a.x_train.ndim == 4 else "signal",
        extra_tests=a.extra_tests or {},
        x_base=a.x_base,
        y_base=a.y_base,
    )


def _split_indices(n: int, val_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation and training indices of ``n`` samples: a permutation drawn from the data seed alone."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = round(n * val_fraction)
    return perm[:n_val], perm[n_val:]


def _carve_test(x: torch.Tensor, y: torch.Tensor, seed: int) -> _Arrays:
    """Hold out ``TEST_FRACTION`` of ``(x, y)`` as test set, for data without an official test split."""
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    n_test = round(len(y) * TEST_FRACTION)
    return _Arrays(x[perm[n_test:]], y[perm[n_test:]], x[perm[:n_test]], y[perm[:n_test]])


def _cached_npz(path: Path, make: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays from ``path`` if it exists, else from ``make()``, saved to ``path`` for the next process."""
    if path.is_file():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    arrays = make()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so parallel trials never read a half-written file.
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
    except OSError:
        pass  # a read-only data dir only costs regenerating next time
    return arrays


# ---------------------------------------------------------------------------------------------------------------------
# Custom data


def _read_npz(path: Path, missing: str, how: str) -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` at ``path``: ``DatasetError(missing)`` if absent, one naming ``how`` if unreadable."""
    if not path.is_file():
        raise DatasetError(missing)
    try:
        with np.load(path) as f:  # allow_pickle stays False: a data file must not run code
            return {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DatasetError(f"cannot read '{path}' as .npz ({e}); {how}") from e


def _load_npz(path: Path, seed: int) -> _Arrays:
    """``npz:PATH``: arrays ``x``, ``y`` and optionally ``x_test``, ``y_test`` (else 20 % of ``x`` is held out)."""
    arrays = _read_npz(
        path,
        f"npz file '{path}' does not exist; pass npz:PATH to a .npz with arrays x and y",
        "save it with numpy.savez(path, x=..., y=...)",
    )
    expected = {"x", "y"} | ({"x_test", "y_test"} if {"x_test", "y_test"} & set(arrays) else set())
    if not expected <= set(arrays):
        raise DatasetError(
            f"npz file '{path}' needs arrays {', '.join(sorted(expected))} (x_test, y_test optional); "
            f"it has {', '.join(sorted(arrays)) or 'none'}"
        )
    x, y = _samples(arrays["x"], path), _labels(arrays["y"], len(arrays["x"]), path)
    if "x_test" not in arrays:
        return _carve_test(x, y, seed)
    x_test, y_test = _samples(arrays["x_test"], path), _labels(arrays["y_test"], len(arrays["x_test"]), path)
    if x_test.shape[1:] != x.shape[1:]:
        raise DatasetError(f"npz file '{path}': x_test samples {tuple(x_test.shape[1:])} differ from x's")
    return _Arrays(x, y, x_test, y_test)


def _samples(x: np.ndarray, path: Path) -> torch.Tensor:
    """uint8 images (N, H, W), NHWC or NCHW → ``(N, C, H, W)``; float signals (N, L) or (N, C, L) → float32."""
    if x.dtype == np.uint8 and x.ndim in (3, 4):
        t = torch.from_numpy(x)
        if t.ndim == 3:
            return t[:, None].contiguous()
        # NHWC when the last axis looks like channels (<= 4) and the second does not.
        return t.permute(0, 3, 1, 2).contiguous() if t.shape[-1] <= 4 < t.shape[1] else t
    if np.issubdtype(x.dtype, np.floating) and x.ndim in (2, 3):
        t = torch.from_numpy(x).float()
        return t[:, None] if t.ndim == 2 else t
    raise DatasetError(
        f"npz file '{path}': got {x.dtype} array of shape {x.shape}; "
        "use uint8 images (N, H, W[, C]) / (N, C, H, W) or float signals (N, L) / (N, C, L)"
    )


def _labels(y: np.ndarray, n: int, path: Path) -> torch.Tensor:
    """Integer labels ``(n,)``, non-negative."""
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (n,) or (n and y.min() < 0):
        raise DatasetError(f"npz file '{path}': labels must be {n} non-negative integers; got {y.dtype} {y.shape}")
    return torch.from_numpy(y.astype(np.int64))


def _load_folder(path: Path, seed: int) -> _Arrays:
    """``folder:PATH``: ImageFolder layout, optionally split into ``train/`` and ``test/`` (else 20 % held out)."""
    if not path.is_dir():
        raise DatasetError(f"folder '{path}' does not exist; pass folder:PATH with one subfolder of images per class")
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    train_dir = path / "train" if (path / "train").is_dir() else path
    try:
        _, class_to_idx = find_classes(str(train_dir))
        train = make_dataset(str(train_dir), class_to_idx, extensions=IMG_EXTENSIONS)
        test = (
            make_dataset(str(path / "test"), class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=True)
            if train_dir != path and (path / "test").is_dir()
            else []
        )
    except FileNotFoundError as e:
        raise DatasetError(f"folder '{path}': {e}; expected one subfolder of images per class") from e
    x = _read_images([p for p, _ in train + test])
    y = torch.tensor([k for _, k in train + test], dtype=torch.int64)
    if not test:
        return _carve_test(x, y, seed)
    return _Arrays(x[: len(train)], y[: len(train)], x[len(train) :], y[len(train) :])


def _read_images(paths: list[str]) -> torch.Tensor:
    """Images → uint8 ``(N, C, H, W)`` at the first image's size; grey (C=1) only if every image is grey."""
    images = []
    for p in paths:
        with Image.open(p) as im:
            images.append(im.copy())  # copy loads the pixels so the file can close
    mode = "L" if all(im.getbands() == ("L",) for im in images) else "RGB"
    size = images[0].size
    arrays = [np.asarray(im.convert(mode).resize(size, Image.Resampling.BILINEAR)) for im in images]
    x = torch.from_numpy(np.stack(arrays))
    return x[:, None] if mode == "L" else x.permute(0, 3, 1, 2).contiguous()
