"""Wall time and best metric of ``--quick`` searches, and the time from the command to the first trial running.

Runs each named search as a user would (a fresh ``python -m autoinv.search NAME --quick`` in an empty folder),
then reads MLflow: the first child run's start is when the first trial began training, the parent holds the
best trial's metric; the teacher's last validation accuracy (for searches with a teacher) comes from its
progress lines.

Example:
    python benchmarks/bench_search.py transformmix orbit erm
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from autoinv import tracking


def measure(name: str, extra: list[str]) -> dict[str, float]:
    """Run one quick search in a temporary folder; return its wall time, first-trial delay and trial count."""
    with tempfile.TemporaryDirectory() as folder:
        started = time.time()
        result = subprocess.run(
            [sys.executable, "-m", "autoinv.search", name, "--quick", *extra],
            cwd=folder,
            capture_output=True,
            text=True,
        )
        wall = time.time() - started
        if result.returncode != 0:
            raise SystemExit(f"{name} failed:\n{result.stderr[-3000:]}")
        client = tracking.client_for(tracking.default_tracking_uri(folder))
        experiment = client.get_experiment_by_name(name)
        runs = client.search_runs([experiment.experiment_id], "tags.`autoinv.role` = 'trial'")
        first = min(run.info.start_time for run in runs) / 1000.0
        outcomes = [run.data.tags.get(tracking.OUTCOME_TAG, "?") for run in runs]
        (parent,) = client.search_runs([experiment.experiment_id], "tags.`autoinv.role` = 'search'")
        best = [v for k, v in parent.data.metrics.items() if k.startswith("best/")]
        teacher = re.findall(r"^teacher .*val/acc ([0-9.]+)$", result.stderr, flags=re.M)
        return {
            "best": best[0] if best else float("nan"),
            "metric": parent.data.tags.get("autoinv.metric", "?"),
            "teacher": float(teacher[-1]) if teacher else float("nan"),
            "wall_s": wall,
            "first_trial_s": first - started,
            "trials": len(runs),
            "stopped_early": outcomes.count("stopped_early"),
        }


def main() -> None:
    """Print a markdown table, one row per search."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("searches", nargs="+")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more arguments for every search")
    args = parser.parse_args()
    print(
        f"| search | trials (stopped early) | wall time | best metric | teacher val/acc | command → first trial "
        f"| cores: {os.cpu_count()} |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.searches:
        m = measure(name, args.extra)
        teacher = "–" if m["teacher"] != m["teacher"] else f"{m['teacher']:.3f}"
        print(
            f"| `{name} --quick` | {m['trials']} ({m['stopped_early']}) | {m['wall_s'] / 60:.1f} min "
            f"| {m['metric']} {m['best']:.3f} | {teacher} | {m['first_trial_s']:.0f} s | |",
            flush=True,
        )


if __name__ == "__main__":
    main()
