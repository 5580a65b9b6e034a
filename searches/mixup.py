"""Mixup (Zhang et al., 2018): searched α, mixing probability, learning rate and weight decay."""

METHOD = "mixup"
METRIC = "val/acc"
MODE = "max"
NUM_SAMPLES = 24
BASE = {"dataset": "cifar10", "model": "resnet18", "epochs": 200, "batch_size": 128, "augment": "flip_crop"}
# Offline on 2 cores in about 2 minutes, and learning visibly: all 4,500 shapes training images, 4 epochs (1,200
# images for 3 epochs ended near 0.3, with chance at 0.1).
QUICK = {"dataset": "shapes", "model": "small_cnn", "epochs": 4, "batch_size": 64}
QUICK_NUM_SAMPLES = 6


def space(trial) -> dict:
    trial.suggest_float("mix_alpha", 0.1, 4.0, log=True)
    trial.suggest_float("mix_prob", 0.3, 1.0)
    trial.suggest_float("lr", 1e-2, 0.3, log=True)
    trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True)
    return {}
