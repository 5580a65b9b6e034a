"""FlowInv on Mario-Iggy ±90°: entropy target, PID gains and λ range, flow size and base, lr, copies, warm-up."""

METHOD = "flowinv"
METRIC = "val/acc"
MODE = "max"
NUM_SAMPLES = 32
# The paper's Mario-Iggy ±90° setting (reference scripts/mario_90.sh): rotation + translation, uniform base, 4 coupling
# layers, batch 128, lr 1e-3, 250 epochs, one warm-up epoch, λ in [1e-3, 0.5], PID gains 1e-2.
BASE = {
    "dataset": "marioiggy",
    "model": "small_cnn",
    "epochs": 250,
    "batch_size": 128,
    "lr": 1e-3,
    "aug_type": "rotate_translate",
    "flow_base": "uniform",
    "flow_layers": 4,
    "aug_warmup_epochs": 1,
    "pid_lambda_min": 1e-3,
    "pid_lambda_max": 0.5,
}
# Offline on a 2-core CPU in minutes: 1500 images, 6 epochs per trial, 4 TTA views.
QUICK = {"train_subset": 1500, "epochs": 6, "batch_size": 64, "tta_samples": 4, "tta_pool": 50}
QUICK_NUM_SAMPLES = 4


def space(trial) -> dict:
    trial.suggest_float("entropy_target", -1.0, 1.3)
    trial.suggest_float("pid_kp", 1e-3, 1.0, log=True)
    trial.suggest_float("pid_ki", 1e-4, 1e-1, log=True)
    trial.suggest_float("pid_kd", 1e-4, 1e-1, log=True)
    trial.suggest_float("pid_lambda_max", 0.05, 1.0, log=True)
    base = trial.suggest_categorical("flow_base", ["uniform", "gmm"])
    if base == "gmm":
        trial.suggest_int("flow_modes", 1, 8)
        trial.suggest_float("flow_gumbel_tau", 0.05, 1.0, log=True)
    trial.suggest_int("flow_layers", 4, 12)
    trial.suggest_categorical("flow_width", [32, 64])
    trial.suggest_float("flow_tanh_width", 1.0, 2.0)
    trial.suggest_float("flow_base_scale", 0.05, 0.5, log=True)
    trial.suggest_float("lr", 3e-4, 3e-3, log=True)
    trial.suggest_int("aug_copies", 1, 4)
    trial.suggest_int("aug_warmup_epochs", 0, 5)
    return {}
