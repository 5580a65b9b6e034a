"""Figure 2 for student_aug: the selected setting at every shift limit s in {0, 10, 20, 30, 40}, with test metrics."""

from searches.student_aug import BASE as _SELECTED
from searches.student_aug import QUICK as QUICK

METHOD = "student_aug"
METRIC = "val/acc"
MODE = "max"
BASE = {**_SELECTED, "eval_test": True}
GRID = {"shift_limit": [0, 10, 20, 30, 40]}
NUM_SAMPLES = 5
QUICK_NUM_SAMPLES = 5


def space(trial) -> dict:
    trial.suggest_categorical("shift_limit", GRID["shift_limit"])
    return {}
