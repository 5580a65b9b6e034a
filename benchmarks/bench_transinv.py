"""TransInv benchmark: the amortised min-max step against an ERM step, and the accuracy table beside its baselines.

Step time (default): TransInv's amortised step at ``n_inner`` = 5 (five target steps on augmented batches plus one
augmenter step, divided by five) ÷ one ERM step (forward, backward, SGD update) of the same network and batch, one
run, random weights (timing does not depend on training):

    python benchmarks/bench_transinv.py                                  # CPU, WRN-40-2, batch 32 of 32x32
    python benchmarks/bench_transinv.py --device cuda --batch 128

Accuracy (``--accuracy``): target accuracy on clean and corrupted test data for FT, FT+AugMix, FT+FixedAug and
TransInv, mean ± std over seeds, as a markdown table (offline data; the teacher trained once, cached):

    python benchmarks/bench_transinv.py --accuracy --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F
from timing import median_seconds

from autoinv import loop
from autoinv.data import Dataset
from autoinv.methods import transinv
from autoinv.methods.transinv import ft
from autoinv.models import create_model


def step_time(device: torch.device, model_name: str, batch: int, repeats: int, n_inner: int) -> None:
    """Print ERM's and TransInv's amortised step times and their ratio."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4 * batch, 3, 32, 32), generator=gen, dtype=torch.uint8).to(device)
    y = torch.randint(0, 100, (4 * batch,), generator=gen).to(device)
    data = Dataset("bench", x, y, x[:batch], y[:batch], x[:batch], y[:batch], 100, "image")
    target = create_model(model_name, 100, (3, 32, 32)).to(device)
    teacher = create_model(model_name, 10, (3, 32, 32)).to(device).eval().requires_grad_(False)
    if device.type == "cuda":
        target = target.to(memory_format=torch.channels_last)
        teacher = teacher.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(target.parameters(), lr=0.01, momentum=0.9)
    cfg = transinv.Config(model=model_name, batch_size=batch, n_inner=n_inner, augment="none", init="scratch")
    minmax = transinv.MinMax(cfg, data, target, [teacher])
    xb, yb = x[:batch], y[:batch]

    def erm():
        with loop.autocast(device):
            loss = F.cross_entropy(target(loop.prepare(xb)), yb)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def ours():
        for _ in range(n_inner):  # the first call also takes the augmenter step
            with loop.autocast(device):
                loss, _ = minmax.loss_fn(target, xb, yb, minmax.generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    t_erm = median_seconds(erm, device, repeats)
    t_ours = median_seconds(ours, device, repeats) / n_inner
    print(f"device {device.type}, {model_name}, batch {batch}, n_inner {n_inner}, K = {len(cfg.aug_primitives)}")
    print(f"ERM step {1e3 * t_erm:.1f} ms, TransInv amortised step {1e3 * t_ours:.1f} ms, ratio {t_ours / t_erm:.2f}")


def accuracy(seeds: list[int], teacher: str, epochs: int) -> None:
    """Print the FT / FT+AugMix / FT+FixedAug / TransInv table on the quick data (clean and corrupted test)."""
    from searches import ft as ft_search
    from searches import transinv as ti_search

    common = {**ft_search.QUICK, "epochs": epochs, "eval_test": True, "init": "teacher"}
    rows = {
        "FT": (ft, {**common, "teacher": teacher, "augment": "none"}),
        "FT+AugMix": (ft, {**common, "teacher": teacher, "augment": "augmix"}),
        "FT+FixedAug": (ft, {**common, "teacher": teacher, "augment": "none", "ft_fixedaug": teacher}),
        "TransInv": (
            transinv,
            {**ti_search.QUICK, **common, "teachers": (teacher,), "augment": "none"},
        ),
    }
    print(f"| method | clean test acc | test acc under {teacher} |")
    print("|---|---|---|")
    for name, (method, values) in rows.items():
        clean, corrupted = [], []
        for seed in seeds:
            m = method.fit(method.Config(**{**values, "seed": seed}), loop.MemoryRun())
            clean.append(m["test/acc"])
            corrupted.append(m[f"test/acc_{teacher}"])
        sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0  # noqa: E731
        print(
            f"| {name} | {100 * statistics.mean(clean):.1f} ± {100 * sd(clean):.1f} "
            f"| {100 * statistics.mean(corrupted):.1f} ± {100 * sd(corrupted):.1f} |",
            flush=True,
        )


def main() -> None:
    """Run the step-time benchmark, or the accuracy table with --accuracy."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="wrn_40_2")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-inner", type=int, default=5)
    parser.add_argument("--accuracy", action="store_true")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--teacher", default="gaussian_blur")
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.accuracy:
        accuracy(args.seeds, args.teacher, args.epochs)
    else:
        step_time(torch.device(args.device), args.model, args.batch, args.repeats, args.n_inner)


if __name__ == "__main__":
    main()
