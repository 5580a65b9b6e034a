"""Bad input: every user error exits with status 2, prints one line that says what to do, and writes nothing."""

import contextlib
import importlib
import io
import os
import subprocess
import sys
import textwrap
from unittest import mock

import pytest

from autoinv import tracking

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_path() -> str:
    """PYTHONPATH for a CLI subprocess: this checkout first, then whatever the environment already had."""
    return os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH", "")) if p)


def run_cli(module, *args, cwd, timeout=300, in_process=True):
    """Run ``python -m autoinv.MODULE ARGS`` in ``cwd``; in this process by default, as a real one on request.

    In-process calls of ``main`` see the same arguments, working directory and environment, and skip the ~10 s
    of importing torch, Ray and MLflow per call; each CLI keeps at least one real-process test (exit status and
    stderr as a user sees them).
    """
    env = {"PYTHONPATH": python_path(), "AUTOINV_DATA": os.path.join(str(cwd), "..", "data")}
    if not in_process:
        return subprocess.run(
            [sys.executable, "-m", f"autoinv.{module}", *args],
            cwd=cwd,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    main = importlib.import_module(f"autoinv.{module}").main
    stdout, stderr, here = io.StringIO(), io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with mock.patch.dict(os.environ, env), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse's own usage errors
                code = exit_.code
    finally:
        os.chdir(here)
    return subprocess.CompletedProcess(args, code, stdout.getvalue(), stderr.getvalue())


def assert_usage_error(result, *needles, cwd=None, before=()):
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], lines[0]
    if cwd is not None:
        assert sorted(os.listdir(cwd)) == sorted(before), "nothing may be written on a usage error"


@pytest.fixture
def work(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    return folder


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["nosuchsearch"], ["unknown search 'nosuchsearch'", "erm"]),  # a real process: see below
        (["erm", "--quick", "--set", "nosuch=1"], ["unknown config key 'nosuch'"]),
        (["erm", "--quick", "--set", "lr=fast"], ["lr='fast' is not a valid float"]),
        (["erm", "--quick", "--set", "epochs=0"], ["epochs=0 must be >= 1"]),
        (["erm", "--quick", "--set", "dataset=nosuchdata"], ["unknown dataset 'nosuchdata'"]),
        (["erm", "--quick", "--set", "model=nosuchnet"], ["nosuchnet"]),
        (["erm", "--set", "dataset=cifar10"], ["cifar10", "--quick"]),
        (["erm", "--quick", "--tracking-uri", "http://127.0.0.1:9"], ["unreachable", "--tracking-uri"]),
        (["erm", "--quick", "--address", "127.0.0.1:9"], ["no Ray cluster answers at 127.0.0.1:9"]),
        (["erm", "--quick", "--resume"], ["nothing to resume"]),
        (["erm", "--quick", "--gpus-per-trial", "1"], ["--gpus"]),
    ],
)
def test_search_usage_errors(work, args, needles):
    # Real processes where it matters: one plain case (what a user's shell sees), and Ray connections.
    real = args == ["nosuchsearch"] or "--address" in args or "--gpus" in args
    result = run_cli("search", *args, cwd=work, in_process=not real)
    assert_usage_error(result, *needles, cwd=work, before=[])


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--gpus", "1", "--gpus-per-trial", "-1"], ["--gpus-per-trial must be > 0"]),  # once hung for ever
        (["--gpus", "1", "--gpus-per-trial", "0"], ["--gpus-per-trial must be > 0"]),
        (["--gpus", "4", "--gpus-per-trial", "2", "--dry-run"], ["a trial trains on one GPU", "0.25"]),  # idle GPUs
        (["--cpus-per-trial", "0"], ["--cpus-per-trial must be > 0"]),
        (["--cpus-per-trial", "nan"], ["--cpus-per-trial must be > 0"]),
        (["--gpus", "-1"], ["--gpus must be >= 0"]),
        (["--num-samples", "0", "--dry-run"], ["--num-samples must be >= 1"]),  # once passed --dry-run
        (["--num-samples", "-3"], ["--num-samples must be >= 1"]),
        (["--max-epochs", "0"], ["--max-epochs must be >= 1"]),
        (["--max-concurrent", "0"], ["--max-concurrent must be >= 1"]),
        (["--grace-period", "0"], ["--grace-period must be >= 1"]),
        (["--reduction-factor", "1"], ["--reduction-factor must be >= 2"]),
        (["--max-failures", "-2"], ["--max-failures must be >= -1", "forever"]),
        (["--resume", "--dry-run"], ["do not go together"]),
    ],
)
def test_search_numeric_options_out_of_range(work, args, needles):
    result = run_cli("search", "erm", "--quick", *args, cwd=work)
    assert_usage_error(result, *needles, cwd=work, before=[])


def test_search_path_options_that_cannot_work(work, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a search\n")
    for path in (str(notes), "./notes.txt"):  # by absolute path and by a relative one, from the notes' folder
        assert_usage_error(run_cli("search", path, cwd=tmp_path), "is not a Python file", cwd=None)
    (work / "results").write_text("a file where a folder should be")
    assert_usage_error(
        run_cli("search", "erm", "--quick", "--storage", "results", cwd=work),
        "--storage 'results' is a file",
        cwd=work,
        before=["results"],
    )


def test_fractional_gpus_plan_what_ray_can_place():
    from autoinv.search import _trials_per_gpus

    assert _trials_per_gpus(8, 0.3) == 24  # not 26: Ray packs 3 trials of 0.3 on each GPU
    assert _trials_per_gpus(8, 0.1) == 80 and _trials_per_gpus(8, 0.25) == 32 and _trials_per_gpus(8, 1) == 8
    assert _trials_per_gpus(8, 2) == 4 and _trials_per_gpus(0.5, 0.25) == 2


def test_a_search_file_by_path_pickles_by_reference_under_a_stable_name(tmp_path):
    """Tune pickles the searcher (with ``space``) at every save and a resumed driver unpickles it."""
    import pickle

    from autoinv.search import load_search

    mine = tmp_path / "mine.py"
    mine.write_text(open(os.path.join(ROOT, "searches", "erm.py")).read())
    module = load_search(str(mine))
    assert pickle.loads(pickle.dumps(module.space)) is module.space
    code = f"from autoinv.search import load_search; print(load_search({str(mine)!r}).__name__)"
    names = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": python_path(), "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert names == {module.__name__}, "the module name must not depend on the process"


def run_python(code: str, cwd) -> subprocess.CompletedProcess:
    """Run ``python -c CODE`` in a fresh interpreter on this checkout; fail the test on a non-zero exit."""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": python_path()},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_methods_import_without_mlflow_ray_or_optuna():
    """The layering in DESIGN.md: methods never import MLflow, Ray or Optuna (a GPU box may lack them)."""
    code = (
        "import sys\n"
        "for name in ('mlflow', 'ray', 'optuna'): sys.modules[name] = None\n"
        "from autoinv.methods import METHODS\n"
        "import importlib, pkgutil, autoinv.methods as m\n"
        "for info in pkgutil.walk_packages(m.__path__, 'autoinv.methods.'): importlib.import_module(info.name)\n"
        "print(len(METHODS))\n"
    )
    done = run_python(code, cwd=ROOT)
    assert int(done.stdout) >= 14


HEAVY = ("torch", "torchvision", "ray", "mlflow", "optuna", "kornia", "normflows")


def test_cli_answers_help_list_and_argument_errors_without_heavy_imports(tmp_path):
    """Issue 12 item 1: what users type to learn the tool must not wait ~10 s for torch, Ray and MLflow."""
    code = textwrap.dedent(f"""
        import contextlib, io, sys
        from autoinv import export, search, train
        cases = [
            (search.main, ["--help"], 0), (search.main, ["--list"], 0), (search.main, ["nosuch"], 2),
            (search.main, ["erm", "--gpus-per-trial", "-1"], 2), (search.main, ["erm", "--num-samples", "0"], 2),
            (search.main, [], 2), (export.main, ["nosuch", "--tracking-uri", "sqlite:///{tmp_path}/no.db"], 2),
            (train.main, ["{tmp_path}/none.yaml"], 2),
        ]
        for main, argv, expected in cases:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                try:
                    code = main(argv)
                except SystemExit as stop:
                    code = stop.code
            assert code == expected, (argv, code)
        print(" ".join(name for name in {HEAVY!r} if name in sys.modules))
    """)
    done = run_python(code, cwd=tmp_path)
    assert done.stdout.strip() == "", f"parsing and checking arguments imported {done.stdout.strip()}"


def test_dry_run_imports_torch_but_none_of_the_packages_training_needs(tmp_path):
    """Issue 12 item 1: --dry-run builds and checks Configs and the data (torch), never Ray, MLflow or torchvision."""
    code = textwrap.dedent("""
        import contextlib, io, sys
        from autoinv import search
        with contextlib.redirect_stdout(io.StringIO()):
            assert search.main(["erm", "--quick", "--dry-run"]) == 0
        print(" ".join(name for name in ("ray", "mlflow", "torchvision", "kornia", "mnist1d") if name in sys.modules))
    """)
    done = run_python(code, cwd=tmp_path)
    assert done.stdout.strip() == "", f"--dry-run imported {done.stdout.strip()}"


def test_search_files_that_do_not_import_or_lack_space(work, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("METHOD = 'erm'\nthis is not python\n")
    assert_usage_error(run_cli("search", str(broken), cwd=work), "does not import", cwd=work)
    spaceless = tmp_path / "spaceless.py"
    spaceless.write_text(
        textwrap.dedent("""
        METHOD = "erm"
        METRIC = "val/acc"
        MODE = "max"
        BASE = {}
    """)
    )
    assert_usage_error(run_cli("search", str(spaceless), cwd=work), "lacks space", cwd=work)
    testmetric = tmp_path / "testmetric.py"
    testmetric.write_text(spaceless.read_text().replace("val/acc", "test/acc") + "\ndef space(trial):\n    return {}\n")
    assert_usage_error(run_cli("search", str(testmetric), cwd=work), "must be a val/* metric", cwd=work)


def test_gpus_beyond_the_cluster_fail_at_once(work):
    result = run_cli("search", "erm", "--quick", "--gpus", "4", cwd=work, in_process=False)
    assert_usage_error(result, "--gpus 4 asked", "has 0 GPUs", cwd=work, before=[])


def test_export_errors(work):
    assert_usage_error(
        run_cli("export", "erm", cwd=work, in_process=False), "no tracking database", cwd=work, before=[]
    )
    # A search whose only trial was stopped early has nothing to export.
    uri = tracking.default_tracking_uri(str(work))
    client = tracking.client_for(uri)
    experiment = tracking.get_or_create_experiment(client, "erm")
    parent = tracking.create_parent_run(
        client, experiment, "erm-1", {"autoinv.metric": "val/acc", "autoinv.mode": "max", "autoinv.method": "erm"}, {}
    )
    child = tracking.child_run(client, experiment, parent, "t1", "t1", {"lr": 0.1}, {})
    tracking.finish_child(client, child, "stopped_early", 1)
    before = os.listdir(work)
    assert_usage_error(
        run_cli("export", "erm", cwd=work), "no trial that finished every epoch", cwd=work, before=before
    )
    assert_usage_error(run_cli("export", "nosuch", cwd=work), "no search named 'nosuch'", cwd=work, before=before)


def test_train_errors(work):
    (work / "bad.yaml").write_text("method: erm\nconfig:\n  lr: 0.1\n  nosuch: 3\n")
    (work / "extra.yaml").write_text("method: erm\nconfig: {}\nsurprise: 1\n")
    (work / "method.yaml").write_text("method: nosuch\nconfig: {}\n")
    before = os.listdir(work)
    assert_usage_error(run_cli("train", "bad.yaml", cwd=work), "unknown config key 'nosuch'", cwd=work, before=before)
    assert_usage_error(
        run_cli("train", "extra.yaml", cwd=work), "unknown top-level keys surprise", cwd=work, before=before
    )
    assert_usage_error(run_cli("train", "method.yaml", cwd=work), "unknown method 'nosuch'", cwd=work, before=before)
    assert_usage_error(
        run_cli("train", "missing.yaml", cwd=work, in_process=False), "does not exist", cwd=work, before=before
    )


def test_dry_run_prints_the_plan_and_writes_nothing(work):
    result = run_cli("search", "erm", "--quick", "--dry-run", "--gpus", "0", cwd=work)
    assert result.returncode == 0, result.stderr
    assert "method: erm" in result.stdout and "num_samples: 6" in result.stdout
    assert os.listdir(work) == []


def test_list(work):
    result = run_cli("search", "--list", cwd=work)
    assert result.returncode == 0 and "erm" in result.stdout and "mixup" in result.stdout


def test_trial_run_names_show_the_values_that_set_a_trial_apart():
    base = {"dataset": "digits", "epochs": 3}
    configs = [
        {**base, "lr": 0.01, "augment": "none", "weight_decay": 1e-4},
        {**base, "lr": 0.2, "augment": "none", "weight_decay": 1e-4},
        {**base, "lr": 0.05, "augment": "augmix", "weight_decay": 1e-3},
    ]
    names = tracking.trial_run_names(configs, base, most=2)
    assert names[0] == "#1 lr=0.01 augment=none" and names[1] == "#2 lr=0.2 augment=none"
    assert names[2].startswith("#3 augment=augmix weight_decay=0.001"), names  # its unusual choices come first
    assert tracking.trial_run_names([{**base, "lr": 0.1}], base) == ["#1 lr=0.1"]


def test_runs_view_url_points_at_the_server_or_a_local_ui():
    assert tracking.runs_view_url("http://head:5000/", "7") == "http://head:5000/#/experiments/7/runs"
    assert tracking.runs_view_url("sqlite:////x/mlflow.db", "1") == "http://127.0.0.1:5000/#/experiments/1/runs"


def test_every_experiment_is_tagged_for_the_training_runs_view(tmp_path):
    client = tracking.client_for(tracking.default_tracking_uri(str(tmp_path)))
    created = tracking.get_or_create_experiment(client, "fresh")
    legacy = client.create_experiment("legacy")  # made before the tag existed: tagged when a search reuses it
    assert tracking.get_or_create_experiment(client, "legacy") == legacy
    for experiment_id in (created, legacy):
        assert client.get_experiment(experiment_id).tags[tracking.KIND_TAG] == "custom_model_development"


def test_a_grid_search_whose_last_trial_asha_stops_goes_on():
    """Optuna's GridSampler stops the study when its last point is told, and Study.stop raises outside optimize:
    that once crashed `student_ce_sweep --quick` when ASHA stopped the grid's last trial."""
    import types

    from autoinv.search import _searcher

    def space(trial):
        trial.suggest_categorical("x", [0, 1])

    search = types.SimpleNamespace(GRID={"x": [0, 1]}, METRIC="val/acc", MODE="max", space=space)
    searcher = _searcher(search, "grid", seed=0, max_epochs=3, num_samples=2)
    for trial_id in ("a", "b"):
        assert searcher.suggest(trial_id) is not None
        searcher.on_trial_result(trial_id, {"val/acc": 0.5, "training_iteration": 1, "epoch": 1})
    for trial_id in ("a", "b"):  # both stopped early by ASHA: PRUNED
        searcher.on_trial_complete(trial_id, {"val/acc": 0.5, "training_iteration": 1, "epoch": 1})
    searcher.on_trial_result("b", {"val/acc": 0.6, "training_iteration": 2, "epoch": 2})  # in flight before the stop
    states = [t.state.name for t in searcher._ot_study.trials]
    assert states == ["PRUNED", "PRUNED"]


def test_results_of_a_trial_the_searchers_saved_state_never_suggested_are_left_to_tune():
    """After a kill, Tune's saved state can hold a trial that the searcher's (older) saved state lacks: the resumed
    search used to crash with Ray's KeyError on its first result."""
    import types

    from autoinv.search import _searcher

    def space(trial):
        trial.suggest_float("x", 0.0, 1.0)

    search = types.SimpleNamespace(METRIC="val/acc", MODE="max", space=space)
    searcher = _searcher(search, "tpe", seed=0, max_epochs=3, num_samples=4)
    searcher.set_search_properties("val/acc", "max", {})
    assert searcher.suggest("known") is not None
    searcher.on_trial_result("restored", {"val/acc": 0.5, "training_iteration": 1, "epoch": 1})
    searcher.on_trial_complete("restored", {"val/acc": 0.5, "training_iteration": 3, "epoch": 3})
    searcher.on_trial_complete("known", {"val/acc": 0.7, "training_iteration": 3, "epoch": 3})
    assert [(t.state.name, t.value) for t in searcher._ot_study.trials] == [("COMPLETE", 0.7)]
