"""Figure 2 for student_ce: the selected setting at every shift limit s in {0, 10, 20, 30, 40}, with test metrics."""

from searches._mnist1d import SHIFTS, sweep_space
from searches.student_ce import BASE as _SELECTED
from searches.student_ce import QUICK as QUICK

METHOD = "student_ce"
METRIC = "val/acc"
MODE = "max"
BASE = {**_SELECTED, "eval_test": True}
GRID = SHIFTS
NUM_SAMPLES = 5
QUICK_NUM_SAMPLES = 5
space = sweep_space
