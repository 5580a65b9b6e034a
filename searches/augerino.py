"""Augerino on Mario-Iggy ±90° (FlowInv's baseline): regulariser weight, initial width, lr, copies, warm-up."""

from searches.flowinv import BASE as FLOWINV_BASE
from searches.flowinv import QUICK as FLOWINV_QUICK

METHOD = "augerino"
METRIC = "val/acc"
MODE = "max"
NUM_SAMPLES = 16
# FlowInv's data, classifier, parameterisation and schedule, so a comparison is one search away.
BASE = {k: v for k, v in FLOWINV_BASE.items() if not k.startswith(("flow_", "pid_"))}
QUICK = dict(FLOWINV_QUICK)
QUICK_NUM_SAMPLES = 4


def space(trial) -> dict:
    trial.suggest_float("augerino_reg", 1e-3, 0.3, log=True)
    trial.suggest_float("augerino_init_width", 0.05, 1.0, log=True)
    trial.suggest_float("lr", 3e-4, 3e-3, log=True)
    trial.suggest_int("aug_copies", 1, 4)
    trial.suggest_int("aug_warmup_epochs", 0, 5)
    return {}
