"""SaliencyMix (Uddin et al., 2021) with teacher CAMs as saliency: searched α, mix probability, lr, weight decay."""

METHOD = "saliencymix"
METRIC = "val/acc"
MODE = "max"
NUM_SAMPLES = 24
# Same data, task net and teacher as searches/transformmix.py, so the two share one cached teacher.
BASE = {
    "dataset": "cifar100",
    "model": "preactresnet18",
    "epochs": 200,
    "batch_size": 128,
    "lr": 0.1,
    "augment": "flip_crop",
    "teacher_arch": "preactresnet18",
    "teacher_epochs": 100,
    "teacher_lr": 0.1,
}
# TransformMix's QUICK data, task net and teacher, so the two quick searches share one cached teacher too.
QUICK = {
    "dataset": "shapes",
    "model": "small_cnn",
    "epochs": 4,
    "batch_size": 64,
    "augment": "none",
    "teacher_arch": "small_cnn",
    "teacher_epochs": 6,
    "teacher_lr": 0.05,
}
QUICK_NUM_SAMPLES = 6


def space(trial) -> dict:
    trial.suggest_float("mix_alpha", 0.1, 4.0, log=True)
    trial.suggest_float("mix_prob", 0.25, 1.0)
    trial.suggest_float("lr", 1e-2, 0.3, log=True)
    trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True)
    return {}
