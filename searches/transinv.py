"""TransInv: Gumbel temperatures, n_inner, augmenter lr, ranges, primitives, z dim, MLP width, teachers, init, lr."""

METHOD = "transinv"
METRIC = "val/acc"
MODE = "max"
NUM_SAMPLES = 32
# The paper's §4.2 setting: WRN-40-2 teachers trained on CIFAR-10 with one corruption (here Gaussian noise), the
# WRN-40-2 target fine-tuned from it on CIFAR-100 with the four primitives; the target's budget as TeachAugment's.
BASE = {
    "dataset": "cifar100",
    "model": "wrn_40_2",
    "epochs": 200,
    "batch_size": 128,
    "lr": 0.1,
    "augment": "flip_crop",
    "teacher_dataset": "cifar10",
    "teacher_arch": "wrn_40_2",
    "teacher_epochs": 100,
    "teacher_lr": 0.1,
    "teachers": ["gaussian_noise"],
    "init": "teacher",
    "aug_z_dim": 128,
    "aug_width": 512,
}
# Offline on a 2-core CPU in minutes: teachers on the first five shapes classes (trained once on the driver), the
# target on the other five, small CNNs, 3 target epochs per trial.
QUICK = {
    "dataset": "shapes:half=2",
    "teacher_dataset": "shapes:half=1",
    "model": "small_cnn",
    "teacher_arch": "small_cnn",
    "epochs": 4,
    "batch_size": 64,
    "augment": "none",
    "teacher_epochs": 6,
    "teacher_lr": 0.05,
    "aug_z_dim": 16,
    "aug_width": 32,
}
QUICK_NUM_SAMPLES = 4

PRIMITIVE_SETS = [
    "contrast_brightness,affine,gaussian_blur,gaussian_noise",
    "contrast_brightness,affine,gaussian_blur,gaussian_noise,saturation,sharpness,elastic",
]
TEACHER_SETS = ["gaussian_noise", "gaussian_noise,ema", "gaussian_noise,contrast,gaussian_blur"]


def space(trial) -> dict:
    trial.suggest_float("tau_p", 0.1, 2.0, log=True)
    trial.suggest_float("tau_q", 0.02, 1.0, log=True)
    trial.suggest_float("tau_r", 0.1, 2.0, log=True)
    trial.suggest_int("n_inner", 1, 10)
    trial.suggest_float("aug_lr", 1e-4, 1e-2, log=True)
    trial.suggest_float("aug_range_scale", 0.25, 1.0)
    trial.suggest_categorical("aug_primitives", PRIMITIVE_SETS)
    trial.suggest_categorical("aug_z_dim", [16, 64, 128])
    trial.suggest_categorical("aug_width", [32, 128, 512])
    trial.suggest_categorical("teachers", TEACHER_SETS)
    trial.suggest_categorical("init", ["teacher", "scratch"])
    trial.suggest_float("lr", 1e-2, 0.2, log=True)
    return {}
