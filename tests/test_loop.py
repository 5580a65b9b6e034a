"""The shared epoch loop: no host synchronisation inside a training step, non-finite losses still fail clearly."""

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from autoinv import loop
from autoinv.config import build_config
from autoinv.methods import erm
from autoinv.models import create_model

SYNCS = ("aten::item", "aten::_local_scalar_dense")


class QuietRun(loop.MemoryRun):
    def figure(self, name, fig, epoch):
        import matplotlib.pyplot as plt

        plt.close(fig)


def _syncs_of_an_epoch(steps, augment, cache_dir):
    cfg = build_config(
        erm.Config,
        {"dataset": "digits", "epochs": 1, "steps_per_epoch": steps, "batch_size": 16, "augment": augment},
        "erm",
    )
    device, data = loop.start(cfg)
    model = create_model(cfg.model, data.num_classes, data.shape)

    def loss_fn(model, x, y, generator):
        loss = F.cross_entropy(model(loop.standardize(x)), y)
        return loss, {"train/ce": loss.detach()}  # a tensor log stays on the device too

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        loop.train_classifier(cfg, QuietRun(cache_dir=cache_dir), data, model, loss_fn)
    return sum(e.count for e in prof.key_averages() if e.key in SYNCS)


@pytest.mark.parametrize("augment", ["none", "flip_crop"])
def test_a_training_step_reads_nothing_back_from_the_device(augment, cache_dir):
    """Losses and logs are summed on the device and read once an epoch: 3 more steps add no host read."""
    assert _syncs_of_an_epoch(6, augment, cache_dir) == _syncs_of_an_epoch(3, augment, cache_dir)


def test_a_non_finite_loss_still_fails_the_epoch_with_one_clear_line(cache_dir):
    cfg = build_config(erm.Config, {"dataset": "digits", "epochs": 2, "steps_per_epoch": 3, "batch_size": 16}, "erm")
    device, data = loop.start(cfg)
    model = create_model(cfg.model, data.num_classes, data.shape)
    run = QuietRun(cache_dir=cache_dir)

    def loss_fn(model, x, y, generator):
        return F.cross_entropy(model(loop.standardize(x)), y) * torch.tensor(float("nan")), {}

    with pytest.raises(FloatingPointError, match="non-finite in epoch 0; lower lr"):
        loop.train_classifier(cfg, run, data, model, loss_fn)
    assert run.metrics == [], "the failed epoch reports nothing"
