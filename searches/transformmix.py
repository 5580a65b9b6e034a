"""TransformMix: searched mixer architecture, τ init, α, k, mixer lr and epochs, task lr, weight decay, mix prob."""

METHOD = "transformmix"
METRIC = "val/acc"
MODE = "max"
NUM_SAMPLES = 32
# The paper's CIFAR-100 PreActResNet-18 setting (Table 2), with App. F's 200-epoch task budget per trial: a search
# ranks configurations, and the final run (autoinv.train) can train longer.
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
    "mix_optimizer": "sgd",
    "mix_weight_decay": 0.01,
}
# Offline on a 2-core CPU in about 5 minutes, and learning visibly: all 4,500 shapes training images (a 1,024-image
# subset left the teacher at 0.28 and the best trial at 0.25, near chance), a small CNN as teacher (trained once on
# the driver, 6 epochs) and as task net, 4 task epochs per trial with no base augmentation (at 4 epochs flip-crop
# only slows learning; the mixes are the augmentation), the mixer with AdamW (the Config default) for 32 steps per
# search epoch (half a pass: with whole passes the search took 5.8 min, over the 5-minute budget).
QUICK = {
    "dataset": "shapes",
    "model": "small_cnn",
    "epochs": 4,
    "batch_size": 64,
    "augment": "none",
    "teacher_arch": "small_cnn",
    "teacher_epochs": 6,
    "teacher_lr": 0.05,
    "mix_optimizer": "adam",
    "mix_steps_per_epoch": 32,
}
QUICK_NUM_SAMPLES = 4


def space(trial) -> dict:
    trial.suggest_int("mix_layers", 2, 4)
    trial.suggest_categorical("mix_channels", [8, 16, 32, 64])
    trial.suggest_categorical("mix_kernel", [3, 5, 7])
    trial.suggest_float("mix_tau_init", 0.1, 2.0, log=True)
    trial.suggest_float("mix_alpha", 0.2, 4.0, log=True)
    trial.suggest_categorical("mix_k", [2, 3])
    trial.suggest_float("mix_lr", 1e-4, 1e-2, log=True)
    trial.suggest_int("mix_epochs", 1, 8, log=True)
    trial.suggest_float("lr", 1e-2, 0.3, log=True)
    trial.suggest_float("weight_decay", 1e-5, 1e-3, log=True)
    trial.suggest_float("mix_prob", 0.25, 1.0)
    return {}
