"""What the MNIST-1D transfer searches share: the paper's s = 30 max-pool setting, QUICK, and the Figure 2 grid.

Not a search itself (the leading underscore keeps it out of ``--list``); ``searches/<method>.py`` adds its own
selected knobs to :data:`MAXPOOL_S30`, and ``searches/<method>_sweep.py`` runs that selection over :data:`SHIFTS`.
"""

MAXPOOL_S30 = {
    "dataset": "mnist1d_shift",
    "shift_limit": 30,
    "model": "mlp_maxpool1d",
    "teacher_arch": "circconv1d_teacher",
    "teacher_layers": ["conv1", "conv2"],
    "student_layers": ["fc1", "fc2"],
    "epochs": 100,
    "steps_per_epoch": 100,
    "batch_size": 1000,
}
"""The paper's MNIST-1D experiment (supplement A.1): 10,000 steps at batch 1000, teacher layers → student layers."""

QUICK = {"epochs": 8, "steps_per_epoch": 100, "batch_size": 250}
"""About a minute on 2 cores: 800 student steps and the default 1,000-step teacher (with 30 student steps and a
200-step teacher, Orbit's best trial ended at 0.41 and its ρ learned from a teacher that had not learned the shifts)."""

SHIFTS = {"shift_limit": [0, 10, 20, 30, 40]}
"""The shift limits s of the paper's Figure 2."""


def sweep_space(trial) -> dict:
    """The Figure 2 sweep's space: one trial per shift limit (the grid sampler visits each once)."""
    trial.suggest_categorical("shift_limit", SHIFTS["shift_limit"])
    return {}
