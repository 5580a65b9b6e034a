"""Orbit transfer on MNIST-1D (s = 30, max-pool student): γ, the ρ-learning weights, lr, group and filter sizes."""

METHOD = "orbit"
METRIC = "val/acc"
MODE = "max"
NUM_SAMPLES = 32
# The paper's selected setting (supplement A.1): student lr 0.01, γ = 1, γ_equiv = 0.1, γ_group = γ_inv = 10, γ_CE = 0.
BASE = {
    "dataset": "mnist1d_shift",
    "shift_limit": 30,
    "model": "mlp_maxpool1d",
    "teacher_arch": "circconv1d_teacher",
    "teacher_layers": ["conv1", "conv2"],
    "student_layers": ["fc1", "fc2"],
    "epochs": 100,
    "steps_per_epoch": 100,
    "batch_size": 1000,
    "lr": 0.01,
    "gamma": 1.0,
    "gamma_equiv": 0.1,
    "gamma_group": 10.0,
    "gamma_inv": 10.0,
    "gamma_ce": 0.0,
    "orbit_group_size": 40,
    "orbit_filter_size": 40,
}
QUICK = {
    "epochs": 3,
    "steps_per_epoch": 10,
    "batch_size": 250,
    "teacher_epochs": 2,
    "orbit_steps": 40,
    "orbit_batch_size": 250,
}
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
