"""Our batched corruptions against the `imagecorruptions` package (the benchmark's per-image numpy code).

`imagecorruptions` uses the ImageNet-C constants and `autoinv.corruptions` the CIFAR-10-C ones, so each check picks
a strength both lists hold (e.g. contrast 0.4 is our severity 3 and its severity 1) and compares images one by
one. Two shims keep the unmaintained package importable: it imports `pkg_resources` (gone from setuptools >= 81;
used only for its frost pictures) and calls `skimage.filters.gaussian(..., multichannel=True)` (renamed
`channel_axis` in scikit-image 0.19).
"""

import sys
import types
import warnings

import numpy as np
import pytest
import torch

from autoinv import corruptions
from autoinv.data import load_dataset, to_float

sys.modules.setdefault("pkg_resources", types.SimpleNamespace(resource_filename=lambda *parts: "/".join(parts)))
with warnings.catch_warnings():  # it imports from scipy.ndimage's deprecated namespaces
    warnings.simplefilter("ignore", DeprecationWarning)
    import imagecorruptions.corruptions as reference  # noqa: E402  (a dev dependency; after the shim above)


def _gaussian(image, sigma, multichannel=False):
    from skimage.filters import gaussian

    return gaussian(image, sigma=sigma, channel_axis=-1 if multichannel else None)


reference.gaussian = _gaussian


@pytest.fixture(scope="module")
def images():
    """Six 32x32 RGB images: four procedural shapes, a smooth gradient and uniform noise, as uint8 (N, H, W, C)."""
    shapes = load_dataset("shapes").x_train[:4].permute(0, 2, 3, 1)
    ramp = torch.linspace(0, 255, 32).round().to(torch.uint8)
    gradient = torch.stack(
        [ramp[None, :].expand(32, 32), ramp[:, None].expand(32, 32), ramp.flip(0)[None, :].expand(32, 32)], -1
    )
    noise = torch.randint(0, 256, (32, 32, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return torch.cat([shapes, gradient[None], noise[None]]).numpy()


def _ours(images, name, severity):
    x = to_float(torch.from_numpy(images).permute(0, 3, 1, 2))
    return corruptions.corrupt(x, name, severity, torch.Generator().manual_seed(0)).permute(0, 2, 3, 1).numpy()


def _theirs(images, function, severity):
    return np.stack([function(image, severity) / 255.0 for image in images]).astype(np.float32)


@pytest.mark.parametrize(("ours", "theirs"), [(3, 1), (4, 2)])  # factor 0.4, 0.3: the constants both lists hold
def test_contrast_matches_the_reference_per_channel_mean(images, ours, theirs):
    np.testing.assert_allclose(_ours(images, "contrast", ours), _theirs(images, reference.contrast, theirs), atol=1e-5)


@pytest.mark.parametrize(("ours", "theirs"), [(2, 1), (4, 2), (5, 3)])  # value + 0.1, 0.2, 0.3 in HSV
def test_brightness_matches_the_reference_in_hsv(images, ours, theirs):
    np.testing.assert_allclose(
        _ours(images, "brightness", ours), _theirs(images, reference.brightness, theirs), atol=1e-4
    )


def test_gaussian_blur_matches_the_reference_away_from_the_border(images):
    # sigma 1 is our severity 5 and its severity 1. The borders differ by design (we reflect, it repeats the edge
    # pixel) and so does the truncation (3 sigma vs 4 sigma: 0.3 % of the kernel's mass), hence the interior and 3e-3.
    ours = _ours(images, "gaussian_blur", 5)[:, 4:-4, 4:-4]
    theirs = _theirs(images, reference.gaussian_blur, 1)[:, 4:-4, 4:-4]
    np.testing.assert_allclose(ours, theirs, atol=3e-3)


def test_gaussian_noise_has_the_reference_strength():
    # Noise std 0.08 is our severity 3 and its severity 1. Mid-grey images keep both away from the clip, so the
    # residuals are the noise itself: same mean (0), same std, independent per pixel and channel.
    grey = np.full((8, 32, 32, 3), 128, dtype=np.uint8)
    np.random.seed(0)
    ours = _ours(grey, "gaussian_noise", 3) - 128 / 255
    theirs = _theirs(grey, reference.gaussian_noise, 1) - 128 / 255
    for residual in (ours, theirs):
        assert abs(residual.mean()) < 0.003
        assert residual.std() == pytest.approx(0.08, rel=0.03)
        assert abs(np.corrcoef(residual[..., 0].ravel(), residual[..., 1].ravel())[0, 1]) < 0.05
    assert ours.std() == pytest.approx(theirs.std(), rel=0.04)
