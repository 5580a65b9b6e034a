"""TransformMix benchmark: mixing overhead per training step, and task accuracy beside its baselines.

Overhead (default): the time to make one batch of mixed images (TransformMix's frozen mixer, Mixup, CutMix), as a
fraction of one ResNet-18 training step (forward, backward, SGD update) on that batch, all measured in one run:

    python benchmarks/bench_transformmix.py                       # CPU, batch 128 of 32x32
    python benchmarks/bench_transformmix.py --device cuda

Accuracy (``--accuracy``): task-network validation accuracy on the quick dataset for ERM, Mixup, CutMix,
SaliencyMix and TransformMix, mean ± std over seeds, as a markdown table:

    python benchmarks/bench_transformmix.py --accuracy --seeds 0 1 2 --epochs 15 --train-subset 2000
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from timing import median_seconds

from autoinv import loop
from autoinv.methods import cutmix, erm, mixup, saliencymix, transformmix
from autoinv.methods.cutmix import cutmix_batch, cutmix_box
from autoinv.methods.mixup import mixup_batch, sample_pairing
from autoinv.models import create_model


def overhead(device: torch.device, batch: int, repeats: int) -> None:
    """Print mixing time per batch and its ratio to a ResNet-18 step, for TransformMix, Mixup and CutMix."""
    gen, rng = torch.Generator().manual_seed(0), np.random.default_rng(0)
    x = torch.rand(batch, 3, 32, 32, device=device)
    cams = torch.rand(batch, 32, 32, device=device)
    y = F.one_hot(torch.arange(batch, device=device) % 100, 100).float()
    model = create_model("resnet18", 100, (3, 32, 32)).to(device)
    if device.type == "cuda":  # as trials train on a GPU (loop.train_classifier): channels-last, bfloat16 autocast
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    mixer = transformmix.Mixer(size=(32, 32)).to(device).eval().requires_grad_(False)  # the paper's f_m: 3 x 32 x 3x3

    def step():
        with loop.autocast(device):
            loss = loop.soft_cross_entropy(model(loop.standardize(x)).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def transformmix_mix():
        idx, lam = transformmix.partner_indices(batch, 2, gen), transformmix.sample_lambdas(batch, 2, 1.0, rng)
        with loop.autocast(device):
            return transformmix.transformmix_batch(mixer, x, cams, y, idx, lam)[0]

    def mixup_mix():
        perm, lam = sample_pairing(batch, 1.0, gen, rng, device)
        return mixup_batch(x, y, lam, perm)[0]

    def cutmix_mix():
        perm, lam = sample_pairing(batch, 1.0, gen, rng, device)
        return cutmix_batch(x, y, cutmix_box(32, 32, lam, (rng.random(), rng.random())), perm)[0]

    step_s = median_seconds(step, device, repeats)
    print(
        f"device {device}, batch {batch} of 32x32, median of {repeats}; ResNet-18 training step {step_s * 1e3:.1f} ms\n"
    )
    print("| method | mixing time per batch (ms) | fraction of a ResNet-18 step |")
    print("|---|---|---|")
    for name, fn in (("TransformMix", transformmix_mix), ("Mixup", mixup_mix), ("CutMix", cutmix_mix)):
        mix_s = median_seconds(fn, device, repeats)
        print(f"| {name} | {mix_s * 1e3:.2f} | {mix_s / step_s:.1%} |")


def accuracy(args: argparse.Namespace) -> None:
    """Print validation accuracy (mean ± std over seeds) of ERM, Mixup, CutMix, SaliencyMix and TransformMix."""
    shared = {
        "dataset": args.dataset,
        "model": "small_cnn",
        "epochs": args.epochs,
        "train_subset": args.train_subset,
        "batch_size": 64,
        "device": args.device,
    }
    teacher = {"teacher_arch": "small_cnn", "teacher_epochs": args.teacher_epochs}
    methods = {
        "ERM (flip/crop)": (erm, {}),
        "Mixup": (mixup, {}),
        "CutMix": (cutmix, {}),
        "SaliencyMix": (saliencymix, teacher),
        "TransformMix": (transformmix, {**teacher, "mix_epochs": args.mix_epochs, "mix_lr": args.mix_lr}),
    }
    rows = []
    for name, (module, extra) in methods.items():
        scores = []
        for seed in args.seeds:
            started = time.perf_counter()
            cfg = module.Config(**shared, **extra, seed=seed)
            scores.append(module.fit(cfg, loop.MemoryRun(cache_dir=args.cache_dir))["val/acc"])
            print(f"{name} seed {seed}: val/acc {scores[-1]:.3f} ({time.perf_counter() - started:.0f} s)", flush=True)
        std = statistics.stdev(scores) if len(scores) > 1 else 0.0
        rows.append(f"| {name} | {100 * statistics.mean(scores):.1f} ± {100 * std:.1f} |")
    print(f"\n{args.dataset}, small_cnn, {args.epochs} epochs on {args.train_subset} images, seeds {args.seeds}\n")
    print("| method | val acc (%) |\n|---|---|")
    print("\n".join(rows))


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=128, help="images per mixed batch (overhead mode)")
    parser.add_argument("--repeats", type=int, default=10, help="timed repeats (overhead mode)")
    parser.add_argument("--accuracy", action="store_true", help="compare task accuracy instead of timing")
    parser.add_argument("--dataset", default="shapes")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--train-subset", type=int, default=2000)
    parser.add_argument("--teacher-epochs", type=int, default=15)
    parser.add_argument("--mix-epochs", type=int, default=5)
    parser.add_argument("--mix-lr", type=float, default=1e-3, help="AdamW lr of the search stage")
    parser.add_argument("--cache-dir", default="", help="where teachers are cached (default ~/.cache/autoinv/runs)")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.accuracy:
        accuracy(args)
    else:
        overhead(torch.device(args.device), args.batch, args.repeats)


if __name__ == "__main__":
    main()
