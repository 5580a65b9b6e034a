"""Figure 2 for attention: the selected setting at every shift limit s in {0, 10, 20, 30, 40}, with test metrics."""

from searches._mnist1d import SHIFTS, sweep_space
from searches.attention import BASE as _SELECTED
from searches.attention import QUICK as QUICK

METHOD = "attention"
METRIC = "val/acc"
MODE = "max"
BASE = {**_SELECTED, "eval_test": True}
GRID = SHIFTS
NUM_SAMPLES = 5
QUICK_NUM_SAMPLES = 5
space = sweep_space
