"""Driver overhead at scale (issue 15): N one-second trials through the search's full driver and through bare Ray Tune.

Every trial sleeps 0.1 s and reports, ten times. The search arm is what a user runs: a search file naming a method of
its own (``sleep_method.py`` beside it, whose ``fit`` calls ``run.resume()`` then ``run.report`` ten times), launched
as ``python -m autoinv.search <tmp>/scale_search.py --num-samples N --scheduler fifo --max-epochs 10
--cpus-per-trial 1`` in an empty folder (Optuna TPE, embedded sqlite MLflow, the search's callbacks, an epoch file per
report, workers reused across trials). The bare arms are ``tune.Tuner`` on a function trainable with the same sleeps,
with Tune's defaults (a new worker process per trial) and with ``reuse_actors=True``, timed from before
``ray.init`` to after ``fit()`` returns. All get ``--cpus`` CPUs (the search through ``RAY_OVERRIDE_RESOURCES``).

Each trial writes a probe (its pid and process start, when the method module was imported, when ``fit`` began and
ended, how long each report took), so the added time per trial splits into worker start-up, reporting, and time a
slot spends outside any trial's code. Afterwards, outside the timing, the MLflow calls one trial makes are replayed
on a copy of the search's database, and Optuna's sampler is timed on its own over N trials.

Example:
    OMP_NUM_THREADS=1 python benchmarks/bench_scale.py --n 100 1000
    python benchmarks/bench_scale.py --n 4 --arms tune search

Prints a markdown table of wall times (bare Tune with its defaults, bare Tune reusing workers, the search, the ratios,
the floor N × 1 s ÷ slots), then one table per N of where each arm's time per trial goes.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

REPORTS, SLEEP_S = 10, 0.1

SLEEP_METHOD = '''
"""A method that trains nothing: ten reports through ``run.report``, 0.1 s apart, each timed into a probe file."""

import time

IMPORTED = time.time()  # in a worker: when the search's trial code imported this module

import dataclasses
import json
import os

import psutil

from autoinv.config import BaseConfig


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """The shared fields, the searched value and where probes go."""

    x: float = 0.5
    """Reported as val/acc."""
    probe_dir: str = ""
    """Folder for one JSON per trial (timestamps of this trial's life)."""


def fit(cfg, run):
    entered = time.time()
    resume_start = time.perf_counter()
    run.resume()  # what every method does first; fresh trials get None
    resume_s = time.perf_counter() - resume_start
    report_s = []
    for epoch in range(cfg.epochs):
        time.sleep(0.1)
        start = time.perf_counter()
        run.report(epoch, {"val/acc": cfg.x})
        report_s.append(time.perf_counter() - start)
    probe = {
        "pid": os.getpid(),
        "process_started": psutil.Process().create_time(),
        "imported": IMPORTED,
        "entered": entered,
        "left": time.time(),
        "resume_s": resume_s,
        "report_s": report_s,
    }
    with open(os.path.join(cfg.probe_dir, f"{os.getpid()}-{entered}.json"), "w") as f:
        json.dump(probe, f)
    return {"val/acc": cfg.x}
'''

SCALE_SEARCH = """
METHOD = "sleep_method"
METRIC = "val/acc"
MODE = "max"
BASE = {{"probe_dir": {probes!r}}}


def space(trial):
    trial.suggest_float("x", 0.0, 1.0)
    return {{}}
"""


def bare_trainable(config: dict[str, Any]) -> None:
    """Bare Tune's trial: the same sleeps and reports as the sleep method, with the same probe."""
    import psutil
    from ray import tune

    entered = time.time()
    report_s = []
    for epoch in range(REPORTS):
        time.sleep(SLEEP_S)
        start = time.perf_counter()
        tune.report({"val/acc": config["x"], "epoch": epoch + 1})
        report_s.append(time.perf_counter() - start)
    probe = {
        "pid": os.getpid(),
        "process_started": psutil.Process().create_time(),
        "imported": entered,
        "entered": entered,
        "left": time.time(),
        "resume_s": 0.0,
        "report_s": report_s,
    }
    with open(os.path.join(os.environ["BENCH_SCALE_PROBES"], f"{os.getpid()}-{entered}.json"), "w") as f:
        json.dump(probe, f)


def run_search(n: int, cpus: int, folder: str) -> dict[str, Any]:
    """Time ``python -m autoinv.search`` on the sleep method in an empty folder; return its wall time and probes."""
    user, work, probes = (os.path.join(folder, name) for name in ("user", "work", "probes"))
    for path in (user, work, probes):
        os.makedirs(path)
    with open(os.path.join(user, "sleep_method.py"), "w") as f:
        f.write(SLEEP_METHOD)
    with open(os.path.join(user, "scale_search.py"), "w") as f:
        f.write(SCALE_SEARCH.format(probes=probes))
    command = [sys.executable, "-m", "autoinv.search", os.path.join(user, "scale_search.py"), "--num-samples", str(n)]
    command += ["--scheduler", "fifo", "--max-epochs", str(REPORTS), "--cpus-per-trial", "1"]
    env = {**os.environ, "RAY_OVERRIDE_RESOURCES": json.dumps({"CPU": cpus})}
    started, lines = time.time(), []
    with subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as p:
        for line in p.stdout:  # each console line with when it came: "search …: N trials" is printed before Tune starts
            lines.append((time.time(), line))
    wall = time.time() - started
    if p.returncode != 0:
        raise SystemExit(f"search failed (rc {p.returncode}):\n{''.join(line for _, line in lines)[-3000:]}")
    tune_starts = next(t for t, line in lines if line.startswith("search ") and " trials of " in line)
    # A trial keeps its newest two epoch files, autoinv_epoch_NNNNN.pt: the newest number says how many it saved.
    kept = glob.glob(os.path.join(work, "autoinv_results", "*", "*", "autoinv_epoch_*.pt"))
    trials = {os.path.dirname(path) for path in kept}
    last = [max(int(p[-8:-3]) for p in kept if os.path.dirname(p) == t) for t in trials]
    return {
        "wall": wall,
        "started": started,
        "setup": tune_starts - started,
        "probes": read_probes(probes),
        "checkpoints_per_trial": statistics.mean(last) + 1 if last else 0.0,
        "db": os.path.join(work, "mlflow.db"),
    }


def run_tune(n: int, cpus: int, folder: str, reuse_actors: bool = False) -> dict[str, Any]:
    """Time bare Ray Tune on :func:`bare_trainable`, Ray's start included (its defaults, or reusing workers)."""
    import ray
    from ray import tune

    probes = os.path.join(folder, "probes")
    os.makedirs(probes)
    os.environ["BENCH_SCALE_PROBES"] = probes  # the workers inherit it
    started = time.time()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False)  # never a running cluster
    tuner = tune.Tuner(
        bare_trainable,
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(num_samples=n, reuse_actors=reuse_actors),
        run_config=tune.RunConfig(storage_path=folder, verbose=0),
    )
    tuner.fit()
    wall = time.time() - started
    ray.shutdown()
    return {"wall": wall, "started": started, "probes": read_probes(probes), "checkpoints_per_trial": 0.0}


def read_probes(folder: str) -> list[dict[str, Any]]:
    """The probes the trials wrote into ``folder``."""
    probes = []
    for name in os.listdir(folder):
        with open(os.path.join(folder, name)) as f:
            probes.append(json.load(f))
    return probes


def breakdown(arm: dict[str, Any], slots: int) -> dict[str, float]:
    """Per-trial figures from one arm's probes (seconds, medians unless said)."""
    probes = arm["probes"]
    fit_s = [p["left"] - p["entered"] for p in probes]
    reports = [s for p in probes for s in p["report_s"]]
    # Workers Ray prestarts (or starts for the first trials) wait for the driver's set-up; only workers born after
    # the first trial began count toward start-up, and a reused worker's only for the first trial it ran.
    first = min(p["entered"] for p in probes)
    firsts = {p["pid"]: p for p in sorted(probes, key=lambda p: p["entered"], reverse=True)}.values()
    fresh = [p["entered"] - p["process_started"] for p in firsts if p["process_started"] > first]
    by_start = sorted(probes, key=lambda p: p["entered"])
    tenth = max(len(by_start) // 10, 1)
    last = max(p["left"] for p in probes)
    return {
        "trials": len(probes),
        "processes": len({p["pid"] for p in probes}),
        "setup": arm.get("setup"),
        "first_trial": first - arm["started"],
        "wind_down": arm["started"] + arm["wall"] - max(p["left"] for p in probes),
        "startup": statistics.median(fresh) if fresh else float("nan"),
        "import_to_fit": statistics.median(p["entered"] - p["imported"] for p in firsts),
        "resume": statistics.median(p["resume_s"] for p in probes),
        "report": statistics.median(reports),
        "report_tenths": tuple(
            statistics.median(s for p in part for s in p["report_s"]) for part in (by_start[:tenth], by_start[-tenth:])
        ),
        "fit": statistics.mean(fit_s),
        # slot-seconds per trial spent outside fit: start-up, teardown, the driver's turn between trials
        "outside_fit": (slots * arm["wall"] - sum(fit_s)) / max(len(probes), 1),
        # the same from the first fit's start to the last fit's end: the gap between one trial and the next
        "between_trials": (slots * (last - first) - sum(fit_s)) / max(len(probes), 1),
        "checkpoints": arm["checkpoints_per_trial"],
    }


class _Counted:
    """An ``MlflowClient`` that counts and times every call made through it."""

    def __init__(self, client: Any) -> None:
        self._client, self.calls, self.seconds = client, 0, 0.0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.calls += 1
                self.seconds += time.perf_counter() - start

        return timed


def mlflow_per_trial(db: str, folder: str) -> dict[str, tuple[int, float]]:
    """Replay one trial's MLflow calls (as ``autoinv.search`` makes them) on a copy of a finished search's database.

    Returns ``{side: (calls, seconds)}`` for the worker (child run, tags) and the driver (per-result logging,
    closing, the final renaming and curves); the system-metrics monitor's thread is left out. The driver's are its
    most: a write per epoch, as when its writer is idle at each result (epochs queued while it writes share a call).
    """
    from autoinv import tracking

    copy = os.path.join(folder, "replay.db")
    shutil.copy(db, copy)
    uri = "sqlite:///" + copy
    plain = tracking.client_for(uri)
    experiment = plain.get_experiment_by_name("scale_search")
    (parent,) = plain.search_runs([experiment.experiment_id], f"tags.`{tracking.ROLE_TAG}` = 'search'")
    ids = (experiment.experiment_id, parent.info.run_id, "replay_trial")

    worker = _Counted(plain)
    run_id = tracking.child_run(worker, *ids, "replay", params={"x": 0.5}, tags={"autoinv.host": "h"}, node_id="n")

    driver = _Counted(plain)  # a new search's: no earlier driver's records to check first
    for epoch in range(REPORTS):
        tracking.log_epoch(driver, run_id, epoch, {"val/acc": 0.5}, {"autoinv.trial_number": "1"} if not epoch else {})
    tracking.finish_child(driver, run_id, "completed", REPORTS)
    driver.set_tag(run_id, "mlflow.runName", "#1 x=0.5")
    driver.get_metric_history(run_id, "val/acc")
    return {"worker": (worker.calls, worker.seconds), "driver": (driver.calls, driver.seconds)}


COLD_WORKER = """
import json, sys, time
import ray.tune  # a Tune worker has it already
uri, run_id, seconds = sys.argv[1], sys.argv[2], {}
def step(name, fn):
    start = time.perf_counter(); fn(); seconds[name] = time.perf_counter() - start
step("import torch (the method's first trial in a worker)", lambda: __import__("torch"))
step("import mlflow", lambda: __import__("mlflow"))
from autoinv import tracking
step("open the sqlite store (first call)", lambda: tracking.client_for(uri).get_run(run_id))
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
monitor = []
step("system-metrics monitor: start", lambda: monitor.append(SystemMetricsMonitor(run_id, resume_logging=True,
     tracking_uri=uri)) or monitor[0].start())
step("system-metrics monitor: finish", lambda: monitor[0].finish())
print(json.dumps(seconds))
"""


def cold_worker(db: str, folder: str) -> dict[str, float]:
    """What a fresh worker process pays before ``fit`` (as ``autoinv.search.trial`` does it), step by step."""
    from autoinv import tracking

    uri = "sqlite:///" + os.path.join(folder, "replay.db")
    (run,) = tracking.client_for(uri).search_runs(
        [tracking.client_for(uri).get_experiment_by_name("scale_search").experiment_id], max_results=1
    )
    done = subprocess.run(
        [sys.executable, "-c", COLD_WORKER, uri, run.info.run_id], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def optuna_per_trial(n: int) -> tuple[float, float]:
    """Mean seconds per suggest + complete of the search's own searcher (OptunaSearch, TPE): first and last 10."""
    from autoinv import search as autoinv_search

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "scale_search.py")
        with open(path, "w") as f:
            f.write(SCALE_SEARCH.format(probes=folder))
        with open(os.path.join(folder, "sleep_method.py"), "w") as f:
            f.write(SLEEP_METHOD)
        module = autoinv_search.load_search(path)
        searcher = autoinv_search._searcher(module, "bench", 0, REPORTS, n)
        searcher.set_search_properties(module.METRIC, module.MODE, {"epochs": REPORTS})
        times = []
        for i in range(n):
            start = time.perf_counter()
            config = searcher.suggest(f"t{i}")
            searcher.on_trial_complete(f"t{i}", {"val/acc": config["x"], "epoch": REPORTS})
            times.append(time.perf_counter() - start)
    return statistics.mean(times[:10]), statistics.mean(times[-10:])


ARMS = {
    "tune": ("bare Tune", lambda n, cpus, folder: run_tune(n, cpus, folder)),
    "tune_reuse": ("bare Tune, reuse_actors", lambda n, cpus, folder: run_tune(n, cpus, folder, reuse_actors=True)),
    "search": ("search", run_search),
}
"""The arms: bare Tune as its defaults run it (a new worker per trial), bare Tune reusing workers (what the search
does), and the search's full driver."""


def main() -> None:
    """Run every arm for every N; print the wall-time table, then each N's per-trial breakdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000], help="numbers of trials (default 100 1000)")
    parser.add_argument("--cpus", type=int, default=os.cpu_count(), help="CPUs for Ray, one trial each")
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS), help="which arms (default all)")
    args = parser.parse_args()
    results: dict[int, dict[str, Any]] = {}
    for n in args.n:
        results[n] = {}
        for arm in args.arms:
            with tempfile.TemporaryDirectory() as folder:
                measured = ARMS[arm][1](n, args.cpus, folder)
                results[n][arm] = breakdown(measured, args.cpus) | {"wall": measured["wall"]}
                if arm == "search":
                    results[n]["mlflow"] = mlflow_per_trial(measured["db"], folder)
                    results[n]["cold"] = cold_worker(measured["db"], folder)
            print(f"n={n} {arm}: {measured['wall']:.1f} s", file=sys.stderr, flush=True)
        if "search" in results[n]:
            results[n]["optuna"] = optuna_per_trial(n)

    def cell(n: int, arm: str, key: str = "wall", fmt: str = "{:.1f} s") -> str:
        value = results[n].get(arm, {}).get(key)
        return "–" if value is None else fmt.format(value)

    def ratio(n: int, over: str) -> str:
        r = results[n]
        return f"{r['search']['wall'] / r[over]['wall']:.2f}×" if "search" in r and over in r else "–"

    names = [ARMS[arm][0] for arm in ARMS]
    print(f"| N | {' | '.join(names)} | search ÷ bare Tune | search ÷ reusing | floor (N × 1 s ÷ {args.cpus} slots) |")
    print("|---|---|---|---|---|---|---|")
    for n in results:
        walls = " | ".join(cell(n, arm) for arm in ARMS)
        floor = n * REPORTS * SLEEP_S / args.cpus
        print(f"| {n} | {walls} | {ratio(n, 'tune')} | {ratio(n, 'tune_reuse')} | {floor:.0f} s |")

    rows = [  # (label, key, format); seconds per trial unless said
        ("trials run / worker processes they ran in", None, None),
        ("driver set-up before Tune starts (whole search)", "setup", "{:.1f} s"),
        ("time to first trial (start → first fit entry; whole search)", "first_trial", "{:.1f} s"),
        ("worker start-up (process born → its first fit entry)", "startup", "{:.2f} s"),
        ("… of it after the method imported (MLflow child run, monitor)", "import_to_fit", "{:.3f} s"),
        ("`run.resume()` (lists the trial's storage)", "resume", "{:.3f} s"),
        ("one report (search: epoch file + `tune.report`)", "report", "{:.3f} s"),
        ("… in the first / last tenth of the trials (by start)", "report_tenths", "{0[0]:.3f} / {0[1]:.3f} s"),
        ("epoch files written per trial", "checkpoints", "{:.0f}"),
        ("fit (10 × 0.1 s sleeps + reports)", "fit", "{:.2f} s"),
        ("slot time outside fit (slots × wall − Σ fit) ÷ N", "outside_fit", "{:.2f} s"),
        ("… of it between trials (first fit start → last fit end)", "between_trials", "{:.2f} s"),
        ("wind-down (last fit end → exit; whole search)", "wind_down", "{:.1f} s"),
    ]
    for n, r in results.items():
        print(f"\n| N = {n}, per trial | {' | '.join(names)} |")
        print("|---|---|---|---|")
        for label, key, fmt in rows:
            if key is None:
                cells = [f"{r[a]['trials']} / {r[a]['processes']}" if a in r else "–" for a in ARMS]
            else:
                cells = [cell(n, arm, key, fmt) for arm in ARMS]
            print(f"| {label} | {' | '.join(cells)} |")
        if "mlflow" in r:
            for side, (calls, seconds) in r["mlflow"].items():
                label = f"MLflow calls by the {side} (replayed on the search's db" + (
                    ", a write per epoch: the most)" if side == "driver" else ")"
                )
                print(f"| {label} | – | – | {calls} in {seconds:.3f} s |")
            for step, seconds in r["cold"].items():
                print(f"| a fresh worker process, measured alone afterwards: {step} | – | – | {seconds:.3f} s |")
            first, last = r["optuna"]
            print(f"| Optuna suggest + complete (first 10 / last 10 of {n}) | – | – | {first:.4f} / {last:.4f} s |")


if __name__ == "__main__":
    main()
