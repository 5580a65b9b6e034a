"""RDL (correlation RDMs) on MNIST-1D (s = 30, max-pool student): γ and learning rate."""

from searches._mnist1d import MAXPOOL_S30
from searches._mnist1d import QUICK as QUICK

METHOD = "rdl"
METRIC = "val/acc"
MODE = "max"
NUM_SAMPLES = 24
# The reference recipe's selection for the max-pool student (supplement A.1).
BASE = {
    **MAXPOOL_S30,
    "lr": 0.0001,
    "gamma": 0.9,
}
QUICK_NUM_SAMPLES = 4


def space(trial) -> dict:
    trial.suggest_float("gamma", 0.1, 1.0)
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    return {}
