import dataclasses
import os

import pytest
import torch

from autoinv import teachers
from autoinv.teachers import TeacherError, TeacherSpec, load_or_train, teacher_key

SPEC = TeacherSpec(arch="small_cnn", dataset="digits", epochs=1, train_subset=128, batch_size=32, augment="none")


def test_key_is_stable_and_sensitive():
    assert teacher_key(SPEC) == teacher_key(TeacherSpec(**{**SPEC.__dict__}))
    assert teacher_key(SPEC) != teacher_key(TeacherSpec(**{**SPEC.__dict__, "seed": 1}))


def test_trains_once_then_loads_from_cache(tmp_path, monkeypatch, capsys):
    first = load_or_train(SPEC, str(tmp_path))
    path = tmp_path / "teachers" / f"{teacher_key(SPEC)}.pt"
    assert path.exists()
    assert "teacher small_cnn on digits: epoch 1/1" in capsys.readouterr().err
    assert not first.training and not any(p.requires_grad for p in first.parameters())

    def no_training(*args, **kwargs):
        raise AssertionError("a cached teacher must not be trained again")

    monkeypatch.setattr(teachers, "_train", no_training)
    second = load_or_train(SPEC, str(tmp_path))
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(first(x), second(x))


def test_a_teacher_depends_on_its_spec_alone_not_on_the_callers_random_state(tmp_path):
    """Two caches, two different global RNG states before the call: bit-identical teachers."""
    torch.manual_seed(1)
    first = load_or_train(SPEC, str(tmp_path / "a"), progress=False)
    torch.manual_seed(2)
    second = load_or_train(SPEC, str(tmp_path / "b"), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), second.state_dict().values()))


def test_given_checkpoint_is_loaded_and_bad_ones_are_clear_errors(tmp_path):
    trained = load_or_train(SPEC, str(tmp_path))
    checkpoint = tmp_path / "mine.pt"
    torch.save(trained.state_dict(), checkpoint)
    loaded = load_or_train(TeacherSpec(**{**SPEC.__dict__, "checkpoint": str(checkpoint)}), str(tmp_path / "other"))
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(trained(x), loaded(x))
    assert not os.path.exists(tmp_path / "other" / "teachers"), "a given checkpoint trains nothing"
    with pytest.raises(TeacherError, match="does not exist"):
        load_or_train(TeacherSpec(**{**SPEC.__dict__, "checkpoint": str(tmp_path / "missing.pt")}), str(tmp_path))
    with pytest.raises(TeacherError, match="does not fit arch 'mlp'"):
        load_or_train(TeacherSpec(**{**SPEC.__dict__, "arch": "mlp", "checkpoint": str(checkpoint)}), str(tmp_path))


def test_key_of_older_specs_is_unchanged():
    """Fields added later leave the key alone at their defaults, so caches made before them stay valid."""
    assert teacher_key(TeacherSpec()) == "08015066aadb845e"  # the key before the optimizer fields existed
    key = teacher_key(SPEC)
    for change in ({"optimizer": "adam"}, {"steps_per_epoch": 100}, {"weight_decay": 0.0}, {"schedule": "constant"}):
        assert teacher_key(dataclasses.replace(SPEC, **change)) != key
