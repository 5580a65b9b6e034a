"""Knowledge distillation on MNIST-1D (s = 30, max-pool student): γ, temperature T, lr, weight decay."""

from searches._mnist1d import MAXPOOL_S30
from searches._mnist1d import QUICK as QUICK

METHOD = "kd"
METRIC = "val/acc"
MODE = "max"
NUM_SAMPLES = 24
# The reference recipe's selection for the max-pool student (supplement A.1).
BASE = {
    **MAXPOOL_S30,
    "lr": 0.001,
    "weight_decay": 0.0001,
    "gamma": 0.6,
    "kd_temperature": 1.0,
}
QUICK_NUM_SAMPLES = 4


def space(trial) -> dict:
    trial.suggest_float("gamma", 0.1, 1.0)
    trial.suggest_categorical("kd_temperature", [0.1, 1.0, 2.0, 5.0, 10.0, 20.0, 100.0])
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    trial.suggest_float("weight_decay", 1e-8, 1e-4, log=True)
    return {}
