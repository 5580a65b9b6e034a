"""``python -m autoinv.search NAME|PATH``: a hyperparameter search with Ray Tune, Optuna and ASHA, tracked in MLflow.

The only module that imports ``ray.tune`` and ``optuna``. It reads a search file (``searches/<name>.py`` or a
path), builds the method's base config, checks the Ray cluster can hold the request, trains shared teachers
once, opens the MLflow parent run, then lets Tune run one trial per Optuna suggestion with ASHA stopping the
weak ones. Every trial logs to its own child run; the best trial that finished every epoch ends up on the
parent as ``best_config.yaml``.

Example:
    python -m autoinv.search transformmix --quick
    python -m autoinv.search transformmix --gpus 8 --num-samples 64
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime
import glob
import hashlib
import importlib
import importlib.util
import inspect
import logging
import math
import os
import shlex
import socket
import sys
import tempfile
import threading
import time
from types import ModuleType
from typing import Any

import yaml

from autoinv import cluster, storage, tracking
from autoinv.config import ConfigError, build_config, parse_overrides, to_dict
from autoinv.methods import METHODS, get_method

__all__ = ["main", "SearchError", "load_search", "list_searches", "base_config", "validate_space"]

EXIT_USAGE = 2


class SearchError(ValueError):
    """A user-facing problem with the command line, the search file or the cluster."""


# ---------------------------------------------------------------------------------------------------------------------
# Search files


def list_searches() -> list[str]:
    """Names of the built-in search files (``searches/<name>.py``)."""
    import searches

    folder = os.path.dirname(searches.__file__)
    return sorted(
        os.path.basename(p)[:-3]
        for p in glob.glob(os.path.join(folder, "*.py"))
        if not os.path.basename(p).startswith("_")
    )


def load_search(name_or_path: str) -> ModuleType:
    """Import a search file by built-in name or by path, and check it declares what a search needs."""
    if name_or_path.endswith(".py") or os.sep in name_or_path or os.path.isfile(name_or_path):
        module = _load_search_file(name_or_path)
    else:
        if name_or_path not in list_searches():
            raise SearchError(
                f"unknown search {name_or_path!r}; built-in searches: {', '.join(list_searches())} "
                "(or a path to a .py file)"
            )
        module = importlib.import_module(f"searches.{name_or_path}")
        module.NAME = name_or_path
    _check_search(module, name_or_path)
    return module


def _load_search_file(path: str) -> ModuleType:
    """Import a user's search file under a name derived from its absolute path, registered in ``sys.modules``.

    Tune pickles the searcher (and with it ``space``) by reference at every save, and a resumed driver unpickles
    it: the module must be importable under the same name in both processes, so the name is a digest of the
    path (``hash()`` differs per process) and the module is registered before it runs.
    """
    if not os.path.isfile(path):
        raise SearchError(f"search file {path!r} does not exist")
    if not path.endswith(".py"):
        raise SearchError(f"search file {path!r} is not a Python file; give a .py file or a built-in search name")
    absolute = os.path.realpath(path)
    name = "autoinv_user_search_" + hashlib.sha1(absolute.encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, absolute)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # a user's file can fail in any way; report it in one line
        del sys.modules[name]
        first = (str(error).strip().splitlines() or [""])[0]
        raise SearchError(f"search file {path!r} does not import: {type(error).__name__}: {first}") from None
    module.NAME = os.path.basename(path)[:-3]
    return module


def _check_search(module: ModuleType, where: str) -> None:
    missing = [name for name in ("METHOD", "METRIC", "MODE", "BASE", "space") if not hasattr(module, name)]
    if missing:
        raise SearchError(f"search file {where!r} lacks {', '.join(missing)}; see searches/erm.py for the layout")
    if not callable(module.space):
        raise SearchError(f"search file {where!r}: space must be a function space(trial) -> dict")
    try:  # a registered method, or the user's own beside the file or at a module path
        cluster.import_method(module.METHOD, getattr(module, "__file__", None))
    except cluster.ClusterError as error:
        raise SearchError(f"search file {where!r}: {error}") from None
    if not str(module.METRIC).startswith("val/"):
        raise SearchError(f"search file {where!r}: METRIC {module.METRIC!r} must be a val/* metric (never test)")
    if module.MODE not in ("min", "max"):
        raise SearchError(f"search file {where!r}: MODE must be 'min' or 'max'")


def base_config(search: ModuleType, quick: bool, overrides: dict[str, str], max_epochs: int | None) -> dict[str, Any]:
    """BASE, then QUICK (with ``--quick``), then ``--set`` and ``--max-epochs``; validated against the Config."""
    values = dict(search.BASE)
    if quick:
        values.update(getattr(search, "QUICK", {}))
    values.update(overrides)
    if max_epochs is not None:
        values["epochs"] = max_epochs
    method = get_method(search.METHOD)
    cfg = build_config(method.Config, values, search.METHOD)
    # Keep only what differs from the Config defaults plus what the file set: the trial config stays readable.
    return {k: v for k, v in to_dict(cfg).items() if k in values or k == "epochs"}


def validate_space(search: ModuleType, base: dict[str, Any], samples: int = 3, seed: int = 0) -> list[dict[str, Any]]:
    """Sample the space a few times with Optuna's random sampler; every sample must build a valid Config."""
    import optuna

    method = get_method(search.METHOD)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    configs = []
    for _ in range(samples):
        trial = study.ask()
        try:
            constants = search.space(trial) or {}
        except Exception as error:
            raise SearchError(f"space() of search {search.NAME!r} failed: {type(error).__name__}: {error}") from None
        values = {**base, **trial.params, **constants}
        try:
            build_config(method.Config, values, search.METHOD)
        except ConfigError as error:
            raise SearchError(f"space() of search {search.NAME!r} gives an invalid config: {error}") from None
        study.tell(trial, 0.0)
        configs.append(values)
    return configs


# ---------------------------------------------------------------------------------------------------------------------
# Inside a trial (runs in a Ray worker process)


class TuneRun:
    """The :class:`autoinv.loop.Run` of a Ray Tune trial: Tune gets metrics, storage the state, MLflow the rest.

    Each epoch's state goes straight to a file in the trial's storage folder before its metrics go to Tune, not as a
    Tune checkpoint: Tune answers a report with a checkpoint only after a second round trip (a ``save`` task it
    holds the trial's next step for), which was most of a report's cost. Epoch metrics reach MLflow from the driver
    (:func:`_outcome_callback`), which sees a result only after its file is in storage, so MLflow never holds an
    epoch that a resume will run again. Every file also carries the trial's per-epoch metrics, so epochs that were
    saved but never logged (the driver died first) are logged when the trial resumes: each epoch lands once, with
    the values of the lineage that the final model comes from.
    """

    def __init__(self, client: Any, making_run: concurrent.futures.Future, cache_dir: str) -> None:
        self.client, self.making_run, self.cache_dir = client, making_run, cache_dir
        self.history: dict[int, dict[str, float]] = {}
        self.saved: list[str] = []  # this trial's epoch files in its folder, oldest first

    @property
    def run_id(self) -> str:
        """The trial's child run; :func:`trial` makes it on a thread while ``fit`` starts, so the first use waits."""
        return self.making_run.result()

    def report(self, epoch: int, metrics: dict[str, float], state: dict[str, Any] | None = None) -> None:
        from ray import tune

        self.history[epoch] = tracking.finite_metrics(metrics)
        self._save(epoch, {"state": state or {"epoch": epoch}, "history": self.history})
        tune.report(self._result(epoch, metrics))

    def _save(self, epoch: int, payload: dict[str, Any]) -> None:
        """Write ``payload`` as this epoch's file in the trial's storage folder; delete all but the newest few."""
        import io

        import torch
        from ray import tune

        storage = tune.get_context().get_storage()
        fs, folder = storage.storage_filesystem, storage.trial_fs_path
        if not self.saved:
            fs.create_dir(folder, recursive=True)
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        path = os.path.join(folder, f"{EPOCH_FILE_PREFIX}{epoch:05d}.pt")
        with fs.open_output_stream(path) as f:
            f.write(buffer.getbuffer())
        self.saved = _prune_epoch_files(fs, [p for p in self.saved if p != path] + [path])

    def _result(self, epoch: int, metrics: dict[str, float]) -> dict[str, Any]:
        """What Tune gets: the metrics, our epoch count, and the child run's id (the driver logs there)."""
        return {**metrics, "epoch": epoch + 1, RUN_ID_KEY: self.run_id}

    def resume(self) -> dict[str, Any] | None:
        from ray import tune

        found = _newest_epoch_file()
        if found is None:
            return None
        path, payload, flat = found
        self.saved = flat
        self.history = payload["history"]
        newest = max(self.history)
        tracking.set_tags(self.client, self.run_id, {"autoinv.resumed_at_epoch": str(newest + 1)})
        logged: dict[str, set[int]] = {}  # one history query per metric name, not one per epoch
        missed: dict[int, dict[str, float]] = {}  # saved epochs MLflow lacks: logged in one call
        for epoch, metrics in sorted(self.history.items()):
            if not metrics or epoch == newest:
                continue  # the newest is reported again below; the driver logs it unless MLflow has it
            key = next(iter(metrics))
            if key not in logged:
                logged[key] = tracking.logged_steps(self.client, self.run_id, key)
            if epoch not in logged[key]:
                missed[epoch] = metrics
        tracking.log_epochs(self.client, self.run_id, missed)
        # Bring Tune (ASHA, the outcome) up to the epoch resumed from: Tune restores no state of ours, so its last
        # result for this trial is older or none.
        tune.report(self._result(newest, self.history[newest]))
        return payload["state"]

    def figure(self, name: str, fig: Any, epoch: int) -> None:
        tracking.log_figure(self.client, self.run_id, fig, f"figures/{name}/epoch_{epoch:03d}.png")

    def artifact(self, name: str, obj: dict[str, Any]) -> None:
        tracking.log_torch(self.client, self.run_id, obj, f"{name}.pt")

    def save_model(self, model: Any) -> None:
        """Searches keep each trial's epoch files in the search's storage, not the model in MLflow."""


EPOCH_FILE_PREFIX = "autoinv_epoch_"
META = "autoinv.json"  # in each search's folder: its state (running | finished), setup and plan, for --resume
NUMBER_TAG = "autoinv.trial_number"  # the trial's number in the console and in its run name, in order of start
KEEP_EPOCH_FILES = 2  # per trial in storage: the newest, and the one before in case the newest was cut off
RUN_ID_KEY = "autoinv_run_id"  # in every result: the trial's child run, so the driver never searches MLflow for it


def _prune_epoch_files(fs: Any, saved: list[str], keep: int = KEEP_EPOCH_FILES) -> list[str]:
    """Delete all of a trial's epoch files but the newest ``keep``; return those kept.

    Args:
        fs: the storage's ``pyarrow.fs.FileSystem``.
        saved: paths of the trial's ``autoinv_epoch_NNNNN.pt`` files on ``fs``, oldest first.
        keep: how many of the newest files stay.

    Returns:
        The paths kept, oldest first.
    """
    for path in saved[:-keep]:
        try:
            fs.delete_file(path)
        except FileNotFoundError:
            pass
    return saved[-keep:]


def _newest_epoch_file() -> tuple[str, dict[str, Any], list[str]] | None:
    """The newest complete epoch file of this trial in storage: its path, its contents and the trial's own files.

    Files are named by epoch; one cut off mid-write fails to load and the one before it is used. The folder may
    also hold ``checkpoint_NNNNNN`` folders, Tune checkpoints where searches started by earlier versions of autoinv
    kept the same files; those are read, never deleted. The third item lists the files directly in the folder,
    oldest first, for :func:`_prune_epoch_files`.
    """
    import io

    import pyarrow.fs
    import torch
    from ray import tune

    storage = tune.get_context().get_storage()
    selector = pyarrow.fs.FileSelector(storage.trial_fs_path, recursive=True, allow_not_found=True)
    names = sorted(
        (
            info.path
            for info in storage.storage_filesystem.get_file_info(selector)
            if os.path.basename(info.path).startswith(EPOCH_FILE_PREFIX)
        ),
        key=os.path.basename,
    )
    flat = [path for path in names if os.path.dirname(path) == storage.trial_fs_path.rstrip("/")]
    for path in reversed(names):
        try:
            with storage.storage_filesystem.open_input_file(path) as f:
                return path, torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=True), flat
        except Exception:  # a file the killed attempt did not finish writing
            continue
    return None


def trial(config: dict[str, Any], setup: dict[str, Any]) -> None:
    """The function trainable: one trial = one ``fit`` of the method with this config.

    Tune runs trial after trial in the same worker process (``reuse_actors``), so nothing here may assume a fresh
    process: imports, the dataset cache and MLflow's store are shared by its trials; everything a trial owns (its
    child run, its monitor, its :class:`TuneRun`) is made anew per call.
    """
    import logging

    import ray
    from ray import tune

    logging.getLogger("ray.train").setLevel(logging.WARNING)  # Ray's info lines per report and restore are noise
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    context = tune.get_context()
    method = get_method(setup["method"])
    client = tracking.client_for(setup["tracking_uri"])
    gpu_ids = ",".join(str(g) for g in ray.get_gpu_ids())
    node_id = ray.get_runtime_context().get_node_id()
    # The child run (3 MLflow calls) is made on a thread while the method loads its data and builds its networks:
    # a reused worker otherwise waits for it between every two trials. Nothing before the first report needs it.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="autoinv-child-run") as maker:
        making_run = maker.submit(
            tracking.child_run,
            client,
            setup["experiment_id"],
            setup["parent_id"],
            context.get_trial_id(),
            context.get_trial_name(),
            params=config,
            tags={
                "autoinv.gpu_ids": gpu_ids,
                "autoinv.method": setup["method"],
                "autoinv.node_id": node_id,
                "autoinv.host": socket.gethostname(),
                "autoinv.pid": str(os.getpid()),  # the Ray worker's, which runs trial after trial (and names its log)
                "autoinv.gpu_names": _gpu_names() if gpu_ids else "",  # torch's import waits for the method, if any
                tracking.SEARCH_RUN_TAG: setup.get("search_run", ""),
                **setup.get("context_tags", {}),  # the driver's user, source and commit: where the search came from
            },
            node_id=node_id,  # a trial retried elsewhere after its node died keeps the list of where it ran
        )
        _fit_trial(method, setup, config, TuneRun(client, making_run, setup["cache_dir"]))
        making_run.result()  # a fit that never reported still fails if its run could not be made


def _fit_trial(method: ModuleType, setup: dict[str, Any], config: dict[str, Any], run: TuneRun) -> None:
    """Build the method's Config from the trial's config (``runs:/`` fields fetched); fit it, reporting to ``run``."""
    from autoinv import loop

    fields = getattr(method, "ARTIFACT_FIELDS", {})
    downloads = storage.local_folder(setup["cache_dir"])  # runs:/ artifacts need a local file on this node
    values = tracking.resolve_artifact_fields(fields, config, downloads, setup["tracking_uri"])
    cfg = build_config(method.Config, values, setup["method"])
    monitor = None
    if setup.get("system_metrics", False):
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        # CPU, memory, disk, network and (through nvidia-ml-py) GPU use, as system/* metrics of the trial's run;
        # a retried trial continues the steps. MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL overrides the 10 s.
        monitor = SystemMetricsMonitor(run.run_id, resume_logging=True, tracking_uri=setup["tracking_uri"])
        monitor.start()
    if _WORKER_GENERATORS:  # a reused worker: start from what a fresh one has, so reuse changes no trial's result
        loop.set_generator_states(_WORKER_GENERATORS[0])
    else:
        _WORKER_GENERATORS.append(loop.generator_states())
    try:
        method.fit(cfg, run)
    finally:
        if monitor is not None:
            monitor.finish()


_WORKER_GENERATORS: list[Any] = []
"""The global generators' states at this worker process's first trial (the one process-wide thing a trial keeps)."""


def _gpu_names() -> str:
    """The names of the GPUs this trial sees (Ray sets ``CUDA_VISIBLE_DEVICES``), comma-separated."""
    import torch

    return ",".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))


def _outcome_callback(setup: dict[str, Any], max_epochs: int, metric: str) -> Any:
    from ray import tune
    from ray.tune.result import AUTO_RESULT_KEYS

    tracking_uri = setup["tracking_uri"]
    tune_keys = {*AUTO_RESULT_KEYS, "done", "trial_id", "experiment_tag", "epoch"}  # every result key but the method's

    class MlflowOutcomes(tune.Callback):
        """Driver side: logs each epoch's metrics, once its epoch file is saved; closes each child run when done.

        A run closes as completed, stopped early (and when) or failed. The MLflow calls run in order on one writer
        thread: a trial's next epoch waits for Tune's answer to its report, and a database write there would add to
        every epoch of every trial. Epochs that arrive while the writer is busy are logged together, one call per
        run. Whenever Tune snapshots the experiment, the writer has caught up first, so a
        resumed search never finds an event in Tune's state that MLflow missed; an error of a write is raised at the
        next event.
        """

        client: Any = None  # made when Tune starts: Tune pickles its callbacks with the experiment, clients do not
        writer: Any = None

        def setup(self, **info: Any) -> None:
            self.client = tracking.client_for(tracking_uri)
            self.writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="autoinv-mlflow")
            self.writes: list[concurrent.futures.Future] = []
            self.epochs: list[tuple[str, int, dict[str, float], int | None, bool]] = []  # for the writer's next call
            self.epochs_lock = threading.Lock()
            self.run_ids: dict[str, str] = {}  # of trials running now
            self.logged: dict[str, int] = {}  # the newest epoch this driver logged of each trial
            self.numbers: dict[str, int] = {}
            self.inherited: set[str] | None = None  # trials Tune restored from a killed driver's state

        def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
            if self.inherited is None:  # the first step, before any result: a new search has no trials yet
                self.inherited = {trial.trial_id for trial in trials}

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.numbers.setdefault(trial.trial_id, len(self.numbers) + 1)  # as the console numbers them

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            epoch = int(result["epoch"]) - 1
            if epoch <= self.logged.get(trial.trial_id, -1):
                return  # a retried trial's catch-up report of the epoch it resumed from, logged already
            first = trial.trial_id not in self.logged  # the trial made its child run before its first report
            self.logged[trial.trial_id] = epoch
            self.run_ids[trial.trial_id] = result[RUN_ID_KEY]
            metrics = {
                k: v
                for k, v in result.items()
                if k not in tune_keys and isinstance(v, (int, float)) and not isinstance(v, bool)
            }
            number = self.numbers.get(trial.trial_id) if first else None
            inherited = first and trial.trial_id in (self.inherited or set())
            self._queue_epoch(result[RUN_ID_KEY], epoch, metrics, number, inherited)

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            epochs = int((trial.last_result or {}).get("epoch", 0))
            self._close(trial, "completed" if epochs >= max_epochs else "stopped_early", epochs)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._close(trial, "failed", int((trial.last_result or {}).get("epoch", 0)), _last_line(trial))

        def get_state(self) -> None:
            """Called as Tune snapshots the experiment, before the snapshot is stored: the writer catches up."""
            self._wait_for_writes()

        def on_experiment_end(self, trials: list, **info: Any) -> None:
            """Move to MLflow's trash the child runs of trials Tune no longer knows.

            A trial that starts just before the driver is killed can make its child run (a reused worker does within
            milliseconds) before Tune saves the trial in its experiment state; the resumed search asks Optuna again
            and runs that work as a new trial. The orphan never closes; left, it would count as a trial twice.
            """
            self._wait_for_writes()
            self.writer.shutdown()
            known = {trial.trial_id for trial in trials}
            for run in tracking.child_runs(self.client, setup["experiment_id"], setup["parent_id"]):
                if run.data.tags.get(tracking.TRIAL_TAG) not in known and tracking.OUTCOME_TAG not in run.data.tags:
                    self.client.set_tag(run.info.run_id, "autoinv.superseded", "started before a kill; ran again anew")
                    self.client.set_terminated(run.info.run_id, status="KILLED")
                    self.client.delete_run(run.info.run_id)

        def _close(self, trial: Any, outcome: str, epochs: int, error: str = "") -> None:
            run_id = self.run_ids.pop(trial.trial_id, None)
            self._write(self._finish, run_id, trial.trial_id, str(trial), trial.config, outcome, epochs, error)

        def _queue_epoch(self, *epoch: Any) -> None:
            """Queue an epoch for MLflow; those that come while the writer is busy go in its next call, one per run.

            With many short trials a write per epoch would keep a core busy, and hold the GIL that Tune's loop needs.
            """
            with self.epochs_lock:
                self.epochs.append(epoch)
                if len(self.epochs) > 1:
                    return  # the write queued with the first of them has not started: it takes this one too
            self._write(self._log_queued)

        def _log_queued(self) -> None:
            with self.epochs_lock:
                queued, self.epochs = self.epochs, []
            by_run: dict[str, tuple[dict[int, dict[str, float]], dict[str, str]]] = {}
            for run_id, epoch, metrics, number, inherited in queued:
                if inherited:  # a trial's first epoch here, queued before any other of it
                    self._log_inherited(run_id, epoch, metrics, number)
                    continue
                epochs, tags = by_run.setdefault(run_id, ({}, {}))
                epochs[epoch] = metrics
                if number is not None:
                    tags[NUMBER_TAG] = str(number)
            for run_id, (epochs, tags) in by_run.items():
                tracking.log_epochs(self.client, run_id, epochs, tags)

        def _log_inherited(self, run_id: str, epoch: int, metrics: dict[str, float], number: int | None) -> None:
            """Log the first epoch seen of a trial a killed driver ran, which may have numbered it and logged it."""
            tags = {NUMBER_TAG: str(number)} if number is not None else {}
            if NUMBER_TAG in self.client.get_run(run_id).data.tags:
                tags = {}
            if epoch in tracking.logged_steps(self.client, run_id, metric):
                tracking.set_tags(self.client, run_id, tags)
                return  # a resumed trial's catch-up report of an epoch a killed driver had logged already
            tracking.log_epoch(self.client, run_id, epoch, metrics, tags)

        def _finish(self, run_id: str | None, trial_id: str, name: str, config: dict, *outcome: Any) -> None:
            if run_id is None:  # it failed before its first report: find its run, or make one to say so
                run_id = tracking.child_run(
                    self.client, setup["experiment_id"], setup["parent_id"], trial_id, name, config, {}
                )
            tracking.finish_child(self.client, run_id, *outcome)

        def _write(self, fn: Any, *args: Any) -> None:
            """Queue ``fn(*args)`` on the writer thread, after raising the error of any earlier write that failed."""
            for done in [write for write in self.writes if write.done()]:
                self.writes.remove(done)
                done.result()
            self.writes.append(self.writer.submit(fn, *args))

        def _wait_for_writes(self) -> None:
            writes, self.writes = self.writes, []
            for write in writes:
                write.result()

    return MlflowOutcomes()


def _searcher(search: ModuleType, run_name: str, seed: int, max_epochs: int, num_samples: int) -> Any:
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    class FidelityAwareOptunaSearch(OptunaSearch):
        """Tells Optuna a trial ASHA stopped early is PRUNED, so TPE does not learn truncated scores as final.

        After a killed driver, Tune's saved state can hold a trial that the searcher's older saved state never
        suggested; Optuna then has no record of it, so its results go to Tune and MLflow only.
        """

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            if trial_id in self._ot_trials:
                super().on_trial_result(trial_id, result)

        def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
            if trial_id not in self._ot_trials:
                return
            if result and not error and int(result.get("epoch", max_epochs)) < max_epochs:
                if trial_id not in self._completed_trials:
                    self._completed_trials.add(trial_id)  # first: a result still in flight must not reach Optuna
                    try:
                        self._ot_study.tell(self._ot_trials[trial_id], state=optuna.trial.TrialState.PRUNED)
                    except RuntimeError:
                        # GridSampler stops the study once its last point is told, and Study.stop raises outside
                        # study.optimize, after the trial is already closed (Ray's own tell catches it too).
                        pass
                return
            super().on_trial_complete(trial_id, result, error)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    grid = getattr(search, "GRID", None)
    if grid:
        sampler = optuna.samplers.GridSampler(grid, seed=seed)
    else:
        # Random start-up trials: a third of the budget, between 2 and 10, then TPE models the space jointly.
        startup = min(10, max(2, num_samples // 3))
        sampler = optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed, n_startup_trials=startup)
    return FidelityAwareOptunaSearch(
        space=search.space, metric=search.METRIC, mode=search.MODE, sampler=sampler, study_name=run_name
    )


def _scheduler(name: str, max_epochs: int, grace_period: int, reduction_factor: int) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler

    if name == "asha":
        return ASHAScheduler(
            time_attr="epoch",  # ours, not Tune's count: a resumed trial may skip ahead of Tune's last result
            max_t=max_epochs,
            grace_period=min(grace_period, max_epochs),
            reduction_factor=reduction_factor,
        )
    if name == "hyperband":
        return HyperBandScheduler(time_attr="epoch", max_t=max_epochs, reduction_factor=reduction_factor)
    return FIFOScheduler()


# ---------------------------------------------------------------------------------------------------------------------
# The driver


@dataclasses.dataclass
class Plan:
    """Everything the driver decided before starting Ray; printed by ``--dry-run``."""

    search: str
    method: str
    metric: str
    mode: str
    config: dict[str, Any]
    num_samples: int
    max_epochs: int
    scheduler: str
    gpus: float
    gpus_per_trial: float
    cpus_per_trial: float
    max_concurrent: int
    max_concurrent_cap: int
    storage: str
    tracking_uri: str
    experiment: str
    address: str
    seed: int
    max_failures: int
    grace_period: int
    reduction_factor: int
    system_metrics: bool = True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m autoinv.search",
        description="Search a method's hyperparameters with Ray Tune + Optuna + ASHA, tracked in MLflow.",
    )
    parser.add_argument("search", nargs="?", help="built-in search name (see --list) or path to a search file")
    parser.add_argument("--list", action="store_true", help="list built-in searches and methods, then exit")
    parser.add_argument("--quick", action="store_true", help="small offline run on the CPU (the file's QUICK settings)")
    parser.add_argument("--num-samples", type=int, help="number of trials (default: the file's NUM_SAMPLES)")
    parser.add_argument("--max-epochs", type=int, help="epochs per trial (ASHA's max_t); overrides the config")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override base config fields")
    parser.add_argument("--gpus", type=float, default=0, help="GPUs the whole search may use (default 0)")
    parser.add_argument(
        "--gpus-per-trial", type=float, help="GPUs per trial; fractions pack trials (default 1 with --gpus)"
    )
    parser.add_argument("--cpus-per-trial", type=float, default=1, help="CPUs per trial (default 1)")
    parser.add_argument("--max-concurrent", type=int, help="cap on trials running at once")
    parser.add_argument("--scheduler", choices=("asha", "fifo", "hyperband"), default="asha")
    parser.add_argument("--grace-period", type=int, default=1, help="ASHA: epochs before the first cut (default 1)")
    parser.add_argument("--reduction-factor", type=int, default=3, help="ASHA/HyperBand reduction factor (default 3)")
    parser.add_argument("--max-failures", type=int, default=2, help="retries of a failed trial from its checkpoint")
    parser.add_argument(
        "--address", default="", help="join a running Ray cluster (HOST:PORT or auto); default: start one"
    )
    parser.add_argument(
        "--storage",
        default="",
        help="checkpoints, teacher cache and search metadata: a folder (default ./autoinv_results) or a URI "
        "such as s3://bucket/path?endpoint_override=HOST:PORT&scheme=http or gs://bucket/path",
    )
    parser.add_argument("--tracking-uri", default="", help="MLflow tracking URI (default sqlite:///<cwd>/mlflow.db)")
    parser.add_argument("--experiment", default="", help="MLflow experiment name (default: the search name)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler and the trials' base seed")
    parser.add_argument("--resume", action="store_true", help="continue the latest interrupted search of this name")
    parser.add_argument("--dry-run", action="store_true", help="validate and print the plan; start nothing")
    parser.add_argument("--verbose", action="store_true", help="Ray Tune's own progress tables and Ray's logs too")
    parser.add_argument(
        "--no-system-metrics",
        dest="system_metrics",
        action="store_false",
        help="do not record CPU, memory and GPU use in each trial's run (MLflow's monitor, every 10 s)",
    )
    return parser


def make_plan(args: argparse.Namespace) -> tuple[Plan, ModuleType]:
    """Validate the command line and the search file; no side effects."""
    if not args.search:
        raise SearchError("name a search (python -m autoinv.search --list shows them)")
    _check_options(args)
    search = load_search(args.search)
    overrides = parse_overrides(args.set)
    if args.seed:
        overrides.setdefault("seed", str(args.seed))
    config = base_config(search, args.quick, overrides, args.max_epochs)
    validate_space(search, config, seed=args.seed)
    tracking_uri = args.tracking_uri or tracking.default_tracking_uri()
    _preflight(search.METHOD, config, tracking_uri)
    gpus_per_trial = args.gpus_per_trial if args.gpus_per_trial is not None else (1.0 if args.gpus else 0.0)
    if gpus_per_trial > 0 and args.gpus == 0:
        raise SearchError("--gpus-per-trial needs --gpus N (the total the search may use)")
    if gpus_per_trial > args.gpus:
        raise SearchError(f"--gpus-per-trial {gpus_per_trial} is more than --gpus {args.gpus}")
    if gpus_per_trial > 1:  # a trial trains on one device: more would sit reserved and idle
        raise SearchError(
            f"--gpus-per-trial {gpus_per_trial:g}: a trial trains on one GPU, so the others would sit idle; "
            "use 1, or a fraction (0.5, 0.25) to pack trials onto each GPU"
        )
    num_samples = args.num_samples or (
        getattr(search, "QUICK_NUM_SAMPLES", 6) if args.quick else getattr(search, "NUM_SAMPLES", 16)
    )
    grid = getattr(search, "GRID", None)
    if grid and not args.num_samples:
        num_samples = int(math.prod(len(v) for v in grid.values()))
    concurrent = (
        _trials_per_gpus(args.gpus, gpus_per_trial)
        if gpus_per_trial
        else max(1, int((os.cpu_count() or 1) // args.cpus_per_trial))
    )
    if args.max_concurrent:
        concurrent = min(concurrent, args.max_concurrent)
    plan = Plan(
        search=search.NAME,
        method=search.METHOD,
        metric=search.METRIC,
        mode=search.MODE,
        config=config,
        num_samples=num_samples,
        max_epochs=int(config["epochs"]),
        scheduler=args.scheduler,
        gpus=args.gpus,
        gpus_per_trial=gpus_per_trial,
        cpus_per_trial=args.cpus_per_trial,
        max_concurrent=max(1, concurrent),
        max_concurrent_cap=args.max_concurrent or 0,
        storage=os.path.abspath(args.storage or "autoinv_results") if "://" not in args.storage else args.storage,
        tracking_uri=tracking_uri,
        experiment=args.experiment or search.NAME,
        address=args.address,
        seed=args.seed,
        max_failures=args.max_failures,
        grace_period=args.grace_period,
        reduction_factor=args.reduction_factor,
        system_metrics=args.system_metrics,
    )
    return plan, search


def _trials_per_gpus(gpus: float, per_trial: float) -> int:
    """Trials Ray can place at once: a fraction packs ⌊1/f⌋ per whole GPU (0.3 → 3, never 3.33), whole GPUs divide."""
    if per_trial < 1:
        whole = int(math.floor(gpus + 1e-9))
        return whole * int(math.floor(1 / per_trial + 1e-9)) + int(math.floor((gpus - whole) / per_trial + 1e-9))
    return int(math.floor(gpus / per_trial + 1e-9))


def _check_options(args: argparse.Namespace) -> None:
    """Every numeric option in its range and every path option usable, before anything is read or written."""
    at_least = {  # option: (value, smallest allowed, what the smallest means)
        "--num-samples": (args.num_samples, 1, ""),
        "--max-epochs": (args.max_epochs, 1, ""),
        "--max-concurrent": (args.max_concurrent, 1, ""),
        "--grace-period": (args.grace_period, 1, ""),
        "--reduction-factor": (args.reduction_factor, 2, ""),
        "--max-failures": (args.max_failures, -1, " (-1 retries forever)"),
        "--gpus": (args.gpus, 0, ""),
    }
    for option, (value, low, note) in at_least.items():
        if value is not None and value < low:
            raise SearchError(f"{option} must be >= {low}{note}, got {value:g}")
    for option, value in (("--gpus-per-trial", args.gpus_per_trial), ("--cpus-per-trial", args.cpus_per_trial)):
        if value is not None and not value > 0:  # also NaN
            raise SearchError(f"{option} must be > 0, got {value:g}; leave --gpus out for CPU-only trials")
    if args.storage and "://" not in args.storage and os.path.exists(args.storage) and not os.path.isdir(args.storage):
        raise SearchError(f"--storage {args.storage!r} is a file; give a folder (or an s3:// / gs:// URI)")
    if args.resume and args.dry_run:
        raise SearchError("--resume and --dry-run do not go together; --dry-run alone shows the plan")


def _preflight(method_name: str, config: dict[str, Any], tracking_uri: str = "") -> None:
    """Fail before anything starts when the dataset is missing, a model name is unknown or an artifact is bad.

    ``runs:/`` references in the method's artifact fields are fetched into a temporary folder (removed after the
    check), so the method's own ``preflight`` sees the local file a trial will see.
    """
    from autoinv.data import load_dataset
    from autoinv.models import MODELS

    method = get_method(method_name)
    check = getattr(method, "preflight", None)
    if check is not None:  # methods with their own datasets, nets or layer names validate themselves
        with tempfile.TemporaryDirectory() as folder:
            values = tracking.resolve_artifact_fields(
                getattr(method, "ARTIFACT_FIELDS", {}), config, folder, tracking_uri
            )
            check(build_config(method.Config, values, method_name))
        return
    cfg = build_config(method.Config, config, method_name)
    load_dataset(cfg.dataset, data_dir=cfg.data_dir, val_fraction=cfg.val_fraction)
    for field in ("model", "teacher_arch", "student_model"):
        name = getattr(cfg, field, None)
        if isinstance(name, str) and name and not name.startswith("tv:") and name not in MODELS:
            raise SearchError(f"{field}={name!r} is not a known model; known: {', '.join(sorted(MODELS))}")


def _connect_ray(plan: Plan, verbose: bool = False) -> dict[str, float]:
    import ray

    os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")  # keep relative paths (data, search files) meaningful
    os.environ.setdefault("RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS", "0")
    # Ray >= 2.59 announces token authentication on every local start; our own line says what matters.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    if plan.address and plan.address != "auto" and ":" in plan.address:
        host, port = plan.address.replace("ray://", "").rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=5).close()
        except (OSError, ValueError):
            raise SearchError(
                f"no Ray cluster answers at {plan.address}; start one with `ray start --head` or drop --address"
            ) from None
    if not plan.address:  # a local cluster gets this machine's GPUs: refuse before starting Ray at all
        import torch

        if plan.gpus > torch.cuda.device_count():
            raise SearchError(
                f"--gpus {plan.gpus:g} asked, but this machine has {torch.cuda.device_count()} GPUs; "
                "lower --gpus or join a bigger cluster with --address"
            )
    try:
        level = logging.INFO if verbose else logging.WARNING  # "Started a local Ray instance." and the like
        code = cluster.runtime_env(plan.method, joining=bool(plan.address))  # what every worker must import
        if plan.address:
            ray.init(address=plan.address, log_to_driver=verbose, logging_level=level, runtime_env=code)
        else:
            ray.init(
                address="local",
                include_dashboard=False,
                object_store_memory=512 * 1024**2,
                log_to_driver=verbose,
                logging_level=level,
                runtime_env=code,
            )
    except ConnectionError as error:
        raise SearchError(f"cannot join the Ray cluster at {plan.address}: {str(error).splitlines()[0]}") from None
    resources = ray.cluster_resources()
    if plan.gpus > resources.get("GPU", 0):
        ray.shutdown()
        raise SearchError(
            f"--gpus {plan.gpus:g} asked, but the Ray cluster has {resources.get('GPU', 0):g} GPUs; "
            "lower --gpus or join a bigger cluster with --address"
        )
    if plan.cpus_per_trial > resources.get("CPU", 0):
        ray.shutdown()
        raise SearchError(
            f"--cpus-per-trial {plan.cpus_per_trial:g} is more than the cluster's {resources.get('CPU', 0):g} CPUs"
        )
    return resources


def _train_teachers(plan: Plan, cache_dir: str) -> dict[str, str]:
    """Train (or find cached) every teacher the base config needs, once, in Ray tasks, before trials start."""
    method = get_method(plan.method)
    specs_fn = getattr(method, "teacher_specs", None)
    if specs_fn is None:
        return {}
    cfg = build_config(method.Config, plan.config, plan.method)
    # Teachers train before any trial starts, so each may take a whole node's CPUs (as on the driver before).
    cpus = max(plan.cpus_per_trial, cluster.largest_node_cpus(with_gpu=plan.gpus > 0))
    return cluster.train_teachers(specs_fn(cfg), cache_dir, gpus=plan.gpus, cpus=cpus)


def _latest_resumable(plan: Plan) -> storage.Storage:
    """The newest search folder of ``plan.search`` in its storage whose ``autoinv.json`` is not finished."""
    store = storage.open_storage(plan.storage)
    for name in reversed([n for n in store.list_folders() if n.startswith(f"{plan.search}-")]):
        folder = store.join(name)
        if folder.exists(META) and folder.read_json(META).get("state") != "finished":
            return folder
    raise SearchError(
        f"nothing to resume: no interrupted search {plan.search!r} under {plan.storage}; start one without --resume"
    )


def _quiet() -> None:
    """Ray, Tune, MLflow and Optuna keep to what a user must read (``--verbose`` skips this)."""
    import warnings

    import optuna

    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")  # fast trials trip it
    # Tune's newer console prints its experiment box and a TensorBoard hint even at verbose=0; the older is silent.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # MLflow sets its own level when first imported
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # a server's "View run" per closed run
    for name in ("ray", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # TPE's multivariate/group


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def _progress_callback(plan: Plan, status_every_s: float = 30.0) -> Any:
    """The search's console: one line per trial event, a status line every ``status_every_s`` seconds."""
    from ray import tune

    class Progress(tune.Callback):
        def setup(self, **info: Any) -> None:
            self.start = self.last_status = time.time()
            self.numbers: dict[str, int] = {}
            self.best: tuple[float, int] | None = None

        def _say(self, trial: Any, text: str) -> None:
            number = self.numbers.setdefault(trial.trial_id, len(self.numbers) + 1)
            print(f"[{_clock(time.time() - self.start)}] #{number} {text}", file=sys.stderr, flush=True)

        def _value(self, result: dict | None) -> str:
            value = (result or {}).get(plan.metric)
            return f"{plan.metric} {value:.4f}" if isinstance(value, (int, float)) else f"no {plan.metric} yet"

        def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            searched = {k: v for k, v in trial.config.items() if k not in plan.config or plan.config[k] != v}
            again = "restarted" if trial.trial_id in self.numbers else "started"
            self._say(trial, f"{again}  " + " ".join(f"{k}={tracking.short_value(v)}" for k, v in searched.items()))

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            self._say(trial, f"epoch {int(result['epoch'])}/{plan.max_epochs}  {self._value(result)}")
            value = result.get(plan.metric)
            if isinstance(value, (int, float)) and int(result["epoch"]) >= plan.max_epochs:
                sign = 1 if plan.mode == "max" else -1
                if self.best is None or sign * value > sign * self.best[0]:
                    self.best = (value, self.numbers[trial.trial_id])

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            epochs = int((trial.last_result or {}).get("epoch", 0))
            if epochs >= plan.max_epochs:
                self._say(trial, f"completed  {self._value(trial.last_result)}")
            else:
                self._say(trial, f"stopped by {plan.scheduler} after epoch {epochs}  {self._value(trial.last_result)}")

        def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._say(trial, f"failed, retried from its last checkpoint: {_last_line(trial)}")

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self._say(trial, f"failed: {_last_line(trial)} (traceback: {trial.error_file})")

        def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
            if time.time() - self.last_status < status_every_s:
                return
            self.last_status = time.time()
            counts: dict[str, int] = {}
            for trial in trials:
                counts[trial.status] = counts.get(trial.status, 0) + 1
            best = f", best {plan.metric} {self.best[0]:.4f} (#{self.best[1]})" if self.best else ""
            states = ", ".join(f"{n} {state.lower()}" for state, n in sorted(counts.items()))
            print(
                f"[{_clock(time.time() - self.start)}] {states} of {plan.num_samples}{best}",
                file=sys.stderr,
                flush=True,
            )

    return Progress()


def _last_line(trial: Any) -> str:
    error = trial.get_error()
    return str(error).strip().splitlines()[-1] if error else "unknown error"


def run_search(plan: Plan, search: ModuleType, resume: bool = False, verbose: bool = False) -> dict[str, Any]:
    """Run (or resume) the search; return a summary dict (best run id, metric, config)."""
    from ray import tune

    store = storage.open_storage(plan.storage)
    if resume:
        experiment_dir = _latest_resumable(plan)
        meta = experiment_dir.read_json(META)
        if not tune.Tuner.can_restore(experiment_dir.path, storage_filesystem=experiment_dir.fs):
            raise SearchError(
                f"{experiment_dir.uri} holds no restorable Tune state; start a new search without --resume"
            )
        plan = dataclasses.replace(
            plan, **{k: meta["plan"][k] for k in ("config", "num_samples", "max_epochs", "tracking_uri", "experiment")}
        )
        setup = meta["setup"]
    run_name = experiment_dir.name if resume else f"{plan.search}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    cache_dir = store.join("cache").uri  # a URI string: trials open it on their node
    if not verbose:
        _quiet()
    resources = _connect_ray(plan, verbose)  # before touching MLflow: a refused cluster leaves nothing behind
    if plan.address:  # several nodes: each imports the driver's autoinv and sees a local --storage
        cluster.check_nodes(plan.storage)
    if plan.address and plan.tracking_uri.startswith("sqlite:"):
        print(
            "note: a sqlite tracking URI works on one node only; on a multi-node cluster pass --tracking-uri http://…",
            file=sys.stderr,
        )
    if not plan.gpus_per_trial and not resume:  # CPU-only trials: as many at once as the cluster's CPUs hold
        fits = max(1, int(resources.get("CPU", 1) // plan.cpus_per_trial))
        plan = dataclasses.replace(plan, max_concurrent=min(fits, plan.max_concurrent_cap or fits))
    client = tracking.client_for(plan.tracking_uri)
    if resume:
        client.update_run(setup["parent_id"], status="RUNNING")
    teacher_tags = _train_teachers(plan, cache_dir)

    if not resume:
        experiment_dir = store.join(run_name)
        experiment_id = tracking.get_or_create_experiment(
            client, plan.experiment, artifact_root=tracking.artifact_root(plan.tracking_uri)
        )
        note = tracking.server_artifacts_note(client, experiment_id, plan.tracking_uri)
        if note:
            print(note, file=sys.stderr)
        commit = tracking.git_commit()
        context_tags = tracking.context_tags(commit)
        parent_id = tracking.create_parent_run(
            client,
            experiment_id,
            run_name,
            tags={
                **context_tags,
                "autoinv.search": plan.search,
                "autoinv.method": plan.method,
                "autoinv.metric": plan.metric,
                "autoinv.mode": plan.mode,
                "autoinv.git_commit": commit,
                "autoinv.storage": experiment_dir.uri,
                **teacher_tags,
                **{f"version.{k}": v for k, v in tracking.package_versions().items()},
            },
            params={
                **{f"cli.{k}": v for k, v in dataclasses.asdict(plan).items() if k != "config"},
                **{f"base.{k}": v for k, v in plan.config.items()},
            },
        )
        tracking.text_artifact(client, parent_id, inspect.getsource(search), f"search/{plan.search}.py")
        tracking.text_artifact(client, parent_id, " ".join(sys.argv), "search/command.txt")
        setup = {
            "method": plan.method,
            "tracking_uri": plan.tracking_uri,
            "experiment_id": experiment_id,
            "parent_id": parent_id,
            "cache_dir": cache_dir,
            "search_run": run_name,
            "context_tags": context_tags,
            "system_metrics": plan.system_metrics,
        }
        tracking.share_trials_view(client, experiment_id, run_name, plan.metric, plan.mode, [])
        experiment_dir.write_json(
            META, {"state": "running", "setup": setup, "plan": dataclasses.asdict(plan), "search": search.__file__}
        )

    # Tune's own per-trial result files (CSV, JSON, TensorBoard, each flushed and fsynced at every result) repeat
    # what MLflow holds; on the driver they were a fifth of its work per result (py-spy, 200 one-second trials).
    # A user who wants them back sets TUNE_DISABLE_AUTO_CALLBACK_LOGGERS=0.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    # The ResultGrid that ``fit()`` returns reads those files, and warns per trial that they are missing; we never
    # use it (the summary comes from MLflow).
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    resources = {"cpu": plan.cpus_per_trial, "gpu": plan.gpus_per_trial}
    trainable = tune.with_resources(tune.with_parameters(trial, setup=setup), resources)
    print(
        f"search {run_name}: {plan.num_samples} trials of {plan.method}, up to {plan.max_concurrent} at once, "
        f"{plan.max_epochs} epochs each, {plan.scheduler}; MLflow: {plan.tracking_uri}\n"
        f"watch: {_look(plan, setup['experiment_id'], run_name)}",
        file=sys.stderr,
        flush=True,
    )
    if resume:
        tuner = tune.Tuner.restore(
            experiment_dir.path,
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=experiment_dir.fs,
        )
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=dict(plan.config),
            tune_config=tune.TuneConfig(
                metric=plan.metric,
                mode=plan.mode,
                search_alg=_searcher(search, run_name, plan.seed, plan.max_epochs, plan.num_samples),
                scheduler=_scheduler(plan.scheduler, plan.max_epochs, plan.grace_period, plan.reduction_factor),
                num_samples=plan.num_samples,
                max_concurrent_trials=plan.max_concurrent,
                # The next trial runs in the finished one's worker: no process start, no imports, no new MLflow
                # store per trial (5.5 s a trial on 2 cores). Trials all ask for the same resources, which it needs.
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                name=run_name,
                storage_path=store.path,  # the same filesystem as ours: one split of the URI, its query kept
                storage_filesystem=store.fs,
                failure_config=tune.FailureConfig(max_failures=plan.max_failures),
                callbacks=[
                    _outcome_callback(setup, plan.max_epochs, plan.metric),
                    *([] if verbose else [_progress_callback(plan)]),
                ],
                verbose=1 if verbose else 0,
            ),
        )
    tuner.fit()
    return _finish(plan, search, client, setup, experiment_dir, run_name)


def _finish(
    plan: Plan, search: ModuleType, client: Any, setup: dict[str, Any], experiment_dir: storage.Storage, run_name: str
) -> dict[str, Any]:
    children = tracking.child_runs(client, setup["experiment_id"], setup["parent_id"])
    closed = [run for run in children if tracking.OUTCOME_TAG in run.data.tags]
    if len(closed) < plan.num_samples:
        client.set_terminated(setup["parent_id"], status="KILLED")
        print(
            f"search interrupted with {len(closed)}/{plan.num_samples} trials done; "
            f"continue it with: python -m autoinv.search {plan.search} --resume"
            + (f" --storage {shlex.quote(plan.storage)}" if plan.storage != os.path.abspath("autoinv_results") else ""),
            file=sys.stderr,
        )
        return {"interrupted": True}
    children.sort(key=lambda run: (int(run.data.tags.get(NUMBER_TAG, 1 << 30)), run.info.start_time))
    names = tracking.trial_run_names(
        [{k: _param_value(v) for k, v in c.data.params.items()} for c in children], plan.config
    )
    for child, name in zip(children, names):  # Ray's trial ids (trial_b21f34f7) say nothing to a reader
        client.set_tag(child.info.run_id, "mlflow.runName", name)
    values = [c.data.params for c in children]
    searched = sorted(k for k in set().union(*values) if len({v.get(k) for v in values}) > 1)
    view = tracking.share_trials_view(client, setup["experiment_id"], run_name, plan.metric, plan.mode, searched)
    best = tracking.best_child(client, setup["experiment_id"], setup["parent_id"], plan.metric, plan.mode)
    summary: dict[str, Any] = {
        "run_name": run_name,
        "parent_run_id": setup["parent_id"],
        "experiment_id": setup["experiment_id"],
        "trials": len(children),
        "view": view,
    }
    figure = tracking.curves_figure(client, children, plan.metric, best.info.run_id if best else "")
    tracking.log_figure(client, setup["parent_id"], figure, f"{plan.metric.replace('/', '_')}_curves.png")
    summary["importances"] = _log_importances(plan, search, client, setup["parent_id"], children)
    if best is not None:
        best_config = {k: _param_value(v) for k, v in best.data.params.items()}
        value = best.data.metrics[plan.metric]
        client.set_tag(setup["parent_id"], "autoinv.best_run_id", best.info.run_id)
        client.log_metric(setup["parent_id"], f"best/{plan.metric}", value)
        document = {
            "method": plan.method,
            "search": plan.search,
            "metric": plan.metric,
            "value": value,
            "config": best_config,
        }
        tracking.text_artifact(
            client, setup["parent_id"], yaml.safe_dump(document, sort_keys=False), "best_config.yaml"
        )
        summary.update(best_run_id=best.info.run_id, metric=plan.metric, value=value, config=best_config)
    client.set_terminated(setup["parent_id"], status="FINISHED")
    experiment_dir.write_json(META, {**experiment_dir.read_json(META), "state": "finished"})
    _print_summary(plan, summary, children)
    return summary


def _param_value(text: str) -> Any:
    """MLflow params are strings; YAML parsing gives back numbers and booleans."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, bool, str, list)) or value is None else text


def _param_importances(plan: Plan, search: ModuleType, configs: list[dict[str, Any]], values: list[float]) -> dict:
    """The fANOVA importance of each searched parameter for the trials' last reported ``plan.metric``.

    The trials are replayed into an in-memory Optuna study through the search's own ``space`` (each config
    enqueued, so every suggest returns the trial's value and records its distribution); a trial ASHA stopped
    counts with the value it stopped at.
    """
    import optuna

    study = optuna.create_study(direction="maximize" if plan.mode == "max" else "minimize")
    for config, value in zip(configs, values):
        study.enqueue_trial(config, skip_if_exists=False)
        trial = study.ask()
        search.space(trial)
        study.tell(trial, value)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=plan.seed)
    return optuna.importance.get_param_importances(study, evaluator=evaluator)


def _log_importances(plan: Plan, search: ModuleType, client: Any, parent_id: str, children: list) -> dict[str, float]:
    """Log ``importance.<param>`` metrics and a bar chart on the parent when at least 3 trials reported."""
    import warnings

    import matplotlib.pyplot as plt

    reported = [c for c in children if plan.metric in c.data.metrics]
    if len(reported) < 3:
        return {}
    configs = [{k: _param_value(v) for k, v in c.data.params.items()} for c in reported]
    try:
        with warnings.catch_warnings():  # enqueued keys that space() does not suggest (the base config) are fine
            warnings.simplefilter("ignore")
            importances = _param_importances(plan, search, configs, [c.data.metrics[plan.metric] for c in reported])
    except Exception as error:  # never lose a finished search to its epilogue
        print(f"parameter importances not computed: {type(error).__name__}: {error}", file=sys.stderr)
        return {}
    tracking.log_epoch(client, parent_id, 0, {f"importance.{k}": v for k, v in importances.items()})
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.4 * len(importances)))
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel(f"fANOVA importance for {plan.metric} ({len(reported)} trials)")
    fig.tight_layout()
    tracking.log_figure(client, parent_id, fig, "param_importances.png")
    return importances


def _look(plan: Plan, experiment_id: str, view: str) -> str:
    """How to open the search's trials in the MLflow UI."""
    url = tracking.runs_view_url(plan.tracking_uri, experiment_id, view=view)
    if tracking.is_server(plan.tracking_uri):  # the server is the UI: nothing to start
        return url
    return f"mlflow ui --backend-store-uri {plan.tracking_uri}, then open {url}"


def _print_summary(plan: Plan, summary: dict[str, Any], children: list) -> None:
    outcomes: dict[str, int] = {}
    for run in children:
        outcome = run.data.tags.get(tracking.OUTCOME_TAG, "running")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    counts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(outcomes.items()))
    lines = ["", f"search {summary['run_name']} done: {len(children)} trials ({counts})"]
    if "best_run_id" in summary:
        lines.append(f"best {plan.metric} = {summary['value']:.4f} (run {summary['best_run_id']})")
        searched = {k: v for k, v in summary["config"].items() if k not in plan.config or plan.config[k] != v}
        lines.append("best config (searched values): " + ", ".join(f"{k}={v}" for k, v in searched.items()))
    else:
        lines.append("no trial finished every epoch, so there is no best config")
    if summary.get("importances"):
        shown = ", ".join(f"{k} {v:.2f}" for k, v in summary["importances"].items())
        lines.append(f"what mattered (fANOVA importance for {plan.metric}): {shown}")
    lines += [
        f"look:   {_look(plan, summary['experiment_id'], summary['view'])}",
        f"export: python -m autoinv.export {plan.experiment} -o best.yaml"
        + ("" if plan.tracking_uri == tracking.default_tracking_uri() else f" --tracking-uri {plan.tracking_uri}"),
        "train:  python -m autoinv.train best.yaml --seeds 0 1 2",
    ]
    print("\n".join(lines), flush=True)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; user errors print one line and return exit status 2."""
    args = _parser().parse_args(argv)
    if args.list:
        print("searches:", " ".join(list_searches()))
        print("methods: ", " ".join(sorted(METHODS)))
        return 0
    try:
        plan, search = make_plan(args)
        if args.dry_run:
            print(yaml.safe_dump({"plan": dataclasses.asdict(plan)}, sort_keys=False))
            return 0
        tracking.check_tracking_uri(plan.tracking_uri)
        storage.open_storage(plan.storage).check()  # before Ray or MLflow start: a bad bucket leaves nothing behind
        run_search(plan, search, resume=args.resume, verbose=args.verbose)
    except (SearchError, ConfigError, tracking.TrackingError, storage.StorageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as error:  # the data, model or teacher layers raise ValueError subclasses for bad input
        if type(error).__name__.endswith("Error") and type(error) is not ValueError:
            print(f"error: {str(error).splitlines()[0]}", file=sys.stderr)
            return EXIT_USAGE
        raise
    return 0


def _exit(code: int) -> None:
    """Leave the process with ``code``; without the interpreter's teardown when nothing was started.

    Tearing torch down takes ~0.5 s on 2 cores, a third of a ``--dry-run``. When neither Ray nor MLflow was imported
    (help, dry runs, argument errors) there is no worker, thread or run to close, so after flushing the output the
    process ends at once.
    """
    if "ray" in sys.modules or "mlflow" in sys.modules:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
