"""Issue 15: users' own methods through Ray, teachers as Ray tasks, the checks of a cluster's nodes."""

import json
import os

import pytest

from autoinv import cluster, tracking
from tests.test_cli import assert_usage_error, run_cli
from tests.test_e2e import children_of, cli

MY_METHOD = '''
"""A user's own method, outside autoinv's registry: ERM that notes which files its trial imported."""

import dataclasses
import json
import os

import torch.nn.functional as F

import autoinv
from autoinv import loop
from autoinv.config import BaseConfig
from autoinv.models import create_model


@dataclasses.dataclass(frozen=True)
class Config(BaseConfig):
    """The shared fields and where to note the imported files."""

    probe_dir: str = ""
    """Folder for one JSON per trial: the files of autoinv and of this module the trial imported."""


def fit(cfg, run):
    if cfg.probe_dir:
        with open(os.path.join(cfg.probe_dir, f"{os.getpid()}.json"), "w") as f:
            json.dump({"method": os.path.realpath(__file__), "autoinv": autoinv.__file__, "pid": os.getpid()}, f)
    device, data = loop.start(cfg)
    model = create_model(cfg.model, data.num_classes, data.shape).to(device)

    def loss_fn(model, x, y, generator):
        return F.cross_entropy(model(loop.prepare(x)), y), {}

    return loop.train_classifier(cfg, run, data, model, loss_fn)
'''

MY_SEARCH = """
METHOD = {method!r}
METRIC = "val/acc"
MODE = "max"
BASE = {{"dataset": "digits", "model": "small_cnn", "epochs": 2, "batch_size": 32}}
QUICK = {{"train_subset": 400, "steps_per_epoch": 6, "augment": "none"}}


def space(trial):
    trial.suggest_float("lr", 1e-2, 0.3, log=True)
    return {{}}
"""


def write_user_files(folder, method="my_erm"):
    """A search file naming the user's method, with the method module beside it (``a.b`` → ``a/b.py``)."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = method.split(".")
    package = folder
    for part in parts[:-1]:
        package = package / part
        package.mkdir(exist_ok=True)
        (package / "__init__.py").write_text("")
    (package / f"{parts[-1]}.py").write_text(MY_METHOD)
    (folder / "my_search.py").write_text(MY_SEARCH.format(method=method))
    return folder / "my_search.py"


def test_a_users_own_method_beside_the_search_file_runs_through_ray(tmp_path):
    """The search file and its method module live in user/, the driver runs in tmp_path: Ray workers do not see
    user/ (they get the driver's working directory on their path), so the method reaches them only as shipped."""
    search_file = write_user_files(tmp_path / "user")
    probes = tmp_path / "probes"
    probes.mkdir()
    result = cli(
        "search",
        "user/my_search.py",
        "--quick",
        "--num-samples",
        "2",
        "--scheduler",
        "fifo",
        "--set",
        f"probe_dir={probes}",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    client = tracking.client_for(tracking.default_tracking_uri(str(tmp_path)))
    parent, children = children_of(client, "my_search")
    assert len(children) == 2 and parent.info.status == "FINISHED"
    assert all(c.data.tags[tracking.OUTCOME_TAG] == "completed" for c in children)
    assert all(c.data.tags["autoinv.method"] == "my_erm" for c in children)
    notes = [json.loads(p.read_text()) for p in probes.iterdir()]
    assert len(notes) == 2
    for note in notes:  # Ray's copy of the module (py_modules), not the file in user/
        assert note["method"] != os.path.realpath(search_file.parent / "my_erm.py"), note
        assert "runtime_resources" in note["method"], note


def test_a_method_at_a_dotted_path_beside_the_search_file_resolves_and_is_shipped(tmp_path):
    search_file = write_user_files(tmp_path, "mypkg.mine")
    module = cluster.import_method("mypkg.mine", str(search_file))
    assert module.__name__ == "mypkg.mine" and hasattr(module, "Config")
    env = cluster.runtime_env("mypkg.mine", joining=False)
    assert env["py_modules"] == [str(tmp_path / "mypkg")]
    joined = cluster.runtime_env("mypkg.mine", joining=True)
    assert joined["py_modules"][0] == os.path.dirname(cluster.__file__)  # autoinv itself
    assert cluster.runtime_env("erm", joining=False) is None  # the local default stays as it was


def test_a_method_name_that_resolves_to_nothing_is_one_line_exit_2(tmp_path):
    search_file = write_user_files(tmp_path / "user", "no_such_method_anywhere")
    os.remove(tmp_path / "user" / "no_such_method_anywhere.py")
    work = tmp_path / "work"
    work.mkdir()
    result = run_cli("search", str(search_file), "--quick", cwd=work)
    assert_usage_error(result, "METHOD 'no_such_method_anywhere' is not one of autoinv's methods", cwd=work)
    (tmp_path / "user" / "not_a_method.py").write_text("X = 1\n")
    (tmp_path / "user" / "my_search.py").write_text(MY_SEARCH.format(method="not_a_method"))
    result = run_cli("search", str(search_file), "--quick", cwd=work)
    assert_usage_error(result, "lacks Config and fit", cwd=work)


SPEC_ARGS = {"arch": "small_cnn", "dataset": "digits", "epochs": 1, "train_subset": 128, "batch_size": 32}


@pytest.fixture(scope="module")
def local_ray():
    import ray

    ray.init(address="local", num_cpus=1, include_dashboard=False, object_store_memory=100 * 1024**2)
    yield
    ray.shutdown()


def test_a_teacher_trains_in_a_ray_task_then_comes_from_the_cache(tmp_path, local_ray, monkeypatch, capsys):
    from autoinv import teachers

    spec = teachers.TeacherSpec(**SPEC_ARGS, augment="none")
    key = teachers.teacher_key(spec)
    tags = cluster.train_teachers([spec], str(tmp_path), gpus=0, cpus=1)
    info = json.loads(tags[f"autoinv.teacher.{key}"])
    assert info["pid"] != os.getpid() and info["device"] == "cpu"  # a Ray worker trained it, not the driver
    assert info["threads"] == 1  # the CPUs it asked for, whatever the worker's first task set
    assert teachers.is_cached(spec, str(tmp_path))
    err = capsys.readouterr().err
    assert f"teacher: small_cnn on digits ({key}): training in a Ray task (1 CPU)" in err and "trained on" in err

    def no_task(*args, **kwargs):
        raise AssertionError("a cached teacher must start no task")

    monkeypatch.setattr(cluster, "_train_teacher", no_task)
    assert cluster.train_teachers([spec], str(tmp_path), gpus=0, cpus=1) == {f"autoinv.teacher.{key}": "cached"}
    assert f"({key}): cached" in capsys.readouterr().err


def test_a_teacher_tasks_user_error_is_a_one_line_error(tmp_path, local_ray):
    from autoinv import teachers

    spec = teachers.TeacherSpec(**{**SPEC_ARGS, "dataset": "no_such_dataset"})
    with pytest.raises(ValueError, match="no_such_dataset") as raised:
        cluster.train_teachers([spec], str(tmp_path), gpus=0, cpus=1)
    assert "RayTaskError" not in type(raised.value).__name__


def test_node_problems_name_the_node_and_what_to_do():
    node = {"node_id": "ab" * 20, "host": "worker-2", "digest": "d1", "autoinv": "/x/autoinv", "sees_marker": True}
    assert cluster.node_problem([node], "d1", "/shared") == ""
    other = cluster.node_problem([{**node, "digest": "d0"}], "d1", "")
    assert "node worker-2 (abababababab) imports another autoinv (/x/autoinv)" in other
    unseen = cluster.node_problem([{**node, "sees_marker": False}], "d1", "/local/runs")
    assert "--storage /local/runs is a local folder that node worker-2" in unseen
    assert "object storage" in unseen and "mount every node shares" in unseen and "\n" not in unseen
    assert cluster.node_problem([{**node, "sees_marker": False}], "d1", "") == ""  # storage not checked


def _can_unshare():
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """A Ray head and a second node on 127.0.0.1, 1 CPU each, that do not have this checkout on their path.

    The second node runs in its own mount namespace with an empty tmpfs over ``private/``: the same path names
    another folder there, as a local disk does on a second machine; ``shared/`` is the same folder on both.
    """
    import signal
    import subprocess
    import time

    from tests.test_e2e import env_for, free_port

    folder = tmp_path_factory.mktemp("cluster")
    for name in ("private", "shared", "nodes"):
        (folder / name).mkdir()
    port = free_port()
    # No PYTHONPATH: a node's own autoinv (an install or nothing) is what workers import unless the driver ships its.
    env = {k: v for k, v in env_for(folder).items() if k != "PYTHONPATH"} | {"RAY_AUTH_MODE": "token"}
    common = dict(env=env, cwd=folder / "nodes", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    head = subprocess.Popen(
        ["ray", "start", "--block", "--head", f"--port={port}", "--include-dashboard=false", "--num-cpus=1"],
        start_new_session=True,
        **common,
    )
    second = None
    try:
        deadline = time.time() + 240
        while subprocess.run(["ray", "status", f"--address=127.0.0.1:{port}"], env=env, capture_output=True).returncode:
            assert head.poll() is None and time.time() < deadline, "the ray head did not start"
            time.sleep(1)
        mount = f"mount -t tmpfs none {folder / 'private'} && exec ray start --block --address=127.0.0.1:{port}"
        second = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sh", "-c", mount + " --num-cpus=1"],
            start_new_session=True,
            **common,
        )
        while (
            "2.0 CPU"
            not in subprocess.run(
                ["ray", "status", f"--address=127.0.0.1:{port}"], env=env, capture_output=True, text=True
            ).stdout
        ):
            assert second.poll() is None and time.time() < deadline, "the second ray node did not join"
            time.sleep(1)
        yield folder, f"127.0.0.1:{port}"
    finally:
        for node in (second, head):
            if node is not None and node.poll() is None:
                os.killpg(node.pid, signal.SIGTERM)
                node.wait(timeout=120)


needs_unshare = pytest.mark.skipif(not _can_unshare(), reason="needs root and unshare(1) for a private mount")


@needs_unshare
def test_a_local_storage_that_a_node_does_not_see_is_refused_before_any_trial(two_nodes):
    folder, address = two_nodes
    write_user_files(folder / "user", "mypkg.mine")
    run = folder / "run_private"
    run.mkdir()
    result = cli(
        "search", "../user/my_search.py", "--quick", "--address", address, "--storage", str(folder / "private"),
        cwd=run, extra_env={"RAY_AUTH_MODE": "token"},
    )  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and lines[-1].startswith("error: --storage "), result.stderr[-3000:]
    assert "does not see" in lines[-1] and "object storage" in lines[-1], lines[-1]
    assert os.listdir(folder / "private") == [], "the marker is removed"
    assert not os.path.exists(run / "mlflow.db"), "refused before MLflow"


@needs_unshare
def test_a_search_on_two_nodes_runs_the_drivers_autoinv_and_the_users_method_on_both(two_nodes):
    """The nodes lack this checkout; the search ships autoinv and the user's package (a dotted METHOD path)."""
    folder, address = two_nodes
    write_user_files(folder / "user", "mypkg.mine")
    probes = folder / "shared" / "probes"
    probes.mkdir()
    run = folder / "run_shared"
    run.mkdir()
    result = cli(
        "search", "../user/my_search.py", "--quick", "--address", address, "--storage", str(folder / "shared"),
        "--num-samples", "2", "--scheduler", "fifo", "--set", f"probe_dir={probes}", "steps_per_epoch=100",
        cwd=run, extra_env={"RAY_AUTH_MODE": "token"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    client = tracking.client_for(tracking.default_tracking_uri(str(run)))
    parent, children = children_of(client, "my_search")
    assert len(children) == 2 and all(c.data.tags[tracking.OUTCOME_TAG] == "completed" for c in children)
    assert len({c.data.tags["autoinv.node_id"] for c in children}) == 2, "one trial on each 1-CPU node"
    notes = [json.loads(p.read_text()) for p in probes.iterdir()]
    assert len(notes) == 2
    for note in notes:  # both shipped by py_modules, not this checkout's files nor a node's install
        assert "runtime_resources" in note["autoinv"] and "runtime_resources" in note["method"], note


# ~65 s: two searches; the default suite covers the task (above) and the search path (test_e2e's transformmix)
@pytest.mark.slow
def test_a_searchs_teacher_trains_in_a_ray_task_once_and_the_next_search_finds_it_cached(tmp_path):
    import subprocess
    import sys

    from tests.test_e2e import env_for

    tiny = ["saliencymix", "--quick", "--num-samples", "1", "--max-epochs", "1", "--scheduler", "fifo", "--set"]
    tiny += ["dataset=digits", "train_subset=400", "steps_per_epoch=4", "batch_size=32", "teacher_epochs=1"]
    seen = []
    for _ in range(2):
        driver = subprocess.Popen(
            [sys.executable, "-m", "autoinv.search", *tiny],
            cwd=tmp_path,
            env=env_for(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = driver.communicate(timeout=600)
        assert driver.returncode == 0, err[-4000:]
        seen.append((driver.pid, err))
    client = tracking.client_for(tracking.default_tracking_uri(str(tmp_path)))
    experiment = client.get_experiment_by_name("saliencymix")
    parents = client.search_runs(
        [experiment.experiment_id], "tags.`autoinv.role` = 'search'", order_by=["attributes.start_time ASC"]
    )
    assert len(parents) == 2
    (key,) = [k for k in parents[0].data.tags if k.startswith("autoinv.teacher.")]
    trained = json.loads(parents[0].data.tags[key])
    assert trained["pid"] != seen[0][0] and trained["node_id"], trained  # not the driver: a Ray worker
    assert "training in a Ray task" in seen[0][1]
    assert parents[1].data.tags[key] == "cached" and "): cached" in seen[1][1]
    assert "training in a Ray task" not in seen[1][1]


# ~65 s: the default suite resumes a search file given by path in test_e2e; this adds the user's own method
@pytest.mark.slow
def test_a_search_of_a_users_own_method_resumes_after_the_driver_is_killed(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.test_e2e import env_for

    write_user_files(tmp_path / "user")
    args = ["user/my_search.py", "--quick", "--num-samples", "3", "--max-concurrent", "1", "--scheduler", "fifo"]
    args += ["--set", "steps_per_epoch=40"]
    log = open(tmp_path / "driver.log", "w")  # noqa: SIM115 (the killed driver writes here until the end)
    driver = subprocess.Popen(
        [sys.executable, "-m", "autoinv.search", *args],
        cwd=tmp_path,
        env=env_for(tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 300
    while "#1 completed" not in (tmp_path / "driver.log").read_text():  # the console's line for the first trial
        assert driver.poll() is None and time.time() < deadline, (tmp_path / "driver.log").read_text()[-3000:]
        time.sleep(0.5)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray instance it started die at once
    driver.wait()
    log.close()
    time.sleep(2)
    resumed = cli("search", *args, "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    client = tracking.client_for(tracking.default_tracking_uri(str(tmp_path)))
    parent, children = children_of(client, "my_search")
    assert parent.info.status == "FINISHED" and len(children) == 3
    assert all(c.data.tags[tracking.OUTCOME_TAG] == "completed" for c in children)


def test_a_teacher_asks_for_the_cpus_of_one_node_that_can_take_it(monkeypatch):
    import ray

    nodes = [
        {"Alive": True, "Resources": {"CPU": 64.0}},  # a head without a GPU
        {"Alive": True, "Resources": {"CPU": 16.0, "GPU": 8.0}},
        {"Alive": True, "Resources": {"CPU": 8.0, "GPU": 8.0}},
        {"Alive": False, "Resources": {"CPU": 128.0, "GPU": 8.0}},
    ]
    monkeypatch.setattr(ray, "nodes", lambda: nodes)
    assert cluster.largest_node_cpus() == 64.0
    assert cluster.largest_node_cpus(with_gpu=True) == 16.0  # 64 would leave a GPU teacher unplaceable
