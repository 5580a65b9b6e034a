"""TransformMix and its SaliencyMix / Manifold Mixup baselines: identities, shapes, replay, gradients, claim, errors."""

import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autoinv import augment, loop, tracking
from autoinv.config import ConfigError
from autoinv.methods import manifold_mixup, saliencymix
from autoinv.methods import transformmix as tm
from autoinv.methods.mixup import mixup_batch
from autoinv.models import ModelError, PooledNet, create_model
from autoinv.teachers import load_or_train
from tests.test_cli import run_cli


def _batch(b=6, c=3, size=16, classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, c, size, size, generator=g)
    cams = torch.rand(b, size, size, generator=g)
    y = F.one_hot(torch.arange(b) % classes, classes).float()
    return x, cams, y


# --- degenerate settings and invariants ---------------------------------------------------------------------------


def test_identity_transforms_and_lambda_masks_are_exactly_mixup():
    x, _, y = _batch()
    perm = torch.tensor([3, 0, 5, 1, 2, 4])
    lam = 0.3
    idx = torch.stack([torch.arange(6), perm])
    lams = torch.tensor([[lam, 1 - lam]]).expand(6, 2)
    identity = torch.eye(2, 3).expand(6, 2, 2, 3)
    masks = lams[:, :, None, None].expand(6, 2, 16, 16)
    x_mix = tm.mix(tm.gather_partners(x, idx), identity, masks)
    y_mix = tm.mix_labels(tm.gather_partners(y, idx), lams)
    x_ref, y_ref = mixup_batch(x, y, lam, perm)
    assert torch.equal(x_mix, x_ref)
    torch.testing.assert_close(y_mix, y_ref, rtol=0, atol=1e-7)


def test_untrained_mixer_is_mixup():
    # Identity-initialised STN and zero-initialised mask head: a fresh mixer reproduces Mixup for any λ and noise.
    x, cams, y = _batch()
    idx = tm.partner_indices(6, 2, torch.Generator().manual_seed(1))
    lam = tm.sample_lambdas(6, 2, 1.0, np.random.default_rng(1))
    x_mix, y_mix, params = tm.transformmix_batch(tm.Mixer(size=(16, 16)), x, cams, y, idx, lam)
    torch.testing.assert_close(params.theta, torch.eye(2, 3).expand(6, 2, 2, 3))
    expected = lam[:, 0, None, None, None] * x + lam[:, 1, None, None, None] * x[idx[1]]
    torch.testing.assert_close(x_mix, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(y_mix, mix_ref := tm.mix_labels(tm.gather_partners(y, idx), lam))
    assert mix_ref.shape == (6, 5)


def _trained_looking_mixer(k=2, size=(16, 16), seed=0):
    # Random weights everywhere (the real init starts at Mixup), so masks and warps are far from trivial.
    torch.manual_seed(seed)
    mixer = tm.Mixer(k=k, layers=2, channels=8, kernel=3, tau_init=0.7, size=size)
    with torch.no_grad():
        for p in mixer.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return mixer


@pytest.mark.parametrize("k", [2, 3])
def test_masks_and_labels_sum_to_one_for_k_images(k):
    x, cams, y = _batch(b=8)
    idx = tm.partner_indices(8, k, torch.Generator().manual_seed(0))
    lam = tm.sample_lambdas(8, k, 0.5, np.random.default_rng(0))
    x_mix, y_mix, params = tm.transformmix_batch(_trained_looking_mixer(k), x, cams, y, idx, lam)
    assert idx.shape == (k, 8) and torch.equal(idx[0], torch.arange(8))
    assert x_mix.shape == (8, 3, 16, 16) and y_mix.shape == (8, 5)
    assert params.theta.shape == (8, k, 2, 3) and params.masks.shape == (8, k, 16, 16)
    assert (params.masks >= 0).all()
    torch.testing.assert_close(params.masks.sum(1), torch.ones(8, 16, 16))
    torch.testing.assert_close(y_mix.sum(1), torch.ones(8))
    torch.testing.assert_close(lam.sum(1), torch.ones(8))
    assert not torch.allclose(params.masks, lam[:, :, None, None].expand_as(params.masks), atol=1e-3)


def test_mixer_works_at_its_own_resolution_and_keeps_masks_normalised():
    # A mixer trained at 32x32 mixing 20x20 images (transfer): CAMs go to 32x32, masks come back at 20x20.
    mixer = _trained_looking_mixer(size=(32, 32))
    cams = torch.rand(4, 2, 20, 20)
    params = mixer(cams, tm.sample_lambdas(4, 2, 1.0, np.random.default_rng(0)))
    assert params.masks.shape == (4, 2, 20, 20)
    torch.testing.assert_close(params.masks.sum(1), torch.ones(4, 20, 20))


def test_pinned_noise_replays_the_same_mix():
    x, cams, y = _batch()
    mixer = _trained_looking_mixer()
    idx = tm.partner_indices(6, 2, torch.Generator().manual_seed(0))
    lam = tm.sample_lambdas(6, 2, 1.0, np.random.default_rng(0))
    noise = torch.randn(6, 1, tm.core.NOISE_GRID, tm.core.NOISE_GRID)
    first = tm.transformmix_batch(mixer, x, cams, y, idx, lam, noise=noise)[0]
    again = tm.transformmix_batch(mixer, x, cams, y, idx, lam, noise=noise)[0]
    other = tm.transformmix_batch(mixer, x, cams, y, idx, lam, noise=noise + 1)[0]
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_gradients_reach_stn_mask_net_and_tau():
    x, cams, y = _batch()
    mixer = tm.Mixer(size=(16, 16))  # from the real init: zero mask head and identity STN must still learn
    teacher = create_model("small_cnn", 5, (3, 16, 16)).eval()
    idx = tm.partner_indices(6, 2, torch.Generator().manual_seed(0))
    lam = tm.sample_lambdas(6, 2, 1.0, np.random.default_rng(0))
    x_mix, y_mix, _ = tm.transformmix_batch(mixer, x, cams, y, idx, lam)
    loop.soft_cross_entropy(teacher(loop.standardize(x_mix)), y_mix).backward()
    stn_last, mask_last = mixer.stn.head[-1], mixer.masknet.net[-1]
    assert stn_last.weight.grad.abs().sum() > 0 and stn_last.bias.grad.abs().sum() > 0
    assert mask_last.weight.grad.abs().sum() > 0
    # τ only matters once the mask logits are non-zero: one more pass after a step away from the init.
    with torch.no_grad():
        mask_last.weight.add_(0.1 * torch.randn_like(mask_last.weight))
    mixer.zero_grad()
    x_mix, y_mix, _ = tm.transformmix_batch(mixer, x, cams, y, idx, lam)
    loop.soft_cross_entropy(teacher(loop.standardize(x_mix)), y_mix).backward()
    assert mixer.log_tau.grad is not None and mixer.log_tau.grad.abs() > 0
    assert mixer.masknet.net[0].weight.grad.abs().sum() > 0


def test_lower_temperature_sharpens_masks():
    logits = torch.randn(2, 2, 8, 8)
    soft, sharp = tm.mask_softmax(logits, 2.0), tm.mask_softmax(logits, 0.05)
    assert (sharp - 0.5).abs().mean() > (soft - 0.5).abs().mean()
    torch.testing.assert_close(
        tm.mask_softmax(torch.zeros(1, 3, 4, 4), 0.3, torch.tensor([[0.2, 0.3, 0.5]]))[0, :, 0, 0],
        torch.tensor([0.2, 0.3, 0.5]),
    )


def test_dirichlet_lambdas_match_beta_marginal():
    lam = tm.sample_lambdas(20000, 2, 0.5, np.random.default_rng(0))
    assert abs(lam[:, 0].mean().item() - 0.5) < 0.02
    assert abs(lam[:, 0].var().item() - 0.125) < 0.01  # Beta(0.5, 0.5) variance 1/8


# --- saliency: CAMs and the replay path ---------------------------------------------------------------------------


def _pixelwise_teacher(classes=4):
    # 1x1 convolutions only: every feature is a function of one pixel, so its CAMs commute with flips exactly.
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(3, 16, 1), nn.ReLU(), nn.Conv2d(16, 16, 1), nn.ReLU())
    return PooledNet(body, nn.Linear(16, classes)).eval()


def test_cams_are_normalised_and_follow_the_labelled_class():
    teacher = create_model("small_cnn", 4, (3, 16, 16)).eval()
    x = torch.rand(5, 3, 16, 16)
    cams = tm.teacher_cams(teacher, x, torch.tensor([0, 1, 2, 3, 0]))
    assert cams.shape == (5, 16, 16)
    assert cams.amin() >= 0 and cams.amax() <= 1
    torch.testing.assert_close(cams.flatten(1).amax(1), torch.ones(5))
    other = tm.teacher_cams(teacher, x, torch.tensor([1, 1, 2, 3, 0]))
    assert not torch.allclose(cams[0], other[0]) and torch.allclose(cams[1:], other[1:])


def test_cam_of_flipped_image_equals_flipped_cam_through_the_replay_path():
    teacher = _pixelwise_teacher()
    x = (torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 255).round().to(torch.uint8)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    stored = tm.dataset_cams(teacher, x, labels)  # (6, 1, 16, 16) uint8, once per dataset
    flips = {"flip": torch.tensor([True, False, True, True, False, True]), "shift": torch.zeros(6, 2, dtype=torch.long)}
    replayed = augment.flip_crop(stored, flips)[:, 0].float() / 255
    direct = tm.teacher_cams(teacher, loop.prepare(augment.flip_crop(x, flips)), labels)
    torch.testing.assert_close(replayed, direct, rtol=0, atol=1 / 255)
    assert not torch.allclose(replayed[0], stored[0, 0].float() / 255, atol=0.05)  # the flip did move the map


def test_base_augment_moves_images_and_cams_together():
    # Use the image's own first channel as its "CAM": after base_augment they must still coincide pixel for pixel.
    x = (torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    images, cams = tm.base_augment(
        x, x[:, :1], torch.zeros(8, dtype=torch.long), "flip_crop", torch.Generator().manual_seed(3), teacher=None
    )
    assert images.shape == (8, 3, 32, 32) and cams.shape == (8, 32, 32)
    assert torch.equal(images[:, 0], cams)
    assert not torch.equal(images, x.float() / 255)


def test_cam_batches_give_real_images_and_stash_their_cams():
    # batch_fn for the loop: real base-augmented images for the loop, the same flips/crops on the stashed CAMs.
    x = (torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 255).to(torch.uint8)
    data = type("D", (), {"x_train": x, "y_train": torch.arange(8)})()
    batches = tm.CamBatches(data, x[:, :1], "flip_crop", teacher=None)
    idx = torch.tensor([5, 1, 6])
    images, labels = batches(idx, torch.Generator().manual_seed(3))
    assert images.shape == (3, 3, 32, 32) and images.dtype == torch.float32 and torch.equal(labels, idx)
    assert torch.equal(images[:, 0], batches.cams)


# --- baselines -----------------------------------------------------------------------------------------------------


def test_saliencymix_box_sits_on_the_partners_peak_and_labels_follow_its_area():
    x, _, y = _batch(b=4, size=16)
    saliency = torch.zeros(4, 16, 16)
    peaks = torch.tensor([[2, 3], [8, 8], [13, 12], [5, 10]])
    saliency[torch.arange(4), peaks[:, 0], peaks[:, 1]] = 1
    perm = torch.tensor([1, 2, 3, 0])
    x_mix, y_mix, kept = saliencymix.saliencymix_batch(x, y, saliency, torch.tensor(0.75), perm)
    for i in range(4):
        r, c = peaks[perm[i]]
        assert torch.equal(x_mix[i, :, r, c], x[perm[i], :, r, c])  # partner's salient pixel is pasted
    keep = saliencymix.box_masks(16, 16, torch.full((4,), 0.75), peaks[perm])
    torch.testing.assert_close(kept, keep.mean((1, 2, 3)))
    assert (kept < 1).all() and (kept >= 0.75 - 1e-6).all()  # clipped boxes paste less
    torch.testing.assert_close(y_mix.sum(1), torch.ones(4))
    centre = saliencymix.box_masks(16, 16, torch.tensor([0.75]), torch.tensor([[8, 8]]))
    assert centre.mean().item() == pytest.approx(0.75)  # 8x8 box of a 16x16 image


def test_manifold_mixup_mixes_hidden_states_and_input():
    model = create_model("small_cnn", 5, (3, 16, 16)).eval()
    x = torch.randn(4, 3, 16, 16)
    layers = manifold_mixup.mixable_layers(model, x[:2])
    assert layers == [model.body[0], model.body[2], model.body[4]]  # the conv blocks before each downsampling
    perm = torch.tensor([1, 0, 3, 2])
    plain = model(x)
    torch.testing.assert_close(manifold_mixup.manifold_mixup_logits(model, x, layers[0], 1.0, perm), plain)
    torch.testing.assert_close(manifold_mixup.manifold_mixup_logits(model, x, layers[1], 0.0, perm), plain[perm])
    torch.testing.assert_close(manifold_mixup.manifold_mixup_logits(model, x, None, 0.0, perm), plain[perm])
    mixed = manifold_mixup.manifold_mixup_logits(model, x, layers[1], 0.5, perm)
    assert not torch.allclose(mixed, plain) and not torch.allclose(mixed, plain[perm])
    assert not layers[1]._forward_hooks  # the hook is gone after the call


# --- fit: two stages, resume, transfer -----------------------------------------------------------------------------

TINY = {
    "dataset": "digits",
    "model": "small_cnn",
    "train_subset": 128,
    "batch_size": 32,
    "steps_per_epoch": 2,
    "epochs": 1,
    "teacher_epochs": 1,
    "mix_epochs": 1,
    "eval_batch_size": 256,
    "device": "cpu",
}


def test_fit_runs_both_stages_saves_the_mixer_and_resumes_without_searching(cache_dir, tmp_path):
    run = loop.MemoryRun(cache_dir=cache_dir)
    metrics = tm.fit(tm.Config(**TINY), run)
    assert {"val/acc", "train/loss", "mix/tau", "mix/teacher_ce", "mix/teacher_ce_mixup", "mix/recovered"} <= set(
        metrics
    )
    assert {"mix/grid", "mix/search", "augmented_samples"} <= set(run.figures)  # real images since batch_fn
    payload = run.artifacts["mixer"]
    assert payload["k"] == 2 and payload["size"] == [8, 8]
    assert "mixer" in run.states[-1]

    # Resume from the last state with one more epoch: the search stage must not run again (no new search figure).
    resumed = loop.MemoryRun(state=run.states[-1], cache_dir=cache_dir)
    tm.fit(tm.Config(**{**TINY, "epochs": 2}), resumed)
    assert "mix/search" not in resumed.figures and len(resumed.metrics) == 1
    assert resumed.metrics[0]["mix/tau"] == pytest.approx(metrics["mix/tau"])

    # Transfer: the exported file is reused as is (stage 1 skipped), even with another mixer architecture configured.
    path = tmp_path / "mixer.pt"
    torch.save(payload, path)
    transferred = loop.MemoryRun(cache_dir=cache_dir)
    tm.fit(tm.Config(**{**TINY, "mixer_from": str(path), "mix_layers": 4}), transferred)
    assert "mix/search" not in transferred.figures
    loaded = transferred.artifacts["mixer"]
    assert all(torch.equal(loaded["state_dict"][n], t) for n, t in payload["state_dict"].items())


def test_saliencymix_and_manifold_mixup_fit(cache_dir):
    for module, extra in ((saliencymix, {"teacher_epochs": 1, "mix_prob": 1.0}), (manifold_mixup, {})):
        run = loop.MemoryRun(cache_dir=cache_dir)
        settings = {k: v for k, v in TINY.items() if k not in ("teacher_epochs", "mix_epochs")}
        metrics = module.fit(module.Config(**settings, **extra), run)
        assert 0 <= metrics["val/acc"] <= 1 and np.isfinite(metrics["train/loss"])


# --- bad input: one clear line, a ValueError (the CLI's exit status 2) -----------------------------------------------


def test_k_below_two_is_rejected():
    with pytest.raises(ConfigError, match="mix_k"):
        tm.Config(mix_k=1)
    with pytest.raises(tm.MixerError):
        tm.Mixer(k=1)


def test_teacher_without_pooled_linear_head_is_rejected_before_training():
    with pytest.raises(ModelError, match="teacher_arch='mlp'") as error:
        tm.teacher_specs(tm.Config(teacher_arch="mlp"))
    assert "\n" not in str(error.value) and isinstance(error.value, ValueError)
    with pytest.raises(ModelError, match="CAM|class activation"):
        saliencymix.teacher_specs(saliencymix.Config(teacher_arch="vit_small"))


def test_missing_or_incompatible_mixer_is_rejected(tmp_path, cache_dir):
    with pytest.raises(tm.MixerError, match="does not exist"):
        tm.load_mixer(str(tmp_path / "nope.pt"))
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(tm.MixerError, match="not a TransformMix mixer"):
        tm.load_mixer(str(tmp_path / "other.pt"))
    payload = tm.mixer_payload(tm.Mixer(size=(8, 8)))
    torch.save({**payload, "channels": 64}, tmp_path / "bad.pt")  # weights no longer fit the declared width
    with pytest.raises(tm.MixerError, match="incompatible") as error:
        tm.load_mixer(str(tmp_path / "bad.pt"))
    assert "\n" not in str(error.value)
    (tmp_path / "garbage.pt").write_text("not a torch file")
    with pytest.raises(tm.MixerError, match="not a readable"):
        tm.load_mixer(str(tmp_path / "garbage.pt"))
    # fit fails on the file before it trains anything
    with pytest.raises(tm.MixerError):
        tm.fit(tm.Config(**{**TINY, "mixer_from": str(tmp_path / "nope.pt")}), loop.MemoryRun(cache_dir=cache_dir))
    # a folder holding mixer.pt is accepted
    torch.save(payload, tmp_path / "mixer.pt")
    assert tm.load_mixer(str(tmp_path)).k == 2


def test_mixer_from_an_mlflow_run(tmp_path, cache_dir):
    """``mixer_from=runs:/RUN_ID`` is resolved by the search/train layer (one mechanism for every method's
    ``ARTIFACT_FIELDS``) into a local file; the method itself only loads local paths and never talks to MLflow."""
    from autoinv.search import _preflight

    uri = tracking.default_tracking_uri(str(tmp_path))
    client = tracking.client_for(uri)
    experiment = tracking.get_or_create_experiment(client, "tm", str(tmp_path / "artifacts"))
    run_id = client.create_run(experiment).info.run_id
    payload = tm.mixer_payload(tm.Mixer(k=3, channels=8, size=(8, 8)))
    tracking.log_torch(client, run_id, payload, "mixer.pt")
    values = {**TINY, "mixer_from": f"runs:/{run_id}"}
    resolved = tracking.resolve_artifact_fields(tm.ARTIFACT_FIELDS, values, str(tmp_path / "cache"), uri)
    assert values["mixer_from"] == f"runs:/{run_id}", "the caller's values are left alone"
    assert resolved["mixer_from"] == str(tmp_path / "cache" / "artifacts" / run_id / "mixer.pt")
    again = tracking.resolve_artifact_fields(tm.ARTIFACT_FIELDS, values, str(tmp_path / "cache"), "sqlite:///nowhere")
    assert again == resolved, "a file already fetched is reused without asking the server"
    run = loop.MemoryRun(cache_dir=cache_dir)
    tm.fit(tm.Config(**resolved), run)
    assert "mix/search" not in run.figures and run.artifacts["mixer"]["k"] == 3
    assert all(torch.equal(run.artifacts["mixer"]["state_dict"][n], t) for n, t in payload["state_dict"].items())
    _preflight("transformmix", values, uri)  # the driver's check fetches into a folder it removes
    with pytest.raises(tracking.TrackingError, match="mixer_from: cannot fetch 'runs:/0123abcd") as error:
        _preflight("transformmix", {**TINY, "mixer_from": "runs:/0123abcd"}, uri)
    assert "\n" not in str(error.value)
    with pytest.raises(tm.MixerError, match="MLflow reference"):
        tm.preflight(tm.Config(**values))


def test_search_rejects_a_missing_mixer_before_starting(tmp_path):
    done = run_cli("search", "transformmix", "--quick", "--dry-run", "--set", "mixer_from=/no/mixer.pt", cwd=tmp_path)
    assert done.returncode == 2 and "does not exist" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and os.listdir(tmp_path) == []


def test_the_mixer_starts_from_its_seed_alone():
    """The search stage's initial mixer must not depend on what the process drew before (it once did, and a
    claim that passed alone failed after other tests)."""
    cfg = tm.Config(**{**TINY, "mix_epochs": 0})
    data = loop.load_data(cfg, torch.device("cpu"))
    states = []
    for prior in (1, 2):
        torch.manual_seed(prior)
        states.append(tm.search_mixer(cfg, None, data, None)[0].state_dict())
    assert all(torch.equal(a, b) for a, b in zip(states[0].values(), states[1].values()))
    other = tm.search_mixer(tm.Config(**{**TINY, "mix_epochs": 0, "seed": 1}), None, data, None)[0].state_dict()
    assert not all(torch.equal(a, b) for a, b in zip(states[0].values(), other.values()))


# --- the paper's claim at small scale ------------------------------------------------------------------------------


def test_claim_teacher_reads_transformmix_images_better_than_mixup_and_cutmix(cache_dir):
    """After the search stage, the frozen teacher's soft-label CE on TransformMix images is lower than on Mixup and
    CutMix images from the same pairs and λ, and its top-2 recovers both labels more often."""
    cfg = tm.Config(**CLAIM)
    data = loop.load_data(cfg, torch.device("cpu"))
    teacher = load_or_train(tm.teacher_specs(cfg)[0], cache_dir, "cpu", progress=False)
    assert loop.evaluate(teacher, data.x_val, data.y_val)["acc"] > 0.8
    cams = tm.dataset_cams(teacher, data.x_train, data.y_train)
    val_cams = tm.dataset_cams(teacher, data.x_val, data.y_val)[:, 0].float() / 255

    def compare(mixer):  # four draws of pairs, λ and boxes over the 500 validation images: one moves the gap ±0.05
        draws = [
            tm.compare_mixes(teacher, mixer, data.x_val, val_cams, data.y_val, data.num_classes, cfg.mix_alpha, seed)
            for seed in range(1, 5)
        ]
        return {name: sum(draw[name] for draw in draws) / len(draws) for name in draws[0]}

    untrained, _ = tm.search_mixer(tm.Config(**{**CLAIM, "mix_epochs": 0}), teacher, data, cams)
    before = compare(untrained)  # the mixer starts as exactly Mixup: any gap below is the search stage's work
    assert before["mix/teacher_ce"] == pytest.approx(before["mix/teacher_ce_mixup"], abs=1e-4)
    result = compare(tm.search_mixer(cfg, teacher, data, cams)[0])
    assert result["mix/teacher_ce"] < result["mix/teacher_ce_mixup"] - CLAIM_MARGIN
    assert result["mix/teacher_ce"] < result["mix/teacher_ce_cutmix"] - CLAIM_MARGIN
    assert result["mix/recovered"] > max(result["mix/recovered_mixup"], result["mix/recovered_cutmix"])


CLAIM = {
    "dataset": "shapes",
    "batch_size": 64,
    "augment": "flip_crop",
    "teacher_epochs": 12,
    "mix_epochs": 6,
    "steps_per_epoch": 50,
    "mix_optimizer": "adam",
    "mix_lr": 1e-3,
    "device": "cpu",
}
"""A confident teacher (all 4,500 training images, 12 epochs: ~87% validation accuracy) and 300 mixer steps.

The teacher matters: one trained on 2,000 images to ~76% blurs every mix alike (measured: TransformMix 1.69 vs
Mixup 1.74), while this one separates them. Over five teachers (different initial weights) the gap to Mixup was
0.089-0.144 with 300 mixer steps (TransformMix 1.72-1.75, Mixup 1.82-1.88, CutMix 3.08-3.13), 0.073-0.155 with 150.
The seeded teacher here: TransformMix 1.728, Mixup 1.817, CutMix 3.128."""
CLAIM_MARGIN = 0.05
"""Nats of teacher CE that TransformMix must beat Mixup and CutMix by: about half the smallest gap measured."""


def test_search_stage_takes_its_own_steps_per_epoch(monkeypatch):
    """``mix_steps_per_epoch`` sizes the search stage alone (the quick search halves it); 0 follows the task's."""
    asked = []
    batches = loop.batch_indices

    def counting(n, batch_size, generator, device, steps=0):
        asked.append(steps)
        return batches(n, batch_size, generator, device, steps)

    monkeypatch.setattr(loop, "batch_indices", counting)
    cfg = tm.Config(**{**TINY, "mix_epochs": 1, "mix_steps_per_epoch": 2, "steps_per_epoch": 5})
    data = loop.load_data(cfg, torch.device("cpu"))
    teacher = create_model(cfg.teacher_arch, data.num_classes, data.shape).eval().requires_grad_(False)
    cams = torch.zeros(len(data.x_train), 1, *data.shape[1:], dtype=torch.uint8)
    tm.search_mixer(cfg, teacher, data, cams)
    tm.search_mixer(tm.Config(**{**TINY, "mix_epochs": 1, "steps_per_epoch": 5}), teacher, data, cams)
    assert asked == [2, 5]
    with pytest.raises(ConfigError, match="mix_steps_per_epoch"):
        tm.Config(mix_steps_per_epoch=-1)
