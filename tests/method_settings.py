"""Tiny settings per registered method for the contract tests (like composer's algorithm_settings).

A method missing here fails ``test_every_method_has_settings``: adding a method means adding its tiny settings.
"""

# Shared by every method: one epoch of two steps on a few samples.
TINY = {"epochs": 1, "steps_per_epoch": 2, "batch_size": 16, "train_subset": 64, "eval_batch_size": 256}

METHOD_SETTINGS: dict[str, dict] = {
    "erm": {"dataset": "digits", "model": "small_cnn"},
    "mixup": {"dataset": "digits", "model": "small_cnn"},
    "cutmix": {"dataset": "digits", "model": "small_cnn"},
    "manifold_mixup": {"dataset": "digits", "model": "small_cnn"},
    "saliencymix": {"dataset": "digits", "model": "small_cnn", "teacher_epochs": 1},
    "transformmix": {"dataset": "digits", "model": "small_cnn", "teacher_epochs": 1, "mix_epochs": 1},
    "orbit": {"teacher_epochs": 1, "orbit_steps": 3, "orbit_batch_size": 16},
    "transinv": {"teacher_epochs": 1, "teacher_train_subset": 64, "n_inner": 1, "aug_z_dim": 8, "aug_width": 16},
    "ft": {"teacher_epochs": 1, "teacher_train_subset": 64, "ft_fixedaug": "gaussian_noise"},
    **{name: {"dataset": "digits", "tta_samples": 2, "tta_pool": 8} for name in ("flowinv", "augerino", "instaaug")},
    **{
        name: {"teacher_epochs": 1}
        for name in ("student_ce", "student_aug", "kd", "hidden_match", "rdl", "cka", "attention")
    },
}
