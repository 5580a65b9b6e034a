"""ERM with a searched base augmentation: the reference every learned method is compared against."""

METHOD = "erm"
METRIC = "val/acc"
MODE = "max"
NUM_SAMPLES = 24
BASE = {"dataset": "cifar10", "model": "resnet18", "epochs": 200, "batch_size": 128, "schedule": "cosine"}
# Offline on 2 cores in about 2 minutes, and learning visibly: all 4,500 shapes training images, 4 epochs (1,200
# images for 3 epochs ended near 0.3, with chance at 0.1).
QUICK = {"dataset": "shapes", "model": "small_cnn", "epochs": 4, "batch_size": 64}
QUICK_NUM_SAMPLES = 6


def space(trial) -> dict:
    trial.suggest_float("lr", 1e-2, 0.3, log=True)
    trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True)
    augments = ["none", "flip_crop", "randaugment", "trivialaugment", "autoaugment", "augmix"]
    trial.suggest_categorical("augment", augments)
    return {}
