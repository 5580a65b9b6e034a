"""FlowInv benchmark: one training step with a learned augmenter against an ERM step of the same classifier.

Each row times one optimiser step (forward, backward, Adam update over the classifier and the augmenter) on the
same classifier and batch, random weights (timing does not depend on training), and divides by ERM's step
(the classifier alone on the plain batch). ``one copy`` is FlowInv with ``aug_copies`` = 1 and no CE on the original,
so the classifier sees as many images as ERM's; ``+ original`` is the default loss, which also takes the CE on the
original image (twice the classifier's work). Augerino and InstaAug are timed the same way::

    python benchmarks/bench_flowinv.py                                  # CPU, small_cnn, batch 64 of Mario-Iggy 32x32
    python benchmarks/bench_flowinv.py --model wrn_40_2 --batch 128 --device cuda

The learned-range table (``--range``): each named method trained on Mario-Iggy ±90° (3 000 images, rotations only,
the settings of the slow claim test), then each sprite rotated to −90…90° and its sampled rotations summarised
(``sprite_band_summary``: half-range, ideal 90°; corr of the mean sample with the input angle, ideal −1)::

    python benchmarks/bench_flowinv.py --range flowinv augerino instaaug --seeds 0 1 --epochs 30

The multi-modal table (``--modes``, paper Fig. 4 bottom: where the samples land, ``mode_mass``) and the
rotation-discovery table (``--discovery``, paper Fig. 7: median error to the nearest rotation, ``rotation_discovery``)::

    python benchmarks/bench_flowinv.py --modes flowinv instaaug --seeds 0 1 --epochs 30
    python benchmarks/bench_flowinv.py --discovery flowinv instaaug --seeds 0 1 --epochs 20

and with ``--link`` what following b = −d could save the discovery setting's frozen classifier (``link_cost``)::

    python benchmarks/bench_flowinv.py --link --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from timing import median_seconds

from autoinv import loop
from autoinv.data import load_dataset, marioiggy_sprites
from autoinv.methods import flowinv
from autoinv.methods.flowinv import augerino, instaaug, mode_mass, rotation_discovery, sprite_band_summary
from autoinv.methods.flowinv.baselines import AugerinoAugmenter, InstaAugmenter
from autoinv.methods.flowinv.core import apply_params
from autoinv.methods.flowinv.training import augmented_loss
from autoinv.models import create_model


def _augmenter(method, cfg) -> torch.nn.Module:
    """A fresh augmenter of ``method`` (FlowInv, Augerino, InstaAug) for 3-channel images, as its ``fit`` builds one."""
    if method is flowinv:
        return flowinv.build_augmenter(cfg, 3)
    if method is augerino:
        return AugerinoAugmenter(cfg.aug_type, cfg.augerino_init_width, cfg.aug_trans_scale)
    return InstaAugmenter(cfg.aug_type, 3, cfg.pose_width, cfg.pose_dim, cfg.insta_init_width, cfg.aug_trans_scale)


def step_time(device: torch.device, model_name: str, batch: int, aug_type: str, pose_width: int, repeats: int) -> None:
    """Print ERM's step time and each augmenter row's step time and ratio to it."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, 32, 32, generator=gen).to(device)
    y = torch.randint(0, 2, (batch,), generator=gen).to(device)
    model = create_model(model_name, 2, (3, 32, 32)).to(device)

    def erm_step(optimizer):
        def step():
            with loop.autocast(device):
                loss = F.cross_entropy(model(loop.standardize(x)).float(), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    def augmented_step(method, **fields):
        if "pose_width" in method.Config.__dataclass_fields__:  # Augerino has no pose CNN
            fields["pose_width"] = pose_width
        cfg = method.Config(model=model_name, batch_size=batch, aug_type=aug_type, **fields)
        augmenter = _augmenter(method, cfg).to(device)
        optimizer = torch.optim.Adam([*model.parameters(), *augmenter.parameters()], lr=1e-3)

        def step():
            with loop.autocast(device):
                loss, *_ = augmented_loss(cfg, model, augmenter, x, y, gen if device.type == "cpu" else None, 0.01)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        return step

    t_erm = median_seconds(erm_step(torch.optim.Adam(model.parameters(), lr=1e-3)), device, repeats)
    print(f"device {device.type}, {model_name}, batch {batch}, aug_type {aug_type}, pose_width {pose_width}")
    print("| step | ms | ÷ ERM |")
    print("|---|---|---|")
    print(f"| ERM | {1e3 * t_erm:.1f} | 1.00 |")
    rows = {
        "FlowInv, one copy": (flowinv, {"aug_include_orig": False}),
        "FlowInv, one copy + original": (flowinv, {}),
        "Augerino, one copy": (augerino, {"aug_include_orig": False}),
        "InstaAug, one copy": (instaaug, {"aug_include_orig": False}),
    }
    for name, (method, fields) in rows.items():
        t = median_seconds(augmented_step(method, **fields), device, repeats)
        print(f"| {name} | {1e3 * t:.1f} | {t / t_erm:.2f} |", flush=True)


CLAIM_90 = {"dataset": "marioiggy:n_train=3000", "aug_type": "rotate", "batch_size": 64}
"""The ±90° setting of ``tests/methods/test_flowinv.py`` (defaults otherwise: target 0 nats, λ in [1e-3, 0.5])."""


def _fit(name: str, fields: dict, seed: int, epochs: int) -> tuple[torch.nn.Module, dict]:
    methods = {"flowinv": flowinv, "augerino": augerino, "instaaug": instaaug}
    run = loop.MemoryRun()
    final = methods[name].fit(methods[name].Config(**fields, epochs=epochs, seed=seed), run)
    return flowinv.augmenter_from_payload(run.artifacts["augmenter"]), final


def learned_ranges(names: list[str], seeds: list[int], epochs: int) -> None:
    """Train each method per seed on the ±90° setting and print its sprite band summary as a table row."""
    print(f"marioiggy ±90°, {epochs} epochs, {CLAIM_90}")
    print("| method | seed | half-range mario / iggy (°) | corr mario / iggy / both (all 19 angles) | val/acc |")
    print("|---|---|---|---|---|")
    for name in names:
        for seed in seeds:
            augmenter, final = _fit(name, CLAIM_90, seed, epochs)
            band = sprite_band_summary(augmenter)
            print(
                f"| {name} | {seed} | {band['half_mario']:.1f} / {band['half_iggy']:.1f} | {band['corr_mario']:.2f} / "
                f"{band['corr_iggy']:.2f} / {band['corr']:.2f} ({band['corr_all']:.2f}) | {final['val/acc']:.3f} |",
                flush=True,
            )


CLAIM_MODES = {
    "dataset": "marioiggy:rot=30,modes=3,n_train=3000",
    "aug_type": "rotate",
    "batch_size": 64,
    "aug_warmup_epochs": 5,
    "aug_freeze_classifier": True,
}
"""The multi-modal setting (paper Fig. 4 bottom; the reference's script freezes the classifier too)."""

CLAIM_DISCOVERY = {
    "dataset": "marioiggy:n_train=3000",
    "model": "mlp",
    "aug_type": "decoupled",
    "batch_size": 64,
    "aug_warmup_epochs": 5,
    "aug_freeze_classifier": True,
    "tta_samples": 0,
}
"""Rotation discovery (paper Fig. 7): the 6-D decoupled algebra against a pixel MLP trained on rotations only, then
frozen (the reference's rotgen script: a frozen MLP, a fixed λ)."""

FIXED_LAMBDA = {
    "flowinv": {"pid_lambda_min": 0.01, "pid_lambda_max": 0.01, "pose_width": 16},
    "instaaug": {"insta_weight": 0.01, "insta_entropy_min": -100.0, "insta_entropy_max": 100.0},
}
"""The same fixed λ = 0.01 for both (InstaAug's window made so wide that its scheduler never moves λ)."""

FLOW_MODES = {
    "flow_base": "gmm",
    "flow_modes": 30,
    "flow_loc_std": 1.0,
    "flow_gumbel_hard": True,
    "flow_mode_gradient": "score",
    "pose_width": 16,
}
"""FlowInv's base for the multi-modal setting: 30 Gaussian modes spread over ±1 at the start, one drawn per sample,
the modes' weights learning from their samples' costs (score function)."""


def mode_table(names: list[str], seeds: list[int], epochs: int) -> None:
    """Train each method per seed on multi-modal Mario-Iggy; print where its samples land (``mode_mass``)."""
    print(f"marioiggy 3 modes (±30° each), {epochs} epochs, {CLAIM_MODES}; FlowInv {FLOW_MODES}")
    print("| method | seed | mass in relative mode 0 / 1 / 2 | in any mode | val/acc |")
    print("|---|---|---|---|---|")
    for name in names:
        for seed in seeds:
            augmenter, final = _fit(name, {**CLAIM_MODES, **(FLOW_MODES if name == "flowinv" else {})}, seed, epochs)
            mass = mode_mass(augmenter)
            print(
                f"| {name} | {seed} | {' / '.join(f'{v:.2f}' for v in mass['mass'].tolist())} | "
                f"{mass['mass_label']:.2f} | {final['val/acc']:.3f} |",
                flush=True,
            )


def discovery_table(names: list[str], seeds: list[int], epochs: int) -> None:
    """Train each method per seed on rotation discovery; print how close its samples are to rotations."""
    print(f"rotation discovery, {epochs} epochs, {CLAIM_DISCOVERY}")
    print("| method | seed | median error to nearest rotation | same marginals, mean-field | rotation half-range (°) |")
    print("|---|---|---|---|---|")
    for name in names:
        for seed in seeds:
            augmenter, _ = _fit(name, {**CLAIM_DISCOVERY, **FIXED_LAMBDA.get(name, {})}, seed, epochs)
            probe = load_dataset(CLAIM_DISCOVERY["dataset"], seed=seed).x_val[:256]
            found = rotation_discovery(augmenter, probe, samples=64)
            print(
                f"| {name} | {seed} | {found['error']:.3f} | {found['error_mean_field']:.3f} | "
                f"{found['half_range_deg']:.1f} |",
                flush=True,
            )


LINK_HALF_RANGES = (15.0, 30.0, 45.0)
"""Half-ranges (degrees) at which :func:`link_table` prices the b = −d link."""


@torch.no_grad()
def link_cost(
    classifier: torch.nn.Module, half_range_deg: float, draws: int = 16, seed: int = 0
) -> tuple[float, float]:
    """The classifier's CE under a rotation law and under the same marginals drawn independently.

    Both sprites, upright and upside down, are turned to 19 angles within ±(90° − R) of their class's centre (where a
    further ±R keeps the class), rendered as the dataset renders them, then warped by decoupled samples: the rotation
    law (b = −r, d = r, r ~ U(−R, R); the other entries 0) and its mean-field version (b and d independent, each
    U(−R, R)). Their CE difference is the most that learning the link between b and d can save a flow there.

    Returns:
        (CE under the rotation law, CE under the mean-field law), mean over images and draws.
    """
    limit = 90.0 - half_range_deg
    angles = torch.deg2rad(torch.linspace(-limit, limit, 19))
    images, labels = [], []
    for index, sprite in enumerate(marioiggy_sprites()):
        for upside_down in (0, 1):
            turn = angles + math.pi * upside_down
            cos, sin, zero = turn.cos(), turn.sin(), torch.zeros(len(turn))
            theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
            sprites = sprite.expand(len(turn), -1, -1, -1)
            grid = F.affine_grid(theta, list(sprites.shape), align_corners=False)  # as the dataset renders them
            turned = F.grid_sample(sprites, grid, align_corners=False)
            images.append((turned.clamp(0, 1) * 255).round() / 255)  # and its uint8 quantisation
            labels.append(torch.full((len(angles),), 2 * index + upside_down))
    x, y = torch.cat(images).repeat(draws, 1, 1, 1), torch.cat(labels).repeat(draws)
    generator = torch.Generator().manual_seed(seed)
    r, r_other = (torch.rand(2, len(x), generator=generator) * 2 - 1) * math.radians(half_range_deg)
    costs = []
    for d in (r, r_other):
        w = torch.zeros(len(x), 6)
        w[:, 1], w[:, 3] = -r, d
        costs.append(F.cross_entropy(classifier(loop.standardize(apply_params(x, w, "decoupled"))), y).item())
    return costs[0], costs[1]


def link_table(seeds: list[int]) -> None:
    """Train the rotation-discovery setting's frozen classifier per seed; print what the b = −d link is worth to it."""
    warmup = CLAIM_DISCOVERY["aug_warmup_epochs"]
    print(f"the b = −d link's worth to the frozen classifier of {CLAIM_DISCOVERY} (trained {warmup} epochs)")
    print("| seed | R (°) | CE, rotation law | CE, b and d independent | saved by the link |")
    print("|---|---|---|---|---|")
    for seed in seeds:
        run = loop.MemoryRun()
        cfg = flowinv.Config(**CLAIM_DISCOVERY, **FIXED_LAMBDA["flowinv"], epochs=warmup + 1, seed=seed)
        flowinv.fit(cfg, run)  # the classifier is frozen after the warm-up: one flow epoch leaves it as it is
        classifier = run.model.eval()
        for half_range in LINK_HALF_RANGES:
            linked, independent = link_cost(classifier, half_range)
            print(f"| {seed} | {half_range:.0f} | {linked:.4f} | {independent:.4f} | {independent - linked:+.4f} |")


def main() -> None:
    """Run the step-time benchmark, or with ``--range`` the learned-range table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--aug-type", default="rotate_translate")
    parser.add_argument("--pose-width", type=int, default=8, help="width of the pose CNN (FlowInv, InstaAug)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--range", nargs="+", metavar="METHOD", help="learned-range table of these methods instead")
    parser.add_argument("--modes", nargs="+", metavar="METHOD", help="multi-modal table of these methods instead")
    parser.add_argument("--discovery", nargs="+", metavar="METHOD", help="rotation-discovery table instead")
    parser.add_argument("--link", action="store_true", help="what the b = −d link is worth to the frozen classifier")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=30)
    args = parser.parse_args()
    if args.range:
        learned_ranges(args.range, args.seeds, args.epochs)
        return
    if args.modes:
        mode_table(args.modes, args.seeds, args.epochs)
        return
    if args.discovery:
        discovery_table(args.discovery, args.seeds, args.epochs)
        return
    if args.link:
        link_table(args.seeds)
        return
    torch.manual_seed(0)
    step_time(torch.device(args.device), args.model, args.batch, args.aug_type, args.pose_width, args.repeats)


if __name__ == "__main__":
    main()
