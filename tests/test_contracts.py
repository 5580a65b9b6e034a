"""Contract tests over every registered method and every search file."""

import dataclasses
import importlib
import io

import pytest
import torch

from autoinv import loop
from autoinv.config import BaseConfig, ConfigError, build_config
from autoinv.methods import METHODS, get_method
from autoinv.search import base_config, list_searches, load_search, validate_space
from tests.method_settings import METHOD_SETTINGS, TINY

SEARCHES = list_searches()


def _search_for(method: str):
    for name in SEARCHES:
        search = load_search(name)
        if search.METHOD == method:
            return search
    raise AssertionError(f"method {method!r} has no search file in searches/")


def test_every_method_has_settings_and_a_search():
    assert set(METHODS) == set(METHOD_SETTINGS), "add tiny settings for new methods to tests/method_settings.py"
    for method in METHODS:
        _search_for(method)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_config_contract(name):
    method = get_method(name)
    cfg = method.Config()
    assert isinstance(cfg, BaseConfig)
    assert dataclasses.is_dataclass(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0
    with pytest.raises(ConfigError, match="unknown config key 'no_such_field'"):
        build_config(method.Config, {"no_such_field": 1}, name)
    with pytest.raises(ConfigError, match="lr"):
        build_config(method.Config, {"lr": "fast"}, name)
    with pytest.raises(ConfigError, match="epochs"):
        build_config(method.Config, {"epochs": 0}, name)
    assert callable(method.fit)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_fit_reports_search_metric_and_resumes(name, cache_dir):
    method = get_method(name)
    search = _search_for(name)
    values = {**METHOD_SETTINGS[name], **TINY, "epochs": 2}
    cfg = build_config(method.Config, values, name)
    run = loop.MemoryRun(cache_dir=cache_dir)
    fresh = loop.generator_states()
    final = method.fit(cfg, run)
    assert [m["epoch"] for m in run.metrics] == [0, 1], "one report per epoch"
    for metrics in run.metrics:
        assert search.METRIC in metrics
        assert all(k.count("/") >= 1 for k in metrics if k != "epoch"), "metric keys are namespaced"
    assert search.METRIC in final
    assert 0.0 <= final["val/acc"] <= 1.0
    # The state round-trips through torch.save / weights_only load (what Ray checkpoints do) ...
    buffer = io.BytesIO()
    torch.save(run.states[0], buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    # ... and resuming from epoch 0's state runs only epoch 1.
    resumed = loop.MemoryRun(state=state, cache_dir=cache_dir)
    method.fit(cfg, resumed)
    assert [m["epoch"] for m in resumed.metrics] == [1]
    assert "augmented_samples" in run.figures or run.figures, "every method logs pictures"
    # A search runs trial after trial in one worker process (reuse_actors), each from the generators' first state:
    # a second fit there, after the first and a resume, learns exactly what the first did (nothing is left behind
    # in modules or caches; a teacher trained inside the first fit changes no draw of the second, cached one).
    loop.set_generator_states(fresh)
    again = loop.MemoryRun(cache_dir=cache_dir)
    method.fit(cfg, again)
    assert _learned(again.metrics) == _learned(run.metrics)


def _learned(metrics: list[dict]) -> list[dict]:
    """Per-epoch metrics without the timings, which differ from run to run."""
    return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in metrics]


@pytest.mark.parametrize("name", SEARCHES)
def test_search_file_contract(name):
    search = load_search(name)
    assert search.METHOD in METHODS
    assert search.METRIC.startswith("val/")
    assert search.MODE in ("min", "max")
    method = get_method(search.METHOD)
    fields = {f.name for f in dataclasses.fields(method.Config)}
    assert set(search.BASE) <= fields
    assert set(getattr(search, "QUICK", {})) <= fields
    for quick in (False, True):
        base = base_config(search, quick, {}, None)
        for values in validate_space(search, base, samples=5):
            assert set(values) <= fields
    grid = getattr(search, "GRID", None)
    if grid:
        assert set(grid) <= fields


def test_search_files_are_importable_as_modules():
    for name in SEARCHES:
        module = importlib.import_module(f"searches.{name}")
        assert module.__doc__, f"searches/{name}.py needs a docstring saying what it searches"
