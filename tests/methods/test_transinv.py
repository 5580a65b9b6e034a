"""TransInv and its fine-tuning baselines: primitives, selections, gradients, signs, alternation, export, claims."""

import dataclasses
import hashlib
import json

import pytest
import torch

from autoinv import corruptions, loop
from autoinv.config import ConfigError, build_config
from autoinv.data import load_dataset
from autoinv.methods import transinv
from autoinv.methods.transinv import augmenter as aug
from autoinv.methods.transinv import ft
from autoinv.methods.transinv.primitives import PRIMITIVES, get_primitive, scaled_ranges
from autoinv.models import create_model
from autoinv.teachers import TeacherSpec, load_or_train, teacher_key
from tests.test_cli import run_cli


def _images(b=4, c=3, size=16, seed=0):
    return torch.rand(b, c, size, size, generator=torch.Generator().manual_seed(seed))


# --- primitives ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_primitive_is_the_identity_at_its_neutral_strength(name, channels):
    prim = get_primitive(name)
    x = _images(c=channels)
    s = torch.tensor(prim.neutral).expand(len(x), -1)
    out = prim.apply(x, s, torch.Generator().manual_seed(1))
    assert out.shape == x.shape
    torch.testing.assert_close(out, x, rtol=0, atol=2e-6)


@pytest.mark.parametrize("name", sorted(PRIMITIVES))
def test_every_primitive_changes_the_image_away_from_neutral(name):
    prim = get_primitive(name)
    x = _images()
    far = torch.tensor([lo + 0.9 * (hi - lo) for lo, hi in prim.ranges]).expand(len(x), -1)
    assert (prim.apply(x, far, torch.Generator().manual_seed(1)) - x).abs().mean() > 1e-3


@pytest.mark.parametrize("scale", [0.5, 1.0])
@pytest.mark.parametrize("init_strength", [0.0, 0.6])
def test_strengths_stay_strictly_inside_their_intervals(scale, init_strength):
    torch.manual_seed(0)
    for name in PRIMITIVES:
        mlp = aug.StrengthMLP(name, z_dim=8, width=16, range_scale=scale, init_strength=init_strength)
        with torch.no_grad():
            for p in mlp.parameters():
                p.add_(5 * torch.randn_like(p))  # far from init: saturating outputs
        s = mlp(50 * torch.randn(256, 8))
        for j, (lo, hi) in enumerate(scaled_ranges(name, scale)):
            assert (s[:, j] >= lo).all() and (s[:, j] <= hi).all(), name
        assert torch.isfinite(get_primitive(name).apply(_images(b=256, size=8), s, None)).all()


def test_fresh_augmenter_is_the_identity_and_outputs_stay_in_the_unit_range():
    x = _images()
    interior = ("contrast_brightness", "affine", "saturation", "sharpness")  # neutral strengths inside the ranges
    out, info = aug.Augmenter(interior, z_dim=8, width=16)(x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, x, rtol=0, atol=2e-6)
    assert info["g"].shape == (4, 4) and info["b"].shape == (4,)
    spread = aug.Augmenter(tuple(PRIMITIVES), z_dim=8, width=16, init_strength=0.9)
    out, _ = spread(x, generator=torch.Generator().manual_seed(0))
    assert out.min() >= 0 and out.max() <= 1 and (out - x).abs().mean() > 1e-3


def test_hard_path_without_gradients_matches_the_full_composition():
    # Without gradients each sample runs only its selected primitive; the values must equal the full mix's.
    x = _images(b=8)
    a = aug.Augmenter(("contrast_brightness", "affine", "saturation"), z_dim=8, width=16, init_strength=0.5)
    with torch.no_grad():
        fast, info_fast = a(x, generator=torch.Generator().manual_seed(3))
    with torch.enable_grad():
        full, info_full = a(x, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(info_fast["g"], info_full["g"].detach())
    torch.testing.assert_close(fast, full.detach(), rtol=0, atol=1e-5)


# --- selections -----------------------------------------------------------------------------------------------------


def test_p_sums_to_one_and_hard_gumbel_is_one_hot_with_straight_through_gradients():
    a = aug.Augmenter(tuple(PRIMITIVES), z_dim=8, width=16)
    with torch.no_grad():
        a.p_logits.copy_(torch.randn(len(PRIMITIVES)))
    torch.testing.assert_close(a.p.sum(), torch.tensor(1.0))
    logits = torch.randn(5, requires_grad=True)
    weights = torch.randn(5)
    hard = aug.gumbel_softmax(logits, 0.5, hard=True, generator=torch.Generator().manual_seed(0), rows=64)
    assert set(hard.detach().unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(hard.detach().sum(1), torch.ones(64))
    (hard * weights).sum().backward()
    grad_hard = logits.grad.clone()
    logits.grad = None
    soft = aug.gumbel_softmax(logits, 0.5, hard=False, generator=torch.Generator().manual_seed(0), rows=64)
    torch.testing.assert_close(soft.detach().sum(1), torch.ones(64))
    (soft * weights).sum().backward()
    assert grad_hard.abs().sum() > 0
    torch.testing.assert_close(grad_hard, logits.grad)  # straight-through: the soft sample's gradient


def test_relaxed_bernoulli_is_in_the_unit_interval_and_tracks_q():
    logit = torch.tensor(1.0, requires_grad=True)
    b = aug.relaxed_bernoulli(logit, 0.05, 4000, generator=torch.Generator().manual_seed(0))
    assert (b >= 0).all() and (b <= 1).all()
    assert abs(b.mean().item() - torch.sigmoid(logit).item()) < 0.03
    b.sum().backward()
    assert logit.grad > 0


def test_gradients_reach_phi_p_logits_q_and_r():
    # Soft selections, so every primitive's φ is in the output (with hard ones only the selected primitives' are).
    x = _images(b=16)
    augs = [aug.Augmenter(tuple(PRIMITIVES), z_dim=8, width=16, init_strength=0.3) for _ in range(2)]
    model = aug.AugmenterSet(augs)
    out, outs, h = model(x, 1.0, 0.5, 1.0, hard=False, generator=torch.Generator().manual_seed(1))
    assert len(outs) == 2 and h.shape == (16, 2) and 0 < h.detach()[:, 0].sum() < 16
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    assert model.r_logits.grad.abs().sum() > 0
    for a in augs:
        assert a.p_logits.grad.abs().sum() > 0 and a.q_logit.grad.abs() > 0
        for head in a.heads:
            assert head.head.weight.grad.abs().sum() > 0 and head.net[0].weight.grad.abs().sum() > 0


# --- the min-max ----------------------------------------------------------------------------------------------------

TINY = {
    "dataset": "digits",
    "teacher_epochs": 1,
    "teacher_train_subset": 64,
    "aug_z_dim": 8,
    "aug_width": 16,
    "batch_size": 16,
    "train_subset": 64,
    "init": "scratch",
    "augment": "none",
}


def _minmax(cache_dir, **values):
    cfg = transinv.Config(**{**TINY, **values})
    device, data = loop.start(cfg)
    teachers = [load_or_train(spec, cache_dir, device, progress=False) for spec in transinv.teacher_specs(cfg)]
    target = create_model(cfg.model, data.num_classes, data.shape)
    return transinv.MinMax(cfg, data, target, teachers), data


def test_augmenter_step_ascends_its_objective_and_target_step_descends_cross_entropy(cache_dir):
    mm, data = _minmax(cache_dir, aug_lr=1e-3, aug_init_strength=0.5)
    x, y = data.x_train[:16].float() / 255, data.y_train[:16]
    state = mm.generator.get_state()
    before, _ = mm.objective(x, y)
    mm.generator.set_state(state)
    mm.augmenter_step(x, y)
    mm.generator.set_state(state)
    after, _ = mm.objective(x, y)
    assert after.item() > before.item()
    # The target's step, with its own optimiser, lowers CE on the same augmented batch.
    opt = torch.optim.SGD(mm.target.parameters(), lr=0.05)
    mm.learn = False
    xb = data.x_train[:16]
    state = mm.generator.get_state()
    loss0, _ = mm.loss_fn(mm.target, xb, y, mm.generator)
    opt.zero_grad()
    loss0.backward()
    opt.step()
    mm.generator.set_state(state)
    loss1, _ = mm.loss_fn(mm.target, xb, y, mm.generator)
    assert loss1.item() < loss0.item()
    assert all(p.grad is None for p in mm.teachers[0].parameters())


@pytest.mark.parametrize("n_inner", [1, 3])
def test_n_inner_target_steps_per_augmenter_step(cache_dir, n_inner):
    mm, data = _minmax(cache_dir, n_inner=n_inner)
    for _ in range(7):
        mm.loss_fn(mm.target, data.x_train[:16], data.y_train[:16], mm.generator)
    assert (mm.target_steps, mm.aug_steps) == (7, -(-7 // n_inner))


def test_several_teachers_with_ema_learn_r_and_export_reuses_the_augmenter_frozen(cache_dir, tmp_path):
    values = {**TINY, "teachers": ("gaussian_blur", "ema"), "epochs": 1, "steps_per_epoch": 4, "n_inner": 2}
    run = loop.MemoryRun(cache_dir=cache_dir)
    metrics = transinv.fit(transinv.Config(**values), run)
    r = [metrics["aug/r_0_gaussian_blur"], metrics["aug/r_1_ema"]]
    assert abs(sum(r) - 1) < 1e-5 and metrics["aug/steps"] == 2
    assert {"aug/primitives_0_gaussian_blur", "aug/p_1_ema", "aug/history"} <= set(run.figures)
    path = tmp_path / "augmenter.pt"
    torch.save(run.artifacts["augmenter"], path)
    reused = loop.MemoryRun(cache_dir=cache_dir)
    again = transinv.fit(transinv.Config(**{**values, "augmenter_from": str(tmp_path)}), reused)
    assert again["aug/steps"] == 0
    assert again["aug/0_gaussian_blur/q"] == pytest.approx(metrics["aug/0_gaussian_blur/q"])
    torch.save({"settings": {"z_dim": 3}}, path)
    with pytest.raises(aug.AugmenterError, match="does not fit"):
        transinv.preflight(transinv.Config(**{**values, "augmenter_from": str(path)}))


# --- robust teachers, corruptions, data -----------------------------------------------------------------------------


def test_the_corruption_field_keeps_old_teacher_cache_keys():
    spec = TeacherSpec()
    # the key of a spec whose later fields (corruption, then the Orbit recipe's) are at their defaults is the hash of
    # the fields that existed before them
    later = ("corruption", "steps_per_epoch", "optimizer", "weight_decay", "schedule")
    old = {k: v for k, v in dataclasses.asdict(spec).items() if k not in later}
    expected = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    assert teacher_key(spec) == expected
    assert teacher_key(dataclasses.replace(spec, corruption="contrast")) != expected


@pytest.mark.parametrize("name", corruptions.CORRUPTIONS)
def test_corruptions_grow_with_severity_and_stay_in_range(name):
    x = _images(b=16, size=32)
    distance = []
    for level in range(1, 6):
        out = corruptions.corrupt(x, name, level, torch.Generator().manual_seed(0))
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
        distance.append((out - x).abs().mean().item())
    assert distance == sorted(distance) and distance[0] > 0


def test_shapes_halves_are_disjoint_five_class_tasks():
    a, b = load_dataset("shapes:half=1"), load_dataset("shapes:half=2")
    assert a.num_classes == b.num_classes == 5 and a.shape == b.shape == (3, 32, 32)
    assert not torch.equal(a.x_train[:10], b.x_train[:10])


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        ("aug_primitives=nosuch", "unknown primitive 'nosuch'"),
        ("teachers=fog", "unknown teacher 'fog'"),
        ("n_inner=0", "n_inner=0 must be >= 1"),
        ("teachers=", "must name at least one teacher"),
        ("teacher_dataset=digits", "the teachers must read the target's images"),
        ("augmenter_from=/no/augmenter.pt", "no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(tmp_path, setting, needle):
    done = run_cli("search", "transinv", "--quick", "--dry-run", "--set", setting, cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and needle in lines[0], done.stderr[-2000:]


def test_ft_rejects_an_ema_start_and_unknown_fixedaug():
    with pytest.raises(ConfigError, match="teacher"):
        build_config(ft.Config, {"teacher": "ema"}, "ft")
    with pytest.raises(ConfigError, match="ft_fixedaug"):
        build_config(ft.Config, {"ft_fixedaug": "fog"}, "ft")


# --- the paper's claims at small scale (digits, small CNNs, fixed seeds) --------------------------------------------

CLAIM = {
    "dataset": "digits",
    "teacher_augment": "none",
    "teacher_epochs": 10,
    "epochs": 6,
    "batch_size": 64,
    "augment": "none",
    "lr": 0.05,
    "aug_z_dim": 16,
    "aug_width": 32,
    "n_inner": 2,
    "aug_lr": 0.05,
    "aug_init_strength": 0.5,
    "aug_learn_strengths": False,
}
MATCHING = {"gaussian_noise": "gaussian_noise", "gaussian_blur": "gaussian_blur", "affine": "affine"}


@pytest.fixture(scope="module")
def claim_table(cache_dir):
    """Teacher × primitive table of learned p (the paper's Fig. 3 setting: strengths fixed, p and q learned)."""
    table = {}
    for teacher in MATCHING:
        cfg = transinv.Config(**CLAIM, init="scratch", teachers=(teacher,))
        metrics = transinv.fit(cfg, loop.MemoryRun(cache_dir=cache_dir))
        table[teacher] = {name: metrics[f"aug/p_{name}"] for name in cfg.aug_primitives}
    return table


def test_learned_p_puts_most_mass_on_the_primitive_matching_the_teacher(claim_table):
    # Measured (seed 0): noise 0.70 (next 0.19), blur 0.80 (next 0.09), affine 0.78 (next 0.09).
    for teacher, p in claim_table.items():
        best = max(p, key=p.get)
        assert best == MATCHING[teacher], (teacher, p)
        assert p[best] - sorted(p.values())[-2] > 0.25, (teacher, p)


def test_transinv_target_is_more_robust_than_fine_tuning(cache_dir):
    # Measured (seeds 0, 1): corrupted-test accuracy FT 0.788 / 0.786, TransInv 0.875 / 0.836 (affine teacher).
    values = {**CLAIM, "init": "teacher", "eval_test": True}
    tuned = ft.fit(
        ft.Config(**{k: v for k, v in values.items() if not k.startswith(("aug_", "n_inner"))}, teacher="affine"),
        loop.MemoryRun(cache_dir=cache_dir),
    )
    ours = transinv.fit(transinv.Config(**values, teachers=("affine",)), loop.MemoryRun(cache_dir=cache_dir))
    assert ours["test/acc_affine"] > tuned["test/acc_affine"] + 0.03
    assert ours["test/acc"] > tuned["test/acc"] - 0.02  # clean accuracy kept
