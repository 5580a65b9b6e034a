"""End to end through real Ray Tune, Optuna, ASHA and MLflow (sqlite in a temp dir), then export and train.

One tiny search (6 trials of ERM on `digits`) is shared by the checks of what landed in the database, the
export → train round trip, the MLflow REST API and the notebook. Resume and the simulated 8-GPU cluster run
their own searches.
"""

import contextlib
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import types
import urllib.request

import pytest
import yaml

from autoinv import tracking
from tests.test_cli import ROOT, python_path

TINY_SEARCH = [
    "erm",
    "--quick",
    "--num-samples",
    "6",
    "--max-epochs",
    "3",
    "--reduction-factor",
    "2",
    "--set",
    "dataset=digits",
    "train_subset=400",
    "steps_per_epoch=6",
    "batch_size=32",
]


def env_for(folder):
    return {
        **os.environ,
        "PYTHONPATH": python_path(),
        "AUTOINV_DATA": os.path.join(str(folder), "data"),
        "RAY_DEDUP_LOGS": "0",
        "PYTHONUNBUFFERED": "1",
    }


def cli(module, *args, cwd, timeout=600, extra_env=None):
    return subprocess.run(
        [sys.executable, "-m", f"autoinv.{module}", *args],
        cwd=cwd,
        env={**env_for(cwd), **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def by_path(args, folder):
    """The same search run as a user's own file: a copy of ``searches/erm.py`` beside the run, passed by path."""
    shutil.copyfile(os.path.join(ROOT, "searches", "erm.py"), os.path.join(folder, "erm.py"))
    return ["./erm.py", *args[1:]]


def all_artifacts(client, run_id, path=None):
    """Every artifact file under ``path`` of a run, recursively."""
    files = []
    for entry in client.list_artifacts(run_id, path):
        files += all_artifacts(client, run_id, entry.path) if entry.is_dir else [entry.path]
    return files


def children_of(client, name):
    experiment = client.get_experiment_by_name(name)
    parents = client.search_runs([experiment.experiment_id], filter_string="tags.`autoinv.role` = 'search'")
    assert len(parents) == 1
    return parents[0], tracking.child_runs(client, experiment.experiment_id, parents[0].info.run_id)


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    folder = tmp_path_factory.mktemp("search")
    started = time.perf_counter()
    # A search file by path, through Ray; system metrics every second so that these short trials record some.
    result = cli(
        "search", *by_path(TINY_SEARCH, folder), cwd=folder, extra_env={"MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1"}
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return folder, result, time.perf_counter() - started


def test_database_holds_parent_children_metrics_outcomes_and_pictures(searched):
    folder, result, seconds = searched
    print(f"tiny search took {seconds:.0f} s")
    client = tracking.client_for(tracking.default_tracking_uri(str(folder)))
    parent, children = children_of(client, "erm")
    assert len(children) == 6
    assert len({c.data.tags[tracking.TRIAL_TAG] for c in children}) == 6
    outcomes = [c.data.tags.get(tracking.OUTCOME_TAG) for c in children]
    assert set(outcomes) <= {"completed", "stopped_early"}
    assert "stopped_early" in outcomes, "ASHA should stop at least one of 6 trials"
    for child in children:
        history = client.get_metric_history(child.info.run_id, "val/acc")
        steps = sorted(m.step for m in history)
        assert steps == list(range(len(steps))) and steps, "one val/acc per epoch, with the epoch as step"
        if child.data.tags[tracking.OUTCOME_TAG] == "completed":
            assert len(steps) == 3 and child.info.status == "FINISHED"
        else:
            assert int(child.data.tags["autoinv.stopped_at_epoch"]) == len(steps) < 3
            assert child.info.status == "KILLED"
        assert child.data.params["dataset"] == "digits" and "lr" in child.data.params
        if child.data.tags[tracking.OUTCOME_TAG] == "completed":  # a trial stopped after one epoch can end before
            assert "system/cpu_utilization_percentage" in child.data.metrics  # the monitor's first sample (1 s)
        for key in ("mlflow.user", "mlflow.source.name", "autoinv.node_id", "autoinv.host", "autoinv.gpu_names"):
            assert key in child.data.tags, key
        pictures = [a.path for a in client.list_artifacts(child.info.run_id, "figures/augmented_samples")]
        assert pictures and all(p.endswith(".png") for p in pictures)
    workers = {c.data.tags["autoinv.pid"] for c in children}
    assert len(workers) <= 3, "6 trials, 2 at once: Tune runs trial after trial in the same workers (reuse_actors)"
    best_id = parent.data.tags["autoinv.best_run_id"]
    best = client.get_run(best_id)
    completed = [c for c in children if c.data.tags[tracking.OUTCOME_TAG] == "completed"]
    assert best.data.metrics["val/acc"] == max(c.data.metrics["val/acc"] for c in completed)
    parent_files = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"best_config.yaml", "val_acc_curves.png", "param_importances.png"} <= parent_files
    importances = {k: v for k, v in parent.data.metrics.items() if k.startswith("importance.")}
    assert set(importances) == {"importance.lr", "importance.weight_decay", "importance.augment"}, importances
    assert sum(importances.values()) == pytest.approx(1.0) and "what mattered" in result.stdout
    for key in ("autoinv.git_commit", "version.torch", "version.ray", "version.mlflow", "version.optuna"):
        assert key in parent.data.tags
    assert parent.data.tags["mlflow.user"] and parent.data.tags["mlflow.source.name"]
    assert f"best val/acc = {best.data.metrics['val/acc']:.4f}" in result.stdout
    experiment = client.get_experiment_by_name("erm")
    assert experiment.tags[tracking.KIND_TAG] == "custom_model_development", "the UI must open on the runs table"
    assert f"http://127.0.0.1:5000/#/experiments/{experiment.experiment_id}/runs" in result.stdout
    names = sorted(c.info.run_name for c in children)
    assert [n.split()[0] for n in names] == [f"#{i}" for i in range(1, 7)], names
    assert all(len(n.split()) == 4 and "lr=" in " ".join(names) for n in names), names


def test_console_is_one_line_per_trial_event_numbered_as_the_runs(searched):
    folder, result, _ = searched
    console = (result.stdout + result.stderr).splitlines()
    # 6 trials x (start + up to 3 epochs + end) + a status line every 30 s + the summary; was ~300 lines of boxes.
    assert len(console) <= 6 * 5 + 10 + 10, "\n".join(console)
    for noise in ("INFO", "Warning", "TensorBoard", "╭", "Trial status"):
        assert not [line for line in console if noise in line], noise
    client = tracking.client_for(tracking.default_tracking_uri(str(folder)))
    _, children = children_of(client, "erm")
    for child in children:  # "#k started  lr=... " shows the values run "#k ..." was trained with
        number = child.data.tags["autoinv.trial_number"]
        assert child.info.run_name.split()[0] == f"#{number}"
        started = next(line for line in console if f"] #{number} started" in line).split("started")[1].split()
        for pair in started:
            key, value = pair.split("=", 1)
            assert tracking.short_value(yaml.safe_load(child.data.params[key])) == value, (child.info.run_name, pair)
        outcome = child.data.tags[tracking.OUTCOME_TAG]
        ended = f"#{number} completed" if outcome == "completed" else f"#{number} stopped by asha after epoch"
        assert any(ended in line for line in console), (ended, console)


def test_export_then_train_reproduces_the_best_trial(searched):
    folder, _, _ = searched
    exported = cli("export", "erm", "-o", "best.yaml", cwd=folder)
    assert exported.returncode == 0, exported.stderr[-3000:]
    document = yaml.safe_load((folder / "best.yaml").read_text())
    client = tracking.client_for(tracking.default_tracking_uri(str(folder)))
    best = client.get_run(document["provenance"]["run_id"])
    assert document["method"] == "erm" and document["config"]["dataset"] == "digits"
    assert document["provenance"]["value"] == best.data.metrics["val/acc"]
    seed = document["config"]["seed"]
    trained = cli("train", "best.yaml", "--seeds", str(seed), cwd=folder, extra_env={"OMP_NUM_THREADS": "1"})
    assert trained.returncode == 0, trained.stderr[-3000:]
    final = client.get_experiment_by_name("erm-final")
    runs = client.search_runs([final.experiment_id], filter_string="tags.`autoinv.role` = 'trial'")
    assert len(runs) == 1
    assert abs(runs[0].data.metrics["val/acc"] - best.data.metrics["val/acc"]) <= 0.01
    assert "test/acc" in runs[0].data.metrics
    assert "test/acc:" in trained.stdout and "±" in trained.stdout
    assert client.search_logged_models([final.experiment_id]), "the trained model is logged with mlflow.pytorch"


def test_a_child_run_whose_trial_tune_forgot_goes_to_the_trash_at_the_end(tmp_path):
    """A trial started just before a kill can make its run before Tune saves it; the resumed search runs it anew."""
    from autoinv import search

    client = tracking.client_for(tracking.default_tracking_uri(str(tmp_path)))
    experiment_id = tracking.get_or_create_experiment(client, "erm", tracking.artifact_root("", str(tmp_path)))
    parent_id = tracking.create_parent_run(client, experiment_id, "erm-1", tags={}, params={})
    runs = {
        trial_id: tracking.child_run(client, experiment_id, parent_id, trial_id, trial_id, {"lr": 0.1}, {})
        for trial_id in ("kept", "closed_orphan", "orphan")
    }
    tracking.finish_child(client, runs["kept"], "completed", 3)
    tracking.finish_child(client, runs["closed_orphan"], "stopped_early", 1)  # closed: a finished trial, kept
    outcomes = search._outcome_callback(
        {"tracking_uri": client.tracking_uri, "experiment_id": experiment_id, "parent_id": parent_id}, 3, "val/acc"
    )
    outcomes.setup()
    outcomes.on_experiment_end(trials=[types.SimpleNamespace(trial_id="kept")])
    left = {r.data.tags[tracking.TRIAL_TAG] for r in tracking.child_runs(client, experiment_id, parent_id)}
    assert left == {"kept", "closed_orphan"}
    gone = client.get_run(runs["orphan"])
    assert gone.info.lifecycle_stage == "deleted" and gone.info.status == "KILLED"


def test_the_drivers_mlflow_writes_are_all_done_when_tune_snapshots_and_a_failed_one_is_raised(tmp_path):
    """Epochs and closes go to a writer thread so reports do not wait on the database; nothing may be lost or hidden."""
    from autoinv import search

    client = tracking.client_for(tracking.default_tracking_uri(str(tmp_path)))
    experiment_id = tracking.get_or_create_experiment(client, "erm", tracking.artifact_root("", str(tmp_path)))
    parent_id = tracking.create_parent_run(client, experiment_id, "erm-1", tags={}, params={})
    run_id = tracking.child_run(client, experiment_id, parent_id, "t1", "t1", {"lr": 0.1}, {})
    outcomes = search._outcome_callback(
        {"tracking_uri": client.tracking_uri, "experiment_id": experiment_id, "parent_id": parent_id}, 3, "val/acc"
    )
    outcomes.setup()
    trial = types.SimpleNamespace(trial_id="t1", config={"lr": 0.1}, last_result={"epoch": 3})
    outcomes.on_trial_start(iteration=0, trials=[trial], trial=trial)
    for epoch in range(1, 4):
        result = {"val/acc": 0.1 * epoch, "epoch": epoch, search.RUN_ID_KEY: run_id, "training_iteration": epoch}
        outcomes.on_trial_result(iteration=epoch, trials=[trial], trial=trial, result=result)
    outcomes.on_trial_complete(iteration=4, trials=[trial], trial=trial)
    assert outcomes.get_state() is None  # Tune stores nothing of ours; the call waits for the writer
    run = client.get_run(run_id)
    history = client.get_metric_history(run_id, "val/acc")
    assert [(m.step, round(m.value, 6)) for m in history] == [(0, 0.1), (1, 0.2), (2, 0.3)]
    assert run.info.status == "FINISHED" and run.data.tags[tracking.OUTCOME_TAG] == "completed"
    assert run.data.tags[search.NUMBER_TAG] == "1"

    gone = types.SimpleNamespace(trial_id="t2", config={}, last_result={"epoch": 1})
    result = {"val/acc": 0.5, "epoch": 1, search.RUN_ID_KEY: "no-such-run"}
    outcomes.on_trial_result(iteration=5, trials=[gone], trial=gone, result=result)
    with pytest.raises(Exception, match="no-such-run"):
        outcomes.get_state()


def test_epochs_that_come_while_the_drivers_writer_is_busy_go_to_mlflow_in_one_call_per_run(tmp_path):
    """With many short trials a database write per epoch is the driver's cost; queued epochs are written together."""
    import threading

    from autoinv import search

    client = tracking.client_for(tracking.default_tracking_uri(str(tmp_path)))
    experiment_id = tracking.get_or_create_experiment(client, "erm", tracking.artifact_root("", str(tmp_path)))
    parent_id = tracking.create_parent_run(client, experiment_id, "erm-1", tags={}, params={})
    outcomes = search._outcome_callback(
        {"tracking_uri": client.tracking_uri, "experiment_id": experiment_id, "parent_id": parent_id}, 3, "val/acc"
    )
    outcomes.setup()
    batches = []
    log_batch = outcomes.client.log_batch
    outcomes.client.log_batch = lambda run_id, **entities: (batches.append(run_id), log_batch(run_id, **entities))
    release = threading.Event()
    outcomes._write(release.wait)  # the writer is busy with an earlier write
    trials = [types.SimpleNamespace(trial_id=f"t{i}", config={}, last_result={"epoch": 3}) for i in (1, 2)]
    run_ids = {
        t.trial_id: tracking.child_run(client, experiment_id, parent_id, t.trial_id, t.trial_id, {}, {}) for t in trials
    }
    for trial in trials:
        outcomes.on_trial_start(iteration=0, trials=trials, trial=trial)
    for epoch in range(1, 4):
        for trial in trials:
            result = {"val/acc": 0.1 * epoch, "epoch": epoch, search.RUN_ID_KEY: run_ids[trial.trial_id]}
            outcomes.on_trial_result(iteration=epoch, trials=trials, trial=trial, result=result)
    release.set()
    outcomes.get_state()
    assert sorted(batches) == sorted(run_ids.values()), "one write per run for its three epochs"
    for number, trial in enumerate(trials, start=1):
        run_id = run_ids[trial.trial_id]
        history = client.get_metric_history(run_id, "val/acc")
        assert sorted((m.step, round(m.value, 6)) for m in history) == [(0, 0.1), (1, 0.2), (2, 0.3)]
        assert client.get_run(run_id).data.tags[search.NUMBER_TAG] == str(number)
    result = {"val/acc": 0.4, "epoch": 4, search.RUN_ID_KEY: run_ids["t1"]}
    outcomes.on_trial_result(iteration=4, trials=trials, trial=trials[0], result=result)  # the writer is idle: at once
    outcomes.get_state()
    assert batches[-1] == run_ids["t1"] and len(batches) == 3


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_mlflow_server(folder, *options):
    """``mlflow server`` on a free port of 127.0.0.1 over the sqlite store in ``folder``; yields its URI when up."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        + ["--backend-store-uri", tracking.default_tracking_uri(str(folder)), *options],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        uri = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(uri + "/health", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, "mlflow server did not start"
                time.sleep(1)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_mlflow_server_rest_api_lists_the_runs(searched):
    folder, _, _ = searched
    with running_mlflow_server(folder) as base:
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=erm") as r:
            experiment_id = json.load(r)["experiment"]["experiment_id"]
        request = urllib.request.Request(
            f"{base}/api/2.0/mlflow/runs/search",
            data=json.dumps({"experiment_ids": [experiment_id], "max_results": 100}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as r:
            runs = json.load(r)["runs"]
        assert len(runs) == 7
        parents = [r for r in runs if not any(t["key"] == "mlflow.parentRunId" for t in r["data"].get("tags", []))]
        assert len(parents) == 1


def kill_after_a_trial_closes(args, folder, env, uri, log_path):
    """Start the search driver, ``kill -9`` its process group once a trial's run is closed in MLflow at ``uri``."""
    log = open(log_path, "w")  # noqa: SIM115 (the killed driver writes here until the end)
    driver = subprocess.Popen(
        [sys.executable, "-m", "autoinv.search", *args],
        cwd=folder,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 400
    closed = 0
    while closed < 1:
        assert driver.poll() is None, open(log_path).read()[-3000:]  # ended before the kill
        assert time.time() < deadline
        time.sleep(0.5)
        # Touch the database only once the driver has created it (it prints "search <name>: ..." after making the
        # parent run): two processes building a fresh MLflow schema at once can make the driver fail.
        if "search erm-" in open(log_path).read():
            try:
                client = tracking.client_for(uri)
                experiment = client.get_experiment_by_name("erm")
                if experiment:
                    runs = client.search_runs([experiment.experiment_id], "tags.`autoinv.outcome` != ''")
                    closed = len(runs)
            except Exception:  # the database may be busy or half-created: look again
                pass
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray cluster it started die at once
    driver.wait()
    log.close()
    time.sleep(2)


def assert_resumed_search_finished_every_epoch_once(client, trials):
    """After a kill and ``--resume``: ``trials`` children all closed, each epoch in every history exactly once."""
    parent, children = children_of(client, "erm")
    assert len(children) == trials, [c.info.run_name for c in children]
    assert len({c.data.tags[tracking.TRIAL_TAG] for c in children}) == trials
    assert all(c.data.tags.get(tracking.OUTCOME_TAG) in ("completed", "stopped_early") for c in children)
    assert parent.info.status == "FINISHED" and "autoinv.best_run_id" in parent.data.tags
    for child in children:  # every epoch once, none skipped, in every metric's history, across the kill
        done = int(child.data.tags["autoinv.epochs_done"])
        for key in ("val/acc", "train/loss"):
            steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, key))
            assert steps == list(range(done)), (child.data.tags[tracking.TRIAL_TAG], key, steps)
    return parent, children


def test_resume_after_killing_the_driver(tmp_path):
    # Long enough trials (30 steps an epoch) that an idle machine cannot finish all six before the kill.
    args = [*TINY_SEARCH, "--max-concurrent", "2", "--seed", "3", "--set", "steps_per_epoch=30"]
    args = by_path([a for a in args if a != "steps_per_epoch=6"], tmp_path)  # resume unpickles the file's space
    uri = tracking.default_tracking_uri(str(tmp_path))
    kill_after_a_trial_closes(args, tmp_path, env_for(tmp_path), uri, tmp_path / "driver.log")
    resumed = cli("search", *args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert_resumed_search_finished_every_epoch_once(tracking.client_for(uri), 6)
    again = cli("search", *args, "--resume", cwd=tmp_path)
    assert again.returncode == 2 and "nothing to resume" in again.stderr


def _start_ray(args, env):
    """``ray start ... --block`` in its own process group, so killing the group stops exactly that node."""
    return subprocess.Popen(
        ["ray", "start", "--block", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _start_ray_head(port, env, *resources):
    """A Ray head on 127.0.0.1:``port`` with ``resources`` (``--num-cpus=8`` ...), once it accepts connections."""
    head = _start_ray(["--head", f"--port={port}", "--include-dashboard=false", *resources], env)
    deadline = time.time() + 180
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return head
        except OSError:
            if head.poll() is not None or time.time() > deadline:
                os.killpg(head.pid, signal.SIGTERM)
                raise AssertionError("ray head did not start") from None
            time.sleep(1)


@pytest.mark.slow  # 110 s; planning concurrency for GPUs is tested in test_cli, a search on two nodes in test_cluster
def test_simulated_8_gpu_cluster_runs_8_trials_at_once(tmp_path):
    port = free_port()
    # Ray >= 2.59 turns token authentication on for clusters it starts; a driver joining by address must opt in.
    env = {**env_for(tmp_path), "RAY_AUTH_MODE": "token"}
    head = _start_ray_head(port, env, "--num-cpus=8", "--num-gpus=8")
    try:
        result = cli(
            "search",
            "erm",
            "--quick",
            "--address",
            f"127.0.0.1:{port}",
            "--gpus",
            "8",
            "--num-samples",
            "8",
            "--scheduler",
            "fifo",
            "--max-epochs",
            "2",
            "--set",
            "dataset=digits",
            "train_subset=400",
            "steps_per_epoch=40",
            "batch_size=32",
            cwd=tmp_path,
            extra_env={"RAY_AUTH_MODE": "token"},
        )
        assert result.returncode == 0, result.stderr[-4000:]
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        head.wait(timeout=120)
    client = tracking.client_for(tracking.default_tracking_uri(str(tmp_path)))
    parent, children = children_of(client, "erm")
    assert len(children) == 8
    gpu_ids = [c.data.tags["autoinv.gpu_ids"] for c in children]
    assert sorted(gpu_ids, key=int) == [str(i) for i in range(8)], gpu_ids
    assert parent.data.params["cli.max_concurrent"] == "8"
    # All 8 were alive together: the last to start began before the first to end had finished.
    assert max(c.info.start_time for c in children) < min(c.info.end_time for c in children)


def test_trials_of_a_dead_node_resume_from_their_checkpoints_on_the_survivor(tmp_path):
    port = free_port()
    env = {**env_for(tmp_path), "RAY_AUTH_MODE": "token"}  # see the 8-GPU test
    head = _start_ray_head(port, env, "--num-cpus=1")
    second = None
    deadline = time.time() + 180
    try:
        second = _start_ray([f"--address=127.0.0.1:{port}", "--num-cpus=1"], env)
        while (
            "2.0 CPU"
            not in subprocess.run(
                ["ray", "status", f"--address=127.0.0.1:{port}"], env=env, capture_output=True, text=True
            ).stdout
        ):  # the second node has joined
            assert second.poll() is None and time.time() < deadline, "the second ray node did not join"
            time.sleep(1)
        args = [*TINY_SEARCH, "--address", f"127.0.0.1:{port}", "--num-samples", "4", "--scheduler", "fifo"]
        args = [a if a != "steps_per_epoch=6" else "steps_per_epoch=250" for a in args]  # ~8 s an epoch
        log = open(tmp_path / "driver.log", "w")  # noqa: SIM115 (the driver writes here until the end)
        driver = subprocess.Popen(
            [sys.executable, "-m", "autoinv.search", *args],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        # Kill the second node once a trial on each node has logged an epoch (one CPU each: one trial each).
        uri = tracking.default_tracking_uri(str(tmp_path))
        nodes_with_progress: set[str] = set()
        while len(nodes_with_progress) < 2:
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.time() < deadline + 300
            time.sleep(0.5)
            if "search erm-" not in (tmp_path / "driver.log").read_text():
                continue  # the database is made by the driver: do not race its schema creation
            try:
                client = tracking.client_for(uri)
                experiment = client.get_experiment_by_name("erm")
                runs = client.search_runs([experiment.experiment_id], "metrics.`val/acc` >= 0") if experiment else []
                nodes_with_progress = {
                    r.data.tags["autoinv.node_id"] for r in runs if tracking.OUTCOME_TAG not in r.data.tags
                }
            except Exception:  # busy or half-created database: look again
                pass
        os.killpg(second.pid, signal.SIGKILL)
        assert driver.wait(timeout=600) == 0, (tmp_path / "driver.log").read_text()[-4000:]
        log.close()
    finally:
        for node in (second, head):
            if node is not None and node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
                node.wait(timeout=120)
    client = tracking.client_for(uri)
    parent, children = children_of(client, "erm")
    assert len(children) == 4 and parent.info.status == "FINISHED"
    assert all(c.data.tags[tracking.OUTCOME_TAG] == "completed" for c in children)
    assert len({c.data.tags["autoinv.nodes"].split(",")[0] for c in children}) == 2  # trials started on both nodes
    moved = [c for c in children if len(c.data.tags["autoinv.nodes"].split(",")) == 2]
    assert moved, "no trial was retried on the surviving node"
    assert all(int(c.data.tags.get("autoinv.resumed_at_epoch", 0)) >= 1 for c in moved)  # from a checkpoint
    for child in children:
        for key in ("val/acc", "train/loss"):
            steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, key))
            assert steps == [0, 1, 2], (child.data.tags["autoinv.nodes"], key, steps)


def _rendered_text(url):
    """The text of ``url`` as headless Chromium renders it (scripts run, then the DOM is read)."""
    page = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs the chromium package (.ci/run installs it)")
def test_mlflow_ui_opens_on_the_trials_at_the_printed_url(searched):
    folder, result, _ = searched
    url = re.search(r"then open (\S+)", result.stdout).group(1)
    port = free_port()
    ui = subprocess.Popen(
        ["mlflow", "ui", "--backend-store-uri", tracking.default_tracking_uri(str(folder)), "--port", str(port)],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert ui.poll() is None and time.time() < deadline, "mlflow ui did not start"
                time.sleep(1)
        text = _rendered_text(url.replace("127.0.0.1:5000", f"127.0.0.1:{port}"))
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=60)
    client = tracking.client_for(tracking.default_tracking_uri(str(folder)))
    _, children = children_of(client, "erm")
    assert "Training runs" in text and "Token usage" not in text, text[:2000]  # the training view, not GenAI's
    missing = [c.info.run_name for c in children if c.info.run_name not in text]
    assert not missing, (missing, text[:3000])
    assert "val/acc" in text  # the search metric is a column


def test_compare_trials_notebook_runs_headless(searched):
    import nbformat
    from nbclient import NotebookClient

    folder, _, _ = searched
    notebook = nbformat.read(os.path.join(ROOT, "notebooks", "compare_trials.ipynb"), as_version=4)
    os.environ["AUTOINV_TRACKING_URI"] = tracking.default_tracking_uri(str(folder))
    os.environ["AUTOINV_EXPERIMENT"] = "erm"
    try:
        NotebookClient(
            notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
        ).execute()
    finally:
        del os.environ["AUTOINV_TRACKING_URI"], os.environ["AUTOINV_EXPERIMENT"]
    outputs = "".join(o.get("text", "") for cell in notebook.cells for o in cell.get("outputs", []))
    assert "search erm-" in outputs and "best val/acc" in outputs
    images = [o for cell in notebook.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 2


@pytest.mark.parametrize(
    "method, pictures",
    [
        ("transformmix", {"figures/mix/grid", "figures/mix/search", "figures/augmented_samples"}),
        ("orbit", {"figures/orbit/elements", "figures/transfer/acc_vs_transform", "figures/augmented_samples"}),
        (
            "flowinv",
            {"figures/aug/samples", "figures/aug/rotation_band", "figures/aug/control", "figures/aug/alignment"},
        ),
        ("transinv", {"figures/aug/primitives", "figures/aug/p", "figures/aug/history"}),
    ],
)
def test_method_quick_search_lands_trials_with_pictures(tmp_path, method, pictures):
    """`python -m autoinv.search METHOD --quick` (two trials, to fit CI) through Ray, Optuna, ASHA and MLflow."""
    # The QUICK settings are sized so a newcomer sees each method learn (all 4,500 shapes images, Orbit's 1,000-step
    # teacher and 800 student steps); CI checks the plumbing on less.
    smaller = {
        "transformmix": ["--max-epochs", "3", "--set", "train_subset=1024", "teacher_epochs=3"],
        "orbit": ["--max-epochs", "3", "--set", "steps_per_epoch=10", "teacher_epochs=2", "orbit_steps=40"],
        "flowinv": ["--max-epochs", "3", "--set", "train_subset=768"],
        "transinv": ["--max-epochs", "3", "--set", "train_subset=1024"],
    }.get(method, [])
    result = cli("search", method, "--quick", "--num-samples", "2", *smaller, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    client = tracking.client_for(tracking.default_tracking_uri(str(tmp_path)))
    parent, children = children_of(client, method)
    assert len(children) == 2
    assert {c.data.tags.get(tracking.OUTCOME_TAG) for c in children} <= {"completed", "stopped_early"}
    best = client.get_run(parent.data.tags["autoinv.best_run_id"])
    assert best.data.tags[tracking.OUTCOME_TAG] == "completed" and best.info.status == "FINISHED"
    for child in children:  # every trial has its first-epoch pictures; a completed one has all of them
        files = all_artifacts(client, child.info.run_id, "figures")
        folders = {os.path.dirname(f) for f in files if f.endswith(".png")}
        assert "figures/augmented_samples" in folders, files
        if child.info.run_id == best.info.run_id:
            # a picture per teacher (TransInv with several) carries the teacher's suffix: aug/p_0_noise, ...
            missing = {p for p in pictures if not any(f == p or f.startswith(p + "_") for f in folders)}
            assert not missing, (missing, files)
    if method == "transformmix":
        _export_and_train_reuse_the_searched_mixer(tmp_path, client, best)
    if method == "flowinv":
        _export_and_train_reuse_the_searched_augmenter(tmp_path, client, best)


def _export_and_train_reuse_the_searched_mixer(folder, client, best):
    """Export downloads the best trial's mixer and points ``mixer_from`` at it; final training skips the search
    stage and trains on exactly those weights."""
    import torch

    exported = cli("export", "transformmix", "-o", "best.yaml", cwd=folder)
    assert exported.returncode == 0, exported.stderr[-3000:]
    document = yaml.safe_load((folder / "best.yaml").read_text())
    mixer_file = document["config"]["mixer_from"]
    assert os.path.isfile(os.path.join(folder, mixer_file)) or os.path.isfile(mixer_file), mixer_file
    searched_mixer = torch.load(client.download_artifacts(best.info.run_id, "mixer.pt", str(folder)), weights_only=True)
    trained = cli("train", "best.yaml", "--epochs", "1", cwd=folder, extra_env={"OMP_NUM_THREADS": "1"})
    assert trained.returncode == 0, trained.stderr[-3000:]
    final = client.get_experiment_by_name("transformmix-final")
    (run,) = client.search_runs([final.experiment_id], filter_string="tags.`autoinv.role` = 'trial'")
    files = all_artifacts(client, run.info.run_id)
    assert not any(f.startswith("figures/mix/search") for f in files), "final training must not search again"
    reused = torch.load(
        client.download_artifacts(run.info.run_id, "mixer.pt", str(folder / "final")), weights_only=True
    )
    assert all(torch.equal(reused["state_dict"][n], t) for n, t in searched_mixer["state_dict"].items())


def _export_and_train_reuse_the_searched_augmenter(folder, client, best):
    """FlowInv's export ships the best trial's flow as ``augmenter_from``; final training keeps it frozen and reports
    test-time-augmented accuracy with it."""
    import torch

    exported = cli("export", "flowinv", "-o", "best.yaml", cwd=folder)
    assert exported.returncode == 0, exported.stderr[-3000:]
    document = yaml.safe_load((folder / "best.yaml").read_text())
    augmenter_file = document["config"]["augmenter_from"]
    assert os.path.isfile(os.path.join(folder, augmenter_file)) or os.path.isfile(augmenter_file), augmenter_file
    searched = torch.load(client.download_artifacts(best.info.run_id, "augmenter.pt", str(folder)), weights_only=True)
    trained = cli("train", "best.yaml", "--epochs", "2", cwd=folder, extra_env={"OMP_NUM_THREADS": "1"})
    assert trained.returncode == 0, trained.stderr[-3000:]
    final = client.get_experiment_by_name("flowinv-final")
    (run,) = client.search_runs([final.experiment_id], filter_string="tags.`autoinv.role` = 'trial'")
    assert {"test/acc", "test/acc_tta"} <= set(run.data.metrics), sorted(run.data.metrics)
    reused = torch.load(
        client.download_artifacts(run.info.run_id, "augmenter.pt", str(folder / "final")), weights_only=True
    )
    assert all(torch.equal(reused["state"][n], t) for n, t in searched["state"].items())
