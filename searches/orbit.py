"""Orbit transfer on MNIST-1D (s = 30, max-pool student): γ, the ρ-learning weights, lr, group and filter sizes."""

from searches._mnist1d import MAXPOOL_S30
from searches._mnist1d import QUICK as MNIST1D_QUICK

METHOD = "orbit"
METRIC = "val/acc"
MODE = "max"
NUM_SAMPLES = 32
# The paper's selected setting (supplement A.1): student lr 0.01, γ = 1, γ_equiv = 0.1, γ_group = γ_inv = 10, γ_CE = 0.
BASE = {
    **MAXPOOL_S30,
    "lr": 0.01,
    "gamma": 1.0,
    "gamma_equiv": 0.1,
    "gamma_group": 10.0,
    "gamma_inv": 10.0,
    "gamma_ce": 0.0,
    "orbit_group_size": 40,
    "orbit_filter_size": 40,
}
QUICK = dict(MNIST1D_QUICK)  # ρ learns for its default 1,500 steps: with 40, the best trial stayed near 0.4
QUICK_NUM_SAMPLES = 4


def space(trial) -> dict:
    trial.suggest_float("gamma", 0.1, 1.0)
    trial.suggest_float("gamma_equiv", 0.1, 10.0, log=True)
    trial.suggest_float("gamma_group", 0.1, 10.0, log=True)
    trial.suggest_float("gamma_inv", 0.1, 10.0, log=True)
    trial.suggest_categorical("gamma_ce", [0.0, 0.1, 1.0])
    trial.suggest_float("lr", 1e-4, 1e-2, log=True)
    trial.suggest_categorical("orbit_group_size", [10, 20, 40])
    trial.suggest_categorical("orbit_filter_size", [5, 11, 21, 40])
    trial.suggest_int("orbit_repeats", 1, 4)
    return {}
