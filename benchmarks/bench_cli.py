"""How long the CLIs take to answer what users type to learn them (issue 12 item 1: target ≤ 2 s each).

Each command runs as a fresh process in an empty folder, as a user would type it; the table gives the median
wall time over ``--repeats`` runs and the exit status. ``--dry-run`` of a built-in search imports torch (it
builds and checks the method's Config and loads the data), so it takes longer than the rest; one row per mission
method and ERM.

Example:
    python benchmarks/bench_cli.py --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

COMMANDS = [
    ("search", "--help"),
    ("search", "--list"),
    ("search", "nosuch"),
    ("search", "erm", "--gpus-per-trial", "-1"),
    ("export", "nosuch"),
    ("train", "nosuch.yaml"),
    ("search", "erm", "--quick", "--dry-run"),
    ("search", "transformmix", "--quick", "--dry-run"),
    ("search", "orbit", "--quick", "--dry-run"),
    ("search", "flowinv", "--quick", "--dry-run"),
    ("search", "transinv", "--quick", "--dry-run"),
]


def seconds(args: tuple[str, ...], repeats: int) -> tuple[float, int]:
    """Median wall time of ``python -m autoinv.ARGS`` in a fresh empty folder, and its exit status."""
    times, code = [], 0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-m", f"autoinv.{args[0]}", *args[1:]], cwd=folder, capture_output=True
            )
            times.append(time.perf_counter() - start)
            code = done.returncode
    return statistics.median(times), code


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| command | s | exit |")
    print("|---|---|---|")
    for command in COMMANDS:
        wall, code = seconds(command, args.repeats)
        print(f"| `python -m autoinv.{' '.join(command)}` | {wall:.2f} | {code} |", flush=True)


if __name__ == "__main__":
    main()
