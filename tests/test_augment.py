import math
import time

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2 as TV
import torchvision.transforms.v2.functional as TF

from autoinv import augment as A

SIZES = [(8, 8), (32, 32)]
CHANNELS = [1, 3]
POLICIES = {
    "randaugment": A.randaugment,
    "trivialaugment": A.trivialaugment,
    "autoaugment": A.autoaugment,
    "augmix": A.augmix,
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These are tiny tensors: intra-op threads only add spin-up, which dominates on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(batch: int, channels: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (batch, channels, height, width), dtype=torch.uint8, generator=_gen(seed))


# --- geometry ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(8, 8), (28, 28), (32, 32), (7, 13)])
@pytest.mark.parametrize("padding_mode", ["zeros", "reflection"])
def test_warp_identity_is_exact(size, padding_mode):
    x = torch.rand(3, 2, *size, generator=_gen())
    theta = torch.eye(2, 3).expand(3, 2, 3)
    assert torch.equal(A.warp(x, theta, padding_mode), x)


def test_warp_gradients_flow_at_identity():
    x = torch.rand(2, 3, 28, 28, generator=_gen(), requires_grad=True)
    theta = torch.eye(2, 3).repeat(2, 1, 1).requires_grad_()
    A.warp(x, theta).square().sum().backward()
    assert theta.grad.abs().sum() > 0 and x.grad.abs().sum() > 0


def test_warp_gradients_flow_through_lie_params():
    x = torch.rand(2, 3, 16, 16, generator=_gen())
    params = (0.1 * torch.randn(2, 6, generator=_gen())).requires_grad_()
    A.warp(x, A.affine_from_lie(params)).square().sum().backward()
    assert (params.grad.abs() > 0).all()


def test_affine_from_lie_zero_is_identity():
    theta = A.affine_from_lie(torch.zeros(4, 6))
    assert theta.shape == (4, 2, 3)
    assert torch.equal(theta, torch.eye(2, 3).expand(4, 2, 3))


def test_lie_generators_order_and_units():
    assert A.LIE_GENERATORS.shape == (6, 3, 3)
    t, r, s = 0.3, 0.4, 0.2
    theta = A.affine_from_lie(
        torch.tensor([[t, 0, 0, 0, 0, 0], [0, t, 0, 0, 0, 0], [0, 0, r, 0, 0, 0], [0, 0, 0, s, 0, 0]])
    )
    torch.testing.assert_close(theta[0], torch.tensor([[1.0, 0, t], [0, 1, 0]]))
    torch.testing.assert_close(theta[1], torch.tensor([[1.0, 0, 0], [0, 1, t]]))
    cos, sin = math.cos(r), math.sin(r)
    torch.testing.assert_close(theta[2], torch.tensor([[cos, -sin, 0], [sin, cos, 0]]))
    torch.testing.assert_close(theta[3], torch.tensor([[math.exp(s), 0, 0], [0, math.exp(s), 0]]))


@pytest.mark.parametrize("size", [28, 32])
def test_lie_rotation_by_quarter_turn_matches_rot90(size):
    x = torch.rand(2, 3, size, size, generator=_gen())
    params = torch.zeros(2, 6)
    params[:, 2] = math.pi / 2
    out = A.warp(x, A.affine_from_lie(params))
    expected = torch.rot90(x, 1, dims=(-2, -1))
    torch.testing.assert_close(out[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], atol=1e-4, rtol=0)


def test_flip_crop_params_shapes_and_ranges():
    params = A.flip_crop_params(500, (32, 32), padding=4, generator=_gen())
    assert params["flip"].shape == (500,) and params["flip"].dtype == torch.bool
    assert params["shift"].shape == (500, 2) and params["shift"].dtype == torch.int64
    assert params["shift"].min() == -4 and params["shift"].max() == 4
    assert 0 < params["flip"].float().mean() < 1
    with pytest.raises(ValueError, match="padding"):
        A.flip_crop_params(2, (4, 4), padding=4)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_flip_crop_identity_params(padding_mode):
    x = _images(4, 3, 8, 8)
    params = {"flip": torch.zeros(4, dtype=torch.bool), "shift": torch.zeros(4, 2, dtype=torch.int64)}
    assert torch.equal(A.flip_crop(x, params, padding_mode), x)


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect"])
def test_flip_crop_matches_pad_crop_flip_reference(padding_mode):
    x = _images(16, 3, 8, 10)
    padding = 3
    params = A.flip_crop_params(16, (8, 10), padding, generator=_gen(1))
    out = A.flip_crop(x, params, padding_mode)
    mode = "constant" if padding_mode == "zeros" else "reflect"
    for b in range(16):
        flipped = x[b].flip(-1) if params["flip"][b] else x[b]
        padded = F.pad(flipped.float()[None], [padding] * 4, mode=mode)[0]
        dy, dx = params["shift"][b].tolist()
        expected = padded[:, padding + dy : padding + dy + 8, padding + dx : padding + dx + 10]
        assert torch.equal(out[b], expected.to(torch.uint8))


def test_flip_crop_moves_a_saliency_map_with_its_image():
    """A CAM-like map transformed with the image's params equals the same geometric op (a warp) applied to it."""
    x = torch.rand(8, 3, 12, 12, generator=_gen())
    cam = x.mean(dim=1, keepdim=True).square()  # any per-pixel function of the image
    params = A.flip_crop_params(8, (12, 12), padding=3, generator=_gen(2))
    moved_x, moved_cam = A.flip_crop(x, params), A.flip_crop(cam, params)
    torch.testing.assert_close(moved_cam, moved_x.mean(dim=1, keepdim=True).square(), atol=0, rtol=0)

    sign = 1 - 2 * params["flip"].float()
    dy, dx = params["shift"].float().unbind(1)
    zero = torch.zeros(8)
    theta = torch.stack([sign, zero, 2 * sign * dx / 12, zero, zero + 1, 2 * dy / 12], 1).view(8, 2, 3)
    torch.testing.assert_close(moved_cam, A.warp(cam, theta), atol=1e-5, rtol=0)


def test_flip_crop_is_differentiable_for_float():
    x = torch.rand(2, 1, 6, 6, requires_grad=True)
    A.flip_crop(x, A.flip_crop_params(2, (6, 6), 2, generator=_gen())).sum().backward()
    assert x.grad is not None


# --- auto-augment ops -------------------------------------------------------------------------------------------------


def _torchvision_op(name: str, x: torch.Tensor, m: float) -> torch.Tensor:
    """The reference: torchvision's v2 AutoAugment op for one magnitude (as its _apply_image_or_video_transform)."""
    affine = {"angle": 0.0, "translate": [0, 0], "scale": 1.0, "shear": [0.0, 0.0]}
    if name == "shear_x":
        return TF.affine(x, **{**affine, "shear": [math.degrees(math.atan(m)), 0.0]}, center=[0, 0])
    if name == "shear_y":
        return TF.affine(x, **{**affine, "shear": [0.0, math.degrees(math.atan(m))]}, center=[0, 0])
    if name == "translate_x":
        return TF.affine(x, **{**affine, "translate": [int(m), 0]})
    if name == "translate_y":
        return TF.affine(x, **{**affine, "translate": [0, int(m)]})
    enhance = {
        "brightness": TF.adjust_brightness,
        "color": TF.adjust_saturation,
        "contrast": TF.adjust_contrast,
        "sharpness": TF.adjust_sharpness,
    }
    if name in enhance:
        return enhance[name](x, 1 + m)
    other = {
        "identity": lambda: x,
        "rotate": lambda: TF.rotate(x, m),
        "posterize": lambda: TF.posterize(x, int(m)),
        "solarize": lambda: TF.solarize(x, m),
        "autocontrast": lambda: TF.autocontrast(x),
        "equalize": lambda: TF.equalize(x),
        "invert": lambda: TF.invert(x),
    }
    return other[name]()


_MAGNITUDES = {
    "shear_x": [0.27, -0.17],  # away from values whose sampling points fall on nearest-neighbour ties
    "shear_y": [0.27, -0.17],
    "translate_x": [5.7, -3.2],
    "translate_y": [5.7, -3.2],
    "rotate": [30.0, -17.0],
    "brightness": [0.5, -0.5],
    "color": [0.5, -0.9],
    "contrast": [0.5, -0.9],
    "sharpness": [0.9, -0.9],
    "posterize": [4, 0],
    "solarize": [128.0, 0.0],
}


@pytest.mark.parametrize("name", A.AUTO_OPS)
@pytest.mark.parametrize("channels", CHANNELS)
def test_auto_ops_match_torchvision(name, channels):
    x = _images(4, channels, 12, 12)
    x[1] = x[1] // 4 + 60  # a low-contrast image, so autocontrast / equalize have work to do
    for m in _MAGNITUDES.get(name, [0.0]):
        # each sample gets its own magnitude in one call; torchvision is called once per magnitude
        magnitudes = torch.tensor([m, 0.0, m, m]) if name not in ("posterize", "solarize") else torch.full((4,), m)
        ours = A.apply_ops(x, {"ops": torch.full((4, 1), A.AUTO_OPS.index(name)), "magnitudes": magnitudes[:, None]})
        for b in range(4):
            expected = _torchvision_op(name, x[b : b + 1], magnitudes[b].item())
            diff = (ours[b : b + 1].int() - expected.int()).abs()
            # geometric ops: nearest-neighbour ties may round the other way; colour ops: rounding vs truncation
            assert (diff > 2).float().mean() < 0.05, (name, m, b)


_TORCHVISION_NAMES = {
    "Identity": "identity",
    "ShearX": "shear_x",
    "ShearY": "shear_y",
    "TranslateX": "translate_x",
    "TranslateY": "translate_y",
    "Rotate": "rotate",
    "Brightness": "brightness",
    "Color": "color",
    "Contrast": "contrast",
    "Sharpness": "sharpness",
    "Posterize": "posterize",
    "Solarize": "solarize",
    "AutoContrast": "autocontrast",
    "Equalize": "equalize",
    "Invert": "invert",
}


@pytest.mark.parametrize(
    ("family", "ops", "reference", "num_bins"),
    [
        ("randaugment", A._RAND_OPS, TV.RandAugment, 31),
        ("trivialaugment", A._RAND_OPS, TV.TrivialAugmentWide, 31),
        ("randaugment", A._RAND_OPS[1:] + ("invert",), TV.AutoAugment, 10),
        ("augmix", A._AUGMIX_OPS, TV.AugMix, 10),
    ],
)
def test_magnitude_spaces_match_torchvision(family, ops, reference, num_bins):
    """The magnitude tables equal torchvision's augmentation spaces (a private attribute, read only here)."""
    height, width = 24, 40
    ids, table, signed = A._magnitude_table(family, ops, num_bins, (height, width))
    space = {_TORCHVISION_NAMES[k]: v for k, v in reference._AUGMENTATION_SPACE.items()}
    assert set(ops) == set(space)
    for op, row, is_signed in zip(ops, table, signed):
        magnitudes_fn, expected_signed = space[op]
        expected = magnitudes_fn(num_bins, height, width)
        expected = torch.zeros(num_bins) if expected is None else expected.float()
        expected = 255 * expected if op == "solarize" else expected  # torchvision scales by the dtype's bound
        torch.testing.assert_close(row, expected, msg=op)
        assert bool(is_signed) == expected_signed, op
    assert [A.AUTO_OPS[i] for i in ids] == list(ops)


def test_apply_ops_identity_ops_return_input():
    x = _images(5, 3, 8, 8)
    params = {"ops": torch.zeros(5, 3, dtype=torch.int64), "magnitudes": torch.randn(5, 3)}
    assert torch.equal(A.apply_ops(x, params), x)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("size", SIZES)
def test_policies_shapes_and_dtypes(policy, channels, size):
    x = _images(6, channels, *size)
    out = POLICIES[policy](x, generator=_gen())
    assert out.shape == x.shape and out.dtype == torch.uint8


@pytest.mark.parametrize("policy", POLICIES)
def test_policies_replay_with_the_same_seed(policy):
    x = _images(16, 3, 16, 16)
    assert torch.equal(POLICIES[policy](x, generator=_gen(3)), POLICIES[policy](x, generator=_gen(3)))


@pytest.mark.parametrize("policy", POLICIES)
def test_policies_randomise_per_sample(policy):
    x = _images(1, 3, 16, 16).expand(32, 3, 16, 16).contiguous()
    out = POLICIES[policy](x, generator=_gen(4))
    distinct = torch.unique(out.flatten(1), dim=0)
    assert len(distinct) > 4


def test_params_replay_through_apply():
    x = _images(16, 3, 16, 16)
    params = A.randaugment_params(16, (16, 16), generator=_gen(5))
    assert torch.equal(A.apply_ops(x, params), A.apply_ops(x, params))
    assert torch.equal(A.apply_ops(x, params), A.randaugment(x, generator=_gen(5)))
    mix = A.augmix_params(16, (16, 16), generator=_gen(6))
    assert torch.equal(A.apply_augmix(x, mix), A.augmix(x, generator=_gen(6)))


def test_randaugment_params_use_the_fixed_magnitude():
    params = A.randaugment_params(400, (32, 32), num_ops=2, magnitude=9, generator=_gen())
    ops, magnitudes = params["ops"], params["magnitudes"]
    assert ops.shape == magnitudes.shape == (400, 2)
    assert set(ops.unique().tolist()) == {A.AUTO_OPS.index(op) for op in A._RAND_OPS}
    rotate = ops == A.AUTO_OPS.index("rotate")
    torch.testing.assert_close(magnitudes[rotate].abs(), torch.full_like(magnitudes[rotate], 9.0))  # 30 * 9 / 30
    assert (magnitudes[rotate] < 0).any() and (magnitudes[rotate] > 0).any()
    with pytest.raises(ValueError, match="magnitude"):
        A.randaugment_params(2, (32, 32), magnitude=31)


def test_autoaugment_uses_the_cifar10_policy():
    assert len(A._AUTOAUGMENT_POLICIES["cifar10"]) == 25
    params = A.autoaugment_params(2000, (32, 32), generator=_gen())
    used = {A.AUTO_OPS[i] for i in params["ops"].unique().tolist()}
    assert used == {op for sub in A._AUTOAUGMENT_POLICIES["cifar10"] for op, p, _ in sub if p > 0} | {"identity"}
    with pytest.raises(ValueError, match="policy"):
        A.autoaugment(_images(1, 3, 8, 8), policy="imagenet-typo")


def test_augmix_params_and_degenerate_weights():
    params = A.augmix_params(64, (16, 16), width=3, depth=-1, generator=_gen())
    assert params["ops"].shape == params["magnitudes"].shape == (64, 3, 3)
    weights = params["weights"]
    assert weights.shape == (64, 4) and (weights >= 0).all()
    torch.testing.assert_close(weights.sum(1), torch.ones(64))
    depth = (params["ops"] != 0).sum(-1)
    assert depth.min() >= 1 and depth.max() <= 3 and len(depth.unique()) == 3
    x = _images(64, 3, 16, 16)
    original_only = {**params, "weights": torch.tensor([1.0, 0, 0, 0]).expand(64, 4)}
    assert torch.equal(A.apply_augmix(x, original_only), x)


# --- augment_batch ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", A.BASE_AUGMENTS)
@pytest.mark.parametrize("channels", CHANNELS)
@pytest.mark.parametrize("size", SIZES)
def test_augment_batch_shapes(name, channels, size):
    x = _images(4, channels, *size)
    out = A.augment_batch(x, name, generator=_gen())
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert torch.equal(A.augment_batch(x, name, generator=_gen(7)), A.augment_batch(x, name, generator=_gen(7)))


def test_augment_batch_none_and_signals():
    signals = torch.randn(4, 1, 40)
    assert A.augment_batch(signals, "none") is signals
    with pytest.raises(ValueError, match="signals"):
        A.augment_batch(signals, "flip_crop")
    with pytest.raises(ValueError, match="unknown augmentation"):
        A.augment_batch(_images(1, 3, 8, 8), "cutout")


# --- differentiable photometric ops -----------------------------------------------------------------------------------


@pytest.mark.parametrize("channels", CHANNELS)
def test_adjust_color_neutral_is_identity(channels):
    x = torch.rand(4, channels, 8, 8, generator=_gen())
    one, zero = torch.ones(4), torch.zeros(4)
    torch.testing.assert_close(A.adjust_color(x, one, one, one, zero), x, atol=1e-5, rtol=0)


def test_adjust_color_effects_and_gradients():
    x = torch.rand(4, 3, 8, 8, generator=_gen())
    factors = [torch.full((4,), v, requires_grad=True) for v in (0.9, 1.1, 0.8, 0.2)]
    out = A.adjust_color(x, *factors)
    assert out.shape == x.shape and 0 <= out.min() and out.max() <= 1
    out.square().sum().backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in factors)
    grey = A.adjust_color(x, saturation=torch.zeros(4))
    torch.testing.assert_close(grey[:, 0], grey[:, 1])
    flat = A.adjust_color(x, contrast=torch.zeros(4))
    assert flat.flatten(1).std(1).max() < 1e-6


def test_gaussian_blur_small_sigma_is_identity_and_differentiable():
    x = torch.rand(3, 3, 16, 16, generator=_gen())
    assert torch.equal(A.gaussian_blur(x, torch.zeros(3)), x)
    torch.testing.assert_close(A.gaussian_blur(x, torch.full((3,), 0.05)), x, atol=1e-6, rtol=0)
    sigma = torch.tensor([0.5, 1.0, 2.0], requires_grad=True)
    out = A.gaussian_blur(x, sigma)
    assert out.shape == x.shape
    spread = out.flatten(1).std(1)
    assert spread[0] > spread[1] > spread[2]  # more blur, less contrast between pixels
    out.square().sum().backward()
    assert (sigma.grad.abs() > 0).all()


def test_add_noise_zero_std_replay_and_signals():
    x = torch.rand(4, 3, 8, 8, generator=_gen())
    assert torch.equal(A.add_noise(x, torch.zeros(4), generator=_gen()), x)
    std = torch.tensor([0.0, 0.1, 0.2, 0.3])
    assert torch.equal(A.add_noise(x, std, generator=_gen(8)), A.add_noise(x, std, generator=_gen(8)))
    noise = torch.randn(4, 3, 8, 8)
    torch.testing.assert_close(A.add_noise(x, std, noise) - x, std.view(4, 1, 1, 1) * noise)
    signals = torch.randn(4, 1, 40)
    assert A.add_noise(signals, 0.1, generator=_gen()).shape == signals.shape


# --- devices and timing -----------------------------------------------------------------------------------------------


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", A.BASE_AUGMENTS)
def test_augment_batch_on_cuda_replays_cpu_generator(name):
    x = _images(32, 3, 32, 32).cuda()
    out = A.augment_batch(x, name, generator=_gen(9))
    assert out.device == x.device and out.dtype == torch.uint8
    assert torch.equal(out, A.augment_batch(x, name, generator=_gen(9)))
    on_device = A.augment_batch(x, name, generator=torch.Generator("cuda").manual_seed(9))
    assert on_device.device == x.device and on_device.shape == x.shape


def test_timing_sanity():
    """Prints per-batch times under ``pytest -s``; asserts nothing about speed (shared CPUs are noisy)."""
    x = _images(128, 3, 32, 32)
    for name in A.BASE_AUGMENTS:
        start = time.perf_counter()
        A.augment_batch(x, name, generator=_gen())
        print(f"augment_batch({name!r}) on 128 x 3 x 32 x 32 uint8: {1000 * (time.perf_counter() - start):.1f} ms")
