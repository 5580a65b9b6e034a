"""FlowInv, Augerino and InstaAug: the flow's math, the PID, TTA, alignment, errors, the paper's claim."""

import copy
import math

import numpy as np
import pytest
import torch

from autoinv import augment, loop
from autoinv.config import ConfigError, build_config
from autoinv.methods import flowinv as fi
from autoinv.methods.flowinv import augerino, instaaug


def _images(b=4, c=3, size=16, seed=0):
    return torch.rand(b, c, size, size, generator=torch.Generator().manual_seed(seed))


def _flow(aug_type="rotate_translate", base="uniform", **kw):
    with loop.seeded(0):
        return fi.FlowAugmenter(aug_type=aug_type, in_channels=3, base=base, pose_width=4, **kw)


def _randomise(module, scale=0.3, seed=1):
    """Move every parameter away from its near-identity init so the math is tested off the easy point."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)
    return module


# --- the flow's density ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("aug_type", ["rotate", "translate", "rotate_translate"])
def test_log_det_matches_numerical_change_of_variables(aug_type):
    flow = _randomise(_flow(aug_type, layers=3, tanh_width=1.5), scale=0.05).double()
    e = torch.randn(5, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    z = torch.randn(5, flow.dim, dtype=torch.float64, generator=torch.Generator().manual_seed(3)) * 0.5
    _, log_det = flow.transform(z, e)
    for i in range(len(z)):
        context = e[i : i + 1]
        jac = torch.autograd.functional.jacobian(lambda v, c=context: flow.transform(v[None], c)[0][0], z[i])
        assert torch.allclose(log_det[i], torch.linalg.slogdet(jac.reshape(flow.dim, flow.dim))[1], atol=1e-8)
    assert log_det.std() > 0.01  # the map is not a mere rescaling


def test_sampled_log_q_is_base_density_minus_log_det_and_integrates_to_one():
    # 1-D, uniform base: a histogram of samples must match exp(log q) at the samples.
    flow = _randomise(_flow("rotate", layers=2, base_scale=1.0), scale=0.05).eval()
    x = _images(1)
    with torch.no_grad():
        w, log_q = flow.sample(x, 20000, torch.Generator().manual_seed(0))
    hist = torch.histc(w[:, 0], bins=40, min=w.min().item(), max=w.max().item())
    edges = torch.linspace(w.min().item(), w.max().item(), 41)
    centres, width = (edges[1:] + edges[:-1]) / 2, edges[1] - edges[0]
    density = hist / (len(w) * width)
    order = torch.argsort(w[:, 0])
    q_at = torch.from_numpy(np.interp(centres.numpy(), w[order, 0].numpy(), log_q[order].exp().numpy()))
    inner = slice(3, -3)  # the box's edges blur in a histogram
    assert torch.allclose(density[inner], q_at[inner].float(), rtol=0.15, atol=0.05)


def test_coupling_starts_near_identity():
    coupling = fi.ConditionalAffineCoupling(3, 32, 32)
    z, e = torch.randn(64, 3), torch.randn(64, 32)
    out, log_det = coupling(z, context=e)
    assert (out - z).abs().max() < 0.05
    assert log_det.abs().max() < 0.05
    back, inv_log_det = coupling.inverse(out, context=e)
    assert torch.allclose(back, z, atol=1e-5) and torch.allclose(inv_log_det, -log_det)


@pytest.mark.parametrize("width", [0.5, 1.0, 2.0])
def test_tanh_bounds_hold_and_log_det_is_exact(width):
    z = torch.linspace(-40, 40, 101)[:, None].repeat(1, 2)
    y, log_det = fi.tanh_bound(z, width)
    assert (y.abs() <= width).all() and torch.isfinite(log_det).all()
    flow = _randomise(_flow("rotate_translate", tanh_width=width), scale=2.0)
    w, _ = flow.sample(_images(), 50)
    assert (w.abs() <= width).all()
    small = torch.tensor([[0.3, -0.7]])
    expected = torch.log(1 - torch.tanh(small / width) ** 2).sum(1)
    assert torch.allclose(fi.tanh_bound(small, width)[1], expected, atol=1e-6)


def test_gumbel_mode_weights_sum_to_one_soft_and_hard():
    logits = torch.randn(100, 7)
    for hard in (False, True):
        m = fi.gumbel_softmax(logits, 0.1, hard, torch.Generator().manual_seed(0))
        assert torch.allclose(m.sum(1), torch.ones(100)) and (m >= 0).all()
    hard = fi.gumbel_softmax(logits, 0.1, True, torch.Generator().manual_seed(0))
    assert torch.allclose(hard, hard.round(), atol=1e-6)  # one-hot values, soft gradients
    # Mode frequencies follow the softmax of the logits.
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]])).expand(20000, 3)
    freq = fi.gumbel_softmax(logits, 1.0, True, torch.Generator().manual_seed(1)).mean(0)
    assert torch.allclose(freq, torch.tensor([0.6, 0.3, 0.1]), atol=0.02)


def test_mixture_base_log_density_is_the_mixture():
    base = fi.MixtureBase(2, modes=3, scale=0.3, loc_std=0.8)
    params = torch.zeros(4, base.param_len())
    z, log_p, _ = base(params, torch.Generator().manual_seed(0), tau=0.1)
    scale = base.log_scale.exp()
    comps = torch.distributions.Independent(torch.distributions.Normal(base.loc.clamp(-1, 1), scale), 1)
    mix = torch.distributions.MixtureSameFamily(torch.distributions.Categorical(logits=base.logits), comps)
    assert torch.allclose(log_p, mix.log_prob(z), atol=1e-5)


def test_score_mode_draws_give_the_exact_gradient_of_the_expected_cost_in_expectation():
    # E_k[c_k] over k ~ softmax(logits) has gradient p ⊙ (c − p·c) in the logits; the score-function surrogate with
    # the batch-mean baseline must match it on average, and straight-through hard draws put no mode log-prob in.
    base = fi.MixtureBase(1, modes=3, scale=0.1, loc_std=0.8)
    with torch.no_grad():
        base.logits.copy_(torch.tensor([0.5, 0.0, -0.5]))
    cost_of_mode = torch.tensor([1.0, 3.0, 0.0])
    params = torch.zeros(40000, base.param_len())
    _, _, log_mode = base(params, torch.Generator().manual_seed(0), tau=0.5, hard=True, score=True)
    drawn = log_mode.detach().exp()
    p = torch.softmax(base.logits.detach(), 0)
    assert torch.allclose(drawn.unique().sort().values, p.sort().values, atol=1e-5)  # log P of the mode drawn
    mode = (drawn[:, None] - p).abs().argmin(1)
    cost = cost_of_mode[mode]
    ((cost - cost.mean()) * log_mode).mean().backward()
    exact = p * (cost_of_mode - (p * cost_of_mode).sum())
    assert torch.allclose(base.logits.grad, exact, atol=0.03), (base.logits.grad, exact)
    _, _, none = base(params[:10], torch.Generator().manual_seed(0), tau=0.5, hard=True, score=False)
    assert (none == 0).all()


def test_score_mode_gradient_reaches_the_mode_logits_only_through_the_score_term():
    flow = _flow("rotate", base="gmm", modes=3, layers=1, gumbel_hard=True, mode_gradient="score")
    x = _images()
    w, log_q, log_mode = flow.sample_with_mode(x, 2, torch.Generator().manual_seed(0))
    w.sum().backward()  # no straight-through: the sample's position passes nothing to the mode logits
    assert flow.base.logits.grad is None or flow.base.logits.grad.abs().sum() == 0
    flow.zero_grad()
    w, log_q, log_mode = flow.sample_with_mode(x, 2, torch.Generator().manual_seed(0))
    log_mode.sum().backward()
    assert flow.base.logits.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="flow_mode_gradient"):
        fi.Config(flow_mode_gradient="reinforce")


# --- gradients, replay, parameterisation ----------------------------------------------------------------------------


@pytest.mark.parametrize("base", ["uniform", "gmm"])
def test_gradients_reach_every_part(base):
    flow = _flow("rotate_translate", base=base, modes=3, layers=2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
    x = _images()
    w, log_q = flow.sample(x, 2, torch.Generator().manual_seed(0))
    views = fi.apply_params(x.repeat(2, 1, 1, 1), w, "rotate_translate")
    loss = torch.nn.functional.cross_entropy(model(views), torch.arange(4).repeat(2)) + 0.1 * log_q.mean()
    loss.backward()
    for name, p in flow.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_same_generator_replays_the_same_samples():
    flow, x = _flow(), _images()
    a = flow.sample(x, 3, torch.Generator().manual_seed(5))
    b = flow.sample(x, 3, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_lie_params_clamp_and_scale():
    w = torch.tensor([[2.0, -0.5, 0.5]])
    p = fi.lie_params(w, "rotate_translate", trans_scale=0.1)
    assert torch.allclose(p, torch.tensor([[0.1, -0.05, math.pi / 2, 0, 0, 0]]))
    assert torch.allclose(fi.lie_params(torch.tensor([[0.25]]), "rotate")[0, 2], torch.tensor(math.pi / 4))
    assert fi.lie_params(torch.zeros(2, 4), "crop").abs().sum() == 0
    x = _images(2)
    assert torch.equal(fi.apply_params(x, torch.zeros(2, 6), "full"), x)  # zero coefficients: exactly the input


# --- entropy control ------------------------------------------------------------------------------------------------


def test_decoupled_rotation_samples_warp_as_rotations_and_have_zero_rotation_error():
    r = 0.4  # radians; decoupled entries carry no π (as the reference's ROTGEN)
    w = torch.tensor([[0.0, -r, 0.0, r, 0.0, 0.0], [0.2, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.3, 0.0, 0.3, 0.0, 0.0]])
    x = _images(3)
    rotated = augment.warp(x[:1], augment.affine_from_lie(torch.tensor([[0.0, 0.0, r, 0.0, 0.0, 0.0]])))
    assert torch.allclose(fi.apply_params(x[:1], w[:1], "decoupled"), rotated, atol=1e-6)
    error = fi.rotation_error(w)
    assert error[0] < 1e-6 and error[1] > 0.1 and error[2] > 0.1  # a rotation; x scaled by e^0.2; a symmetric shear
    assert torch.allclose(fi.rotation_degrees(w, "decoupled"), torch.tensor([math.degrees(r), 0.0, 0.0]))
    assert torch.equal(fi.apply_params(x, torch.zeros(3, 6), "decoupled"), x)


def test_rotation_discovery_tells_a_joint_constraint_from_its_mean_field_shuffle():
    class Diagonal(torch.nn.Module):  # samples exact rotations b = −d of random size: a joint, not mean-field, law
        aug_type, trans_scale = "decoupled", 0.1

        def sample(self, x, n=1, generator=None):
            r = torch.rand(n * len(x), generator=generator) * 1.6 - 0.8
            w = torch.zeros(n * len(x), 6)
            w[:, 1], w[:, 3] = -r, r
            return w, torch.zeros(len(w))

    found = fi.rotation_discovery(Diagonal(), _images(4), samples=64)
    assert found["error"] < 1e-5 < 0.1 < found["error_mean_field"]
    assert 30.0 < found["half_range_deg"] < 46.0  # uniform r in ±0.8 rad: its 1st–99th percentile half-span ≈ 45°


def test_flow_discovers_the_rotation_constraint_a_mean_field_range_cannot_represent():
    """Rotation discovery (paper Fig. 7) on a known loss landscape: an OOD cost that grows with the distance to the
    nearest rotation (and outside the parameter box), against λ·log q. The flow follows the b = −d diagonal; InstaAug's
    mean-field box cannot, so at the same λ it stays a small square. Measured (600 Adam steps, λ = 0.01): FlowInv
    error 0.12 (its own samples shuffled mean-field: 0.26), rotation half-range 43°; InstaAug error 0.13 (0.13),
    11.5°."""
    x = _images(16)

    def fit(augmenter):
        optimizer = torch.optim.Adam(augmenter.parameters(), lr=1e-2)
        generator = torch.Generator().manual_seed(1)
        for _ in range(600):
            w, log_q = augmenter.sample(x, 16, generator)
            cost = fi.rotation_error(w).pow(2) + (w.abs() - 1).relu().pow(2).sum(1)
            loss = cost.mean() + 0.01 * log_q.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return fi.rotation_discovery(augmenter, x, samples=64)

    with loop.seeded(0):
        flow = fit(fi.FlowAugmenter(aug_type="decoupled", in_channels=3, pose_width=4, base_scale=0.1))
        insta = fit(fi.InstaAugmenter("decoupled", 3, pose_width=4, init_width=0.1))
    assert flow["error"] <= 0.6 * flow["error_mean_field"], flow  # the joint constraint is learned
    assert insta["error"] >= 0.95 * insta["error_mean_field"], insta  # a box is mean-field by construction
    assert flow["half_range_deg"] >= 2.5 * insta["half_range_deg"], (flow, insta)  # a far larger range of rotations
    assert flow["error"] <= insta["error"] + 0.02, (flow, insta)  # ... no further from rotations


def test_mode_mass_counts_where_samples_land_relative_to_the_inputs_mode():
    class Fixed(torch.nn.Module):  # rotates every input by one fixed angle
        trans_scale = 0.1

        def __init__(self, degrees):
            super().__init__()
            self.aug_type, self.degrees = "rotate", degrees

        def sample(self, x, n=1, generator=None):
            return torch.full((n * len(x), 1), self.degrees / 180.0), torch.zeros(n * len(x))

    assert torch.allclose(fi.mode_mass(Fixed(0.0), samples=4)["mass"], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(fi.mode_mass(Fixed(120.0), samples=4)["mass"], torch.tensor([0.0, 1.0, 0.0]))
    # 60° lands every input in the upside-down class's orientations, but for the two (of 7) at a window's edge
    assert fi.mode_mass(Fixed(60.0), samples=4)["mass_label"] == pytest.approx(2 / 7)


def test_pid_sign_entropy_below_target_raises_lambda():
    gains, bounds = (0.1, 0.01, 0.0), (0.0, 10.0)
    low = fi.pid_step(fi.PIDState(lam=0.5), entropy=-2.0, target=1.0, gains=gains, bounds=bounds, ema=0.0)
    high = fi.pid_step(fi.PIDState(lam=0.5), entropy=3.0, target=1.0, gains=gains, bounds=bounds, ema=0.0)
    assert low.lam > 0 and high.lam == 0.0
    state = fi.PIDState(lam=0.0)
    for _ in range(5):
        state = fi.pid_step(state, -2.0, 1.0, gains, bounds, ema=0.0)
    assert state.lam > low.lam  # the integral keeps raising λ while entropy stays low


def test_pid_settles_the_entropy_of_a_synthetic_problem_at_its_target():
    # A Gaussian N(0, σ²) whose loss a·E[z²] pulls σ in, against −λ·H; the PID must find the λ that holds H = target.
    log_sigma = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([log_sigma], lr=0.05)
    g, target = torch.Generator().manual_seed(0), 0.5
    state = fi.PIDState(lam=0.0)
    entropies = []
    for _ in range(3000):
        z = torch.randn(256, generator=g) * log_sigma.exp()
        log_q = -0.5 * (z / log_sigma.exp()) ** 2 - log_sigma - 0.5 * math.log(2 * math.pi)
        loss = 2.0 * z.pow(2).mean() + state.lam * log_q.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        state = fi.pid_step(state, -log_q.mean().item(), target, (0.5, 0.01, 0.0), (0.0, 20.0), ema=0.9)
        entropies.append(state.entropy)
    settled = torch.tensor(entropies[-500:])
    assert (settled - target).abs().max() < 0.1, settled.mean()


def test_window_scheduler_moves_lambda_the_right_way():
    s = fi.WindowScheduler(lam=1.0, low=0.0, high=1.0)
    for _ in range(2):
        s.step(-1.0)
        s.end_epoch()
    assert s.lam == pytest.approx(1.2)
    for _ in range(2):
        s.step(2.0)
        s.end_epoch()
    assert s.lam == pytest.approx(1.0)


# --- test-time averaging and alignment ------------------------------------------------------------------------------


def test_rejection_sampling_always_returns_exactly_n_accepted_first():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 40, 3, generator=g) * 2
    w[0] = 5.0  # nothing accepted: filled with rejected
    for n in (1, 7, 40):
        kept = fi.select_plausible(w, n)
        assert kept.shape == (5, n, 3)
    kept = fi.select_plausible(w, 7)
    accepted = (w.abs() <= 1).all(2)
    for i in range(1, 5):
        k = min(7, int(accepted[i].sum()))
        assert (kept[i, :k].abs() <= 1).all()
    with pytest.raises(ValueError):
        fi.select_plausible(w, 41)


def test_tta_averages_original_and_n_views():
    flow, x = _flow(), _images(3)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 4))
    logits = fi.tta_logits(model, flow, x, n=5, pool=30, generator=torch.Generator().manual_seed(0))
    assert logits.shape == (3, 4)
    frozen = fi.AugerinoAugmenter("rotate", init_width=1e-6)
    plain = model((x - 0.5) / 0.25)
    assert torch.allclose(fi.tta_logits(model, frozen, x, n=5, pool=30), plain, atol=1e-4)


class _ConstantMean(torch.nn.Module):
    """A stand-in augmenter whose conditional distribution is a point mass at ``w`` for every image."""

    aug_type, trans_scale = "rotate", 0.1

    def __init__(self, w: float):
        super().__init__()
        self.w = w

    def sample(self, images, n, generator=None):
        return torch.full((n * len(images), 1), self.w), torch.zeros(n * len(images))


def test_mean_shift_is_a_fixed_point_where_the_conditional_mean_is_zero():
    x = _images(2)
    aligned, total = fi.mean_shift_align(_ConstantMean(0.0), x, steps=5)
    assert torch.equal(aligned, x) and torch.equal(total, torch.zeros(2, 6))  # exactly unchanged
    symmetric = fi.AugerinoAugmenter("rotate", init_width=0.5)  # zero mean for every image, up to sampling
    aligned, total = fi.mean_shift_align(symmetric, x, steps=5, samples=4000, generator=torch.Generator())
    assert total.abs().max() < 0.05
    # Steps accumulate α·mean and always re-warp the original image by the running total.
    aligned, total = fi.mean_shift_align(_ConstantMean(0.1), x, steps=4, step_size=0.5)
    assert torch.allclose(total[:, 2], torch.full((2,), 4 * 0.5 * 0.1 * math.pi))
    assert torch.allclose(aligned, augment.warp(x, augment.affine_from_lie(total)))


# --- configs, saving, errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, field",
    [
        ({"aug_type": "spin"}, "aug_type"),
        ({"aug_copies": 0}, "aug_copies"),
        ({"aug_type": "rotate", "entropy_target": 1.0}, "entropy_target"),
        ({"flow_base": "flat"}, "flow_base"),
    ],
)
def test_bad_values_are_one_line_errors(values, field):
    with pytest.raises(ConfigError, match=field) as error:
        build_config(fi.Config, values, "flowinv")
    assert "\n" not in str(error.value)


def test_augmenter_round_trips_and_a_mismatched_file_is_one_clear_line(tmp_path):
    flow = _randomise(_flow())
    path = tmp_path / "augmenter.pt"
    torch.save(fi.augmenter_payload(flow), path)
    loaded = fi.load_augmenter(str(tmp_path))
    x, g = _images(), torch.Generator().manual_seed(0)
    assert torch.equal(loaded.sample(x, 2, g)[0], flow.sample(x, 2, torch.Generator().manual_seed(0))[0])
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    for bad in (tmp_path / "other.pt", tmp_path / "missing.pt"):
        with pytest.raises(fi.AugmenterError, match="augmenter_from") as error:
            fi.load_augmenter(str(bad))
        assert "\n" not in str(error.value)
    cfg = fi.Config(dataset="digits", augmenter_from=str(path), aug_type="rotate")
    with pytest.raises(fi.AugmenterError, match="aug_type"):
        fi.preflight(cfg)


def test_reused_augmenter_trains_only_the_classifier(tmp_path, cache_dir):
    tiny = {"dataset": "digits", "epochs": 1, "steps_per_epoch": 2, "batch_size": 16, "train_subset": 64}
    tiny.update(tta_samples=2, tta_pool=8, aug_warmup_epochs=0)
    first = loop.MemoryRun(cache_dir=cache_dir)
    fi.fit(fi.Config(**tiny), first)
    torch.save(first.artifacts["augmenter"], tmp_path / "augmenter.pt")
    second = loop.MemoryRun(cache_dir=cache_dir)
    out = fi.fit(fi.Config(**tiny, augmenter_from=str(tmp_path)), second)
    assert "val/acc_tta" in out
    for key, value in first.artifacts["augmenter"]["state"].items():
        assert torch.equal(second.artifacts["augmenter"]["state"][key], value), key


def test_frozen_classifier_keeps_the_warm_up_classifier_while_the_augmenter_trains(cache_dir):
    tiny = {"dataset": "digits", "epochs": 2, "steps_per_epoch": 2, "batch_size": 16, "train_subset": 64}
    tiny.update(tta_samples=0, aug_warmup_epochs=1, aug_freeze_classifier=True)

    class CopyingRun(loop.MemoryRun):  # a state holds the live tensors; keep each epoch's as it was
        def report(self, epoch, metrics, state=None):
            super().report(epoch, metrics, copy.deepcopy(state))

    run = CopyingRun(cache_dir=cache_dir)
    fi.fit(fi.Config(**tiny), run)
    first, second = run.states
    for key, value in first["model"].items():
        assert torch.equal(second["model"][key], value), key
    assert any(not torch.equal(second["augmenter"][k], v) for k, v in first["augmenter"].items())


def test_a_decoupled_run_reports_its_distance_to_rotations_and_draws_the_scatter(cache_dir):
    tiny = {"dataset": "marioiggy:n_train=64", "epochs": 1, "steps_per_epoch": 2, "batch_size": 16}
    run = loop.MemoryRun(cache_dir=cache_dir)
    out = fi.fit(fi.Config(**tiny, aug_type="decoupled", tta_samples=2, tta_pool=8, aug_warmup_epochs=0), run)
    assert 0.0 < out["aug/rotation_error"] and 0.0 < out["aug/rotation_error_mean_field"]
    assert {"aug/rotation_discovery", "aug/rotation_band", "aug/samples"} <= set(run.figures)


@pytest.mark.parametrize("method", [augerino, instaaug])
def test_baselines_report_their_ranges(method, cache_dir):
    tiny = {"dataset": "digits", "epochs": 1, "steps_per_epoch": 2, "batch_size": 16, "train_subset": 64}
    run = loop.MemoryRun(cache_dir=cache_dir)
    out = method.fit(method.Config(**tiny, tta_samples=2, tta_pool=8, aug_warmup_epochs=0), run)
    assert {"aug/half_range_deg", "aug/lambda", "val/acc_tta"} <= set(out)
    assert fi.augmenter_from_payload(run.artifacts["augmenter"]) is not None


# ---------------------------------------------------------------------------------------------------------------------
# The paper's Mario-Iggy ±90° claim (Fig. 4 top), at small scale: slow, run with -m slow (~20 min on 2 cores).
# Margins from measurement, in the method card.

CLAIM_90 = {"dataset": "marioiggy:n_train=3000", "aug_type": "rotate", "batch_size": 64}  # as bench_flowinv --range


@pytest.mark.slow
def test_flowinv_learns_the_90_degree_range_shifted_by_the_input_and_augerino_a_narrower_shared_one(cache_dir):
    run = loop.MemoryRun(cache_dir=cache_dir)
    fi.fit(fi.Config(**CLAIM_90, epochs=30), run)
    band = fi.sprite_band_summary(fi.augmenter_from_payload(run.artifacts["augmenter"]))
    half, corr = band["half"], band["corr"]
    assert half >= 70.0, f"FlowInv's learned half-range {half:.1f}° (ideal 90°)"
    # Over the inner angles −80…80° (at ±90° the two classes' images coincide; see sprite_band_summary) we measured
    # corr −0.99 or lower per sprite (method card); the issue asks −0.8.
    assert corr <= -0.8, f"the sampled mean angle does not track minus the input angle: corr {corr:.2f}"
    shared = loop.MemoryRun(cache_dir=cache_dir)
    augerino.fit(augerino.Config(**CLAIM_90, epochs=30), shared)
    shared_half = fi.sprite_band_summary(fi.augmenter_from_payload(shared.artifacts["augmenter"]))["half"]
    assert half - shared_half >= 30.0, f"FlowInv {half:.1f}° vs Augerino's shared {shared_half:.1f}°"


# as bench_flowinv --modes: the classifier trains 5 epochs on the plain images, then only the augmenter trains
CLAIM_MODES = {"dataset": "marioiggy:rot=30,modes=3,n_train=3000", "aug_type": "rotate", "batch_size": 64}
CLAIM_MODES.update(aug_warmup_epochs=5, aug_freeze_classifier=True, epochs=30)
FLOW_MODES = {"flow_base": "gmm", "flow_modes": 30, "flow_loc_std": 1.0, "flow_gumbel_hard": True, "pose_width": 16}
FLOW_MODES.update(flow_mode_gradient="score")


@pytest.mark.slow
def test_flowinv_is_multi_modal_on_three_modes_and_instaaug_holds_one(cache_dir):
    # Measured (method card): FlowInv with score-function mode weights 0.28 / 0.27 / 0.26 at seed 0 (0.35 / 0.28 /
    # 0.27 and 0.37 / 0.31 / 0.27 at seeds 1, 2); InstaAug 0.85 / 0 / 0. The bar: ≥ 15 % in each mode.
    run = loop.MemoryRun(cache_dir=cache_dir)
    fi.fit(fi.Config(**CLAIM_MODES, **FLOW_MODES), run)
    flow = fi.mode_mass(fi.augmenter_from_payload(run.artifacts["augmenter"]))["mass"]
    assert (flow >= 0.15).all(), f"FlowInv's mass per mode {flow.tolist()}"
    ranges = loop.MemoryRun(cache_dir=cache_dir)
    instaaug.fit(instaaug.Config(**CLAIM_MODES), ranges)
    insta = fi.mode_mass(fi.augmenter_from_payload(ranges.artifacts["augmenter"]))["mass"]
    assert (insta < 0.15).sum() >= 2, f"InstaAug's mass per mode {insta.tolist()}"
