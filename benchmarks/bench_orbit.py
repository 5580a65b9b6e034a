"""Orbit transfer benchmarks: student step-time ratio, and the MNIST-1D table beside the paper's numbers.

    python benchmarks/bench_orbit.py                       # Orbit student step time / CE student step time
    python benchmarks/bench_orbit.py --table               # seen/unseen/all for every method at s = 30 (markdown)
    python benchmarks/bench_orbit.py --table --linear      # the same with the linear-head student
    python benchmarks/bench_orbit.py --table --epochs 400  # the paper's 40,000 steps

The ratio is measured in one process on identical batches (batch 1000, max-pool student, 40-tap ρ): Orbit needs
Ψ(x) and Ψ(ρ_g x) and ρ on every matched layer; the issue's target is at most 2.5x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from autoinv import loop  # noqa: E402
from autoinv.methods import orbit  # noqa: E402
from autoinv.methods.orbit import attention, cka, core, hidden_match, kd, plots, rdl, student_aug, student_ce, transfer  # noqa: E402
from autoinv.methods.orbit.objectives import omega, transfer_loss  # noqa: E402

# seen / unseen / all test accuracy (%) at s = 30, from the reference recipes' result docstrings (paper Figs. 2-3).
PAPER_MAXPOOL = {
    "student_ce": (50.4, 11.1, 40.0),
    "student_aug": None,
    "kd": (52.3, 13.5, 39.0),
    "hidden_match": (97.2, 90.6, 94.5),
    "rdl": (55.6, 14.4, 42.6),
    "cka": (56.9, 17.6, 45.7),
    "attention": (55.8, 12.0, 43.0),
    "orbit": (95.4, 95.7, 95.7),
}
PAPER_LINEAR = {
    "student_ce": (None, None, 40.0),
    "student_aug": None,
    "kd": (53.6, 11.0, 39.9),
    "hidden_match": (54.7, 12.2, 40.5),
    "rdl": (51.4, 11.7, 39.7),
    "cka": None,
    "attention": (51.7, 12.3, 40.0),
    "orbit": (77.2, 76.5, 77.3),
}
METHODS = {
    "student_ce": student_ce,
    "student_aug": student_aug,
    "kd": kd,
    "hidden_match": hidden_match,
    "rdl": rdl,
    "cka": cka,
    "attention": attention,
    "orbit": orbit,
}


def step_ratio(steps: int, batch_size: int) -> dict[str, float]:
    """Median wall time of one Orbit student step and one CE student step (forward, backward, Adam) and their ratio."""
    cfg = orbit.Config(device="cpu")
    data = transfer.load_transfer_data(cfg)
    rho = orbit.make_orbit(cfg, data).requires_grad_(False)
    layouts = [(15, 40), (10, 40)]
    x, y = data.x_train[:batch_size], data.y_train[:batch_size]
    g = core.sample_balanced_elements(batch_size, 40, torch.Generator().manual_seed(0))  # as the student loss does

    def ce_step(student, opt):
        loss = F.cross_entropy(student(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def orbit_step(student, opt):
        om, logits, logits_rho = omega(rho, student, cfg.student_layers, layouts, x, g, 1, transfer.to_net)
        loss = transfer_loss(F.cross_entropy(logits, y), om + F.cross_entropy(logits_rho, y), cfg.gamma)
        opt.zero_grad()
        loss.backward()
        opt.step()

    # Interleave the two kinds of step and take medians, so both see the same machine load (a shared CPU's
    # load shifts by tens of percent within a run; timing one method after the other mixes that into the ratio).
    steps_by_name = {"ce": ce_step, "orbit": orbit_step}
    students = {name: transfer.build_net(cfg.model, 10, data.shape) for name in steps_by_name}
    optimizers = {name: torch.optim.Adam(students[name].parameters(), lr=1e-3) for name in steps_by_name}
    samples: dict[str, list[float]] = {name: [] for name in steps_by_name}
    for i in range(steps + 3):
        for name, step in steps_by_name.items():
            started = time.perf_counter()
            step(students[name], optimizers[name])
            if i >= 3:  # warm-up
                samples[name].append(time.perf_counter() - started)
    times = {name: statistics.median(values) for name, values in samples.items()}
    return {
        "ce_step_ms": 1000 * times["ce"],
        "orbit_step_ms": 1000 * times["orbit"],
        "ratio": times["orbit"] / times["ce"],
    }


def table(args: argparse.Namespace) -> str:
    """Train every method at s = 30 and return the markdown table (ours beside the paper's)."""
    common = {
        "shift_limit": args.shift_limit,
        "epochs": args.epochs,
        "steps_per_epoch": args.steps_per_epoch,
        "batch_size": args.batch_size,
        "eval_test": True,
        "device": "cpu",
        "seed": args.seed,
    }
    if args.linear:
        common["model"] = "mlp_linear1d"
    paper = PAPER_LINEAR if args.linear else PAPER_MAXPOOL
    cache = args.cache_dir or tempfile.mkdtemp(prefix="bench_orbit_")
    rows, curves = [], {}
    teacher_row = None
    for name, method in METHODS.items():
        run = loop.MemoryRun(cache_dir=cache)
        started = time.perf_counter()
        result = method.fit(method.Config(**common), run)
        seconds = time.perf_counter() - started
        ours = [100 * result[k] for k in ("test/acc", "test/acc_unseen", "test/acc_all")]
        rows.append((name, ours, paper[name], seconds))
        print(f"{name}: {ours[0]:.1f} / {ours[1]:.1f} / {ours[2]:.1f} in {seconds:.0f} s", file=sys.stderr, flush=True)
        cfg = method.Config(**common)
        data = transfer.load_transfer_data(cfg)
        curves[name] = transfer.accuracy_by_transform(run.model.cpu(), data, cfg)
        if teacher_row is None:
            teacher = transfer.load_teacher(cfg, data, cache, torch.device("cpu"))
            curves = {"teacher": transfer.accuracy_by_transform(teacher, data, cfg), **curves}
            accs = [loop.evaluate(teacher, data.x_test, data.y_test)["acc"]]
            accs += [loop.evaluate(teacher, x, y)["acc"] for x, y in data.extra_tests.values()]
            teacher_row = [100 * a for a in accs]
    if args.figure:
        plots.accuracy_curves(curves, "shift", args.shift_limit).savefig(args.figure, dpi=120)

    def cell(v):
        return "—" if v is None else f"{v:.1f}"

    head = "max-pool" if not args.linear else "linear-head"
    lines = [
        f"MNIST-1D, s = {args.shift_limit}, {head} student, {args.epochs * args.steps_per_epoch} steps at batch "
        f"{args.batch_size}, seed {args.seed}; test accuracy (%), ours | paper",
        "",
        "| method | seen | unseen | all | paper seen | paper unseen | paper all | time (s) |",
        "|---|---|---|---|---|---|---|---|",
        f"| teacher | {' | '.join(cell(v) for v in teacher_row)} | — | — | — | — |",
    ]
    for name, ours, ref, seconds in rows:
        ref = ref or (None, None, None)
        lines.append(
            f"| {name} | {' | '.join(cell(v) for v in ours)} | {' | '.join(cell(v) for v in ref)} | {seconds:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Command line: the step-time ratio, or ``--table``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", action="store_true", help="train every method and print the MNIST-1D table")
    parser.add_argument("--linear", action="store_true", help="linear-head student instead of the max-pool one")
    parser.add_argument("--shift-limit", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=12, help="student epochs of --steps-per-epoch steps")
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", default="", help="teacher cache (default: a fresh temporary folder)")
    parser.add_argument("--figure", default="", help="save accuracy against shift for every method to this PNG")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per method for the ratio")
    args = parser.parse_args()
    if args.table:
        print(table(args))
        return
    r = step_ratio(args.steps, 1000)
    ce, orb = r["ce_step_ms"], r["orbit_step_ms"]
    print(f"CE student step {ce:.1f} ms, Orbit student step {orb:.1f} ms, ratio {r['ratio']:.2f}x")


if __name__ == "__main__":
    main()
