"""Figure 2 for rdl: the selected setting at every shift limit s in {0, 10, 20, 30, 40}, with test metrics."""

from searches._mnist1d import SHIFTS, sweep_space
from searches.rdl import BASE as _SELECTED
from searches.rdl import QUICK as QUICK

METHOD = "rdl"
METRIC = "val/acc"
MODE = "max"
BASE = {**_SELECTED, "eval_test": True}
GRID = SHIFTS
NUM_SAMPLES = 5
QUICK_NUM_SAMPLES = 5
space = sweep_space
