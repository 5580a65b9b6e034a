"""InstaAug on Mario-Iggy ±90° (FlowInv's baseline): entropy weight and window, range init, lr, copies, warm-up."""

from searches.flowinv import BASE as FLOWINV_BASE
from searches.flowinv import QUICK as FLOWINV_QUICK

METHOD = "instaaug"
METRIC = "val/acc"
MODE = "max"
NUM_SAMPLES = 16
# FlowInv's data, classifier, parameterisation and schedule; InstaAug's Mario-Iggy window [0, 3.14] and weight 0.1.
BASE = {
    **{k: v for k, v in FLOWINV_BASE.items() if not k.startswith(("flow_", "pid_"))},
    "insta_weight": 0.1,
    "insta_entropy_min": 0.0,
    "insta_entropy_max": 3.14,
}
QUICK = dict(FLOWINV_QUICK)
QUICK_NUM_SAMPLES = 4


def space(trial) -> dict:
    trial.suggest_float("insta_weight", 1e-3, 1.0, log=True)
    trial.suggest_float("insta_entropy_min", -2.0, 1.0)
    trial.suggest_float("insta_init_width", 0.05, 0.5, log=True)
    trial.suggest_float("lr", 3e-4, 3e-3, log=True)
    trial.suggest_int("aug_copies", 1, 4)
    trial.suggest_int("aug_warmup_epochs", 0, 5)
    return {}
