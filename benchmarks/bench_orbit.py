"""Orbit transfer benchmarks: student step-time ratio, and the MNIST-1D table beside the paper's numbers.

    python benchmarks/bench_orbit.py                       # Orbit student step time / CE student step time
    python benchmarks/bench_orbit.py --device cuda --ratio-batch 1000 8000  # the same on a GPU, at two batch sizes
    python benchmarks/bench_orbit.py --table               # seen/unseen/all for every method at s = 30 (markdown)
    python benchmarks/bench_orbit.py --table --linear      # the same with the linear-head student
    python benchmarks/bench_orbit.py --table --epochs 400  # the paper's 40,000 steps
    python benchmarks/bench_orbit.py --table --seeds 0 1 2  # each cell as mean ± std over the student seeds
    python benchmarks/bench_orbit.py --sweep --figure f.png  # Figure 2: every method at s = 0, 10, 20, 30, 40

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
from autoinv.models import create_model  # noqa: E402

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
SHIFTS = [0, 10, 20, 30, 40]
"""The shift limits of the paper's Figures 2 and 3."""
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


def step_ratio(steps: int, batch_size: int, device: str = "cpu") -> dict[str, float]:
    """Median wall time of one Orbit student step and one CE student step (forward, backward, Adam) and their ratio."""
    cfg = orbit.Config(device=device)
    on = loop.pick_device(device)
    data = transfer.load_transfer_data(cfg)
    rho = orbit.make_orbit(cfg, data).requires_grad_(False).to(on)
    layouts = [(15, 40), (10, 40)]
    # Batches past the training set repeat it: only the time of a step is measured here.
    repeats = -(-batch_size // len(data.x_train))
    x = data.x_train.repeat(repeats, 1, 1)[:batch_size].to(on)
    y = data.y_train.repeat(repeats)[:batch_size].to(on)
    g = core.sample_balanced_elements(batch_size, 40, torch.Generator().manual_seed(0)).to(on)  # as the loss does

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
    students = {name: create_model(cfg.model, 10, data.shape).to(on) for name in steps_by_name}
    optimizers = {name: torch.optim.Adam(students[name].parameters(), lr=1e-3) for name in steps_by_name}
    samples: dict[str, list[float]] = {name: [] for name in steps_by_name}
    for i in range(steps + 3):
        for name, step in steps_by_name.items():
            _synchronize(on)
            started = time.perf_counter()
            step(students[name], optimizers[name])
            _synchronize(on)
            if i >= 3:  # warm-up
                samples[name].append(time.perf_counter() - started)
    times = {name: statistics.median(values) for name, values in samples.items()}
    # Each Orbit step over the CE step run right before it: load drift cancels within a pair.
    paired = sorted(o / c for o, c in zip(samples["orbit"], samples["ce"]))
    quartiles = statistics.quantiles(paired, n=4)
    return {
        "ce_step_ms": 1000 * times["ce"],
        "orbit_step_ms": 1000 * times["orbit"],
        "ratio": times["orbit"] / times["ce"],
        "paired_ratio": statistics.median(paired),
        "paired_q1": quartiles[0],
        "paired_q3": quartiles[2],
    }


def _synchronize(device: torch.device) -> None:
    """Wait for queued device work, so that a host clock read after it covers the work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_every_method(
    args: argparse.Namespace, shift_limit: int, cache: str, seed: int | None = None
) -> tuple[list, list, dict]:
    """Train every method at one shift limit: the teacher's accuracies, one row per method, accuracy-vs-shift curves.

    ``seed`` is the students' seed (default ``args.seed``); the teacher's is always 0, so every seed shares it.

    Returns:
        ``teacher_row`` (seen, unseen, all in %), ``rows`` of ``(name, [seen, unseen, all], seconds)``, and
        model name → {shift → accuracy} for the teacher and every method.
    """
    common = {
        "shift_limit": shift_limit,
        "epochs": args.epochs,
        "steps_per_epoch": args.steps_per_epoch,
        "batch_size": args.batch_size,
        "eval_test": True,
        "device": args.device,
        "seed": args.seed if seed is None else seed,
        "teacher_epochs": args.teacher_epochs,
    }
    if args.linear:
        common["model"] = "mlp_linear1d"
    rows, curves, teacher_row, data = [], {}, None, None
    for name, method in METHODS.items():
        cfg = method.Config(
            **common, **({"orbit_steps": args.orbit_steps} if method is orbit and args.orbit_steps else {})
        )
        run = loop.MemoryRun(cache_dir=cache)
        started = time.perf_counter()
        result = method.fit(cfg, run)
        seconds = time.perf_counter() - started
        ours = [100 * result[k] for k in ("test/acc", "test/acc_unseen", "test/acc_all")]
        rows.append((name, ours, seconds))
        print(
            f"s={shift_limit} seed={cfg.seed} {name}: {ours[0]:.1f} / {ours[1]:.1f} / {ours[2]:.1f} in {seconds:.0f} s",
            file=sys.stderr,
        )
        if data is None:  # the same data, teacher and test splits for every method
            data = transfer.load_transfer_data(cfg)
            teacher = transfer.load_teacher(cfg, cache, torch.device("cpu"))  # accuracy curves run on the CPU
            curves["teacher"] = transfer.accuracy_by_transform(teacher, data, cfg)
            accs = [loop.evaluate(teacher, data.x_test, data.y_test)["acc"]]
            accs += [loop.evaluate(teacher, x, y)["acc"] for x, y in data.extra_tests.values()]
            teacher_row = [100 * a for a in accs]
        curves[name] = transfer.accuracy_by_transform(run.model.cpu(), data, cfg)
    return teacher_row, rows, curves


def _cell(v: float | list[float] | None) -> str:
    """One table cell: a value, or the mean ± sample standard deviation of one value per seed."""
    if v is None:
        return "—"
    if not isinstance(v, list):
        return f"{v:.1f}"
    if len(v) == 1:
        return f"{v[0]:.1f}"
    return f"{statistics.mean(v):.1f} ± {statistics.stdev(v):.1f}"


def _setting(args: argparse.Namespace) -> str:
    head = "linear-head" if args.linear else "max-pool"
    steps = args.epochs * args.steps_per_epoch
    seeds = args.seeds or [args.seed]
    which = f"seed {seeds[0]}" if len(seeds) == 1 else f"mean ± std over seeds {', '.join(map(str, seeds))}"
    return f"{head} student, {steps} steps at batch {args.batch_size}, {which}"


def table(args: argparse.Namespace) -> str:
    """Train every method at ``args.shift_limit`` for each seed; return the markdown table (ours beside the paper's)."""
    paper = PAPER_LINEAR if args.linear else PAPER_MAXPOOL
    cache = args.cache_dir or tempfile.mkdtemp(prefix="bench_orbit_")
    seeds = args.seeds or [args.seed]
    # name -> per column, one value per seed; the teacher (seed 0 always) repeats, so its spread is 0.
    values: dict[str, list[list[float]]] = {}
    seconds: dict[str, list[float]] = {}
    curves_by_seed = []
    for seed in seeds:
        teacher_row, rows, curves = train_every_method(args, args.shift_limit, cache, seed)
        curves_by_seed.append(curves)
        for name, ours in [("teacher", teacher_row), *((n, o) for n, o, _ in rows)]:
            columns = values.setdefault(name, [[], [], []])
            for column, v in zip(columns, ours):
                column.append(v)
        for name, _, took in rows:
            seconds.setdefault(name, []).append(took)
    if args.figure:  # the seeds' mean accuracy at each shift
        mean_curves = {
            name: {m: statistics.mean(c[name][m] for c in curves_by_seed) for m in curve}
            for name, curve in curves_by_seed[0].items()
        }
        plots.accuracy_curves(mean_curves, "shift", args.shift_limit).savefig(args.figure, dpi=120)
    lines = [
        f"MNIST-1D, s = {args.shift_limit}, {_setting(args)}; test accuracy (%), ours | paper",
        "",
        "| method | seen | unseen | all | paper seen | paper unseen | paper all | time (s) |",
        "|---|---|---|---|---|---|---|---|",
        f"| teacher | {' | '.join(_cell(v) for v in values['teacher'])} | — | — | — | — |",
    ]
    for name, took in seconds.items():
        ref = paper[name] or (None, None, None)
        ours = " | ".join(_cell(v) for v in values[name])
        lines.append(f"| {name} | {ours} | {' | '.join(_cell(v) for v in ref)} | {statistics.mean(took):.0f} |")
    return "\n".join(lines)


def sweep(args: argparse.Namespace) -> str:
    """The paper's Figure 2 (Figure 3 with ``--linear``): every method trained at s = 0, 10, 20, 30, 40.

    Returns a markdown table (seen-shift / unseen-shift test accuracy, one column per s; mean ± std with ``--seeds``)
    and, with ``--figure``, saves both (the seeds' means) as line plots against s.
    """
    cache = args.cache_dir or tempfile.mkdtemp(prefix="bench_orbit_")
    by_shift: dict[int, dict[str, list[list[float]]]] = {}  # s -> {name: [seen, unseen, all], one value per seed}
    for seed in args.seeds or [args.seed]:
        for s in SHIFTS:
            teacher_row, rows, _ = train_every_method(args, s, cache, seed)
            for name, ours in [("teacher", teacher_row), *((n, o) for n, o, _ in rows)]:
                for column, v in zip(by_shift.setdefault(s, {}).setdefault(name, [[], [], []]), ours):
                    column.append(v)
    names = list(by_shift[SHIFTS[0]])
    lines = [
        f"MNIST-1D, shift limit s = {', '.join(map(str, SHIFTS))}, {_setting(args)}; test accuracy (%), seen / unseen",
        "",
        "| method | " + " | ".join(f"s = {s}" for s in SHIFTS) + " |",
        "|---" * (len(SHIFTS) + 1) + "|",
    ]
    for n in names:
        cells = [f"{_cell(by_shift[s][n][0])} / {_cell(by_shift[s][n][1])}" for s in SHIFTS]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    if args.figure:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
        for ax, (split, column) in zip(axes, (("seen", 0), ("unseen", 1))):
            for n in names:
                ax.plot(SHIFTS, [statistics.mean(by_shift[s][n][column]) for s in SHIFTS], marker="o", label=n)
            ax.set(title=f"test accuracy, {split} shifts", xlabel="shift limit s", xticks=SHIFTS, ylim=(0, 100))
        axes[0].set_ylabel("%")
        axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
        fig.tight_layout()
        fig.savefig(args.figure, dpi=120)
    return "\n".join(lines)


def main() -> None:
    """Command line: the step-time ratio (at each ``--ratio-batch``), or ``--table``, or ``--sweep``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--table", action="store_true", help="train every method and print the MNIST-1D table")
    parser.add_argument("--sweep", action="store_true", help="train every method at s = 0, 10, 20, 30, 40 (Fig. 2)")
    parser.add_argument("--linear", action="store_true", help="linear-head student instead of the max-pool one")
    parser.add_argument("--shift-limit", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=12, help="student epochs of --steps-per-epoch steps")
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="--table, --sweep: mean ± std over these seeds"
    )
    parser.add_argument("--teacher-epochs", type=int, default=10, help="teacher epochs of 100 steps")
    parser.add_argument("--orbit-steps", type=int, default=0, help="steps to learn ρ (0: the config's 1500)")
    parser.add_argument("--cache-dir", default="", help="teacher cache (default: a fresh temporary folder)")
    parser.add_argument("--figure", default="", help="save accuracy against shift for every method to this PNG")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per method for the ratio")
    parser.add_argument("--ratio-batch", type=int, nargs="+", default=[1000], help="batch size(s) for the ratio")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"], help="where to train and time")
    args = parser.parse_args()
    if args.sweep:
        print(sweep(args))
        return
    if args.table:
        print(table(args))
        return
    for batch in args.ratio_batch:
        r = step_ratio(args.steps, batch, args.device)
        ce, orb = r["ce_step_ms"], r["orbit_step_ms"]
        print(
            f"batch {batch}: CE student step {ce:.2f} ms, Orbit student step {orb:.2f} ms, ratio {r['ratio']:.2f}x; "
            f"paired ratio {r['paired_ratio']:.2f}x (quartiles {r['paired_q1']:.2f}-{r['paired_q3']:.2f})"
        )


if __name__ == "__main__":
    main()
