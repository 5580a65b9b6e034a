"""FT + AugMix: fine-tuning from a robust teacher with AugMix (TransInv's baseline, paper Table 1); lr and wd."""

METHOD = "ft"
METRIC = "val/acc"
MODE = "max"
NUM_SAMPLES = 12
# The paper's §4.2 baseline: a CIFAR-10 WRN-40-2 teacher trained with Gaussian noise, fine-tuned on clean CIFAR-100.
BASE = {
    "dataset": "cifar100",
    "model": "wrn_40_2",
    "epochs": 200,
    "batch_size": 128,
    "lr": 0.1,
    "augment": "augmix",
    "teacher_dataset": "cifar10",
    "teacher_arch": "wrn_40_2",
    "teacher_epochs": 100,
    "teacher_lr": 0.1,
    "teacher": "gaussian_noise",
    "init": "teacher",
}
# The same offline data, teachers and budgets as TransInv's QUICK.
QUICK = {
    "dataset": "shapes:half=2",
    "teacher_dataset": "shapes:half=1",
    "model": "small_cnn",
    "teacher_arch": "small_cnn",
    "epochs": 4,
    "batch_size": 64,
    "teacher_epochs": 6,
    "teacher_lr": 0.05,
}
QUICK_NUM_SAMPLES = 4


def space(trial) -> dict:
    trial.suggest_float("lr", 1e-2, 0.2, log=True)
    trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True)
    return {}
